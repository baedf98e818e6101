import pytest
import torch

from otpr_ros.core.diffusion import DiffusionPolicy, cosine_alpha_bars

def test_cosine_schedule_is_decreasing_and_bounded():
    abar = cosine_alpha_bars(20)
    assert abar.shape == (20,)
    assert (abar[1:] < abar[:-1]).all() and 0 < abar[-1] < abar[0] < 1


def test_fast_path_equals_plain_forward():
    policy = DiffusionPolicy(obs_dim=23, action_dim=28, hidden=(64, 64, 64))
    obs = torch.randn(3, 23)
    noise = torch.randn(policy.noise_shape(3, 8))
    fast = policy.sample(obs, 8, noise=noise, fast=True)
    plain = policy.sample(obs, 8, noise=noise, fast=False)
    assert fast.shape == (3, 8, 28)
    assert torch.allclose(fast, plain, atol=1e-5)
    assert fast.abs().max() <= 1.0


def test_same_noise_same_draw_and_candidates_differ():
    policy = DiffusionPolicy(obs_dim=5, action_dim=4, hidden=(32, 32))
    obs = torch.randn(2, 5)
    noise = torch.randn(policy.noise_shape(2, 6, "ddim", 5))
    a = policy.sample(obs, 6, "ddim", 5, eta=0.3, noise=noise)
    b = policy.sample(obs, 6, "ddim", 5, eta=0.3, noise=noise)
    assert torch.equal(a, b)
    assert (a[:, 0] - a[:, 1]).abs().max() > 1e-3


def test_weighted_loss_ignores_zero_weight_samples():
    policy = DiffusionPolicy(obs_dim=3, action_dim=2, hidden=(16,))
    obs, actions = torch.randn(4, 3), torch.rand(4, 2)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    full = policy.per_sample_loss(obs, actions, g1)
    weighted = policy.noise_matching_loss(obs, actions, torch.tensor([1.0, 0.0, 0.0, 1.0]), g2)
    assert torch.isclose(weighted, (full[0] + full[3]) / 2)


def test_ema_moves_towards_online_weights():
    policy = DiffusionPolicy(obs_dim=3, action_dim=2, hidden=(16,))
    with torch.no_grad():
        for p in policy.net.parameters():
            p.add_(1.0)
    before = [p.clone() for p in policy.ema_net.parameters()]
    policy.update_ema(0.9)
    for b, e, o in zip(before, policy.ema_net.parameters(), policy.net.parameters()):
        assert torch.allclose(e, 0.9 * b + 0.1 * o)


@pytest.mark.parametrize("kwargs, message", [
    (dict(obs=torch.randn(2, 4), num_candidates=3), "obs: expected shape"),
    (dict(obs=torch.zeros(0, 5), num_candidates=3), "obs: empty batch"),
    (dict(obs=torch.full((2, 5), float("nan")), num_candidates=3), "obs: 10 entries are NaN or Inf"),
    (dict(obs=torch.randn(2, 5), num_candidates=0), "num_candidates"),
    (dict(obs=torch.randn(2, 5), num_candidates=3, method="euler"), "method"),
    (dict(obs=torch.randn(2, 5), num_candidates=3, method="ddim", ddim_steps=50), "ddim_steps"),
    (dict(obs=torch.randn(2, 5), num_candidates=3, noise=torch.randn(21, 2, 3, 4)), "noise: expected shape"),
])
def test_bad_sampler_input_is_refused(kwargs, message):
    policy = DiffusionPolicy(obs_dim=5, action_dim=4, hidden=(16,))
    with pytest.raises(ValueError, match=message):
        policy.sample(**kwargs)


def test_bad_training_input_is_refused():
    policy = DiffusionPolicy(obs_dim=5, action_dim=4, hidden=(16,))
    with pytest.raises(ValueError, match="actions: has 3 rows but obs has 2"):
        policy.noise_matching_loss(torch.randn(2, 5), torch.randn(3, 4))
    with pytest.raises(ValueError, match="actions: 1 entries are NaN or Inf"):
        policy.noise_matching_loss(torch.randn(2, 5), torch.tensor([[0.0, 0, 0, float("inf")], [0, 0, 0, 0]]))



def test_compiled_sampler_equals_eager_and_sees_weight_updates():
    policy = DiffusionPolicy(obs_dim=5, action_dim=4, num_steps=4, hidden=(16, 16))
    obs = torch.randn(2, 5)
    noise = torch.randn(policy.noise_shape(2, 3))
    compiled = policy.sample(obs, 3, noise=noise, compiled=True)
    assert torch.allclose(compiled, policy.sample(obs, 3, noise=noise), atol=1e-5)
    with torch.no_grad():
        for p in policy.net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    policy.update_ema(0.0)  # the acting weights change in place, as during fine-tuning
    updated = policy.sample(obs, 3, noise=noise, compiled=True)
    assert not torch.allclose(updated, compiled, atol=1e-4)
    assert torch.allclose(updated, policy.sample(obs, 3, noise=noise), atol=1e-5)
