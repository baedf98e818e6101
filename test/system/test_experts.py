import numpy as np
import pytest

pytest.importorskip("robosuite", reason="the simulation extra is not installed")

from otpr_ros.sim.experts import SquareExpert, nearest_equivalent  # noqa: E402
from otpr_ros.sim.robomimic_env import RobomimicEnv  # noqa: E402


def test_nearest_equivalent_wraps_to_the_reference():
    assert nearest_equivalent(3 * np.pi / 4, 0.0, np.pi / 2) == pytest.approx(-np.pi / 4)
    assert nearest_equivalent(-3.0, 3.0, 2 * np.pi) == pytest.approx(-3.0 + 2 * np.pi)


def test_square_nut_with_far_handle_is_turned_and_placed():
    # seed 1 places the handle on the far side of the nut: without a turn the hand would have
    # to reach beyond the Panda's workspace over the peg
    env = RobomimicEnv("square")
    env.reset(seed=1)
    expert = SquareExpert(env, noise=0.1, rng=np.random.default_rng(1))
    planned = False
    for _ in range(env.horizon):
        _, _, terminated, truncated, _ = env.step(expert.act())
        planned |= expert.turn_goal is not None
        if terminated or truncated:
            break
    env.close()
    assert planned and terminated and not truncated
