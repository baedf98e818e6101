import json

import h5py
import numpy as np
import pytest

from otpr_ros.data.robomimic_hdf5 import RobomimicDataset, write_dataset

KEYS = ("robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos", "object")
DIMS = {"robot0_eef_pos": 3, "robot0_eef_quat": 4, "robot0_gripper_qpos": 2, "object": 10}


def episode(length, seed, success=True):
    rng = np.random.default_rng(seed)
    obs = {k: rng.normal(size=(length + 1, d)) for k, d in DIMS.items()}
    rewards = np.zeros(length)
    dones = np.zeros(length)
    if success:
        rewards[-1] = dones[-1] = 1.0
    return {"obs": {k: v[:-1] for k, v in obs.items()}, "next_obs": {k: v[1:] for k, v in obs.items()},
            "actions": rng.uniform(-1, 1, size=(length, 7)), "rewards": rewards, "dones": dones,
            "states": rng.normal(size=(length, 5))}


@pytest.fixture
def dataset_file(tmp_path):
    path = tmp_path / "demos.hdf5"
    write_dataset(path, [episode(6, 0), episode(9, 1), episode(5, 2)], {"env_name": "Lift"})
    return path


def test_layout_is_robomimic(dataset_file):
    with h5py.File(dataset_file) as f:
        assert f["data"].attrs["total"] == 20
        assert json.loads(f["data"].attrs["env_args"])["env_name"] == "Lift"
        assert f["data/demo_1"].attrs["num_samples"] == 9
        assert f["data/demo_1/obs/object"].shape == (9, 10)
        assert f["data/demo_1/next_obs/object"].shape == (9, 10)
        splits = {n.decode() for n in f["mask/train"][()]} | {n.decode() for n in f["mask/valid"][()]}
        assert splits == {"demo_0", "demo_1", "demo_2"}


def test_reload_is_bit_identical(dataset_file):
    data = RobomimicDataset(dataset_file, KEYS)
    originals = [episode(6, 0), episode(9, 1), episode(5, 2)]
    assert [d.name for d in data.demos] == ["demo_0", "demo_1", "demo_2"]
    for demo, original in zip(data.demos, originals):
        assert np.array_equal(demo.obs, np.concatenate([original["obs"][k] for k in KEYS], axis=1))
        assert np.array_equal(demo.actions, original["actions"])
    assert data.obs_dim == 19 and len(data) == 20


def test_imitation_pairs_repeat_the_last_action(dataset_file):
    data = RobomimicDataset(dataset_file, KEYS)
    obs, chunks = data.imitation_pairs(chunk=4)
    assert obs.shape == (20, 19) and chunks.shape == (20, 28)
    last = data.demos[0].actions
    assert np.array_equal(chunks[5].reshape(4, 7), np.stack([last[5]] * 4))
    assert np.array_equal(chunks[3].reshape(4, 7), np.stack([last[3], last[4], last[5], last[5]]))


def test_chunk_transitions_discount_and_stop_at_done(dataset_file):
    data = RobomimicDataset(dataset_file, KEYS)
    t = data.chunk_transitions(chunk=4, gamma=0.5)
    assert t["obs"].shape == (20, 19) and t["action"].shape == (20, 28)
    # demo_0 has 6 steps and succeeds at its last: from t=3 the chunk runs 3 steps, reward 0.5^2
    assert t["steps"][3] == 3 and t["terminal"][3] == 1 and t["reward"][3] == pytest.approx(0.25)
    assert t["steps"][0] == 4 and t["terminal"][0] == 0 and t["reward"][0] == 0
    assert np.array_equal(t["next_obs"][0], data.demos[0].next_obs[3].astype(np.float32))
    # the return earned from each step on: 0.5^(5 - t) to the success at step 5
    assert t["mc_return"][:6] == pytest.approx([0.5 ** (5 - k) for k in range(6)])


def test_chunk_transitions_execute_what_the_model_executes(dataset_file):
    """agent.execute_steps 2 of chunks of 4: the demonstrations' transitions step 2 actions, as
    the online ones do (else the critic learns 4-step and 2-step values for the same input)."""
    data = RobomimicDataset(dataset_file, KEYS)
    whole, two = data.chunk_transitions(chunk=4, gamma=0.5), data.chunk_transitions(chunk=4, gamma=0.5, execute=2)
    assert np.array_equal(two["action"], whole["action"]) and np.array_equal(two["mc_return"], whole["mc_return"])
    assert two["steps"][0] == 2 and np.array_equal(two["next_obs"][0], data.demos[0].next_obs[1].astype(np.float32))
    assert two["steps"][4] == 2 and two["terminal"][4] == 1 and two["reward"][4] == pytest.approx(0.5)
    assert two["steps"][5] == 1 and two["reward"][5] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="execute: expected 0 \\(the whole chunk\\) to chunk = 4, got 5"):
        data.chunk_transitions(chunk=4, gamma=0.5, execute=5)


def test_normalizers_cover_the_data(dataset_file):
    obs_norm, act_norm = RobomimicDataset(dataset_file, KEYS).normalizers()
    assert obs_norm.dim == 19 and act_norm.dim == 7


def test_train_split(dataset_file):
    with h5py.File(dataset_file) as f:
        train = {n.decode() for n in f["mask/train"][()]}
    assert {d.name for d in RobomimicDataset(dataset_file, KEYS, split="train").demos} == train


def rewrite(path, edit):
    with h5py.File(path, "a") as f:
        edit(f)
    return path


@pytest.mark.parametrize("edit, message", [
    (lambda f: f.__delitem__("data"), "not a robomimic dataset \\(no 'data' group\\)"),
    (lambda f: f.__delitem__("data/demo_1/obs/object"), "demo_1 has no obs key 'object'"),
    (lambda f: (f.__delitem__("data/demo_0/actions"), f.create_dataset("data/demo_0/actions", data=np.zeros((6, 6)))),
     "demo_0/actions has shape \\(6, 6\\), expected \\(T, 7\\)"),
    (lambda f: (f.__delitem__("data/demo_2/obs/object"), f.create_dataset("data/demo_2/obs/object", data=np.zeros((5, 14)))),
     "demo_2/obs/object has 14 dims, earlier demos 10"),
    (lambda f: (f.__delitem__("data/demo_0/obs/object"), f.create_dataset("data/demo_0/obs/object", data=np.zeros((4, 10)))),
     "demo_0/obs/object has shape \\(4, 10\\), expected \\(6, dim\\)"),
    (lambda f: f["data/demo_0/actions"].__setitem__((0, 0), np.nan), "demo_0 holds NaN or Inf"),
])
def test_malformed_files_are_refused_with_the_file_and_problem(dataset_file, edit, message):
    rewrite(dataset_file, edit)
    with pytest.raises(ValueError, match=f"{dataset_file}: {message}"):
        RobomimicDataset(dataset_file, KEYS)


def test_not_hdf5_and_missing_split(tmp_path, dataset_file):
    text = tmp_path / "notes.hdf5"
    text.write_text("not hdf5")
    with pytest.raises(ValueError, match="notes.hdf5: cannot be opened as HDF5"):
        RobomimicDataset(text, KEYS)
    with pytest.raises(ValueError, match="no 'mask/test' split"):
        RobomimicDataset(dataset_file, KEYS, split="test")
    assert RobomimicDataset(dataset_file, KEYS, split="test", split_required=False).demos == []


def test_chunked_episodes_give_the_discounted_return_from_every_step(dataset_file):
    data = RobomimicDataset(dataset_file, KEYS)
    episodes = data.chunked_episodes(chunk=4, gamma=0.5)
    assert [len(returns) for _, _, returns in episodes] == [6, 9, 5]
    obs, chunks, returns = episodes[0]          # succeeds at its 6th and last step
    assert np.allclose(returns, 0.5 ** np.arange(5, -1, -1))
    assert np.array_equal(obs, data.demos[0].obs)
    assert np.array_equal(chunks[4], data.demos[0].actions[[4, 5, 5, 5]].reshape(-1))
