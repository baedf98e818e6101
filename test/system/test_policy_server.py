"""The policy server as its own process on real DDS, driven the way a robot drives it."""

import json
import os
import signal
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy is not installed (the ros extra)")

from geometry_msgs.msg import Pose, PoseArray, PoseStamped  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from std_srvs.srv import SetBool  # noqa: E402
from trajectory_msgs.msg import JointTrajectory  # noqa: E402

from model_fixtures import make_tiny_model  # noqa: E402
from ros_fixtures import Lifecycle, domain, start_node, stopped  # noqa: E402

DOMAIN = domain(61)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    model_dir = make_tiny_model(tmp_path_factory.mktemp("server"))
    process = start_node("otpr_ros.nodes.policy_server", DOMAIN, "/arm", f"model_dir:={model_dir}",
                         "max_decision_rate:=1000.0")
    os.environ["ROS_DOMAIN_ID"] = str(DOMAIN)
    rclpy.init()
    node = rclpy.create_node("fake_robot", namespace="/arm")
    robot = Robot(node)
    yield robot, process
    node.destroy_node()
    rclpy.shutdown()
    output = stopped(process)
    assert process.returncode == 0, output[-3000:]


class Robot:
    """Publishes eef_pose, gripper_state and object_poses as a robot's drivers would."""

    def __init__(self, node):
        self.node = node
        self.pose = node.create_publisher(PoseStamped, "eef_pose", qos_profile_sensor_data)
        self.gripper = node.create_publisher(JointState, "gripper_state", qos_profile_sensor_data)
        self.objects = node.create_publisher(PoseArray, "object_poses", qos_profile_sensor_data)
        self.chunks, self.status, self.sent, self.statuses = [], {}, [], 0
        node.create_subscription(JointTrajectory, "action_chunk", self.chunks.append,
                                 QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
        node.create_subscription(String, "policy_server/status", self._on_status, 10)
        self.enable = node.create_client(SetBool, "policy_server/enable")

    def _on_status(self, msg):
        self.status.update(json.loads(msg.data))
        self.statuses += 1

    def spin(self, seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            rclpy.spin_once(self.node, timeout_sec=0.02)

    def publish_state(self, eef=(0.0, 0.0, 1.0), age=0.0, quat=(0.0, 0.0, 0.0, 1.0)):
        now = self.node.get_clock().now().nanoseconds
        stamp = rclpy.time.Time(nanoseconds=now - int(age * 1e9)).to_msg()
        pose = PoseStamped()
        pose.header.stamp = stamp
        pose.pose.position.x, pose.pose.position.y, pose.pose.position.z = eef
        pose.pose.orientation.x, pose.pose.orientation.y, pose.pose.orientation.z, pose.pose.orientation.w = quat
        gripper = JointState(position=[0.02, -0.02])
        gripper.header.stamp = stamp
        objects = PoseArray()
        objects.header.stamp = stamp
        cube = Pose()
        cube.position.x, cube.position.z, cube.orientation.w = 0.05, 0.83, 1.0
        objects.poses = [cube]
        self.gripper.publish(gripper)
        self.objects.publish(objects)
        self.pose.publish(pose)
        self.sent.append((eef, age, quat, stamp.sec + stamp.nanosec * 1e-9))     # for failure messages

    def wait_for(self, condition, timeout=30.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end and not condition():
            rclpy.spin_once(self.node, timeout_sec=0.05)
        return condition()

    def set_enabled(self, value):
        assert self.enable.wait_for_service(timeout_sec=30.0)
        future = self.enable.call_async(SetBool.Request(data=value))
        assert self.wait_for(future.done) and future.result().success


def test_state_in_chunk_out(server):
    robot, _ = server
    assert robot.wait_for(lambda: robot.status, timeout=60), "no status from the server"

    def published():
        robot.publish_state()
        robot.spin(0.1)
        return len(robot.chunks) >= 3
    assert robot.wait_for(published, timeout=30)
    chunk = robot.chunks[-1]
    assert chunk.joint_names == ["dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper"]
    assert len(chunk.points) == 4
    times = [p.time_from_start.sec + p.time_from_start.nanosec * 1e-9 for p in chunk.points]
    np.testing.assert_allclose(times, [0.05, 0.10, 0.15, 0.20], atol=1e-6)
    actions = np.array([p.positions for p in chunk.points])
    assert np.isfinite(actions).all() and (np.abs(actions) <= 1.0).all()


def answered_again(robot, timeout=20):
    """Whether the server answers a fresh state with a new chunk (it is alive and serving)."""
    count = len(robot.chunks)

    def published():
        robot.publish_state()
        robot.spin(0.1)
        return len(robot.chunks) > count
    return robot.wait_for(published, timeout=timeout)


def fresh_status(robot):
    """The server's next status message (1 Hz): its counters once what was sent before is handled."""
    seen = robot.statuses
    assert robot.wait_for(lambda: robot.statuses > seen, timeout=30), "no status from the server"
    return json.loads(json.dumps(robot.status))          # a deep copy


def refused_total(status) -> int:
    return sum(status["refused"].values())


def test_bad_observations_are_refused_and_serving_goes_on(server):
    robot, process = server
    robot.wait_for(lambda: robot.status, timeout=60)
    before = fresh_status(robot)
    bad = [dict(eef=(np.nan, 0.0, 1.0)), dict(eef=(np.inf, 0.0, 1.0)), dict(age=5.0), dict(quat=(0, 0, 0, 0)),
           dict(age=-3.0)]
    for kwargs in bad:
        robot.publish_state(**kwargs)
        robot.spin(0.2)
    assert robot.wait_for(lambda: refused_total(robot.status) >= refused_total(before) + len(bad)), \
        f"not every bad observation was refused: {before} {robot.status} {robot.sent}"
    after = fresh_status(robot)
    assert after["accepted"] == before["accepted"] and after["published"] == before["published"], \
        f"a refused observation was acted on: {before} {after} {robot.sent}"
    refused = {k: after["refused"][k] - before["refused"][k] for k in after["refused"]}
    assert refused["non_finite"] == 2 and refused["stale"] == 1 and refused["malformed"] == 1
    assert refused["future_stamp"] == 1
    assert process.poll() is None

    assert answered_again(robot), "the server stopped serving after bad input"


def test_nothing_is_published_while_disabled(server):
    robot, _ = server
    robot.set_enabled(False)
    before = fresh_status(robot)
    count = len(robot.chunks)
    for _ in range(10):
        robot.publish_state()
        robot.spin(0.1)
    assert robot.wait_for(lambda: robot.status["refused"]["disabled"] >= before["refused"]["disabled"] + 10), \
        (before, robot.status)
    after = fresh_status(robot)
    assert len(robot.chunks) == count and after["published"] == before["published"] and not after["enabled"]
    assert after["refused"]["disabled"] >= before["refused"]["disabled"] + 10
    asked = robot.node.get_clock().now().nanoseconds * 1e-9
    robot.set_enabled(True)
    # a state from before the enable, delivered after it (a recorder's episode had not yet begun): not acted on
    robot.publish_state(age=robot.node.get_clock().now().nanoseconds * 1e-9 - asked + 0.01)
    assert robot.wait_for(lambda: robot.status["refused"]["before_enable"] > before["refused"]["before_enable"]), \
        robot.status
    assert len(robot.chunks) == count
    assert answered_again(robot)


def test_policy_updates_are_swapped_in_or_refused(server, tmp_path):
    """A server without an update key (test_policy_updates.py: with one) takes unsigned
    announcements, yet only of newer versions, whole and checksummed models of its task and
    dimensions, inside its model roots (by default the shipped models and model_dir's folder)."""
    import shutil
    from pathlib import Path

    from rclpy.qos import DurabilityPolicy

    from otpr_ros.model.directory import load_model
    from otpr_ros.nodes.bus_messages import policy_update_message
    from otpr_ros.package_files import shipped_model

    robot, process = server
    robot.wait_for(lambda: robot.status, timeout=60)
    served = Path(robot.status["model"])
    assert not robot.status["updates_signed"]
    publisher = robot.node.create_publisher(String, "policy_update", QoSProfile(
        depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL))
    good = shutil.copytree(served, served.parent / "v1")
    corrupt = shutil.copytree(served, served.parent / "v2")
    outside = shutil.copytree(served, tmp_path / "v5")
    weights = (corrupt / "weights.pt").read_bytes()
    (corrupt / "weights.pt").write_bytes(weights[:100] + bytes(64) + weights[164:])
    sha = load_model(good, "cpu").weights_sha256
    can = shipped_model("can")
    updates = [(1, good, sha, "applied"), (2, corrupt, sha, "bad_model"),
               (3, can, load_model(can, "cpu").weights_sha256, "bad_model"), (1, good, sha, "not_newer"),
               (4, good, "0" * 64, "bad_model"), (5, outside, sha, "outside_roots")]
    handled = lambda updates: updates["applied"] + updates["refused"]  # noqa: E731
    for version, path, weights_sha, outcome in updates:
        before = fresh_status(robot)["updates"]
        publisher.publish(policy_update_message("run", version, str(path), weights_sha))
        assert robot.wait_for(lambda: handled(robot.status["updates"]) > handled(before)), \
            (version, path, robot.status)
        after = fresh_status(robot)["updates"]
        if outcome == "applied":
            assert after["applied"] == before["applied"] + 1, (version, path, after)
        else:
            assert after["refused_by"][outcome] == before["refused_by"][outcome] + 1, (version, path, after)
        assert robot.status["model_version"] == 1, robot.status
    assert robot.status["model"] == str(good)
    assert answered_again(robot), "the server stopped serving after refused updates"
    assert process.poll() is None


def test_the_server_says_when_observations_stop(server):
    robot, _ = server
    robot.wait_for(lambda: robot.status, timeout=60)
    assert answered_again(robot)
    assert robot.wait_for(lambda: robot.status["starved"], timeout=20), "observations stopped, yet not reported"
    count = len(robot.chunks)
    robot.spin(1.0)
    assert len(robot.chunks) == count, "a chunk was published without an observation"

    def fed_and_fresh():                 # observations again: no longer reported as starved
        robot.publish_state()
        robot.spin(0.1)
        return not robot.status["starved"]
    assert robot.wait_for(fed_and_fresh, timeout=20)


def test_a_managed_server_acts_only_while_active_and_its_watchdog_deactivates_it(server, tmp_path):
    """``policy_server --managed``: a lifecycle node. Unconfigured and inactive it publishes
    nothing; active it acts; when the state stops it deactivates itself; a bad model fails
    configure and leaves it unconfigured, running."""
    from lifecycle_msgs.msg import State, Transition
    model_dir = make_tiny_model(tmp_path)
    managed = start_node("otpr_ros.nodes.policy_server", DOMAIN, "/managed", f"model_dir:={model_dir}",
                         "max_decision_rate:=1000.0", arguments=["--managed"])
    broken = start_node("otpr_ros.nodes.policy_server", DOMAIN, "/broken", f"model_dir:={tmp_path / 'none'}",
                        arguments=["--managed"])
    nodes = {ns: rclpy.create_node("operator", namespace=ns) for ns in ("/managed", "/broken")}
    robot = Robot(nodes["/managed"])
    lifecycles = {ns: Lifecycle(node, "policy_server", lambda n=node: rclpy.spin_once(n, timeout_sec=0.05))
                  for ns, node in nodes.items()}

    def feeding():                                       # the robot streams its state while the operator
        robot.publish_state()                            # changes the server's state (on a loaded machine
        rclpy.spin_once(nodes["/managed"], timeout_sec=0.05)   # a call outlasts starved_after)
    changers = {**lifecycles, "/managed": Lifecycle(nodes["/managed"], "policy_server", feeding)}
    state = lambda ns: lifecycles[ns].state()  # noqa: E731
    change = lambda ns, transition: changers[ns].change(transition)  # noqa: E731
    try:
        def acts(seconds):
            before = len(robot.chunks)
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                robot.publish_state()
                robot.spin(0.05)
            return len(robot.chunks) > before

        assert state("/managed") == State.PRIMARY_STATE_UNCONFIGURED and not acts(1.0)
        assert change("/managed", Transition.TRANSITION_CONFIGURE) and state("/managed") == State.PRIMARY_STATE_INACTIVE
        assert not acts(1.5) and robot.status["refused"]["inactive"] > 0 and not robot.status["active"]
        assert change("/managed", Transition.TRANSITION_ACTIVATE) and acts(5.0)
        deadline = time.monotonic() + 60.0                   # the state stops: the watchdog deactivates
        while state("/managed") != State.PRIMARY_STATE_INACTIVE and time.monotonic() < deadline:
            robot.spin(0.2)
        assert state("/managed") == State.PRIMARY_STATE_INACTIVE and not acts(1.5)
        assert change("/managed", Transition.TRANSITION_ACTIVATE) and acts(5.0)
        assert change("/managed", Transition.TRANSITION_DEACTIVATE) and not acts(1.5)
        assert not change("/broken", Transition.TRANSITION_CONFIGURE)
        assert state("/broken") == State.PRIMARY_STATE_UNCONFIGURED and broken.poll() is None
    finally:
        for node in nodes.values():
            node.destroy_node()
        for process in (managed, broken):
            process.terminate()
        outputs = [p.communicate(timeout=30)[0] for p in (managed, broken)]
    assert "configure failed" in outputs[1], outputs[1][-2000:]


def test_a_margin_makes_plausible_what_the_data_s_range_refuses(server, tmp_path):
    """A state far outside the training data's range is refused (out_of_range, never acted on);
    a server with min_obs_margin around the data's centre acts on it (Kitchen: objects the
    demonstrations never moved)."""
    robot, _ = server
    far = dict(eef=(100.0, 0.0, 1.0))              # the data's eef values: about +-3; 20 times that: refused
    before = fresh_status(robot)
    robot.publish_state(**far)
    assert robot.wait_for(lambda: robot.status["refused"]["out_of_range"] > before["refused"]["out_of_range"])
    assert fresh_status(robot)["accepted"] == before["accepted"]
    margin = start_node("otpr_ros.nodes.policy_server", DOMAIN, "/margin", f"model_dir:={make_tiny_model(tmp_path)}",
                        "max_decision_rate:=1000.0", "min_obs_margin:=200.0")
    node = rclpy.create_node("robot", namespace="/margin")
    wide = Robot(node)
    try:
        def answered():
            wide.publish_state(**far)
            wide.spin(0.1)
            return len(wide.chunks) > 0
        assert wide.wait_for(answered, timeout=60), f"not acted on with a margin: {wide.status}"
        assert fresh_status(wide)["refused"]["out_of_range"] == 0
    finally:
        node.destroy_node()
        margin.terminate()
        output = margin.communicate(timeout=30)[0]
    assert margin.returncode in (0, -15), output[-2000:]


def test_a_server_acting_on_a_stream_of_states_stops_at_once_and_shows_its_stacks_on_request(server, tmp_path):
    """SIGUSR1 prints every thread's stack and the server goes on serving; SIGTERM while states
    keep arriving ends it, exit 0 (a CI run once saw a server still running 30 s after SIGTERM
    with rclpy's own handlers; where it was stuck is not known)."""
    process = start_node("otpr_ros.nodes.policy_server", DOMAIN, "/stopping", f"model_dir:={make_tiny_model(tmp_path)}",
                         "max_decision_rate:=1000.0")
    robot = Robot(rclpy.create_node("robot", namespace="/stopping"))
    try:
        assert answered_again(robot, timeout=60), "the server never acted"
        process.send_signal(signal.SIGUSR1)
        assert answered_again(robot), "the server stopped serving after SIGUSR1"
        for _ in range(5):                          # states in flight while it stops
            robot.publish_state()
            robot.spin(0.02)
        output = stopped(process)                   # SIGKILL (exit -9) after 30 s
    finally:
        robot.node.destroy_node()
        if process.poll() is None:
            stopped(process)
    assert process.returncode == 0, output[-3000:]
    assert "most recent call first" in output and "node_main.py" in output, output[-3000:]   # the stacks
