"""One whole decision as a module: (normalised obs, noise) -> candidates, weights, score.

The same module runs in torch and is exported to ONNX, so both backends compute the same
function of the same inputs. The choice among candidates (a categorical draw from the
weights, or their arg-max) happens outside, from a given uniform number, so it too is
identical across backends.
"""

import numpy as np
import torch
from torch import nn

from otpr_ros.core.agent import OTPRAgent

SELECTIONS = ("sample", "argmax")


class DecisionGraph(nn.Module):
    """K denoising steps for L candidates per state, then H (or IDQL weights before the
    potentials are trained) and the fallback score ``u + v - c`` (or Q)."""

    def __init__(self, agent: OTPRAgent):
        super().__init__()
        d = agent.config.diffusion
        self.agent = agent
        self.sampler = agent.policy.sampler(d.sampler, d.ddim_steps, d.eta)
        # registered so that tracing (ONNX export) sees their weights as parameters
        self.critic, self.potentials = agent.critic, agent.potentials

    def forward(self, obs: torch.Tensor, noise: torch.Tensor):
        candidates = self.sampler(obs, noise)
        weights, score = self.agent.candidate_weights(obs, candidates)
        return candidates, weights, score


def select(weights: np.ndarray, score: np.ndarray, how: str, uniform: np.ndarray) -> np.ndarray:
    """Index of the chosen candidate per row: a draw from ``weights / sum`` (``sample``) or
    their arg-max; rows whose weights are all zero (or not finite) take the score's arg-max."""
    if how not in SELECTIONS:
        raise ValueError(f"selection: expected one of {SELECTIONS}, got {how!r}")
    weights = np.where(np.isfinite(weights), np.maximum(weights, 0.0), 0.0)
    totals = weights.sum(axis=1)
    fallback = np.argmax(np.where(np.isfinite(score), score, -np.inf), axis=1)
    if how == "argmax":
        chosen = weights.argmax(axis=1)
    else:
        cumulative = np.cumsum(weights, axis=1)
        chosen = (cumulative < (uniform * totals)[:, None]).sum(axis=1)
        chosen = np.minimum(chosen, weights.shape[1] - 1)
    return np.where(totals > 0, chosen, fallback)
