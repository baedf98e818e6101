"""otpr-launch (pip-only installs) runs the launch plan as real processes on DDS: the nodes
talk under the plan's names, a failing node fails the run, Ctrl-C stops everything."""

import json
import os
import re
import signal
import subprocess
import sys

import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy is not installed (the ros extra)")
pytest.importorskip("robosuite", reason="the simulation extra is not installed")

from std_msgs.msg import Float32MultiArray, String  # noqa: E402

from model_fixtures import make_tiny_model  # noqa: E402
from otpr_ros.nodes.bus_messages import EPISODE_QOS, TRANSITION_FIELDS, TRANSITION_QOS, transition_fields  # noqa: E402
from otpr_ros.training.learner_store import ReplayLog  # noqa: E402
from ros_fixtures import PrivateNode, domain  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny model with its demonstrations (the learner needs them; the shipped models'
    datasets are made by `make models`, not shipped)."""
    root = tmp_path_factory.mktemp("launcher")
    return str(make_tiny_model(root)), str(root / "runs")


def launch(domain, *args):
    """In a process group of its own, as a shell starts a foreground command."""
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain))
    return subprocess.Popen([sys.executable, "-m", "otpr_ros.tools.launch", *args], env=env, process_group=0,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


class Listener(PrivateNode):
    def __init__(self, domain, namespace):
        super().__init__(domain, "listener", namespace)
        self.transitions, self.episodes, self.servers = [], [], {}
        # as a learner subscribes: a bridge that publishes before this listener is discovered
        # (a loaded machine) still hands over what it sent
        self.node.create_subscription(Float32MultiArray, "transition", self.transitions.append, TRANSITION_QOS)
        self.node.create_subscription(String, "episode", lambda m: self.episodes.append(json.loads(m.data)),
                                      EPISODE_QOS)
        for i in range(2):
            self.node.create_subscription(String, f"env{i}/policy_server/status",
                                          lambda m, i=i: self.servers.__setitem__(i, json.loads(m.data)), 10)


def test_finetune_plan_runs_two_bridges_into_one_transition_topic(tiny):
    model_dir, runs = tiny
    listener = Listener(domain(63), "/t63")
    process = launch(domain(63), "finetune", "--num-envs", "2", "--episodes", "1", "--namespace", "t63",
                     "--model-dir", model_dir, "--output-dir", runs)
    try:
        sources = lambda: {transition_fields(m)["source"] for m in listener.transitions}  # noqa: E731
        assert listener.wait_for(lambda: sources() == {0.0, 1.0} and len(listener.servers) == 2, 120), \
            f"transitions from {sources()}, servers {list(listener.servers)}"
        # acting for training: the model's L (4 in the tiny config), compatibility resampling
        assert all(s["num_candidates"] == 4 and s["selection"] == "sample" for s in listener.servers.values())
        output = process.communicate(timeout=300)[0]     # a bridge's last episode ends the run
        assert process.returncode == 0, output[-3000:]
        assert re.search(r"/t63/env[01]/sim_bridge exited with code 0", output), output[-3000:]
        listener.wait_for(lambda: listener.episodes, 5)
        assert listener.episodes and listener.episodes[0]["seed"] in (0, 1_000_000)
    finally:
        process.kill()
        listener.close()


def test_a_node_that_fails_fails_the_run():
    process = launch(domain(64), "finetune", "--model-dir", "/nonexistent/model", "--namespace", "t64")
    output = process.communicate(timeout=120)[0]
    assert process.returncode == 1, output[-3000:]
    # the bridge, the server and the learner all refuse the model; whichever stops first fails the run
    assert re.search(r"/t64/(env0/policy_server|env0/sim_bridge|learner) exited with code 2", output), output[-3000:]
    assert "/nonexistent/model" in output


def test_ctrl_c_stops_every_node_and_the_learner_keeps_every_transition(tiny, tmp_path):
    model_dir, _ = tiny
    runs = tmp_path / "runs"
    listener = Listener(domain(65), "/t65")
    process = launch(domain(65), "finetune", "--namespace", "t65", "--model-dir", model_dir, "--output-dir", str(runs))
    try:
        assert listener.wait_for(lambda: len(listener.transitions) >= 3, 120), "no transitions"
        os.killpg(process.pid, signal.SIGINT)       # a terminal's Ctrl-C: the whole foreground group
        output = process.communicate(timeout=90)[0]
        assert process.returncode == 0, output[-3000:]
        pids = [int(p) for p in re.findall(r"started \S+ \(pid (\d+)\)", output)]
        assert len(pids) == 3          # bridge, server, learner
        for pid in pids:
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
    finally:
        process.kill()
        listener.spin(1.0)
        listener.close()
    sent = {(int(f["stream"]), int(f["sequence"])) for f in map(transition_fields, listener.transitions)}
    batches, report = ReplayLog(runs / "replay", TRANSITION_FIELDS).load()
    kept = {(int(stream), int(sequence)) for b in batches for stream, sequence in zip(b["stream"], b["sequence"])}
    assert sent and sent <= kept and not report["damaged"], (len(sent), len(kept), sorted(sent - kept)[:5])


def test_finetune_runs_a_kitchen_task_through_the_learner(tmp_path):
    """Franka Kitchen through the launcher: config/kitchen.yaml's server settings (the
    59-value observation, nine joints), the bridge's 280-step episode, the learner keeps it."""
    pytest.importorskip("gymnasium_robotics", reason="the kitchen extra is not installed")
    from model_fixtures import make_tiny_kitchen_model
    model, _ = make_tiny_kitchen_model(tmp_path)
    runs = tmp_path / "runs"
    listener = Listener(domain(63), "/k63")
    process = launch(domain(63), "finetune", "--task", "kitchen_complete", "--episodes", "1", "--namespace", "k63",
                     "--model-dir", str(model), "--output-dir", str(runs))
    try:
        listener.wait_for(lambda: process.poll() is not None, 600)     # the bridge's one episode ends the run
        output = process.communicate(timeout=60)[0]
        assert process.returncode == 0, output[-3000:]
    finally:
        process.kill()
        listener.close()
    assert [e["length"] for e in listener.episodes] == [280]
    # the learner's replay is the count: it holds the whole episode (what the listener saw is a part)
    batches, report = ReplayLog(runs / "replay", TRANSITION_FIELDS).load()
    assert not report["damaged"]
    assert sum(float(s) for b in batches for s in b["steps"]) + listener.episodes[0]["held_steps"] == 280
    seen = {transition_fields(m, obs_dim=59, action_size=72)["sequence"] for m in listener.transitions}
    assert seen <= {float(s) for b in batches for s in b["sequence"]}
