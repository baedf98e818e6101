"""The acting policy: a robot observation in, an action chunk in robot units out.

Normalises the observation with the model's stats, draws the denoising noise from its own
generator, runs one decision on a backend (torch, ONNX Runtime or OpenVINO: same graph, same noise),
picks a candidate (a draw from H, or its arg-max), and returns the chunk de-normalised and
clipped to the model's action bounds. Anything that is not finite is refused, never acted on.
"""

import numpy as np

from otpr_ros.model.backends import OnnxBackend, OpenVinoBackend, TorchBackend
from otpr_ros.core.resampling import SELECTIONS
from otpr_ros.model.decision import select
from otpr_ros.model.directory import Model, load_model

BACKENDS = ("torch", "onnx", "openvino")


CANDIDATE_MODES = ("eval", "train")
MAX_CANDIDATES = 256          # the policy server's bound on L before it took named modes


def evaluation_candidates(config) -> int:
    """L to act with for evaluation, from an OTPR configuration: 1 for ``eval_mode: single``
    (the paper's evaluation, the plain diffusion policy), else ``agent.num_candidates``
    (arg-max of H)."""
    return 1 if config.agent.eval_mode == "single" else config.agent.num_candidates


def resolve_candidates(setting, config) -> int:
    """L from a ``candidates`` setting, the one rule for every acting path: ``eval`` (as
    ``otpr-evaluate`` acts, ``evaluation_candidates``), ``train`` (the model's
    ``agent.num_candidates``, acting for training), or a count 1..MAX_CANDIDATES (int or its digits)."""
    if setting == "eval":
        return evaluation_candidates(config)
    if setting == "train":
        return config.agent.num_candidates
    count = int(setting) if isinstance(setting, str) and setting.isdigit() else setting
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_CANDIDATES:
        raise ValueError(f"candidates: expected one of {CANDIDATE_MODES} or a count in 1..{MAX_CANDIDATES}, "
                         f"got {setting!r}")
    return count


class UnsafeOutput(RuntimeError):
    """The decision produced something that must not reach a robot."""


class ChunkPolicy:
    def __init__(self, model, backend: str = "torch", candidates: str | int = "train",
                 selection: str = "argmax", seed: int = 0, compiled: bool = False):
        """``candidates``: L, as ``resolve_candidates`` reads it (``eval``, ``train`` or a count)."""
        if backend not in BACKENDS:
            raise ValueError(f"backend: expected one of {BACKENDS}, got {backend!r}")
        self.model = model if isinstance(model, Model) else load_model(model)
        self.num_candidates = resolve_candidates(candidates, self.model.config)
        if selection not in SELECTIONS:
            raise ValueError(f"selection: expected one of {SELECTIONS}, got {selection!r}")
        self.selection = selection
        if backend == "torch":
            self.backend = TorchBackend(self.model, compiled)
        elif backend == "onnx":
            self.backend = OnnxBackend(self.model)
        else:
            self.backend = OpenVinoBackend(self.model, self.num_candidates)
        info = self.model.info
        self.low, self.high = np.asarray(info.action_low, np.float64), np.asarray(info.action_high, np.float64)
        self.rng = np.random.default_rng(seed)
        d = self.model.config.diffusion
        self._noise_steps = self.model.agent.policy.noise_shape(1, 1, d.sampler, d.ddim_steps)[0]

    @property
    def obs_dim(self) -> int:
        return self.model.info.obs_dim

    @property
    def execute_steps(self) -> int:
        """Actions of each chunk to execute before deciding again (the model's
        ``agent.execute_steps``; 0: the whole chunk), as ``BridgeSession.run_chunk`` takes it."""
        return self.model.config.agent.execute_steps

    def draw_noise(self, batch: int) -> np.ndarray:
        shape = (self._noise_steps, batch, self.num_candidates, self.model.config.action_dim)
        return self.rng.standard_normal(shape, dtype=np.float32)

    def decide_batch(self, obs: np.ndarray, noise: np.ndarray | None = None, uniform=None):
        """(B, obs_dim) raw observations -> (B, chunk, act_dim) actions in robot units, the
        chosen indices, and the candidates' weights."""
        obs = np.asarray(obs, dtype=np.float64)
        if obs.ndim != 2 or obs.shape[1] != self.obs_dim:
            raise ValueError(f"observation: expected shape (B, {self.obs_dim}), got {obs.shape}")
        if not np.isfinite(obs).all():
            raise ValueError("observation: NaN or Inf")
        normalised = np.clip(self.model.obs_normalizer.normalize(obs), -5.0, 5.0).astype(np.float32)
        noise = self.draw_noise(len(obs)) if noise is None else np.asarray(noise, dtype=np.float32)
        uniform = self.rng.random(len(obs)) if uniform is None else np.asarray(uniform)
        candidates, weights, score = self.backend(normalised, noise)
        index = select(weights, score, self.selection, uniform)
        chunk = candidates[np.arange(len(obs)), index].reshape(len(obs), self.model.info.chunk, -1)
        actions = self.model.action_normalizer.unnormalize(chunk.astype(np.float64))
        if not np.isfinite(actions).all():
            raise UnsafeOutput("decision: non-finite action; nothing is published")
        return np.clip(actions, self.low, self.high), index, weights

    def decide(self, obs: np.ndarray) -> np.ndarray:
        """One raw observation (obs_dim,) -> (chunk, act_dim) actions in robot units."""
        return self.decide_batch(np.asarray(obs)[None])[0][0]
