"""L2-regularised (masked) optimal transport from states to action chunks.

ALGORITHM.md, "Transport potentials and compatibility":

    c(s, a) = -Qn(s, a) + beta * g(s, a)
    J(u, v) = mean_i u(s_i) + mean_j v(a_j) - 1/(4 lambda) mean_ij m_ij (u_i + v_j - c_ij)_+^2
    H(s, a) = m(s, a) (u(s) + v(a) - c(s, a))_+ / (2 lambda)

The potentials exist as neural nets (``NeuralPotentials``) and as free vectors over a finite
set (``TabularPotentials``); both go through ``dual_objective``. With uniform marginals over
n states and m actions the plan ``gamma_ij = H_ij / (n m)`` is POT's l2 smooth-OT plan with
``reg = 2 * lambda * n * m`` (checked in test/unit/test_transport.py).
"""

import math

import torch
from torch import nn
from torch.nn import functional as F

from otpr_ros.core.checks import check_finite
from otpr_ros.core.layers import compiled_once, mlp

LOG2 = math.log(2.0)


# -- keypoint relation cost g (paper eq. 13) ---------------------------------------------
def relation_logits(x: torch.Tensor, keypoints: torch.Tensor, rho: float, distance: str) -> torch.Tensor:
    """``log softmax_i(-d(x, k_i) / rho)`` over the N keypoints: (..., N)."""
    if distance == "sqeuclidean":
        d = (x[..., None, :] - keypoints).pow(2).sum(-1)
    elif distance == "cosine":
        d = 1.0 - F.cosine_similarity(x[..., None, :], keypoints, dim=-1, eps=1e-8)
    else:
        raise ValueError(f"distance: expected 'sqeuclidean' or 'cosine', got {distance!r}")
    return torch.log_softmax(-d / rho, dim=-1)


def js_divergence(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """Jensen-Shannon divergence over the last axis, from log-probabilities; in [0, log 2]."""
    # logaddexp written out: the same value, and ONNX has no logaddexp operator
    log_m = torch.maximum(log_p, log_q) + torch.log1p(torch.exp(-(log_p - log_q).abs())) - LOG2
    js = 0.5 * (log_p.exp() * (log_p - log_m)).sum(-1) + 0.5 * (log_q.exp() * (log_q - log_m)).sum(-1)
    return js.clamp_min(0.0)


class KeypointRelationCost:
    """g(s, a) = JS(R^s(s) || R^a(a)) against N expert keypoint pairs (s_i, a_i)."""

    def __init__(self, keypoint_obs: torch.Tensor, keypoint_actions: torch.Tensor, rho: float = 1.0,
                 distance: str = "sqeuclidean"):
        if keypoint_obs.shape[0] != keypoint_actions.shape[0] or keypoint_obs.shape[0] == 0:
            raise ValueError(f"keypoints: need N >= 1 matching pairs, got {keypoint_obs.shape[0]} states "
                             f"and {keypoint_actions.shape[0]} actions")
        if rho <= 0:
            raise ValueError(f"rho: the temperature must be positive, got {rho}")
        check_finite("keypoint_obs", keypoint_obs)
        check_finite("keypoint_actions", keypoint_actions)
        self.obs, self.actions, self.rho, self.distance = keypoint_obs, keypoint_actions, rho, distance

    def __call__(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Leading dimensions broadcast: (Bs, 1, .) x (1, Ba, .) gives the (Bs, Ba) product."""
        return js_divergence(relation_logits(obs, self.obs, self.rho, self.distance),
                             relation_logits(actions, self.actions, self.rho, self.distance))


class RunningScale:
    """Running estimate of |Q| so that lambda means the same on every task."""

    def __init__(self, momentum: float = 0.01, floor: float = 1e-3):
        self.momentum, self.floor, self.value = momentum, floor, None

    def update(self, batch_abs_mean: float) -> float:
        """Fold in one batch's mean |Q|."""
        batch_scale = float(batch_abs_mean)
        self.value = batch_scale if self.value is None else \
            (1 - self.momentum) * self.value + self.momentum * batch_scale
        return self.scale

    @property
    def scale(self) -> float:
        return max(self.value if self.value is not None else 1.0, self.floor)

    def state_dict(self) -> dict:
        return {"momentum": self.momentum, "floor": self.floor, "value": self.value}

    def load_state_dict(self, state: dict) -> None:
        self.momentum, self.floor, self.value = state["momentum"], state["floor"], state["value"]


class TransportCost:
    """``c(s, a) = -Qn(s, a) + beta * g(s, a)``, without gradient; ``beta = 0`` drops g."""

    def __init__(self, critic, q_scale: RunningScale, beta: float = 0.0, relation_cost=None):
        if beta != 0.0 and relation_cost is None:
            raise ValueError("beta: a keypoint relation cost is needed when beta != 0")
        self.critic, self.q_scale, self.beta, self.relation_cost = critic, q_scale, beta, relation_cost
        self._compiled = {}

    @torch.no_grad()
    def __call__(self, obs: torch.Tensor, actions: torch.Tensor, compiled: bool | str = False) -> torch.Tensor:
        """``compiled``: target Q and g through ``torch.compile`` (one compilation per shape;
        the learner's updates use it, acting does not)."""
        terms = compiled_once(self._compiled, "terms", lambda: self._terms, compiled) if compiled else self._terms
        q, g = terms(obs, actions)
        cost = -q / self.q_scale.scale
        return cost if g is None else cost + self.beta * g

    def _terms(self, obs: torch.Tensor, actions: torch.Tensor):
        g = self.relation_cost(obs, actions) if self.beta != 0.0 else None
        return self.critic.target_q(obs, actions), g


# -- the mask, the dual objective and the compatibility ------------------------------------
def keypoint_mask(state_keypoint_ids: torch.Tensor, action_keypoint_ids: torch.Tensor) -> torch.Tensor:
    """m_ij: 0 where state i is keypoint k and action j is not its pair; 1 elsewhere.

    Ids are keypoint indices, -1 for points that are not keypoints. A keypoint state must
    send all its mass (1/B_s) to its paired action, which holds 1/B_a: the masked problem is
    feasible only when B_a <= B_s (otherwise the dual is unbounded), so that is required.
    """
    if action_keypoint_ids.shape[0] > state_keypoint_ids.shape[0]:
        raise ValueError(f"batch: masked OT needs no more actions than states (B_a <= B_s), got "
                         f"B_s={state_keypoint_ids.shape[0]}, B_a={action_keypoint_ids.shape[0]}")
    is_keypoint_state = state_keypoint_ids[:, None] >= 0
    paired = state_keypoint_ids[:, None] == action_keypoint_ids[None, :]
    return (~is_keypoint_state | paired).to(torch.float32)


def transport_score(u: torch.Tensor, v: torch.Tensor, cost: torch.Tensor) -> torch.Tensor:
    """``u(s) + v(a) - c(s, a)``: H is its positive part over 2 lambda."""
    return u + v - cost


def compatibility(u: torch.Tensor, v: torch.Tensor, cost: torch.Tensor, lam: float, mask=None) -> torch.Tensor:
    h = F.relu(transport_score(u, v, cost)) / (2.0 * lam)
    return h if mask is None else h * mask


def dual_objective(u: torch.Tensor, v: torch.Tensor, cost: torch.Tensor, lam: float, mask=None) -> torch.Tensor:
    """J(u, v) on a product batch: u (Bs,), v (Ba,), cost and mask (Bs, Ba). Maximise it."""
    check_dual_inputs(u.shape[0], v.shape[0], cost, lam)
    return penalised_objective(u, v, cost, lam, mask)


def check_dual_inputs(num_states: int, num_actions: int, cost: torch.Tensor, lam: float) -> None:
    if cost.shape != (num_states, num_actions):
        raise ValueError(f"cost: expected shape {(num_states, num_actions)}, got {tuple(cost.shape)}")
    check_finite("cost", cost)
    if lam <= 0:
        raise ValueError(f"lam: lambda must be positive, got {lam}")


def penalised_objective(u: torch.Tensor, v: torch.Tensor, cost: torch.Tensor, lam: float, mask=None) -> torch.Tensor:
    """``dual_objective`` without its checks (the part that ``torch.compile`` traces)."""
    penalty = F.relu(u[:, None] + v[None, :] - cost).pow(2)
    if mask is not None:
        penalty = penalty * mask
    return u.mean() + v.mean() - penalty.mean() / (4.0 * lam)


class NeuralPotentials(nn.Module):
    """u(s) and v(a) as MLPs (Seguy et al. 2018)."""

    def __init__(self, obs_dim: int, action_dim: int, hidden=(256, 256)):
        super().__init__()
        self.u_net = mlp(obs_dim, hidden, 1)
        self.v_net = mlp(action_dim, hidden, 1)
        self._compiled = {}

    def u(self, obs: torch.Tensor) -> torch.Tensor:
        return self.u_net(obs).squeeze(-1)

    def v(self, actions: torch.Tensor) -> torch.Tensor:
        return self.v_net(actions).squeeze(-1)

    def objective(self, obs: torch.Tensor, actions: torch.Tensor, cost: torch.Tensor, lam: float, mask=None,
                  compiled: bool | str = False) -> torch.Tensor:
        """``dual_objective`` of u(obs) and v(actions). ``compiled``: u, v and J, forward and
        backward, through ``torch.compile`` (one compilation per shape; see ``compiled_once``)."""
        check_dual_inputs(obs.shape[0], actions.shape[0], cost, lam)
        terms = compiled_once(self._compiled, "objective", lambda: self._objective, compiled) if compiled else \
            self._objective
        return terms(obs, actions, cost, lam, mask)

    def _objective(self, obs, actions, cost, lam, mask):
        return penalised_objective(self.u(obs), self.v(actions), cost, lam, mask)


class TabularPotentials(nn.Module):
    """u and v as free vectors over ``num_states`` states and ``num_actions`` actions (by index)."""

    def __init__(self, num_states: int, num_actions: int, dtype=torch.float32):
        super().__init__()
        self.u_table = nn.Parameter(torch.zeros(num_states, dtype=dtype))
        self.v_table = nn.Parameter(torch.zeros(num_actions, dtype=dtype))

    def u(self, state_index: torch.Tensor) -> torch.Tensor:
        return self.u_table[state_index]

    def v(self, action_index: torch.Tensor) -> torch.Tensor:
        return self.v_table[action_index]


def fit_tabular(cost: torch.Tensor, lam: float, mask=None, max_iter: int = 500) -> TabularPotentials:
    """Maximise J exactly over all n x m pairs (uniform marginals) with L-BFGS.

    J is concave and, on the full product, a smooth finite-dimensional problem: a
    second-order method reaches the optimum to solver precision, which is what a
    comparison with an exact solver needs.
    """
    n, m = cost.shape
    potentials = TabularPotentials(n, m, dtype=cost.dtype).to(cost.device)
    states, actions = torch.arange(n, device=cost.device), torch.arange(m, device=cost.device)
    optimizer = torch.optim.LBFGS(potentials.parameters(), lr=1.0, max_iter=max_iter, tolerance_grad=1e-12,
                                  tolerance_change=1e-15, history_size=50, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = -dual_objective(potentials.u(states), potentials.v(actions), cost, lam, mask)
        loss.backward()
        return loss

    optimizer.step(closure)
    return potentials
