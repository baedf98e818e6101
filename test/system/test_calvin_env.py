import importlib.util

import numpy as np
import pytest

from otpr_ros.sim.calvin_env import INSTALL_HINT, CalvinEnv, TaskChain, flatten_obs, to_calvin_action

HAS_CALVIN = importlib.util.find_spec("calvin_env") is not None


def test_observation_is_robot_then_scene_state():
    robot, scene = np.arange(15, dtype=np.float64), 100 + np.arange(24, dtype=np.float64)
    flat = flatten_obs({"robot_obs": robot, "scene_obs": scene, "rgb_obs": {}})
    assert flat.dtype == np.float32 and flat.shape == (39,)
    assert np.array_equal(flat[:15], robot) and np.array_equal(flat[15:], scene)
    with pytest.raises(ValueError, match="scene_obs has 23 values, expected 24"):
        flatten_obs({"robot_obs": robot, "scene_obs": scene[:23]})
    with pytest.raises(ValueError, match="'robot_obs' missing"):
        flatten_obs({"scene_obs": scene})


def test_action_is_clipped_and_the_gripper_binary():
    action = to_calvin_action([2.0, -0.5, 0.1, -3.0, 0.0, 0.2, -0.01])
    assert np.array_equal(action, [1.0, -0.5, 0.1, -1.0, 0.0, 0.2, -1.0])
    assert to_calvin_action(np.zeros(7))[6] == 1.0
    with pytest.raises(ValueError, match="expected shape"):
        to_calvin_action(np.zeros(6))
    with pytest.raises(ValueError, match="NaN"):
        to_calvin_action([0, 0, 0, 0, 0, np.inf, 1])


def test_task_chain_rewards_tasks_in_order():
    chain = TaskChain(["open_drawer", "turn_on_lightbulb"])
    assert chain.update({"turn_on_lightbulb"}) == 0.0      # not the current task yet
    assert chain.update({"open_drawer", "move_slider_left"}) == 1.0
    assert chain.current == "turn_on_lightbulb" and not chain.done
    assert chain.update(set()) == 0.0
    assert chain.update({"turn_on_lightbulb"}) == 1.0 and chain.done
    assert chain.update({"open_drawer"}) == 0.0            # nothing after the chain ends
    chain.reset()
    assert chain.current == "open_drawer"
    with pytest.raises(ValueError, match="tasks"):
        TaskChain([])


@pytest.mark.skipif(HAS_CALVIN, reason="calvin_env is installed here")
def test_missing_calvin_env_says_how_to_install():
    with pytest.raises(ModuleNotFoundError) as error:
        CalvinEnv()
    assert str(error.value) == INSTALL_HINT and "git clone" in INSTALL_HINT


@pytest.mark.skipif(not HAS_CALVIN, reason="calvin_env is not installed (not on PyPI; see docs/simulation.md)")
def test_calvin_env_resets_and_steps():
    env = CalvinEnv(["open_drawer"], horizon=5)
    obs, info = env.reset(seed=0)
    assert obs.shape == (39,) and info == {"success": False}
    flags = [env.step(np.zeros(7))[3] for _ in range(5)]
    assert flags == [False] * 4 + [True]
    env.close()
