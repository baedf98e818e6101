import math

import numpy as np
import ot
import pytest
import torch

from otpr_ros.core.transport import (KeypointRelationCost, NeuralPotentials, compatibility, dual_objective,
                                     fit_tabular, js_divergence, keypoint_mask, relation_logits)


def pot_plan(cost: torch.Tensor, lam: float) -> np.ndarray:
    """POT's exact l2-regularised plan for uniform marginals. Its regulariser is
    reg/2 ||gamma||^2; ours is lam sum gamma^2 / (mu_i nu_j) = lam n m ||gamma||^2,
    so reg = 2 lam n m (ALGORITHM.md)."""
    n, m = cost.shape
    return ot.smooth.smooth_ot_dual(np.full(n, 1 / n), np.full(m, 1 / m), cost.numpy(), reg=2 * lam * n * m,
                                    reg_type="l2", stopThr=1e-12, numItermax=10000)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("lam", [0.005, 0.05, 0.5])
def test_tabular_dual_plan_matches_pot(seed, lam):
    generator = torch.Generator().manual_seed(seed)
    n, m = 6, 7
    cost = torch.rand(n, m, generator=generator, dtype=torch.float64) * 2 - 1
    potentials = fit_tabular(cost, lam)
    with torch.no_grad():
        h = compatibility(potentials.u_table[:, None], potentials.v_table[None, :], cost, lam)
    plan = (h / (n * m)).numpy()   # gamma_ij = H_ij mu_i nu_j
    assert np.abs(plan - pot_plan(cost, lam)).max() < 1e-3
    assert abs(plan.sum() - 1) < 1e-4
    # The plan is sparse for small lambda: a real check that H clips, not a smooth softmax.
    if lam == 0.005:
        assert (plan == 0).mean() > 0.3


def test_masked_entries_are_zero_and_keypoint_pairs_stay_compatible():
    generator = torch.Generator().manual_seed(0)
    n, m, lam = 9, 8, 0.05
    cost = torch.rand(n, m, generator=generator, dtype=torch.float64)
    # states 0..2 are keypoints paired with actions 4, 0, 7; ids -1 for the rest
    state_ids = torch.tensor([0, 1, 2, -1, -1, -1, -1, -1, -1])
    action_ids = torch.full((m,), -1)
    action_ids[[4, 0, 7]] = torch.tensor([0, 1, 2])
    mask = keypoint_mask(state_ids, action_ids).double()
    # make the paired actions expensive, so only the mask can keep them matched
    cost[0, 4] = cost[1, 0] = cost[2, 7] = 5.0
    potentials = fit_tabular(cost, lam, mask)
    with torch.no_grad():
        h = compatibility(potentials.u_table[:, None], potentials.v_table[None, :], cost, lam, mask)
    assert torch.all(h[mask == 0] == 0)
    assert h[0, 4] > 0 and h[1, 0] > 0 and h[2, 7] > 0
    # each keypoint state's mass goes wholly to its pair: row marginal 1/n
    assert torch.allclose(h[[0, 1, 2]].sum(1) / (n * m), torch.full((3,), 1 / n, dtype=torch.float64), atol=1e-4)


def test_keypoint_mask_layout():
    mask = keypoint_mask(torch.tensor([1, -1, -1]), torch.tensor([-1, 1, 0]))
    assert mask.tolist() == [[0, 1, 0], [1, 1, 1], [1, 1, 1]]


def test_mask_refuses_more_actions_than_states():
    # a keypoint state's mass 1/B_s would not fit into its paired action's 1/B_a
    with pytest.raises(ValueError, match="B_a <= B_s"):
        keypoint_mask(torch.tensor([0, -1]), torch.tensor([0, -1, -1]))


def test_relation_cost_is_js_of_softmax_relations():
    kp_obs, kp_act = torch.randn(5, 3), torch.randn(5, 2)
    g = KeypointRelationCost(kp_obs, kp_act, rho=0.7)
    # a keypoint pair has the same relation profile only if it is close to its own keypoint in both spaces
    obs, act = torch.randn(4, 3), torch.randn(6, 2)
    product = g(obs[:, None, :], act[None, :, :])
    assert product.shape == (4, 6)
    p = torch.softmax(-torch.cdist(obs, kp_obs).pow(2) / 0.7, -1)
    q = torch.softmax(-torch.cdist(act, kp_act).pow(2) / 0.7, -1)
    m = (p[:, None] + q[None]) / 2
    reference = 0.5 * (p[:, None] * (p[:, None] / m).log()).sum(-1) + 0.5 * (q[None] * (q[None] / m).log()).sum(-1)
    assert torch.allclose(product, reference, atol=1e-5)
    assert (product >= 0).all() and (product <= math.log(2) + 1e-6).all()


def test_js_divergence_bounds():
    a = torch.log_softmax(torch.tensor([10.0, -10.0]), -1)
    b = torch.log_softmax(torch.tensor([-10.0, 10.0]), -1)
    assert float(js_divergence(a, a)) < 1e-6
    assert abs(float(js_divergence(a, b)) - math.log(2)) < 1e-3


def test_cosine_distance_and_bad_distance():
    assert relation_logits(torch.randn(2, 3), torch.randn(4, 3), 1.0, "cosine").shape == (2, 4)
    with pytest.raises(ValueError, match="distance"):
        relation_logits(torch.randn(2, 3), torch.randn(4, 3), 1.0, "manhattan")


def test_neural_and_tabular_potentials_share_the_objective():
    """Neural potentials trained by SGD on the same objective reach the tabular optimum's value."""
    generator = torch.Generator().manual_seed(3)
    states, actions = torch.randn(6, 4, generator=generator), torch.randn(7, 3, generator=generator)
    cost = torch.rand(6, 7, generator=generator)
    lam = 0.1
    tabular = fit_tabular(cost.double(), lam)
    with torch.no_grad():
        best = float(dual_objective(tabular.u_table, tabular.v_table, cost.double(), lam))
    potentials = NeuralPotentials(4, 3, hidden=(64, 64))
    optimizer = torch.optim.Adam(potentials.parameters(), lr=3e-3)
    for _ in range(1500):
        loss = -dual_objective(potentials.u(states), potentials.v(actions), cost, lam)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert abs(-float(loss.detach()) - best) < 2e-3 * max(1.0, abs(best))


@pytest.mark.parametrize("cost, lam, message", [
    (torch.rand(3, 5), 0.1, "cost: expected shape"),
    (torch.tensor([[float("nan")] * 4] * 3), 0.1, "cost: 12 entries are NaN or Inf"),
    (torch.rand(3, 4), 0.0, "lam"),
])
def test_dual_objective_refuses_bad_input(cost, lam, message):
    with pytest.raises(ValueError, match=message):
        dual_objective(torch.zeros(3), torch.zeros(4), cost, lam)


def test_relation_cost_refuses_bad_keypoints():
    with pytest.raises(ValueError, match="keypoints"):
        KeypointRelationCost(torch.randn(3, 2), torch.randn(4, 2))
    with pytest.raises(ValueError, match="rho"):
        KeypointRelationCost(torch.randn(3, 2), torch.randn(3, 2), rho=0.0)
    with pytest.raises(ValueError, match="keypoint_obs"):
        KeypointRelationCost(torch.full((3, 2), float("inf")), torch.randn(3, 2))
