"""IQL critic on action chunks (ALGORITHM.md, "Critic: IQL on chunks").

The MDP action is the whole chunk; a transition's reward is the discounted sum inside
the executed chunk and its bootstrap discount is ``gamma ** steps_executed``.
"""

import copy

import torch
from torch import nn

from otpr_ros.core.layers import adam, compiled_once, lerp_parameters, mlp, mlp_on_pair


def expectile_loss(diff: torch.Tensor, tau: float) -> torch.Tensor:
    """``|tau - 1(diff < 0)| * diff^2``: its minimiser over a constant is the tau-expectile."""
    weight = torch.where(diff < 0, 1.0 - tau, tau)
    return weight * diff.pow(2)


class ChunkCritic(nn.Module):
    """Twin Q(s, a) with Polyak targets, and V(s)."""

    def __init__(self, obs_dim: int, action_dim: int, hidden=(256, 256, 256)):
        super().__init__()
        self.obs_dim, self.action_dim = obs_dim, action_dim
        self.q1 = mlp(obs_dim + action_dim, hidden, 1)
        self.q2 = mlp(obs_dim + action_dim, hidden, 1)
        self.v = mlp(obs_dim, hidden, 1)
        self.q1_target = copy.deepcopy(self.q1).requires_grad_(False)
        self.q2_target = copy.deepcopy(self.q2).requires_grad_(False)

    def q(self, obs: torch.Tensor, actions: torch.Tensor):
        x = torch.cat([obs, actions], dim=-1)
        return self.q1(x).squeeze(-1), self.q2(x).squeeze(-1)

    def target_q(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """``min(Q1_targ, Q2_targ)``; leading dimensions broadcast, e.g. (Bs, 1, .) x (1, Ba, .)."""
        return torch.minimum(mlp_on_pair(self.q1_target, obs, actions),
                             mlp_on_pair(self.q2_target, obs, actions)).squeeze(-1)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.v(obs).squeeze(-1)

    @torch.no_grad()
    def update_targets(self, polyak: float) -> None:
        lerp_parameters(self.q1_target, self.q1, polyak)
        lerp_parameters(self.q2_target, self.q2, polyak)


class IQL:
    """One IQL update: V by expectile regression on the target Q, then both Q by TD."""

    def __init__(self, critic: ChunkCritic, lr: float = 3e-4, tau: float = 0.7, gamma: float = 0.999,
                 polyak: float = 0.005):
        if not 0.0 < tau < 1.0:
            raise ValueError(f"tau: the expectile must lie in (0, 1), got {tau}")
        self.critic, self.tau, self.gamma, self.polyak = critic, tau, gamma, polyak
        self.v_optimizer = adam(critic.v.parameters(), lr)
        self.q_optimizer = adam([*critic.q1.parameters(), *critic.q2.parameters()], lr)
        self._compiled = {}

    def update(self, batch, compiled: bool | str = False) -> dict:
        """``compiled``: the forward and backward passes through ``torch.compile`` (one
        compilation per batch size; a string names the mode, see ``compiled_once``); the
        optimiser steps stay eager."""
        parts = (self._v_loss, self._td_target, self._q_loss)
        if compiled:
            parts = [compiled_once(self._compiled, part.__name__, lambda part=part: part, compiled)
                     for part in parts]
        v_loss_of, td_target_of, q_loss_of = parts
        v_loss, q_target, v = v_loss_of(batch.obs, batch.action)
        self.v_optimizer.zero_grad(set_to_none=True)
        v_loss.backward()
        self.v_optimizer.step()

        td_target = td_target_of(batch.reward, batch.steps, batch.terminal, batch.next_obs)
        q_loss = q_loss_of(batch.obs, batch.action, td_target)
        self.q_optimizer.zero_grad(set_to_none=True)
        q_loss.backward()
        self.q_optimizer.step()
        self.critic.update_targets(self.polyak)
        return {"critic/v_loss": float(v_loss.detach()), "critic/q_loss": float(q_loss.detach()),
                "critic/q_mean": float(q_target.mean()),
                "critic/q_abs_mean": float(q_target.abs().mean()), "critic/v_mean": float(v.detach().mean())}

    def _v_loss(self, obs, action):
        """V by expectile regression on the target Q: (loss, target Q, V)."""
        with torch.no_grad():
            q_target = self.critic.target_q(obs, action)
        v = self.critic.value(obs)
        return expectile_loss(q_target - v, self.tau).mean(), q_target, v

    @torch.no_grad()
    def _td_target(self, reward, steps, terminal, next_obs):
        discount = self.gamma ** steps * (1.0 - terminal)
        return reward + discount * self.critic.value(next_obs)

    def _q_loss(self, obs, action, td_target):
        q1, q2 = self.critic.q(obs, action)
        return (q1 - td_target).pow(2).mean() + (q2 - td_target).pow(2).mean()


CONVERGED_ERROR = 0.1   # mean |Q - return| on held-out episodes below which a critic counts as a value function


@torch.no_grad()
def value_error(critic: ChunkCritic, episodes) -> dict:
    """How far Q is from a value function along whole episodes the critic has not trained on.

    ``episodes``: (obs (T, obs_dim), chunks (T, action_dim), returns (T,)) each, normalised as
    the critic's inputs, ``returns[t]`` the discounted return earned from step t on. Returns
    ``mean_abs_error`` (each episode's mean |target Q - return|, averaged over episodes),
    ``q_start`` and ``return_start`` (means over episodes at their first step) and
    ``converged`` (``mean_abs_error < CONVERGED_ERROR``). A critic that has learned values
    only near the episodes' ends shows Q ~ 0 at the start where the return is ~ gamma^T.
    """
    if not episodes:
        raise ValueError("episodes: no held-out episodes to measure the critic on")
    errors, q_start, return_start = [], [], []
    for obs, chunks, returns in episodes:
        q = critic.target_q(obs, chunks)
        errors.append(float((q - returns).abs().mean()))
        q_start.append(float(q[0]))
        return_start.append(float(returns[0]))
    error = sum(errors) / len(errors)
    return {"mean_abs_error": error, "q_start": sum(q_start) / len(q_start),
            "return_start": sum(return_start) / len(return_start), "episodes": len(episodes),
            "converged": error < CONVERGED_ERROR}
