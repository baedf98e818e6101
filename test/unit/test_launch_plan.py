"""The launch plan's protections: signed policy updates and a bus that stays on the machine
(otpr_ros/launch_plan.py; the nodes' side over DDS: test/system/test_policy_updates.py)."""

import os
from pathlib import Path

import pytest

from otpr_ros.launch_plan import FINETUNE_ARGUMENTS, SERVE_ARGUMENTS, finetune_plan, plan_from_arguments, prepare
from otpr_ros.package_files import node_parameters, share_dir
from otpr_ros.sim.tasks import SIM_TASKS


def by_name(plan):
    return {node.executable: node for node in plan}


def test_a_finetune_run_signs_its_updates_with_a_key_of_its_own(tmp_path):
    output = tmp_path / "run"
    plan = finetune_plan(output_dir=str(output), num_envs=2)
    keys = {node.parameters.get("update_key") for node in plan if node.executable != "sim_bridge"}
    assert keys == {str(output / "update.key")}
    for server in (n for n in plan if n.executable == "policy_server"):
        assert server.parameters["model_roots"] == [str(share_dir("models")), str(output)]
    assert not (output / "update.key").exists()          # the plan only names it; prepare makes it
    prepare(plan)
    assert os.stat(output / "update.key").st_mode & 0o777 == 0o600
    key = (output / "update.key").read_text()
    prepare(finetune_plan(output_dir=str(output)))        # resumed: the same key
    assert (output / "update.key").read_text() == key


def test_unsigned_and_own_keys_are_said_explicitly(tmp_path):
    assert by_name(finetune_plan(output_dir=str(tmp_path), update_key="none"))["learner"].parameters["update_key"] == ""
    own = by_name(finetune_plan(output_dir=str(tmp_path), update_key="/etc/robot.key", model_dir="/models/m"))
    assert own["policy_server"].parameters["update_key"] == own["learner"].parameters["update_key"] == "/etc/robot.key"
    assert own["policy_server"].parameters["model_roots"][-1] == "/models"
    default = by_name(finetune_plan())["learner"].parameters["update_key"]
    assert Path(default).name == "update.key" and Path(default).parent.name.startswith("finetune_")


def test_simulation_keeps_discovery_on_this_machine_and_a_robot_inherits():
    assert all(n.environment == {"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"} for n in finetune_plan())
    assert all(n.environment == {} for n in finetune_plan(use_sim=False))
    assert all(n.environment == {"ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET"}
               for n in finetune_plan(use_sim=False, discovery="subnet"))
    assert all(n.environment == {} for n in finetune_plan(discovery="inherit"))
    with pytest.raises(ValueError, match="discovery"):
        finetune_plan(discovery="wide")


def test_serve_passes_the_key_and_roots():
    values = {name: default for name, (default, _) in SERVE_ARGUMENTS.items()}
    server = plan_from_arguments("serve", {**values, "update_key": "/k", "model_roots": "/a, /b"})[0]
    assert server.parameters["update_key"] == "/k" and server.parameters["model_roots"] == ["/a", "/b"]
    assert "model_roots" not in plan_from_arguments("serve", values)[0].parameters


def test_sros2_enclaves_follow_the_node_names(tmp_path):
    from otpr_ros.tools.launch import node_command
    plan = finetune_plan(output_dir=str(tmp_path), enclaves="/otpr_sec")
    assert {n.enclave for n in plan} == {"/otpr_sec/otpr/env0/sim_bridge", "/otpr_sec/otpr/env0/policy_server",
                                         "/otpr_sec/otpr/learner"}
    command = node_command(plan[0], [], tmp_path / "p.yaml")
    assert command[-2:] == ["--enclave", "/otpr_sec/otpr/env0/sim_bridge"]
    assert all(not n.enclave for n in finetune_plan(output_dir=str(tmp_path)))
    with pytest.raises(ValueError, match="enclaves"):
        finetune_plan(enclaves="relative")


def test_a_robot_gets_a_recorder_and_the_robot_mode_rehearses_it_in_simulation():
    robot = finetune_plan(use_sim=False, namespace="arm")
    assert [n.executable for n in robot] == ["policy_server", "transition_recorder", "learner"]
    server, recorder, learner = robot
    assert server.parameters["start_enabled"] is False          # the recorder enables it while an episode runs
    assert recorder.remappings == {"transition": "/arm/transition", "learner_progress": "/arm/learner_progress"}
    assert recorder.parameters["max_episode_steps"] == 300
    rehearsal = finetune_plan(mode="robot", num_envs=2)
    assert [n.executable for n in rehearsal] == ["sim_bridge", "policy_server", "transition_recorder",
                                                 "sim_operator"] * 2 + ["learner"]
    bridges = [n for n in rehearsal if n.executable == "sim_bridge"]
    assert all(b.parameters["mode"] == "robot" and b.remappings == {} for b in bridges), \
        "a robot-mode bridge publishes nothing for the learner"
    recorders = [n for n in rehearsal if n.executable == "transition_recorder"]
    assert [r.parameters["source_id"] for r in recorders] == [0, 1]
    assert {r.namespace for r in recorders} == {"/otpr/env0", "/otpr/env1"}
    with pytest.raises(ValueError, match="mode"):
        finetune_plan(mode="teleop")


def test_a_run_seed_reaches_the_learner_and_the_servers_and_leaves_the_episode_seeds():
    values = {name: default for name, (default, _) in FINETUNE_ARGUMENTS.items()}
    plan = plan_from_arguments("finetune", {**values, "seed": "7", "num_envs": "2"})
    assert {n.parameters["seed"] for n in plan if n.executable in ("learner", "policy_server")} == {7}
    assert [n.parameters["first_seed"] for n in plan if n.executable == "sim_bridge"] == \
        [n.parameters["first_seed"] for n in finetune_plan(num_envs=2) if n.executable == "sim_bridge"]
    with pytest.raises(ValueError, match="seed: expected a whole number"):
        plan_from_arguments("finetune", {**values, "seed": "x"})
    with pytest.raises(ValueError, match="seed: expected >= 0"):
        finetune_plan(seed=-1)


def test_a_launch_without_env_steps_leaves_the_budget_to_the_task_config():
    """Can's recipe anneals the actor's rate over config/can.yaml's 30 000 env steps (an
    unbounded run refuses a schedule): --env-steps replaces that budget, 0 keeps it."""
    assert "max_env_steps" not in by_name(finetune_plan(task="can"))["learner"].parameters
    assert by_name(finetune_plan(task="can", env_steps=5000))["learner"].parameters["max_env_steps"] == 5000
    can = node_parameters("can", "learner")
    assert can["max_env_steps"] == 30000 and "diffusion.finetune_lr_schedule=cosine" in can["overrides"]
    for task in SIM_TASKS:     # every task whose recipe anneals has a budget to anneal over
        learner = node_parameters(task, "learner")
        schedules = [o for o in learner.get("overrides") or () if o.startswith("diffusion.finetune_lr_schedule=")]
        if schedules and schedules[-1] != "diffusion.finetune_lr_schedule=constant":
            assert learner.get("max_env_steps", 0) > 0, task


def test_keep_evaluated_reaches_the_learner():
    values = {name: default for name, (default, _) in FINETUNE_ARGUMENTS.items()}
    learner = lambda plan: by_name(plan)["learner"].parameters["keep_evaluated"]  # noqa: E731
    assert learner(plan_from_arguments("finetune", values)) is False
    assert learner(plan_from_arguments("finetune", {**values, "keep_evaluated": "true"})) is True
    with pytest.raises(ValueError, match="keep_evaluated: expected true or false"):
        plan_from_arguments("finetune", {**values, "keep_evaluated": "yes"})


def test_guided_candidates_reach_the_learner():
    values = {name: default for name, (default, _) in FINETUNE_ARGUMENTS.items()}
    learner = lambda plan: by_name(plan)["learner"].parameters["guided_candidates"]  # noqa: E731
    assert learner(plan_from_arguments("finetune", values)) == 0
    assert learner(plan_from_arguments("finetune", {**values, "guided_candidates": "8"})) == 8
    for bad in ("1", "-2"):
        with pytest.raises(ValueError, match="guided_candidates: expected 0"):
            plan_from_arguments("finetune", {**values, "guided_candidates": bad})


def test_kitchen_tasks_run_in_simulation_and_refuse_the_robot_path(tmp_path):
    plan = finetune_plan(task="kitchen_complete", output_dir=str(tmp_path))
    assert [n.executable for n in plan] == ["sim_bridge", "policy_server", "learner"]
    assert {n.parameters["task"] for n in plan} == {"kitchen_complete"}
    for mode, use_sim in (("robot", True), ("fast", False)):
        with pytest.raises(ValueError, match="kitchen_partial.*simulation only"):
            finetune_plan(task="kitchen_partial", mode=mode, use_sim=use_sim)
    with pytest.raises(ValueError, match="task: expected one of .*kitchen_mixed.*got 'kitchen'"):
        finetune_plan(task="kitchen")
