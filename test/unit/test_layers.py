"""The layers the networks share: Mish in closed form (what compiled updates run) agrees with
PyTorch's, and an MLP on a pair with its first layer split equals it on the concatenation."""

import torch
from torch.nn import functional as F

from otpr_ros.core import layers
from otpr_ros.core.critic import ChunkCritic
from otpr_ros.core.layers import adam, lerp_parameters, load_optimizer, mlp, mlp_on_pair


def test_closed_form_mish_equals_pytorchs_to_a_few_ulps(monkeypatch):
    x = torch.cat([torch.linspace(-40.0, 40.0, 200001), torch.tensor([0.0, -1e-30, 1e-30, 88.0, -88.0, 1e4, -1e4])])
    eager = layers.mish(x)
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    closed = layers.mish(x)
    assert torch.equal(eager, F.mish(x))
    assert torch.isfinite(closed).all()
    assert float(((closed - eager).abs() / x.abs().clamp_min(1.0)).max()) < 2e-6   # a few float32 ulps


def test_closed_form_mish_is_what_compiled_code_runs():
    x = torch.randn(64, 32) * 4
    compiled = torch.compile(layers.mish, dynamic=False, backend="aot_eager")   # traced without a C++ build
    assert float((compiled(x) - F.mish(x)).abs().max()) < 2e-6


def test_mlp_on_a_product_equals_the_mlp_on_concatenated_pairs():
    torch.manual_seed(0)
    net = mlp(5 + 3, (32, 32), 1)
    states, actions = torch.randn(7, 5), torch.randn(11, 3)
    product = mlp_on_pair(net, states[:, None, :], actions[None, :, :])
    pairs = torch.cat([states[:, None, :].expand(7, 11, 5), actions[None].expand(7, 11, 3)], -1)
    assert product.shape == (7, 11, 1)
    assert torch.allclose(product, net(pairs), atol=1e-6, rtol=1e-5)
    # and row by row (equal leading dimensions), as the critic's own batches are
    assert torch.allclose(mlp_on_pair(net, states[:3], actions[:3]), net(torch.cat([states[:3], actions[:3]], -1)),
                          atol=1e-6, rtol=1e-5)


def test_target_q_keeps_its_value_and_its_broadcasting():
    torch.manual_seed(1)
    critic = ChunkCritic(obs_dim=4, action_dim=6, hidden=(16, 16))
    obs, actions = torch.randn(3, 4), torch.randn(3, 5, 6)
    q = critic.target_q(obs[:, None, :], actions)
    x = torch.cat([obs[:, None, :].expand(3, 5, 4), actions], -1)
    expected = torch.minimum(critic.q1_target(x), critic.q2_target(x)).squeeze(-1)
    assert q.shape == (3, 5)
    assert torch.allclose(q, expected, atol=1e-6, rtol=1e-5)


def test_fused_adam_makes_the_updates_of_per_tensor_adam():
    torch.manual_seed(2)
    nets = [mlp(6, (32, 32), 2) for _ in range(2)]
    nets[1].load_state_dict(nets[0].state_dict())
    plain = torch.optim.Adam(nets[0].parameters(), lr=1e-3, weight_decay=1e-6)
    fused = adam(nets[1].parameters(), 1e-3, 1e-6)
    x, y = torch.randn(64, 6), torch.randn(64, 2)
    for _ in range(50):
        for net, optimizer in zip(nets, (plain, fused)):
            optimizer.zero_grad()
            (net(x) - y).pow(2).mean().backward()
            optimizer.step()
    for a, b in zip(nets[0].parameters(), nets[1].parameters()):
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-5)


def test_a_per_tensor_adam_state_resumes_fused():
    net = mlp(3, (8,), 1)
    plain = torch.optim.Adam(net.parameters(), lr=1e-3)
    net(torch.randn(4, 3)).sum().backward()
    plain.step()
    fused = adam(net.parameters(), 1e-3)
    load_optimizer(fused, plain.state_dict())
    assert fused.param_groups[0]["fused"] is True
    fused.step()
    assert int(fused.state_dict()["state"][0]["step"]) == 2


def test_lerp_parameters_moves_each_parameter_by_the_weight():
    source, target = mlp(3, (8,), 1), mlp(3, (8,), 1)
    before = [p.clone() for p in target.parameters()]
    lerp_parameters(target, source, 0.25)
    for b, s, t in zip(before, source.parameters(), target.parameters()):
        assert torch.allclose(t, b + 0.25 * (s - b), atol=1e-7)
