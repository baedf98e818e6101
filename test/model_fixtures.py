"""A small real model directory for tests: a tiny config pre-trained for a few steps on a
small real HDF5 file (random but well-formed episodes)."""

import numpy as np
import yaml

from otpr_ros.data.robomimic_hdf5 import write_dataset

DIMS = {"robot0_eef_pos": 3, "robot0_eef_quat": 4, "robot0_gripper_qpos": 2, "object": 10}
TINY_CONFIG = {"otpr": {"obs_dim": 19, "act_dim": 7, "chunk": 4, "device": "cpu", "expert_capacity": 1000,
                        "buffer_capacity": 1000,
                        "diffusion": {"num_steps": 5, "hidden": [32, 32], "time_dim": 8},
                        "critic": {"hidden": [32, 32], "batch_size": 32},
                        "transport": {"hidden": [32], "num_keypoints": 8, "batch_states": 32, "batch_actions": 32,
                                      "warmup_steps": 5},
                        "agent": {"num_candidates": 4, "actor_batch": 32}}}


def episode(length, seed):
    rng = np.random.default_rng(seed)
    obs = {k: rng.normal(size=(length + 1, d)) for k, d in DIMS.items()}
    rewards, dones = np.zeros(length), np.zeros(length)
    rewards[-1] = dones[-1] = 1.0
    return {"obs": {k: v[:-1] for k, v in obs.items()}, "next_obs": {k: v[1:] for k, v in obs.items()},
            "actions": rng.uniform(-1, 1, size=(length, 7)), "rewards": rewards, "dones": dones,
            "states": rng.normal(size=(length, 5))}


def make_tiny_model(tmp_path, name="model", gamma=None, extra_args=()):
    """``gamma``: the critic's discount (default: the configuration's); ``extra_args``: more of
    otpr-pretrain's arguments."""
    import copy

    from otpr_ros.tools.pretrain import main as pretrain_main

    dataset = tmp_path / "demos.hdf5"
    write_dataset(dataset, [episode(12, s) for s in range(6)], {"env_name": "Lift"}, valid_fraction=0.0)
    config = tmp_path / "tiny.yaml"
    settings = copy.deepcopy(TINY_CONFIG)
    if gamma is not None:
        settings["otpr"]["critic"]["gamma"] = gamma
    config.write_text(yaml.safe_dump(settings))
    output = tmp_path / name
    code = pretrain_main(["--task", "lift", "--dataset", str(dataset), "--output", str(output), "--config", str(config),
                          "--policy-steps", "20", "--critic-steps", "10", "--batch-size", "16", "--device", "cpu",
                          "--logdir", str(tmp_path / "tb"), *extra_args])
    assert code == 0
    return output


TINY_KITCHEN_CONFIG = {"otpr": {
    "act_dim": 9, "chunk": 8, "device": "cpu", "buffer_capacity": 1000,
    "diffusion": {"num_steps": 5, "hidden": [32, 32], "time_dim": 8}, "critic": {"hidden": [32, 32]},
    "transport": {"hidden": [32], "num_keypoints": 8, "batch_states": 16, "batch_actions": 16, "warmup_steps": 5},
    "agent": {"num_candidates": 4, "actor_batch": 32, "execute_steps": 4}}}   # 4 of each chunk of 8


def make_tiny_kitchen_model(tmp_path, obs_keys=None):
    """One kitchen_complete demonstration by otpr-collect-demos (real MuJoCo), and a tiny model
    pre-trained on it by otpr-pretrain and evaluated on one episode: (model, demonstrations).
    ``obs_keys``: ``otpr-pretrain --obs-keys`` (None: the task's own observation)."""
    from otpr_ros.tools.collect_demos import main as collect_demos
    from otpr_ros.tools.pretrain import main as pretrain_main

    demos = tmp_path / "kitchen_complete.hdf5"
    assert collect_demos(["--task", "kitchen_complete", "--episodes", "1", "--seed", "0", "--processes", "1",
                          "--output", str(demos)]) == 0
    config = tmp_path / "tiny_kitchen.yaml"
    config.write_text(yaml.safe_dump(TINY_KITCHEN_CONFIG))
    output = tmp_path / "kitchen_model"
    assert pretrain_main(["--task", "kitchen_complete", "--dataset", str(demos), "--output", str(output),
                          "--config", str(config), "--policy-steps", "10", "--critic-steps", "10", "--batch-size",
                          "16", "--device", "cpu", "--eval-episodes", "1", "--logdir", str(tmp_path / "tb")]
                         + (["--obs-keys", obs_keys] if obs_keys else [])) == 0
    return output, demos


def make_tiny_calvin_model(tmp_path, task="calvin_open_drawer"):
    """Three demonstrations of a CALVIN task by otpr-collect-demos (real calvin_env), and a tiny
    model pre-trained on them by otpr-pretrain and evaluated on one episode: (model, demonstrations)."""
    from otpr_ros.tools.collect_demos import main as collect_demos
    from otpr_ros.tools.pretrain import main as pretrain_main

    demos = tmp_path / f"{task}.hdf5"
    assert collect_demos(["--task", task, "--episodes", "3", "--seed", "0", "--processes", "1",
                          "--output", str(demos)]) == 0
    config = tmp_path / "tiny_calvin.yaml"
    settings = {"otpr": {**TINY_KITCHEN_CONFIG["otpr"], "act_dim": 7, "chunk": 4}}
    config.write_text(yaml.safe_dump(settings))
    output = tmp_path / "calvin_model"
    assert pretrain_main(["--task", task, "--dataset", str(demos), "--output", str(output), "--config", str(config),
                          "--policy-steps", "10", "--critic-steps", "10", "--batch-size", "16", "--device", "cpu",
                          "--eval-episodes", "1", "--logdir", str(tmp_path / "tb")]) == 0
    return output, demos
