import pytest
import torch

from learning_fixtures import batch_from, exact_expectile
from otpr_ros.core.critic import IQL, ChunkCritic, expectile_loss


def test_expectile_loss_minimiser_is_the_expectile():
    values = torch.tensor([0.0, 1.0, 3.0])
    grid = torch.linspace(0, 3, 30001)
    losses = expectile_loss(values[None, :] - grid[:, None], 0.8).mean(1)
    assert abs(float(grid[losses.argmin()]) - exact_expectile(values, torch.full((3,), 1 / 3), 0.8)) < 1e-3


def test_chunk_discount_is_gamma_to_the_steps_executed():
    """s0 -(chunk, 3 steps, r=0)-> s1 -(chunk, terminal, r=1)-> end: Q(s0) = gamma ** 3."""
    gamma = 0.9
    critic = ChunkCritic(obs_dim=1, action_dim=1, hidden=(32, 32))
    iql = IQL(critic, lr=2e-3, tau=0.7, gamma=gamma, polyak=0.05)
    s0, s1, a = torch.tensor([[-1.0]]), torch.tensor([[1.0]]), torch.tensor([[0.0]])
    obs, next_obs = torch.cat([s0, s1]), torch.cat([s1, s1])
    batch = batch_from(obs, torch.cat([a, a]), torch.tensor([0.0, 1.0]), next_obs, torch.tensor([0.0, 1.0]),
                       torch.tensor([3.0, 4.0]))
    for _ in range(1500):
        iql.update(batch)
    with torch.no_grad():
        q0, q1 = critic.target_q(obs, torch.cat([a, a]))
    assert abs(float(q1) - 1.0) < 0.02
    assert abs(float(q0) - gamma ** 3) < 0.02, float(q0)


def test_target_networks_follow_by_polyak_averaging():
    critic = ChunkCritic(obs_dim=2, action_dim=2, hidden=(8,))
    with torch.no_grad():
        for p in critic.q1.parameters():
            p.add_(1.0)
    before = [p.clone() for p in critic.q1_target.parameters()]
    critic.update_targets(0.25)
    for b, t, o in zip(before, critic.q1_target.parameters(), critic.q1.parameters()):
        assert torch.allclose(t, 0.75 * b + 0.25 * o)


def test_tau_outside_unit_interval_is_refused():
    with pytest.raises(ValueError, match="tau"):
        IQL(ChunkCritic(2, 2, (8,)), tau=1.0)
