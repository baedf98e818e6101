"""The policy's pre-training schedule on a real (small) HDF5 file: with the cosine schedule the
rate the optimiser steps with falls from diffusion.pretrain_lr toward 0 over the policy's steps;
the constant schedule keeps the rate; an unknown schedule is refused by name."""

import numpy as np
import pytest

from otpr_ros.core.config import OTPRConfig
from otpr_ros.data.robomimic_hdf5 import RobomimicDataset, write_dataset
from otpr_ros.training.pretraining import pretrain

KEYS = ("robot0_eef_pos", "object")
DIMS = {"robot0_eef_pos": 3, "object": 4}
CONFIG = {"obs_dim": 7, "device": "cpu", "diffusion": {"hidden": [32, 32], "num_steps": 5},
          "critic": {"hidden": [16]}, "transport": {"hidden": [8], "num_keypoints": 4, "batch_states": 8,
                                                    "batch_actions": 8, "warmup_steps": 0}}


def episode(length, seed):
    rng = np.random.default_rng(seed)
    obs = {k: rng.normal(size=(length + 1, d)) for k, d in DIMS.items()}
    rewards, dones = np.zeros(length), np.zeros(length)
    rewards[-1] = dones[-1] = 1.0
    return {"obs": {k: v[:-1] for k, v in obs.items()}, "next_obs": {k: v[1:] for k, v in obs.items()},
            "actions": rng.uniform(-1, 1, size=(length, 7)), "rewards": rewards, "dones": dones,
            "states": np.zeros((length, 1))}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("demos") / "demos.hdf5"
    write_dataset(path, [episode(12, s) for s in range(6)], {"env_name": "Lift"})
    return RobomimicDataset(path, KEYS)


def rates(dataset, schedule, steps=200):
    config = OTPRConfig.from_dict({**CONFIG, "diffusion": {**CONFIG["diffusion"], "pretrain_lr_schedule": schedule}})
    seen = {}
    pretrain(dataset, config, steps, 0, 16,
             log=lambda tag, value, step: seen.__setitem__(step, value) if tag == "pretrain/lr" else None)
    return seen


def test_the_cosine_schedule_anneals_pretraining_to_zero_and_constant_keeps_the_rate(dataset):
    cosine, constant = rates(dataset, "cosine"), rates(dataset, "constant")
    rate = OTPRConfig.from_dict(CONFIG).diffusion.pretrain_lr
    assert sorted(cosine) == sorted(constant) == [0, 50, 100, 150]
    assert cosine[0] == constant[0] == rate and set(constant.values()) == {rate}
    assert cosine[100] == pytest.approx(rate / 2) and cosine[150] == pytest.approx(rate * 0.5 * (1 - 2 ** -0.5))
    assert cosine[0] > cosine[50] > cosine[100] > cosine[150]


def test_an_unknown_pretraining_schedule_is_refused_by_name(dataset):
    with pytest.raises(ValueError, match="diffusion.pretrain_lr_schedule"):
        rates(dataset, "linear", steps=1)
