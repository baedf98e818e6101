"""Configuration of the OTPR core: one dataclass per part, loaded strictly from YAML.

Defaults follow ALGORITHM.md and the paper's table 2. Values the paper leaves open
(lambda, beta, rho, the potentials' size and learning rate) are marked "chosen" below.
An unknown key is an error, so a typo in a YAML file never silently keeps a default.
"""

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import yaml


@dataclass
class DiffusionConfig:
    num_steps: int = 20                      # K
    hidden: tuple = (512, 512, 512)
    time_dim: int = 32
    sampler: str = "ddpm"                    # ddpm | ddim, for acting
    ddim_steps: int = 20
    eta: float = 1.0                         # DDIM only
    compile: bool = False                    # torch.compile the acting sampler (~25 s once, ~40 % faster)
    pretrain_lr: float = 1e-3                # ALGORITHM.md 1e-4; 1e-3 measured better (docs/method.md)
    pretrain_lr_schedule: str = "constant"   # constant | cosine: annealed to 0 over the policy's pre-training steps
    finetune_lr: float = 1e-5
    finetune_lr_schedule: str = "constant"   # constant | cosine: the actor's rate annealed to 0 over the run's
                                             # env-step budget (a run without a budget refuses cosine)
    weight_decay: float = 1e-6
    ema_decay: float = 0.995


@dataclass
class CriticConfig:
    hidden: tuple = (256, 256, 256)
    lr: float = 3e-4
    tau: float = 0.7                         # expectile
    gamma: float = 0.999
    polyak: float = 0.005
    batch_size: int = 256
    steps_per_update: int = 1                # IQL steps in each fine-tuning update (cheap beside the actor's)
    batch_mix: str = "uniform"               # uniform: every stored transition alike | fixed: online_fraction
    online_fraction: float = 0.5             # batch_mix fixed: share of each critic batch from online data
    truncation: str = "bootstrap"            # an online episode cut short (horizon, reset): bootstrap from its
                                             # last next state (time-limit convention) | failure: it ends there,
                                             # no value after (running out of time is failing: success-only reward)


@dataclass
class TransportConfig:
    lam: float = 0.1                         # chosen: lambda of the L2 regulariser, on Q scaled to ~1
    masked: bool = True                      # False with beta = 0 is OTPR-U
    beta: float = 1.0                        # chosen: weight of the keypoint relation cost g (g <= log 2)
    rho: float = 1.0                         # chosen: softmax temperature of the relations
    distance: str = "sqeuclidean"            # sqeuclidean | cosine
    num_keypoints: int = 64
    hidden: tuple = (256, 256)               # chosen: u and v networks
    lr: float = 1e-4                         # chosen
    batch_states: int = 128                  # B_s of a product batch
    batch_actions: int = 128                 # B_a
    ot_every: int = 1
    ot_steps: int = 1
    warmup_steps: int = 500                  # dual steps before H replaces IDQL weights when acting
    q_scale_momentum: float = 0.01


@dataclass
class AgentConfig:
    num_candidates: int = 8                  # L
    eval_mode: str = "argmax"                # single (L = 1, the paper) | argmax (of H over L)
    execute_steps: int = 0                   # actions of each chunk executed before the next decision (a
                                             # receding horizon; the transition keeps the whole chunk and
                                             # bootstraps with gamma ** steps executed); 0: the whole chunk
    acting_weights: str = "compatibility"    # compatibility: H once the potentials are trained (the paper) |
                                             # q: softmax(Q / (|Q| scale * q_temperature)) (arg-max: largest Q)
    guidance: str = "compatibility"          # compatibility (the paper) | q | advantage | uniform: every
                                             # candidate alike (no guidance) | bc: the stored action only |
                                             # awr: the stored actions weighted by exp(advantage), no candidates
    actor_batch: int = 1024
    actor_batch_mix: str = "uniform"         # uniform over the replay | fixed: critic.online_fraction of it online
    actor_sampler: str = "ddpm"              # how training candidates are drawn
    actor_ddim_steps: int = 20
    q_normalisation: str = "scale"           # guidance q/advantage: Q / its running scale | candidates: per
                                             # state, (Q - mean) / std over that state's candidates
    q_temperature: float = 1.0               # guidance q: softmax(Qn / temperature)
    advantage_temperature: float = 3.0       # guidance advantage: exp(temperature * (Q - V) / scale); awr:
                                             # exp(temperature * (Q - V) / std over the batch)
    advantage_clip: float = 100.0
    advantage_source: str = "critic"         # awr: A = Q(s, a) - V(s) | return: A = G - V(s), G the discounted
                                             # return the stored chunk's episode earned from it on (AWR's own
                                             # estimate; Q - V while its episode is still open)
    compile_updates: bool = False            # torch.compile the updates' dense parts (target Q and g, training
                                             # candidates, score matching): same losses, faster after a one-off
                                             # compilation (benchmarks/learner_updates.py)
    compile_mode: str = "default"            # with compile_updates: torch.compile's mode, default |
                                             # reduce-overhead: each compiled part a CUDA graph (GPU; the
                                             # same as default on a CPU) | max-autotune-no-cudagraphs


@dataclass
class OTPRConfig:
    obs_dim: int
    act_dim: int = 7
    chunk: int = 4                           # Ta
    device: str = "auto"
    seed: int = 0
    buffer_capacity: int = 250_000
    expert_capacity: int = 100_000
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    critic: CriticConfig = field(default_factory=CriticConfig)
    transport: TransportConfig = field(default_factory=TransportConfig)
    agent: AgentConfig = field(default_factory=AgentConfig)

    @property
    def action_dim(self) -> int:
        """Width of a flattened action chunk."""
        return self.chunk * self.act_dim

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict, where: str = "otpr") -> "OTPRConfig":
        return _build(cls, data, where)

    @classmethod
    def from_yaml(cls, path, section: str = "otpr", defaults: dict | None = None) -> "OTPRConfig":
        """``section`` at the top level, or under ``/**: ros__parameters:`` (the ROS 2
        parameter-file form); ``defaults``: top-level values for keys the YAML leaves out
        (``otpr-pretrain`` gives ``obs_dim`` from the task)."""
        data = yaml.safe_load(Path(path).read_text()) or {}
        shared = (data.get("/**") or {}).get("ros__parameters") or {}
        if section in data:
            return _build(cls, {**(defaults or {}), **data[section]}, f"{path}:{section}")
        if section in shared:
            return _build(cls, {**(defaults or {}), **shared[section]}, f"{path}:/**.ros__parameters.{section}")
        raise ValueError(f"{path}: no '{section}' section (top level or under /**: ros__parameters:)")


def with_settings(config: OTPRConfig, items, allowed: dict | None = None, where: str = "settings") -> OTPRConfig:
    """``config`` with ``section.key=value`` settings (or top-level ``key=value``; values read as
    YAML, a later one wins). ``allowed``: ``{section: keys}`` that may change (None: any key of the
    configuration). A setting that is not allowed or not known is refused by name."""
    data = config.to_dict()
    for item in items:
        name, _, text = item.partition("=")
        section, _, key = name.rpartition(".")
        target = data.get(section) if section else data
        known = key in allowed.get(section, ()) if allowed is not None else isinstance(target, dict) and key in target
        if not text or not known:
            choices = ([f"{s}.{k}" for s, keys in allowed.items() for k in keys] if allowed is not None
                       else "a key of config/otpr.yaml, e.g. diffusion.pretrain_lr or chunk")
            raise ValueError(f"{where} {item!r}: expected section.key=value with one of {choices}")
        target[key] = yaml.safe_load(text)
    return OTPRConfig.from_dict(data, where)


def _typed(value, kind, where):
    """A scalar as its field's type. YAML 1.1 reads ``3e-6`` as a string (it wants ``3.0e-6``)
    and ``1`` as an int: numbers become the float a field asks for; anything else of the
    wrong type is refused by name (a string learning rate would fail deep inside torch)."""
    kind = {"int": int, "float": float, "str": str, "bool": bool}.get(kind, kind)
    if kind is float and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind in (int, float, str, bool) and not (isinstance(value, kind) and not (kind is int and isinstance(value, bool))):
        raise ValueError(f"{where}: expected {kind.__name__}, got {value!r}")
    return value


def _build(cls, data, where):
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(data).__name__}")
    known = {f.name: f for f in fields(cls)}
    unknown = set(data) - set(known)
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}; known: {sorted(known)}")
    values = {}
    for name, value in data.items():
        default = known[name].default_factory() if callable(known[name].default_factory) else known[name].default
        if hasattr(default, "__dataclass_fields__"):
            value = _build(type(default), value, f"{where}.{name}")
        elif isinstance(default, tuple):
            value = tuple(value)
        else:
            value = _typed(value, known[name].type, f"{where}.{name}")
        values[name] = value
    try:
        return cls(**values)
    except TypeError as error:
        raise ValueError(f"{where}: {error}") from error
