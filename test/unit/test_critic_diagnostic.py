"""The critic's diagnostic: Q along held-out demonstrations against the discounted return
they earned. Real HDF5 files and the real pre-training; a critic trained too briefly has
values only near the episodes' ends (as the shipped 2 000-step critics had) and must fail."""

import numpy as np
import pytest
import torch

from otpr_ros.core.config import OTPRConfig
from otpr_ros.core.critic import CONVERGED_ERROR, ChunkCritic, value_error
from otpr_ros.data.robomimic_hdf5 import RobomimicDataset, write_dataset
from otpr_ros.training.pretraining import held_out_episodes, pretrain

KEYS = ("robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos", "object")
DIMS = {"robot0_eef_pos": 3, "robot0_eef_quat": 4, "robot0_gripper_qpos": 2, "object": 10}


def chain(length, seed):
    """An episode that moves steadily from 0 to 1 in every observation and succeeds at its end."""
    rng = np.random.default_rng(seed)
    progress = np.linspace(0, 1, length + 1)[:, None]
    obs = {k: np.repeat(progress, d, axis=1) + 0.01 * rng.normal(size=(length + 1, d)) for k, d in DIMS.items()}
    rewards, dones = np.zeros(length), np.zeros(length)
    rewards[-1] = dones[-1] = 1.0
    return {"obs": {k: v[:-1] for k, v in obs.items()}, "next_obs": {k: v[1:] for k, v in obs.items()},
            "actions": rng.uniform(-1, 1, size=(length, 7)), "rewards": rewards, "dones": dones,
            "states": np.zeros((length, 1))}


@pytest.fixture(autouse=True)
def one_thread():
    """Small networks: one thread is faster, and far faster on a loaded machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    path = tmp_path_factory.mktemp("chain") / "chain.hdf5"
    write_dataset(path, [chain(20 + s % 5, s) for s in range(20)], {"env_name": "Lift"}, valid_fraction=0.2)
    return (RobomimicDataset(path, KEYS, split="train"), RobomimicDataset(path, KEYS, split="valid"))


CONFIG = {"obs_dim": 19, "device": "cpu", "critic": {"hidden": [64, 64], "batch_size": 64, "gamma": 0.99},
          "transport": {"hidden": [16], "num_keypoints": 4, "batch_states": 16, "batch_actions": 16,
                        "warmup_steps": 1}}


def diagnostic_after(demos, critic_steps):
    train, valid = demos
    config = OTPRConfig.from_dict(CONFIG)
    result = pretrain(train, config, 0, critic_steps, 64)
    return value_error(result.agent.critic, held_out_episodes(valid, config, result.obs_normalizer,
                                                              result.action_normalizer, "cpu"))


def test_a_briefly_trained_critic_fails_and_a_trained_one_passes(demos):
    brief, trained = diagnostic_after(demos, 150), diagnostic_after(demos, 3000)
    assert brief["episodes"] == trained["episodes"] == 4
    # the brief critic knows nothing at an episode's start, where the return is ~0.8
    assert not brief["converged"] and brief["mean_abs_error"] > 3 * CONVERGED_ERROR
    assert brief["q_start"] < 0.3 < 0.75 < brief["return_start"]
    assert trained["converged"] and abs(trained["q_start"] - trained["return_start"]) < CONVERGED_ERROR


def test_value_error_measures_q_against_the_return():
    critic = ChunkCritic(2, 3, hidden=(8,))
    obs, chunks = torch.randn(5, 2), torch.randn(5, 3)
    q = critic.target_q(obs, chunks).detach()
    exact = value_error(critic, [(obs, chunks, q)])
    assert exact["mean_abs_error"] == pytest.approx(0.0, abs=1e-7) and exact["converged"]
    off = value_error(critic, [(obs, chunks, q + 0.5), (obs, chunks, q - 0.1)])
    assert off["mean_abs_error"] == pytest.approx(0.3, abs=1e-6) and not off["converged"]
    assert off["q_start"] == pytest.approx(float(q[0])) and off["episodes"] == 2
    with pytest.raises(ValueError, match="no held-out episodes"):
        value_error(critic, [])


def test_pretrain_prints_the_diagnostic_and_writes_it_in_the_card(demos, tmp_path, capsys):
    import json

    import yaml

    from otpr_ros.tools.pretrain import main
    config = tmp_path / "chain.yaml"
    config.write_text(yaml.safe_dump({"otpr": CONFIG | {"diffusion": {"hidden": [16], "num_steps": 3}}}))
    path = demos[0].env_args_by_file.keys()
    code = main(["--task", "lift", "--dataset", *path, "--output", str(tmp_path / "model"), "--config", str(config),
                 "--policy-steps", "0", "--critic-steps", "150", "--batch-size", "64", "--device", "cpu",
                 "--logdir", str(tmp_path / "tb"), "--no-onnx"])
    assert code == 0
    assert "critic on 4 held-out demonstrations: mean |Q - discounted return|" in capsys.readouterr().out
    card = (tmp_path / "model" / "MODEL_CARD.md").read_text()
    assert "critic on 4 held-out demonstrations (valid split)" in card and "NOT converged" in card
    check = json.loads((tmp_path / "model" / "model.json").read_text())["extra"]["critic_diagnostic"]
    assert check["converged"] is False and check["mean_abs_error"] > CONVERGED_ERROR


def test_pretrain_without_its_demonstrations_says_how_to_make_them(tmp_path, capsys):
    from otpr_ros.tools.pretrain import main
    assert main(["--task", "lift", "--dataset", str(tmp_path / "missing.hdf5"), "--output", str(tmp_path / "m"),
                 "--no-onnx"]) == 2
    error = capsys.readouterr().err
    assert "missing.hdf5: cannot be opened as HDF5" in error and "otpr-collect-demos --task lift" in error
    assert not (tmp_path / "m").exists()
