"""Online fine-tuning from chunk-level transitions (ALGORITHM.md, "The loop"), without ROS.

The learner node and the in-process ``finetune`` command both run this: transitions in
robot units arrive (from any number of sources), are normalised with the model's stats and
stored beside the expert demonstrations; ``update()`` runs one OTPR iteration (dual steps,
IQL, OT-guided score matching); ``snapshot()`` writes a complete model directory the policy
server can swap in.

The expert demonstrations are the pre-training datasets (HDF5). The model's keypoints are
found among them again, so masked OT keeps the pairs the potentials were trained with; if
a keypoint is not in the data, new keypoints are drawn (and ``keypoints_reused`` says so).
Transitions are numbered per source: a repeated sequence number is dropped, a skipped one
counted as lost.
"""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from otpr_ros.core.agent import check_config
from otpr_ros.data.robomimic_hdf5 import RobomimicDataset
from otpr_ros.model.directory import Model, save_model
from otpr_ros.model.pretraining import expert_buffer, normalise_chunks

OBS_CLIP = 5.0        # as the acting policy clips normalised observations
# what may differ from the pre-training configuration when fine-tuning (no network shape)
TUNABLE = {"agent": ("num_candidates", "guidance", "actor_batch", "actor_sampler", "actor_ddim_steps",
                     "q_temperature", "advantage_temperature", "advantage_clip"),
           "transport": ("masked", "beta", "ot_every", "ot_steps", "batch_states", "batch_actions"),
           "critic": ("batch_size",)}


def apply_overrides(model: Model, overrides) -> None:
    """``section.key=value`` settings (YAML values) for fine-tuning, e.g. the paper's
    ablations (``agent.guidance=q``, ``transport.masked=false``) or a smaller actor batch on
    a CPU. Only settings that leave the networks' shapes alone are accepted."""
    import yaml

    from otpr_ros.core.config import OTPRConfig
    data = model.config.to_dict()
    for item in overrides:
        name, _, text = item.partition("=")
        section, _, key = name.partition(".")
        if not text or key not in TUNABLE.get(section, ()):
            raise ValueError(f"override {item!r}: expected section.key=value with one of "
                             f"{[f'{s}.{k}' for s, keys in TUNABLE.items() for k in keys]}")
        data[section][key] = yaml.safe_load(text)
    config = OTPRConfig.from_dict(data, "overrides")
    try:
        check_config(config)
    except ValueError as error:
        raise ValueError(f"overrides: {error}") from None
    model.config = model.agent.config = config
    relation = model.agent.relation_cost
    if relation is not None:          # the transport cost holds beta
        model.agent.set_keypoints(relation.obs, relation.actions)


def expert_demonstrations(model: Model, paths=()) -> RobomimicDataset:
    """The expert demonstrations for fine-tuning ``model``: ``paths``, or else the model's
    pre-training datasets; a ValueError names missing files and the commands that make them."""
    paths = [p for p in paths if p] or model.info.extra.get("datasets", [])
    missing = [p for p in paths if not Path(p).is_file()]
    if not paths or missing:
        commands = "; ".join(model.info.extra.get("dataset_commands", []))
        raise ValueError(f"datasets: expert demonstrations {missing or '(none)'} not found; make them with: "
                         f"{commands or 'collect-demos'}")
    return RobomimicDataset(paths, model.info.obs_keys, act_dim=model.info.act_dim, split="train")


@dataclass
class SourceCounts:
    last_sequence: int = -1
    received: int = 0
    duplicates: int = 0
    lost: int = 0


@dataclass
class TransitionCounts:
    sources: dict = field(default_factory=dict)      # source id -> SourceCounts
    refused: int = 0

    def summary(self) -> dict:
        return {"received": sum(s.received for s in self.sources.values()),
                "duplicates": sum(s.duplicates for s in self.sources.values()),
                "lost": sum(s.lost for s in self.sources.values()), "refused": self.refused,
                "sources": len(self.sources)}


def find_rows(table: torch.Tensor, rows: torch.Tensor, atol: float = 1e-5):
    """Index of each of ``rows`` in ``table`` (None if any is missing)."""
    index = []
    for row in rows:
        hits = torch.nonzero((table - row).abs().max(dim=1).values <= atol).flatten()
        if hits.numel() == 0:
            return None
        index.append(int(hits[0]))
    return torch.tensor(index, device=table.device)


class OnlineLearner:
    def __init__(self, model: Model, dataset):
        """``model``: loaded on the learning device; ``dataset``: the expert demonstrations
        (a RobomimicDataset with the model's observation keys)."""
        if dataset.obs_dim != model.info.obs_dim:
            raise ValueError(f"dataset: observations of {dataset.obs_dim} values, the model takes {model.info.obs_dim}")
        self.model, self.agent, config = model, model.agent, model.config
        self.buffer = expert_buffer(dataset, config, model.obs_normalizer, model.action_normalizer, self.agent.device)
        self.keypoints_reused = self._reuse_keypoints()
        self.counts = TransitionCounts()
        self.action_size = config.chunk * config.act_dim

    def _reuse_keypoints(self) -> bool:
        relation = self.agent.relation_cost
        expert = self.buffer.expert
        if relation is not None:
            obs_index = find_rows(expert.data["obs"][:expert.size], relation.obs)
            if obs_index is not None and torch.allclose(expert.data["action"][obs_index], relation.actions, atol=1e-5):
                self.buffer.keypoint_index = obs_index
                return True
        count = min(self.model.config.transport.num_keypoints, expert.size - 1)
        self.buffer.select_keypoints(count, self.agent.generator)
        self.agent.set_keypoints(self.buffer.keypoint_obs, self.buffer.keypoint_actions)
        return False

    # -- data ---------------------------------------------------------------------------------
    def add(self, fields: dict) -> str:
        """One transition (robot units, ``bus_messages.transition_fields``): 'added',
        'duplicate', or raises ValueError naming the problem (counted as refused)."""
        source = self.counts.sources.setdefault(int(fields["source"]), SourceCounts())
        sequence = int(fields["sequence"])
        if sequence <= source.last_sequence:
            source.duplicates += 1
            return "duplicate"
        try:
            row = self._normalised(fields)
            self.buffer.add(*row)
        except ValueError:
            self.counts.refused += 1
            raise
        source.lost += sequence - source.last_sequence - 1
        source.last_sequence = sequence
        source.received += 1
        return "added"

    def _normalised(self, fields: dict):
        obs_dim = self.model.info.obs_dim
        obs, next_obs = (np.asarray(fields[k], np.float64) for k in ("obs", "next_obs"))
        action = np.asarray(fields["action"], np.float64)
        if obs.shape != (obs_dim,) or next_obs.shape != (obs_dim,) or action.shape != (self.action_size,):
            raise ValueError(f"transition: expected obs/next_obs of {obs_dim} and action of {self.action_size} "
                             f"values, got {obs.shape}, {next_obs.shape}, {action.shape}")
        normalise = self.model.obs_normalizer.normalize
        return (np.clip(normalise(obs[None]), -OBS_CLIP, OBS_CLIP).astype(np.float32),
                normalise_chunks(self.model.action_normalizer, action[None], self.model.info.act_dim).astype(np.float32),
                np.array([fields["reward"]], np.float32),
                np.clip(normalise(next_obs[None]), -OBS_CLIP, OBS_CLIP).astype(np.float32),
                np.array([float(fields["terminal"])], np.float32), np.array([fields["steps"]], np.float32))

    @property
    def online_size(self) -> int:
        return self.buffer.online.size

    # -- learning -----------------------------------------------------------------------------
    def update(self) -> dict:
        return self.agent.update(self.buffer)

    def snapshot(self, path, card: str) -> Path:
        """The current weights as a model directory (atomic: a crash leaves no half model)."""
        return save_model(path, self.agent, self.model.info, self.model.obs_normalizer, self.model.action_normalizer,
                          card)
