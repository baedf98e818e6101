import numpy as np
import pytest
import torch

from model_fixtures import make_tiny_model
from otpr_ros.data.robomimic_hdf5 import RobomimicDataset
from otpr_ros.model.directory import load_model
from otpr_ros.model.online_learning import OnlineLearner


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("learner")
    model_dir = make_tiny_model(root)
    return model_dir, root / "demos.hdf5"


def learner_for(tiny):
    model_dir, demos = tiny
    model = load_model(model_dir, "cpu")
    return OnlineLearner(model, RobomimicDataset([demos], model.info.obs_keys, split="train"))


def transition(sequence, source=0, steps=4, reward=0.0, rng=np.random.default_rng(0)):
    return {"obs": rng.normal(size=19), "action": rng.uniform(-1, 1, 28), "reward": reward,
            "next_obs": rng.normal(size=19), "terminal": float(reward > 0), "truncated": 0.0, "steps": float(steps),
            "sequence": float(sequence), "episode": 0.0, "source": float(source)}


def test_transitions_are_stored_normalised_with_their_discount_data(tiny):
    learner = learner_for(tiny)
    assert learner.keypoints_reused, "the model's keypoints are in its own demonstrations"
    sent = transition(0, steps=3, reward=0.998)
    assert learner.add(sent) == "added"
    store = learner.buffer.online
    model = learner.model
    expected_obs = np.clip(model.obs_normalizer.normalize(sent["obs"][None]), -5, 5)[0]
    np.testing.assert_allclose(store.data["obs"][0].numpy(), expected_obs, atol=1e-5)
    expected_action = model.action_normalizer.normalize(sent["action"].reshape(4, 7)).ravel()
    np.testing.assert_allclose(store.data["action"][0].numpy(), expected_action, atol=1e-5)
    assert (float(store.data["reward"][0]), float(store.data["steps"][0]), float(store.data["terminal"][0])) == \
        (pytest.approx(0.998), 3.0, 1.0)


def test_duplicates_are_dropped_and_gaps_counted_per_source(tiny):
    learner = learner_for(tiny)
    for sequence, source in ((0, 0), (1, 0), (1, 0), (4, 0), (0, 1), (0, 1), (1, 1)):
        learner.add(transition(sequence, source))
    counts = learner.counts.summary()
    assert (counts["received"], counts["duplicates"], counts["lost"], counts["sources"]) == (5, 2, 2, 2)
    assert learner.online_size == 5
    with pytest.raises(ValueError, match="action of 28 values"):
        learner.add({**transition(5), "action": np.zeros(7)})
    assert learner.counts.refused == 1 and learner.online_size == 5


def test_updates_change_the_policy_and_a_snapshot_reloads_to_the_same_weights(tiny, tmp_path):
    learner = learner_for(tiny)
    for sequence in range(40):
        learner.add(transition(sequence, reward=float(sequence % 10 == 9)))
    before = [p.detach().clone() for p in learner.agent.policy.ema_net.parameters()]
    for _ in range(3):
        metrics = learner.update()
    assert np.isfinite(list(metrics.values())).all()
    after = list(learner.agent.policy.ema_net.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, after)), "the acting (EMA) weights did not move"
    path = learner.snapshot(tmp_path / "v000001", "# test\n")
    reloaded = load_model(path, "cpu")
    for name, tensor in learner.agent.weights_state_dict()["policy"].items():
        torch.testing.assert_close(reloaded.agent.weights_state_dict()["policy"][name], tensor)
    assert reloaded.info == learner.model.info
