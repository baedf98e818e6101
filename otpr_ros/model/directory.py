"""A self-describing model directory: everything needed to act with (and fine-tune) a policy.

    model.json      format version, task, observation keys in order, dims, chunk size,
                    action bounds, control rate, and the sha256 of every file below
    config.yaml     the full OTPR configuration (section ``otpr``)
    weights.pt      diffusion policy (+ EMA), critic, potentials, Q scale, keypoints
    normalizer.json min-max stats of observations and of single actions
    MODEL_CARD.md   dataset, seeds, training steps, measured success and how to reproduce

A missing file, a file whose checksum differs from ``model.json``, or weights that do not
fit the configuration are refused with an error naming the directory and the problem.
Files are written to a temporary directory first and moved into place, so a crash never
leaves a half-written model behind.
"""

import hashlib
import io
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml

from otpr_ros.core.agent import OTPRAgent, check_config
from otpr_ros.core.config import OTPRConfig
from otpr_ros.core.normalizer import MinMaxNormalizer

FORMAT = "otpr_ros/model"
VERSION = 1
FILES = ("config.yaml", "weights.pt", "normalizer.json", "MODEL_CARD.md")


class ModelError(ValueError):
    """A model directory that cannot be used, with the reason."""


@dataclass
class ModelInfo:
    task: str
    obs_keys: list
    obs_dim: int
    act_dim: int
    chunk: int
    action_low: list
    action_high: list
    control_hz: float
    extra: dict = field(default_factory=dict)     # training provenance, free-form


@dataclass
class Model:
    path: Path
    info: ModelInfo
    config: OTPRConfig
    agent: OTPRAgent
    obs_normalizer: MinMaxNormalizer
    action_normalizer: MinMaxNormalizer
    weights_sha256: str


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def save_model(path, agent: OTPRAgent, info: ModelInfo, obs_normalizer: MinMaxNormalizer,
               action_normalizer: MinMaxNormalizer, card: str) -> Path:
    path = Path(path)
    if obs_normalizer.dim != info.obs_dim or action_normalizer.dim != info.act_dim:
        raise ModelError(f"{path}: normaliser dims ({obs_normalizer.dim}, {action_normalizer.dim}) do not match "
                         f"obs_dim {info.obs_dim} / act_dim {info.act_dim}")
    staging = path.with_name(path.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    (staging / "config.yaml").write_text(yaml.safe_dump({"otpr": _plain(agent.config.to_dict())}, sort_keys=False))
    buffer = io.BytesIO()
    torch.save(_to_cpu(agent.weights_state_dict()), buffer)
    (staging / "weights.pt").write_bytes(buffer.getvalue())
    (staging / "normalizer.json").write_text(json.dumps(
        {"obs": obs_normalizer.to_dict(), "action": action_normalizer.to_dict()}, indent=1))
    (staging / "MODEL_CARD.md").write_text(card)
    manifest = {"format": FORMAT, "version": VERSION, **info.__dict__,
                "files": {name: sha256(staging / name) for name in FILES}}
    (staging / "model.json").write_text(json.dumps(manifest, indent=1))
    if path.exists():
        shutil.rmtree(path)
    staging.rename(path)
    return path


def amend_card(path, text: str) -> None:
    """Append ``text`` to the model card of the directory at ``path`` (its checksum follows)."""
    path = Path(path)
    card = path / "MODEL_CARD.md"
    card.write_text(card.read_text() + text)
    manifest = json.loads((path / "model.json").read_text())
    manifest["files"]["MODEL_CARD.md"] = sha256(card)
    (path / "model.json").write_text(json.dumps(manifest, indent=1))


def model_directory(path) -> Path:
    """``path`` as a Path; ModelError when it is not a directory."""
    path = Path(path)
    if not path.is_dir():
        raise ModelError(f"{path}: not a model directory (does not exist or is not a directory)")
    return path


def read_info(path) -> tuple[ModelInfo, dict]:
    """The manifest, checked against the files beside it."""
    path = model_directory(path)
    try:
        manifest = json.loads((path / "model.json").read_text())
    except FileNotFoundError:
        raise ModelError(f"{path}: missing model.json") from None
    except json.JSONDecodeError as error:
        raise ModelError(f"{path}/model.json: not valid JSON ({error})") from None
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise ModelError(f"{path}/model.json: format {manifest.get('format')!r} version {manifest.get('version')!r}, "
                         f"expected {FORMAT!r} version {VERSION}")
    for name in FILES:
        if not (path / name).is_file():
            raise ModelError(f"{path}: missing {name}")
        expected = manifest.get("files", {}).get(name)
        if sha256(path / name) != expected:
            raise ModelError(f"{path}/{name}: checksum does not match model.json (file changed or corrupt)")
    fields = set(ModelInfo.__dataclass_fields__)
    missing = fields - {"extra"} - set(manifest)
    if missing:
        raise ModelError(f"{path}/model.json: missing {sorted(missing)}")
    return ModelInfo(**{k: manifest[k] for k in fields if k in manifest}), manifest


def read_config(path) -> OTPRConfig:
    """The OTPR configuration a model directory was trained with (its ``config.yaml``), checked
    by the agent's own rules: what a bridge or a learner reads (gamma, execute_steps) is sound."""
    path = model_directory(path)
    try:
        config = OTPRConfig.from_yaml(path / "config.yaml")
        check_config(config)
        return config
    except (ValueError, OSError) as error:
        raise ModelError(f"{path}/config.yaml: {error}") from None


def load_model(path, device: str = "auto") -> Model:
    path = Path(path)
    info, manifest = read_info(path)
    config = read_config(path)
    if (config.obs_dim, config.act_dim, config.chunk) != (info.obs_dim, info.act_dim, info.chunk):
        raise ModelError(f"{path}: config.yaml (obs_dim {config.obs_dim}, act_dim {config.act_dim}, chunk "
                         f"{config.chunk}) does not match model.json ({info.obs_dim}, {info.act_dim}, {info.chunk})")
    config.device = device
    stats = json.loads((path / "normalizer.json").read_text())
    obs_normalizer, action_normalizer = (MinMaxNormalizer.from_dict(stats[k]) for k in ("obs", "action"))
    if obs_normalizer.dim != info.obs_dim or action_normalizer.dim != info.act_dim:
        raise ModelError(f"{path}/normalizer.json: dims ({obs_normalizer.dim}, {action_normalizer.dim}) do not match "
                         f"obs_dim {info.obs_dim} / act_dim {info.act_dim}")
    agent = OTPRAgent(config)
    weights = torch.load(path / "weights.pt", map_location=agent.device, weights_only=True)
    try:
        agent.load_weights(weights)
    except (KeyError, RuntimeError) as error:
        raise ModelError(f"{path}/weights.pt: does not fit config.yaml ({str(error).splitlines()[0]})") from None
    return Model(path, info, config, agent, obs_normalizer, action_normalizer, manifest["files"]["weights.pt"])


def _to_cpu(tree):
    if isinstance(tree, torch.Tensor):
        return tree.detach().cpu()
    if isinstance(tree, dict):
        return {k: _to_cpu(v) for k, v in tree.items()}
    return tree


def _plain(tree):
    """Tuples as lists, so the YAML is plain."""
    if isinstance(tree, dict):
        return {k: _plain(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [_plain(v) for v in tree]
    return tree
