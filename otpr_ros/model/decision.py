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
from otpr_ros.core.resampling import select as select_candidate


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
    """``core.resampling.select`` (the one selection rule) on the backends' numpy outputs."""
    return select_candidate(torch.as_tensor(weights), torch.as_tensor(score), how,
                            None if uniform is None else torch.as_tensor(np.asarray(uniform))).numpy()
