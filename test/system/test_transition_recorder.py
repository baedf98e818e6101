"""The robot path without hardware, over DDS in separate processes: the sim bridge in robot mode
(only what a robot shows: its state, a reward per step from its success detector), the policy
server, the transition recorder and the operator script. The recorder's transitions equal the
simulation's own for the same seeds and chunks, field by field, and the server acts only while
an episode is being recorded and no person has the arm; a person's chunks are marked expert."""

import json

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy is not installed (the ros extra)")
pytest.importorskip("robosuite", reason="the simulation extra is not installed")

from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from std_msgs.msg import Float32MultiArray, String  # noqa: E402
from std_srvs.srv import SetBool, Trigger  # noqa: E402
from trajectory_msgs.msg import JointTrajectory  # noqa: E402

from otpr_ros.nodes.bus_messages import (TRANSITION_QOS, refused_as_running, still_running,  # noqa: E402
                                         transition_fields)
from ros_fixtures import (Lifecycle, PrivateNode, call_service, domain, start_node, stopped,  # noqa: E402
                          stopped_all)

DOMAIN = domain(74)
NAMESPACE = "/arm"
EPISODES, FIRST_SEED = 4, 100000
FIELDS = ("obs", "action", "reward", "next_obs", "terminal", "truncated", "steps", "sequence", "episode")


def start_episode(observer, client):
    """The operator's start, sent again if unanswered for 10 s (DDS can lose a reply); a start is
    not idempotent, so a resent one refused as "still running" says that the first one took."""
    answer, sends = call_service(client, Trigger.Request(), lambda: observer.executor.spin_once(timeout_sec=0.05),
                                 resend_after=10.0)
    if sends > 1 and refused_as_running(answer):
        return Trigger.Response(success=True, message=f"started (a resent start: {answer.message})")
    return answer


@pytest.fixture(scope="module")
def robot():
    nodes = [start_node("otpr_ros.nodes.policy_server", DOMAIN, NAMESPACE, "max_decision_rate:=1000.0",
                        "starved_after:=60.0", "start_enabled:=false"),
             start_node("otpr_ros.nodes.sim_bridge", DOMAIN, NAMESPACE, "mode:=robot", f"first_seed:={FIRST_SEED}"),
             start_node("otpr_ros.nodes.transition_recorder", DOMAIN, NAMESPACE, "max_episode_steps:=300")]
    observer = PrivateNode(DOMAIN, "observer", NAMESPACE)
    seen = {"transition": [], "sim_bridge/transition": [], "episode": [], "sim_bridge/episode": [],
            "policy_server/status": [], "transition_recorder/status": []}
    for topic in ("transition", "sim_bridge/transition"):
        observer.node.create_subscription(Float32MultiArray, topic, seen[topic].append, TRANSITION_QOS)
    deep = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
    for topic in ("episode", "sim_bridge/episode"):
        observer.node.create_subscription(String, topic, lambda m, t=topic: seen[t].append(json.loads(m.data)), deep)
    for topic in ("policy_server/status", "transition_recorder/status"):
        observer.node.create_subscription(String, topic, lambda m, t=topic: seen[t].append(json.loads(m.data)), 10)
    yield observer, seen, nodes
    observer.close()
    for process, output in zip(nodes, stopped_all(nodes)):
        assert process.returncode == 0, output[-3000:]


def test_before_an_operator_starts_an_episode_nothing_acts(robot):
    observer, seen, nodes = robot
    statuses = seen["policy_server/status"]
    # the server has seen the robot's states (the bridge may come up well after it on a loaded machine)
    assert observer.wait_for(lambda: statuses and statuses[-1]["refused"]["disabled"] > 0, 300), \
        f"the server never refused a state: {statuses[-1:]}"
    status = statuses[-1]
    assert not status["enabled"] and status["published"] == 0
    assert seen["transition"] == [] and seen["sim_bridge/transition"] == []


def test_the_recorders_transitions_are_the_simulations(robot):
    observer, seen, nodes = robot
    operator = start_node("otpr_ros.nodes.sim_operator", DOMAIN, NAMESPACE)
    nodes.append(operator)
    # both summaries: the bridge's own, on another topic, may come after the recorder's
    done = observer.wait_for(lambda: min(len(seen["episode"]), len(seen["sim_bridge/episode"])) >= EPISODES or
                             any(p.poll() is not None for p in nodes), 600)
    assert done and all(p.poll() is None for p in nodes), [p.args[2] for p in nodes if p.poll() is not None]
    expected = sum(e["transitions"] for e in seen["episode"][:EPISODES])   # another topic: may trail the summary
    counts = lambda: (len(seen["transition"]), len(seen["sim_bridge/transition"]))  # noqa: E731
    assert observer.wait_for(lambda: min(counts()) >= expected, 60), \
        f"(recorder's, simulation's) transitions {counts()} for the {expected} of the recorder's summaries"
    recorded = [transition_fields(m, obs_dim=19, action_size=28) for m in seen["transition"]]
    simulated = [transition_fields(m, obs_dim=19, action_size=28) for m in seen["sim_bridge/transition"]]
    episodes = seen["episode"][:EPISODES]
    assert [e["episode"] for e in episodes] == list(range(EPISODES))
    assert all(e["reason"] in ("success", "timeout") for e in episodes), episodes
    assert [e["success"] for e in episodes] == [e["success"] for e in seen["sim_bridge/episode"][:EPISODES]]
    simulated = [t for t in simulated if t["episode"] < EPISODES]
    recorded = recorded[:len(simulated)]
    per_episode = lambda transitions: [sum(t["episode"] == e for t in transitions) for e in range(EPISODES)]  # noqa
    assert len(recorded) == len(simulated) == sum(e["transitions"] for e in episodes) > 10 * EPISODES, \
        (f"transitions per episode: recorded {per_episode(recorded)}, simulated {per_episode(simulated)}; the "
         f"recorder's refusals {seen['transition_recorder/status'][-1:]}, the server's {seen['policy_server/status'][-1:]}")
    for mine, theirs in zip(recorded, simulated):
        for name in FIELDS:
            np.testing.assert_array_equal(mine[name], theirs[name], err_msg=f"{name} of transition {theirs['sequence']}")
    assert sum(t["terminal"] for t in recorded) == sum(e["success"] for e in episodes)


def test_an_operator_cannot_start_an_episode_while_one_runs(robot):
    observer, seen, nodes = robot
    start = observer.node.create_client(Trigger, "transition_recorder/start_episode")
    spin_once = lambda: observer.executor.spin_once(timeout_sec=0.05)  # noqa: E731
    # the operator script may have started one already; the second start is refused either way
    answers = [call_service(start, Trigger.Request(), spin_once, resend_after=10.0)[0] for _ in range(2)]
    assert refused_as_running(answers[1]), answers


def test_an_intervention_reaches_the_learner_as_expert_chunks_and_the_server_holds_off():
    """A scripted teleoperator takes the arm for the first 8 steps of each episode (two chunks),
    then the policy: those chunks are recorded as the person's (expert), the server publishes
    nothing while the person has the arm, and the rest are the policy's."""
    namespace = "/helped"
    # a person's device sends commands at a steady rate; the simulated one is a timer of a process
    # that a loaded machine can hold back for more than the 0.5 s default hold (a CI run on a
    # loaded machine saw the server act between two of its commands). The bridge sends its state
    # again only after 10 s without a chunk: at the default 1 s a loaded machine let it do so between
    # the operator's start and its teleop call, and the server acted on it (a policy chunk first)
    nodes = [start_node("otpr_ros.nodes.policy_server", DOMAIN, namespace, "max_decision_rate:=1000.0",
                        "starved_after:=60.0", "start_enabled:=false", "intervention_hold:=3.0"),
             start_node("otpr_ros.nodes.sim_bridge", DOMAIN, namespace, "mode:=robot", "teleop:=expert",
                        "teleop_steps:=8", f"first_seed:={FIRST_SEED}", "chunk_timeout:=10.0"),
             start_node("otpr_ros.nodes.transition_recorder", DOMAIN, namespace, "max_episode_steps:=300"),
             start_node("otpr_ros.nodes.sim_operator", DOMAIN, namespace, "teleop:=true")]
    observer = PrivateNode(DOMAIN, "observer", namespace)
    seen = {"transition": [], "action_chunk": [], "teleop_action": [], "episode": [], "status": []}
    deep = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
    observer.node.create_subscription(Float32MultiArray, "transition", seen["transition"].append, TRANSITION_QOS)
    for topic in ("action_chunk", "teleop_action"):
        observer.node.create_subscription(JointTrajectory, topic, seen[topic].append, deep)
    observer.node.create_subscription(String, "episode", lambda m: seen["episode"].append(json.loads(m.data)), deep)
    observer.node.create_subscription(String, "policy_server/status",
                                      lambda m: seen["status"].append(json.loads(m.data)), 10)
    try:
        done = observer.wait_for(lambda: len(seen["episode"]) >= 2 or any(p.poll() is not None for p in nodes), 400)
        assert done and all(p.poll() is None for p in nodes)
        observer.spin(1.5)                      # the last status
    finally:
        observer.close()
        outputs = stopped_all(nodes)
    assert all(p.returncode == 0 for p in nodes), [o[-2000:] for o in outputs]
    recorded = [transition_fields(m, obs_dim=19, action_size=28) for m in seen["transition"]]
    commands = [np.array(m.points[0].positions) for m in seen["teleop_action"]]
    stamp = lambda m: m.header.stamp.sec + m.header.stamp.nanosec * 1e-9  # noqa: E731
    for episode in range(2):
        mine = [t for t in recorded if t["episode"] == episode]
        assert [t["expert"] for t in mine[:3]] == [1.0, 1.0, 0.0] and not any(t["expert"] for t in mine[2:])
        assert [t["steps"] for t in mine[:2]] == [4.0, 4.0]
        ordered = np.concatenate(commands[8 * episode:8 * episode + 8])
        np.testing.assert_allclose(np.concatenate([mine[0]["action"], mine[1]["action"]]), ordered, atol=1e-6)
        helped = [stamp(m) for m in seen["teleop_action"][8 * episode:8 * episode + 8]]
        assert not [c for c in seen["action_chunk"] if helped[0] <= stamp(c) <= helped[-1]], \
            "the server published a chunk while the person had the arm"
    assert seen["status"][-1]["refused"]["intervention"] > 0


def test_the_operator_resets_the_scene_only_once_the_server_is_disabled():
    """A server still enabled after an episode ended may act on the next scene before that
    episode starts (the likely cause of a CI run in which the recorder missed an intervention's
    first steps): the operator resets only once the server's status says it is disabled. The test plays the
    bridge's reset, the recorder's start and the server's status."""
    namespace = "/resetting"
    operator = start_node("otpr_ros.nodes.sim_operator", DOMAIN, namespace, "retry_every:=0.05")
    scene = PrivateNode(DOMAIN, "scene", namespace)
    calls = []

    def answer(what):
        def handler(request, response):
            calls.append(what)
            response.success = True
            return response
        return handler

    scene.node.create_service(Trigger, "sim_bridge/reset", answer("reset"))
    scene.node.create_service(Trigger, "transition_recorder/start_episode", answer("start"))
    status = scene.node.create_publisher(String, "policy_server/status", 10)
    episode = scene.node.create_publisher(String, "episode",
                                          QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
    server_says = lambda enabled: status.publish(String(data=json.dumps({"enabled": enabled})))  # noqa: E731
    counts = []
    scene.node.create_subscription(String, "sim_operator/status", lambda msg: counts.append(json.loads(msg.data)), 10)
    try:
        # no server heard: the first episode is reset and started at once
        assert scene.wait_for(lambda: calls == ["reset", "start"], 120), calls
        assert scene.wait_for(lambda: status.get_subscription_count() and episode.get_subscription_count(), 60)
        for _ in range(20):                             # the episode runs, the server enabled
            server_says(True)
            scene.spin(0.05)
        episode.publish(String(data=json.dumps({"episode": 0, "reason": "success", "success": True})))
        for _ in range(40):                             # 2 s, 40 of the operator's tries
            server_says(True)
            scene.spin(0.05)
        assert calls == ["reset", "start"], f"the operator reset the scene under an enabled server: {calls}"
        server_says(False)
        assert scene.wait_for(lambda: calls == ["reset", "start"] * 2, 60), calls
        # and its status counts them (a late status may still say 1: wait for the count)
        assert scene.wait_for(lambda: counts and counts[-1]["resets"] == 2 and counts[-1]["starts"] == 2, 60), counts
    finally:
        scene.close()
        output = stopped(operator)
    assert operator.returncode in (0, -15), output[-2000:]


def test_a_managed_recorder_starts_episodes_only_while_active():
    """``transition_recorder --managed``: configured but inactive it refuses an operator's
    start; active it starts the episode and enables the server; deactivated it ends the
    episode as stopped and disables the server; a bad parameter fails configure and leaves it
    unconfigured, running; cleanup and a stop end it cleanly."""
    from lifecycle_msgs.msg import State, Transition
    namespace = "/managed"
    nodes = [start_node("otpr_ros.nodes.policy_server", DOMAIN, namespace, "starved_after:=60.0",
                        "start_enabled:=false"),
             start_node("otpr_ros.nodes.transition_recorder", DOMAIN, namespace, arguments=["--managed"]),
             start_node("otpr_ros.nodes.transition_recorder", DOMAIN, "/broken", "step_source:=guess",
                        arguments=["--managed"])]
    observer = PrivateNode(DOMAIN, "operator", namespace)
    seen = {"episode": [], "status": []}
    observer.node.create_subscription(String, "episode", lambda m: seen["episode"].append(json.loads(m.data)),
                                      QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
    observer.node.create_subscription(String, "policy_server/status",
                                      lambda m: seen["status"].append(json.loads(m.data)), 10)
    spin_once = lambda: observer.executor.spin_once(timeout_sec=0.05)  # noqa: E731
    recorder = Lifecycle(observer.node, "transition_recorder", spin_once)
    broken = Lifecycle(observer.node, "/broken/transition_recorder", spin_once)
    start = observer.node.create_client(Trigger, "transition_recorder/start_episode")

    def server_enabled(enabled):      # a status published after this call
        count = len(seen["status"])
        return observer.wait_for(lambda: len(seen["status"]) > count and seen["status"][-1]["enabled"] == enabled, 60)

    try:
        assert recorder.state() == State.PRIMARY_STATE_UNCONFIGURED
        assert recorder.change(Transition.TRANSITION_CONFIGURE) and recorder.state() == State.PRIMARY_STATE_INACTIVE
        refused = start_episode(observer, start)
        assert not refused.success and "inactive" in refused.message
        assert recorder.change(Transition.TRANSITION_ACTIVATE)
        assert start_episode(observer, start).success and server_enabled(True)
        assert recorder.change(Transition.TRANSITION_DEACTIVATE)
        assert observer.wait_for(lambda: seen["episode"], 30) and server_enabled(False)
        assert [(e["episode"], e["reason"], e["success"]) for e in seen["episode"]] == [(0, "stopped", False)]
        assert recorder.change(Transition.TRANSITION_CLEANUP) and recorder.state() == State.PRIMARY_STATE_UNCONFIGURED
        assert not broken.change(Transition.TRANSITION_CONFIGURE)
        assert broken.state() == State.PRIMARY_STATE_UNCONFIGURED and all(p.poll() is None for p in nodes)
    finally:
        observer.close()
        outputs = [stopped(process) for process in nodes]
    assert all(p.returncode in (0, -15) for p in nodes), [o[-2000:] for o in outputs]
    assert "configure failed: step_source" in outputs[2], outputs[2][-2000:]


def test_a_server_restarted_mid_episode_ends_it_and_stays_disabled():
    """A server that restarts while an episode runs (a crash and a respawn) comes up disabled
    under a new instance: the recorder ends the episode as stopped and does not enable the new
    server; the operator's next start does."""
    namespace = "/restart"
    server_args = ("otpr_ros.nodes.policy_server", DOMAIN, namespace, "starved_after:=60.0", "start_enabled:=false")
    nodes = [start_node(*server_args), start_node("otpr_ros.nodes.transition_recorder", DOMAIN, namespace)]
    observer = PrivateNode(DOMAIN, "operator", namespace)
    seen = {"episode": [], "policy_server/status": [], "transition_recorder/status": []}
    observer.node.create_subscription(String, "episode", lambda m: seen["episode"].append(json.loads(m.data)),
                                      QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
    for topic in ("policy_server/status", "transition_recorder/status"):
        observer.node.create_subscription(String, topic, lambda m, t=topic: seen[t].append(json.loads(m.data)), 10)
    start = observer.node.create_client(Trigger, "transition_recorder/start_episode")
    servers = seen["policy_server/status"]

    try:
        answer = start_episode(observer, start)
        assert answer.success, answer
        assert observer.wait_for(lambda: servers and servers[-1]["enabled"], 120), servers[-1:]
        first = servers[-1]["instance"]
        stopped(nodes.pop(0))                   # the server goes; a new one comes up
        nodes.insert(0, start_node(*server_args))
        assert observer.wait_for(lambda: seen["episode"], 120), "the episode did not end"
        assert [(e["episode"], e["reason"]) for e in seen["episode"]] == [(0, "stopped")]
        assert observer.wait_for(lambda: seen["transition_recorder/status"][-1]["server_restarts"] == 1, 30)
        count = len(servers)
        assert observer.wait_for(lambda: len(servers) >= count + 3, 30)   # three more seconds of the new server
        assert all(s["instance"] != first and not s["enabled"] for s in servers[count:])
        answer = start_episode(observer, start)  # the next episode enables it
        assert answer.success, answer
        assert observer.wait_for(lambda: servers[-1]["enabled"], 30)
    finally:
        observer.close()
        outputs = [stopped(process) for process in nodes]
    assert all(p.returncode in (0, -15) for p in nodes), [o[-2000:] for o in outputs]


def test_a_lost_enable_reply_is_asked_again():
    """A server whose "enable" replies do not come (DDS can lose one; the requests take): after
    ``enable_timeout`` the recorder drops the request and asks for what it wants then. An
    episode stopped while its "enable" was unanswered leaves the server disabled; the next
    episode's lost "enable" is asked again and the server is enabled. A recorder that kept
    waiting would never switch the server again, and one that took the server's last answer as
    its state would leave it enabled after the stop."""
    from rclpy.callback_groups import ReentrantCallbackGroup
    from rclpy.task import Future
    namespace = "/lost"
    recorder = start_node("otpr_ros.nodes.transition_recorder", DOMAIN, namespace, "enable_timeout:=15.0")
    observer = PrivateNode(DOMAIN, "operator", namespace)
    asked, answered, enabled, lose, never = [], [], [None], [True], Future()

    async def enable(request, response):      # a stand-in server: an "enable" while lose[0] is never answered
        asked.append(request.data)
        enabled[0] = request.data
        if request.data and lose[0]:
            lose[0] = False
            await never
        answered.append(request.data)
        response.success = True
        return response

    # reentrant: the unanswered calls hold their callback group, and the next requests must still run
    observer.node.create_service(SetBool, "policy_server/enable", enable, callback_group=ReentrantCallbackGroup())
    statuses, episodes = [], []
    observer.node.create_subscription(String, "transition_recorder/status",
                                      lambda m: statuses.append(json.loads(m.data)), 10)
    observer.node.create_subscription(String, "episode", lambda m: episodes.append(json.loads(m.data)),
                                      QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
    start = observer.node.create_client(Trigger, "transition_recorder/start_episode")
    stop = observer.node.create_client(Trigger, "transition_recorder/stop_episode")
    spin_once = lambda: observer.executor.spin_once(timeout_sec=0.05)  # noqa: E731
    try:
        assert observer.wait_for(lambda: asked[:1] == [False] and enabled[0] is False, 60), asked
        answer = start_episode(observer, start)
        assert answer.success, answer
        assert observer.wait_for(lambda: True in asked, 30), asked
        call_service(stop, Trigger.Request(), spin_once, resend_after=5.0)   # within the 15 s: still unanswered
        assert observer.wait_for(lambda: episodes, 30) and episodes[0]["reason"] == "stopped", episodes
        assert observer.wait_for(lambda: enabled[0] is False and asked[-1] is False and statuses and
                                 statuses[-1]["enable_resent"] >= 1, 60), (asked, statuses[-1:])
        resent, lose[0] = statuses[-1]["enable_resent"], True
        answer = start_episode(observer, start)
        assert answer.success, answer
        assert observer.wait_for(lambda: statuses[-1]["enable_resent"] > resent and answered[-1] is True and
                                 enabled[0] is True, 60), (asked, answered, statuses[-1:])
    finally:
        observer.close()
        output = stopped(recorder)
    assert recorder.returncode in (0, -15), output[-2000:]


def test_the_operator_sends_an_unanswered_start_again():
    """The recorder takes the operator's start but its reply never comes (DDS can lose one): after
    ``answer_timeout`` the operator sends it again, and the refusal "still running" tells it that
    the first one took. The test plays the bridge's reset and the recorder's start."""
    from rclpy.callback_groups import ReentrantCallbackGroup
    from rclpy.task import Future
    namespace = "/unanswered"
    operator = start_node("otpr_ros.nodes.sim_operator", DOMAIN, namespace, "retry_every:=0.05",
                          "answer_timeout:=1.0")
    scene = PrivateNode(DOMAIN, "scene", namespace)
    calls, never = [], Future()

    def reset(request, response):
        calls.append("reset")
        response.success = True
        return response

    async def start(request, response):     # the first start takes, its answer never comes
        calls.append("start")
        if calls.count("start") == 1:
            await never
        response.success, response.message = False, still_running(0)
        return response

    scene.node.create_service(Trigger, "sim_bridge/reset", reset)
    scene.node.create_service(Trigger, "transition_recorder/start_episode", start,
                              callback_group=ReentrantCallbackGroup())
    counts = []
    scene.node.create_subscription(String, "sim_operator/status", lambda msg: counts.append(json.loads(msg.data)), 10)
    try:
        assert scene.wait_for(lambda: counts and counts[-1]["starts"] == 1, 120), (calls, counts[-1:])
        assert calls.count("start") >= 2 and counts[-1]["resent"] >= 1 and counts[-1]["refused"] == 0, \
            (calls, counts[-1])
    finally:
        scene.close()
        output = stopped(operator)
    assert operator.returncode in (0, -15), output[-2000:]
