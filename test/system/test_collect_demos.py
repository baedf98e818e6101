"""otpr-collect-demos on the real simulation: the file it writes holds the scripted episodes."""

import numpy as np
import pytest

from otpr_ros.data.robomimic_hdf5 import RobomimicDataset

KEYS = ("robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos", "object")


def test_collect_demos_command_writes_a_loadable_file(tmp_path):
    pytest.importorskip("robosuite", reason="the simulation extra is not installed")
    from otpr_ros.sim.demonstrations import EpisodeJob, _init_worker, run_expert_episode
    from otpr_ros.tools.collect_demos import main
    out = tmp_path / "lift.hdf5"
    assert main(["--task", "lift", "--episodes", "2", "--seed", "3", "--processes", "1", "--output", str(out)]) == 0
    data = RobomimicDataset(out, KEYS)
    assert len(data.demos) == 2 and data.obs_dim == 19
    assert all(d.rewards[-1] == 1 and d.dones[-1] == 1 for d in data.demos)
    # the same seed run here gives the very same episode: the file holds it bit for bit
    _init_worker("lift", None)
    record = run_expert_episode(EpisodeJob(seed=3, noise=0.1, speed=1.0))
    assert np.array_equal(data.demos[0].actions, record["actions"])
    assert np.array_equal(data.demos[0].obs, np.concatenate([record["obs"][k] for k in KEYS], axis=1))
