"""The robot path without hardware, over DDS in separate processes: the sim bridge in robot mode
(only what a robot shows: its state, a reward per step from its success detector), the policy
server, the transition recorder and the operator script. The recorder's transitions equal the
simulation's own for the same seeds and chunks, field by field, and the server acts only while
an episode is being recorded."""

import json

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy is not installed (the ros extra)")
pytest.importorskip("robosuite", reason="the simulation extra is not installed")

from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from std_msgs.msg import Float32MultiArray, String  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from otpr_ros.nodes.bus_messages import TRANSITION_QOS, transition_fields  # noqa: E402
from ros_fixtures import PrivateNode, domain, start_node  # noqa: E402

DOMAIN = domain(74)
NAMESPACE = "/arm"
EPISODES, FIRST_SEED = 4, 100000
FIELDS = ("obs", "action", "reward", "next_obs", "terminal", "truncated", "steps", "sequence", "episode")


@pytest.fixture(scope="module")
def robot():
    nodes = [start_node("otpr_ros.nodes.policy_server", DOMAIN, NAMESPACE, "max_decision_rate:=1000.0",
                        "starved_after:=60.0", "start_enabled:=false"),
             start_node("otpr_ros.nodes.sim_bridge", DOMAIN, NAMESPACE, "mode:=robot", f"first_seed:={FIRST_SEED}"),
             start_node("otpr_ros.nodes.transition_recorder", DOMAIN, NAMESPACE, "max_episode_steps:=300")]
    observer = PrivateNode(DOMAIN, "observer", NAMESPACE)
    seen = {"transition": [], "sim_bridge/transition": [], "episode": [], "sim_bridge/episode": [],
            "policy_server/status": []}
    for topic in ("transition", "sim_bridge/transition"):
        observer.node.create_subscription(Float32MultiArray, topic, seen[topic].append, TRANSITION_QOS)
    deep = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
    for topic in ("episode", "sim_bridge/episode"):
        observer.node.create_subscription(String, topic, lambda m, t=topic: seen[t].append(json.loads(m.data)), deep)
    observer.node.create_subscription(String, "policy_server/status",
                                      lambda m: seen["policy_server/status"].append(json.loads(m.data)), 10)
    yield observer, seen, nodes
    observer.close()
    for process in nodes:
        process.terminate()
    for process in nodes:
        output = process.communicate(timeout=30)[0]
        assert process.returncode in (0, -15), output[-3000:]


def test_before_an_operator_starts_an_episode_nothing_acts(robot):
    observer, seen, nodes = robot
    assert observer.wait_for(lambda: len(seen["policy_server/status"]) >= 3, 120), "the server never came up"
    observer.spin(2.0)
    status = seen["policy_server/status"][-1]
    assert not status["enabled"] and status["published"] == 0 and status["refused"]["disabled"] > 0
    assert seen["transition"] == [] and seen["sim_bridge/transition"] == []


def test_the_recorders_transitions_are_the_simulations(robot):
    observer, seen, nodes = robot
    operator = start_node("otpr_ros.nodes.sim_operator", DOMAIN, NAMESPACE)
    nodes.append(operator)
    done = observer.wait_for(lambda: len(seen["episode"]) >= EPISODES or any(p.poll() is not None for p in nodes),
                             600)
    assert done and all(p.poll() is None for p in nodes), [p.args[2] for p in nodes if p.poll() is not None]
    recorded = [transition_fields(m, obs_dim=19, action_size=28) for m in seen["transition"]]
    simulated = [transition_fields(m, obs_dim=19, action_size=28) for m in seen["sim_bridge/transition"]]
    episodes = seen["episode"][:EPISODES]
    assert [e["episode"] for e in episodes] == list(range(EPISODES))
    assert all(e["reason"] in ("success", "timeout") for e in episodes), episodes
    assert [e["success"] for e in episodes] == [e["success"] for e in seen["sim_bridge/episode"][:EPISODES]]
    simulated = [t for t in simulated if t["episode"] < EPISODES]
    recorded = recorded[:len(simulated)]
    assert len(recorded) == len(simulated) == sum(e["transitions"] for e in episodes) > 10 * EPISODES
    for mine, theirs in zip(recorded, simulated):
        for name in FIELDS:
            np.testing.assert_array_equal(mine[name], theirs[name], err_msg=f"{name} of transition {theirs['sequence']}")
    assert sum(t["terminal"] for t in recorded) == sum(e["success"] for e in episodes)


def test_an_operator_cannot_start_an_episode_while_one_runs(robot):
    observer, seen, nodes = robot
    start = observer.node.create_client(Trigger, "transition_recorder/start_episode")
    assert start.wait_for_service(timeout_sec=30)
    answers = []
    for _ in range(2):          # the operator script may have started the next one already
        future = start.call_async(Trigger.Request())
        assert observer.wait_for(future.done, 30)
        answers.append(future.result())
    assert not answers[1].success and "still running" in answers[1].message, answers
