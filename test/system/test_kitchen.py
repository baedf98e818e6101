"""Franka Kitchen on real MuJoCo (gymnasium-robotics' FrankaKitchen-v1): the benchmarks as D4RL
defines them, sub-task completion and reward, and the scripted experts (otpr_ros/sim/kitchen_env.py,
kitchen_experts.py)."""

import mujoco
import numpy as np
import pytest

pytest.importorskip("gymnasium_robotics", reason="the kitchen extra is not installed")

from otpr_ros.sim.kitchen_env import KITCHEN_TASKS, KitchenEnv  # noqa: E402
from otpr_ros.sim.kitchen_experts import KitchenExpert  # noqa: E402


@pytest.fixture(scope="module")
def complete():
    env = KitchenEnv("kitchen_complete")
    yield env
    env.close()


def test_a_reset_gives_the_kitchens_state_and_a_seed_only_its_observation_noise(complete):
    first, info = complete.reset(seed=0)
    again, _ = complete.reset(seed=0)
    other, _ = complete.reset(seed=1)
    assert first.shape == (59,) and first.dtype == np.float32 and np.isfinite(first).all()
    assert info == {"success": False, "completed": ()}
    np.testing.assert_array_equal(first, again)
    assert 0 < np.abs(first - other).max() < 0.01         # the same scene, other noise


def test_a_target_counts_once_and_all_four_end_the_episode(complete):
    """Each target's joints set to D4RL's goal: reward 1 at that step only; the fourth ends it."""
    complete.reset(seed=0)
    data, model = complete.data, complete.model
    goals = {"microwave": ([22], [-0.75]), "light switch": ([17, 18], [-0.69, -0.05]),
             "slide cabinet": ([19], [0.37]),
             "kettle": (list(range(23, 30)), [-0.23, 0.75, 1.62, 0.99, 0.0, 0.0, -0.06])}
    rewards = []
    for target in KITCHEN_TASKS["kitchen_complete"]:
        joints, goal = goals[target]
        data.qpos[joints] = goal
        mujoco.mj_forward(model, data)
        _, reward, terminated, truncated, info = complete.step(np.zeros(9))
        rewards.append(reward)
        assert info["completed"][-1] == target and not truncated
        if target != "slide cabinet":
            assert complete.step(np.zeros(9))[1] == 0.0, "a target done before counts once"
    assert rewards == [1.0] * 4 and terminated and info["success"]
    with pytest.raises(RuntimeError, match="call reset"):
        complete.step(np.zeros(9))


def test_bad_actions_and_unknown_tasks_are_refused_by_name(complete):
    complete.reset(seed=0)
    with pytest.raises(ValueError, match="shape"):
        complete.step(np.zeros(7))
    with pytest.raises(ValueError, match="NaN"):
        complete.step(np.full(9, np.nan))
    with pytest.raises(ValueError, match="kitchen_complete"):
        KitchenEnv("kitchen_everything")
    with pytest.raises(ValueError, match="no scripted expert yet for \\['hinge cabinet'\\]"):
        KitchenExpert(KitchenEnv("kitchen:hinge cabinet"))


def run_expert(env, seed, noise=0.1):
    env.reset(seed=seed)
    expert = KitchenExpert(env, noise=noise, rng=np.random.default_rng(seed))
    while True:
        _, _, terminated, truncated, info = env.step(expert.act())
        if terminated or truncated:
            return info


@pytest.mark.parametrize("subtask", ["microwave", "kettle", "light switch", "slide cabinet", "bottom burner",
                                     "top burner"])
def test_each_scripted_sub_task_succeeds(subtask):
    env = KitchenEnv(f"kitchen:{subtask}")
    try:
        assert [run_expert(env, seed)["success"] for seed in (0, 1)] == [True, True]
        assert env.elapsed < 140
    finally:
        env.close()


def test_the_expert_completes_the_four_targets_of_kitchen_complete_in_the_horizon(complete):
    info = run_expert(complete, seed=0)
    assert info["success"] and info["completed"] == KITCHEN_TASKS["kitchen_complete"] and complete.elapsed < 280


def test_making_a_kitchen_prints_no_third_party_notice():
    import subprocess
    import sys
    result = subprocess.run([sys.executable, "-c", "from otpr_ros.sim.kitchen_env import KitchenEnv; "
                             "KitchenEnv('kitchen:kettle').reset(seed=0)"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "Adroit" not in result.stderr + result.stdout, result.stderr[-2000:]
