"""The policy's pre-training schedule on a real (small) HDF5 file: with the cosine schedule the
rate the optimiser steps with falls from diffusion.pretrain_lr toward 0 over the policy's steps;
the constant schedule keeps the rate; an unknown schedule is refused by name."""

import pytest
from model_fixtures import DIMS, TINY_CONFIG, episode

from otpr_ros.core.config import OTPRConfig
from otpr_ros.data.robomimic_hdf5 import RobomimicDataset, write_dataset
from otpr_ros.training.pretraining import pretrain


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("demos") / "demos.hdf5"
    write_dataset(path, [episode(12, s) for s in range(6)], {"env_name": "Lift"}, valid_fraction=0.0)
    return RobomimicDataset(path, tuple(DIMS))


def config(schedule):
    settings = TINY_CONFIG["otpr"]
    return OTPRConfig.from_dict({**settings, "diffusion": {**settings["diffusion"], "pretrain_lr_schedule": schedule}})


def rates(dataset, schedule, steps=200):
    seen = {}
    pretrain(dataset, config(schedule), steps, 0, 16,
             log=lambda tag, value, step: seen.__setitem__(step, value) if tag == "pretrain/lr" else None)
    return seen


def test_the_cosine_schedule_anneals_pretraining_to_zero_and_constant_keeps_the_rate(dataset):
    cosine, constant = rates(dataset, "cosine"), rates(dataset, "constant")
    rate = config("constant").diffusion.pretrain_lr
    assert sorted(cosine) == sorted(constant) == [0, 50, 100, 150]
    assert cosine[0] == constant[0] == rate and set(constant.values()) == {rate}
    assert cosine[100] == pytest.approx(rate / 2) and cosine[150] == pytest.approx(rate * 0.5 * (1 - 2 ** -0.5))
    assert cosine[0] > cosine[50] > cosine[100] > cosine[150]


def test_an_unknown_pretraining_schedule_is_refused_by_name(dataset):
    with pytest.raises(ValueError, match="diffusion.pretrain_lr_schedule"):
        rates(dataset, "linear", steps=1)
