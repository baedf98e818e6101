"""The simulated tasks by name (otpr_ros/sim/tasks.py), without a simulator."""

import pytest

from otpr_ros.package_files import pretraining_config
from otpr_ros.package_files import node_parameters
from otpr_ros.sim.tasks import SIM_TASKS, is_calvin, is_kitchen, sim_task


def test_every_task_says_its_observation_action_and_horizon():
    calvin = {"calvin_move_slider_left", "calvin_move_slider_right", "calvin_open_drawer", "calvin_close_drawer",
              "calvin_turn_on_led", "calvin_turn_off_led", "calvin_turn_on_lightbulb"}
    assert set(SIM_TASKS) == {"lift", "can", "square", "kitchen_complete", "kitchen_partial", "kitchen_mixed",
                              "calvin_multi"} | calvin
    drawer = sim_task("calvin_open_drawer")
    assert (drawer.obs_keys, drawer.obs_dim, drawer.act_dim, drawer.control_hz, drawer.horizon) == \
        (("robot_obs", "scene_obs"), 39, 7, 30.0, 360)
    multi = sim_task("calvin_multi")          # one policy for the seven, told which by a one-hot task id
    assert (multi.obs_keys, multi.obs_dim, multi.horizon) == (("robot_obs", "scene_obs", "task_id"), 46, 360)
    assert (sim_task("can").obs_dim, sim_task("can").act_dim, sim_task("can").horizon) == (23, 7, 300)
    kitchen = sim_task("kitchen_mixed")
    assert (kitchen.obs_keys, kitchen.obs_dim, kitchen.act_dim, kitchen.control_hz, kitchen.horizon) == \
        (("observation",), 59, 9, 12.5, 280)
    # a Kitchen model may take D4RL's observation instead (positions, no velocities); others only their own
    assert kitchen.observation() == (("observation",), 59)
    assert kitchen.observation(["positions"]) == (("positions",), 30)
    with pytest.raises(ValueError, match="kitchen_mixed observes observation or positions, got velocities"):
        kitchen.observation(["velocities"])
    with pytest.raises(ValueError, match="can observes robot0_eef_pos,"):
        sim_task("can").observation(["positions"])
    with pytest.raises(ValueError, match="kitchen_complete"):
        sim_task("kitchen")
    # the scripted experts' sub-task names are Kitchen too; CALVIN is not
    assert [is_kitchen(name) for name in ("kitchen_partial", "kitchen:microwave,kettle", "calvin", "square")] == \
        [True, True, False, False]
    assert [is_calvin(name) for name in ("calvin_open_drawer", "kitchen_mixed", "can")] == [True, False, False]


def test_calvin_tasks_share_one_node_configuration():
    # the server reads the bridge's observation vector (robot_obs, scene_obs), not poses
    assert node_parameters("calvin_turn_on_led", "policy_server")["observation_source"] == "observation"
    assert node_parameters("calvin_open_drawer", "learner")["output_dir"] == "runs/finetune_calvin"


def test_kitchen_models_start_from_their_own_configuration():
    from otpr_ros.core.config import OTPRConfig
    config = OTPRConfig.from_yaml(pretraining_config("kitchen_partial"), defaults={"obs_dim": 59})
    # the paper's table 2 for Kitchen: critic 512 x 3, discount 0.99, buffer 1 000 000
    assert (config.act_dim, config.chunk, config.critic.hidden) == (9, 8, (512, 512, 512))
    assert (config.critic.gamma, config.buffer_capacity) == (0.99, 1_000_000)
    assert pretraining_config("lift").name == pretraining_config().name == "otpr.yaml"
