"""The learner in the running system: bridge -> transitions -> learner -> policy_update ->
policy server, all separate processes on DDS (started by otpr-launch, as a user would)."""

import csv
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy is not installed (the ros extra)")
pytest.importorskip("robosuite", reason="the simulation extra is not installed")

from std_msgs.msg import String  # noqa: E402

from model_fixtures import make_tiny_model  # noqa: E402
from otpr_ros.model.directory import load_model  # noqa: E402
from ros_fixtures import PrivateNode, domain  # noqa: E402

DOMAIN = domain(66)


def test_learner_updates_reach_the_policy_server(tmp_path):
    """... signed with the run's key, which the launch makes: a rogue announcement of a valid
    model inside the run's folder with the largest version (unsigned) changes nothing."""
    import shutil

    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

    from otpr_ros.nodes.bus_messages import policy_update_message

    model_dir = make_tiny_model(tmp_path)
    runs = tmp_path / "runs"
    rogue = shutil.copytree(model_dir, runs / "rogue")
    env = dict(os.environ, ROS_DOMAIN_ID=str(DOMAIN))
    process = subprocess.Popen([sys.executable, "-m", "otpr_ros.tools.launch", "finetune", "--namespace", "t66",
                                "--model-dir", str(model_dir), "--output-dir", str(runs), "--env-steps", "300",
                                "--eval-every", "300", "--eval-episodes", "1",
                                "--validation-seed", "300000", "--guided-candidates", "3"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    watcher = PrivateNode(DOMAIN, "watcher", "/t66")
    node = watcher.node
    learner, server = {}, {}
    node.create_subscription(String, "learner/status", lambda m: learner.update(json.loads(m.data)), 10)
    node.create_subscription(String, "env0/policy_server/status", lambda m: server.update(json.loads(m.data)), 10)
    announcer = node.create_publisher(String, "policy_update", QoSProfile(
        depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL))
    announcer.publish(policy_update_message("rogue", 2**31 - 1, str(rogue), load_model(rogue).weights_sha256))
    output = ""         # a failed assertion below must be reported, not hidden by the finally clause
    try:
        # version 1: the weights as they start; 2 and on: after updates
        watcher.wait_for(lambda: server.get("model_version", 0) >= 2 and learner.get("version", 0) >= 2 and
                         server["updates"]["refused_by"]["unsigned"] == 1, 240)
        assert server.get("model_version", 0) >= 2, f"learner {learner}, server {server}"
        assert server["updates_signed"] and server["model_run"] == learner["run"] != "rogue", server
        assert server["updates"]["refused_by"]["unsigned"] == 1, server
        assert (runs / "update.key").stat().st_mode & 0o777 == 0o600
        assert learner["received"] >= 64 and learner["lost"] == 0 and learner["duplicates"] == 0
        assert learner["updates"] > 0
        served = Path(server["model"])
        assert served.parent == runs / "policy" and served.name.startswith("v")
        assert server["updates"]["refused"] == 1, server
        assert (runs / "tensorboard").is_dir() and any((runs / "tensorboard").iterdir())
        # the budget: a final snapshot and evaluation, then the learner ends the run
        output = process.communicate(timeout=400)[0]
    finally:
        process.send_signal(signal.SIGINT)
        output = process.communicate(timeout=60)[0] if process.returncode is None else output
        watcher.close()
    assert process.returncode == 0 and "/t66/learner exited with code 0" in output, output[-3000:]
    rows = list(csv.DictReader(open(runs / "curve.csv")))
    steps = [int(r["env_steps"]) for r in rows]
    assert steps[0] == 0 and steps[-1] >= 300 and len(rows) >= 2, rows
    assert all(0.0 <= float(r["success_rate"]) <= 1.0 for r in rows)
    assert (runs / "curve.png").is_file() and (runs / "evaluated" / "final" / "model.json").is_file()
    # validation episodes and guided ones (arg-max over 3 candidates) beside each evaluation;
    # the weights the validation episodes rate best are kept whole
    assert all(r["validation_success_rate"] != "" and r["guided_success_rate"] != "" for r in rows), rows
    assert json.loads((runs / "evaluated" / "final" / "guided.json").read_text())["num_candidates"] == 3
    best = max(rows, key=lambda r: float(r["validation_success_rate"]))
    assert load_model(runs / "selected").info.task == "lift" and not (runs / "selected.partial").exists()
    assert f"selected: the weights at {best['env_steps']} env steps" in output, output[-3000:]
    # one progress line per 30 s from the learner, no line per episode from the bridge
    assert re.search(r"learner\]: \d+/\d+ env steps, \d+ updates", output) and "(seed 0)" not in output, output[-3000:]
    # version 1 is the weights as they start, announced before any update: the servers act by the
    # run's settings (its overrides) from the first chunk, as otpr-finetune does
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(runs / "tensorboard"))
    events.Reload()
    versions = [(e.step, e.value) for e in events.Scalars("learner/version")]
    assert versions[0] == (0, 1.0) and all(step > 0 for step, _ in versions[1:]), versions


def test_a_learner_without_a_model_exits_with_a_clear_error(tmp_path):
    """Refused at construction: exit code 2 and the reason, not a crash in the shutdown of a
    half-built node."""
    env = dict(os.environ, ROS_DOMAIN_ID=str(DOMAIN))
    result = subprocess.run([sys.executable, "-m", "otpr_ros.nodes.learner", "--ros-args", "-p",
                             f"model_dir:={tmp_path / 'missing'}"], env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "missing: not a model directory" in result.stderr and "Traceback" not in result.stderr


def test_an_execute_steps_override_the_bridge_would_not_follow_is_refused(tmp_path):
    """The bridge executes as many actions of each chunk as the model directory's config says;
    an override of agent.execute_steps on the learner alone would fine-tune on other episodes
    than otpr-finetune with the same override, so it is refused by name."""
    model_dir = make_tiny_model(tmp_path)             # with its demonstrations (a fresh clone has no data/)
    env = dict(os.environ, ROS_DOMAIN_ID=str(DOMAIN))
    result = subprocess.run([sys.executable, "-m", "otpr_ros.nodes.learner", "--ros-args", "-p",
                             'overrides:=["agent.execute_steps=2"]', "-p", f"model_dir:={model_dir}",
                             "-p", f"output_dir:={tmp_path / 'runs'}"],
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "overrides: agent.execute_steps 2 is not the model's 0" in result.stderr, result.stderr[-3000:]
    assert not (tmp_path / "runs").exists(), "nothing written"


def test_validation_seeds_overlapping_the_held_out_seeds_are_refused(tmp_path):
    env = dict(os.environ, ROS_DOMAIN_ID=str(DOMAIN))
    result = subprocess.run([sys.executable, "-m", "otpr_ros.nodes.learner", "--ros-args", "-p", "eval_seed:=1000",
                             "-p", "eval_episodes:=50", "-p", "validation_seed:=1040", "-p",
                             f"output_dir:={tmp_path / 'runs'}"], env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "validation seed 1040: its 50 seeds overlap the held-out seeds from 1000" in result.stderr
    assert not (tmp_path / "runs").exists(), "nothing written"


def test_validation_seeds_overlapping_the_bridges_training_seeds_are_refused(tmp_path):
    """The bridges of a launch run episodes from seeds 0.. (bridge i: i * 1 000 000..): validation
    seeds among them would choose on episodes the policy trained on."""
    env = dict(os.environ, ROS_DOMAIN_ID=str(DOMAIN))
    result = subprocess.run([sys.executable, "-m", "otpr_ros.nodes.learner", "--ros-args", "-p", "validation_seed:=0",
                             "-p", "max_env_steps:=8000", "-p", f"output_dir:={tmp_path / 'runs'}"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "validation seed 0: its 50 seeds overlap the training seeds from 0" in result.stderr
    assert not (tmp_path / "runs").exists(), "nothing written"
