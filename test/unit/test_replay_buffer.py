import pytest
import torch

from otpr_ros.core.replay_buffer import ReplayBuffer


def transitions(n, obs_dim=3, action_dim=2, start=0):
    obs = torch.arange(start, start + n, dtype=torch.float32)[:, None].expand(n, obs_dim).clone()
    return dict(obs=obs, action=torch.rand(n, action_dim) * 2 - 1, reward=torch.rand(n), next_obs=obs + 1,
                terminal=torch.zeros(n), steps=torch.full((n,), 4.0))


def test_online_ring_evicts_oldest_and_keeps_expert():
    buffer = ReplayBuffer(3, 2, capacity=10, expert_capacity=5)
    buffer.add_expert(**transitions(5, start=1000))
    buffer.add(**transitions(8))
    buffer.add(**transitions(8, start=8))
    assert len(buffer) == 15
    online_ids = set(buffer.online.data["obs"][:, 0].tolist())
    assert online_ids == set(range(6, 16))
    batch = buffer.sample(4000, torch.Generator().manual_seed(0))
    assert batch.obs.shape == (4000, 3) and batch.action.shape == (4000, 2) and batch.steps.shape == (4000,)
    expert_share = float((batch.obs[:, 0] >= 1000).float().mean())
    assert abs(expert_share - 5 / 15) < 0.03


def test_transport_batches_put_keypoint_pairs_first():
    buffer = ReplayBuffer(3, 2, capacity=100, expert_capacity=50)
    buffer.add_expert(**transitions(50, start=100))
    buffer.add(**transitions(20))
    buffer.select_keypoints(4, torch.Generator().manual_seed(0))
    states, state_ids, actions, action_ids = buffer.sample_for_transport(16, 12)
    assert states.shape == (16, 3) and actions.shape == (12, 2)
    assert state_ids[:4].tolist() == [0, 1, 2, 3] and (state_ids[4:] == -1).all()
    assert torch.equal(states[:4], buffer.keypoint_obs) and torch.equal(actions[:4], buffer.keypoint_actions)
    # keypoint pairs are true expert pairs
    expert_obs, expert_act = buffer.expert.data["obs"], buffer.expert.data["action"]
    for k in range(4):
        row = (expert_obs == buffer.keypoint_obs[k]).all(1).nonzero().item()
        assert torch.equal(expert_act[row], buffer.keypoint_actions[k])


def test_state_dict_round_trip():
    buffer = ReplayBuffer(3, 2, capacity=10, expert_capacity=5)
    buffer.add_expert(**transitions(3))
    buffer.add(**transitions(12))
    buffer.select_keypoints(2)
    copy = ReplayBuffer(3, 2, capacity=10, expert_capacity=5)
    copy.load_state_dict(buffer.state_dict())
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    assert torch.equal(buffer.sample(32, g1).action, copy.sample(32, g2).action)
    assert torch.equal(buffer.keypoint_actions, copy.keypoint_actions)


@pytest.mark.parametrize("change, message", [
    (dict(obs=torch.rand(4, 5)), "obs: expected shape"),
    (dict(action=torch.full((4, 2), float("nan"))), "action: 8 entries are NaN or Inf"),
    (dict(reward=torch.rand(3)), "reward: expected 4 rows"),
    (dict(terminal=torch.full((4,), 0.5)), "terminal"),
    (dict(steps=torch.zeros(4)), "steps"),
    (dict(obs=torch.zeros(0, 3)), "obs: empty batch"),
])
def test_bad_transitions_are_refused_and_nothing_is_stored(change, message):
    buffer = ReplayBuffer(3, 2, capacity=10, expert_capacity=5)
    with pytest.raises(ValueError, match=message):
        buffer.add(**(transitions(4) | change))
    assert len(buffer) == 0


def test_sampling_errors():
    buffer = ReplayBuffer(3, 2, capacity=10, expert_capacity=2)
    with pytest.raises(ValueError, match="empty"):
        buffer.sample(4)
    buffer.add_expert(**transitions(2))
    with pytest.raises(ValueError, match="exceed the capacity"):
        buffer.add_expert(**transitions(1))
    with pytest.raises(ValueError, match="only 2 expert"):
        buffer.select_keypoints(3)


def test_mixed_batches_take_the_asked_share_of_online_transitions():
    buffer = ReplayBuffer(3, 2, capacity=1000, expert_capacity=1000)
    buffer.add_expert(**transitions(900))                  # obs 0..899
    buffer.add(**transitions(10, start=5000))              # obs 5000..5009: 1 % of what is stored
    generator = torch.Generator().manual_seed(0)
    batch = buffer.sample_mixed(256, 0.5, generator)
    online = batch.obs[:, 0] >= 5000
    assert batch.obs.shape == (256, 3) and int(online.sum()) == 128
    assert torch.equal(batch.next_obs, batch.obs + 1)      # rows stay whole
    assert int(buffer.sample_mixed(256, 0.0, generator).obs[:, 0].ge(5000).sum()) == 0
    assert int(buffer.sample_mixed(256, 1.0, generator).obs[:, 0].ge(5000).sum()) == 256
    with pytest.raises(ValueError, match="online_fraction"):
        buffer.sample_mixed(8, 1.5)


def test_mixed_batches_without_online_data_come_from_the_expert():
    buffer = ReplayBuffer(3, 2, capacity=10, expert_capacity=50)
    buffer.add_expert(**transitions(50))
    assert buffer.sample_mixed(32, 0.5, torch.Generator().manual_seed(0)).obs.shape == (32, 3)
