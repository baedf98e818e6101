import numpy as np
import pytest

from otpr_ros.model.observation import object_state, robomimic_observation


def test_relative_pose_in_the_end_effector_frame():
    # eef turned 90 degrees about z, so its x axis is world +y: an object 1 m along world +y
    # lies 1 m along the eef's x axis
    half = np.sqrt(0.5)
    eef_quat = [0.0, 0.0, half, half]
    state = object_state("can", [0, 0, 0], eef_quat, [0.0, 1.0, 0.0], [0.0, 0.0, half, half])
    np.testing.assert_allclose(state[:3], [1.0, 0.0, 0.0], atol=1e-12)      # position in the eef frame
    np.testing.assert_allclose(state[3:7], [0.0, 0.0, 0.0, 1.0], atol=1e-12)  # same orientation
    np.testing.assert_allclose(state[7:], [0.0, 1.0, 0.0, 0.0, 0.0, half, half])


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="eef_quat: expected a unit quaternion"):
        robomimic_observation("lift", [0, 0, 0], [0, 0, 0, 0], [0, 0], [0, 0, 0], [0, 0, 0, 1])
    with pytest.raises(ValueError, match="gripper_qpos"):
        robomimic_observation("lift", [0, 0, 0], [0, 0, 0, 1], [0, 0, 0], [0, 0, 0], [0, 0, 0, 1])
    with pytest.raises(ValueError, match="task"):
        object_state("stack", [0, 0, 0], [0, 0, 0, 1], [0, 0, 0], [0, 0, 0, 1])


@pytest.mark.parametrize("task,obj,tolerance", [("lift", "cube", 1e-6), ("can", "Can", 5e-3)])
def test_matches_robosuite_from_published_poses(task, obj, tolerance):
    # robosuite computes the relative pose from its observation cache, slightly behind the
    # current eef pose while the arm moves (a few mm); Lift's world offset is exact
    pytest.importorskip("robosuite", reason="the simulation extra is not installed")
    from otpr_ros.sim.robomimic_env import RobomimicEnv

    env = RobomimicEnv(task)
    env.reset(seed=3)
    rng = np.random.default_rng(0)
    for _ in range(10):
        obs, *_ = env.step(np.append(rng.uniform(-0.3, 0.3, 6), -1.0))
        raw = env.raw_obs
        built = robomimic_observation(task, raw["robot0_eef_pos"], raw["robot0_eef_quat"], raw["robot0_gripper_qpos"],
                                      raw[f"{obj}_pos"], raw[f"{obj}_quat"])
        np.testing.assert_allclose(built, obs, atol=tolerance)
    env.close()
