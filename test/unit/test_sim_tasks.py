"""The simulated tasks by name (otpr_ros/sim/tasks.py), without a simulator."""

import pytest

from otpr_ros.package_files import pretraining_config
from otpr_ros.sim.tasks import SIM_TASKS, is_kitchen, sim_task


def test_every_task_says_its_observation_action_and_horizon():
    assert set(SIM_TASKS) == {"lift", "can", "square", "kitchen_complete", "kitchen_partial", "kitchen_mixed"}
    assert (sim_task("can").obs_dim, sim_task("can").act_dim, sim_task("can").horizon) == (23, 7, 300)
    kitchen = sim_task("kitchen_mixed")
    assert (kitchen.obs_keys, kitchen.obs_dim, kitchen.act_dim, kitchen.control_hz, kitchen.horizon) == \
        (("observation",), 59, 9, 12.5, 280)
    with pytest.raises(ValueError, match="kitchen_complete"):
        sim_task("kitchen")
    # the scripted experts' sub-task names are Kitchen too; CALVIN is not
    assert [is_kitchen(name) for name in ("kitchen_partial", "kitchen:microwave,kettle", "calvin", "square")] == \
        [True, True, False, False]


def test_kitchen_models_start_from_their_own_configuration():
    from otpr_ros.core.config import OTPRConfig
    config = OTPRConfig.from_yaml(pretraining_config("kitchen_partial"), defaults={"obs_dim": 59})
    # the paper's table 2 for Kitchen: critic 512 x 3, discount 0.99, buffer 1 000 000
    assert (config.act_dim, config.chunk, config.critic.hidden) == (9, 8, (512, 512, 512))
    assert (config.critic.gamma, config.buffer_capacity) == (0.99, 1_000_000)
    assert pretraining_config("lift").name == pretraining_config().name == "otpr.yaml"
