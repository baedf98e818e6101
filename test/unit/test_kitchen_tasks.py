"""Franka Kitchen's benchmark definitions and score, without the simulator (otpr_ros/sim/kitchen_env.py)."""

import pytest

from otpr_ros.sim.kitchen_env import KITCHEN_TASKS, kitchen_targets, normalised_score


def test_the_benchmarks_are_d4rls():
    assert kitchen_targets("kitchen_complete") == ("microwave", "kettle", "light switch", "slide cabinet")
    assert kitchen_targets("kitchen_partial") == kitchen_targets("kitchen_mixed") == \
        ("microwave", "kettle", "bottom burner", "light switch")
    assert kitchen_targets("kitchen:kettle,microwave") == ("kettle", "microwave")
    assert set(KITCHEN_TASKS) == {"kitchen_complete", "kitchen_partial", "kitchen_mixed"}


@pytest.mark.parametrize("task", ["kitchen", "kitchen:", "kitchen:oven", "kitchen:kettle,kettle", "lift"])
def test_an_unknown_task_is_refused_with_what_exists(task):
    with pytest.raises(ValueError, match="kitchen_complete"):
        kitchen_targets(task)


def test_the_normalised_score_is_d4rls():
    assert normalised_score([4, 4]) == 100.0 and normalised_score([0, 2]) == 25.0
    with pytest.raises(ValueError, match="returns"):
        normalised_score([])
