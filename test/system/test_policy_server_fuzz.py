"""Fuzzing the running policy server over DDS with generated robot states: valid ones, NaN and
Inf, wrong lengths, zero quaternions, missing objects, extreme magnitudes, old, future and
repeated stamps, bursts. Nothing unsafe may come out: every chunk is finite and inside the
model's bounds, answers a valid state (by its stamp), no state is answered twice, and the
node keeps serving. The default suite sends 3 000 states; ``-m slow`` sends 100 000 (the
docs/reliability.md's numbers)."""

import json
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy is not installed (the ros extra)")

from geometry_msgs.msg import Pose, PoseArray, PoseStamped  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from trajectory_msgs.msg import JointTrajectory  # noqa: E402

from model_fixtures import make_tiny_model  # noqa: E402
from ros_fixtures import PrivateNode, start_node, domain as ros_domain  # noqa: E402
from otpr_ros.model.directory import load_model  # noqa: E402

RATE = 150          # generated states per second (bursts of 20 come at once)
KINDS = ("valid", "nan", "inf", "extreme", "wrong_gripper", "zero_quaternion", "no_object", "stale", "future",
         "repeat", "burst")


def pose(position, quaternion):
    p = Pose()
    p.position.x, p.position.y, p.position.z = (float(v) for v in position)
    p.orientation.x, p.orientation.y, p.orientation.z, p.orientation.w = (float(v) for v in quaternion)
    return p


class Fuzzer:
    def __init__(self, node, rng):
        self.node, self.rng = node, rng
        self.eef = node.create_publisher(PoseStamped, "eef_pose", qos_profile_sensor_data)
        self.gripper = node.create_publisher(JointState, "gripper_state", qos_profile_sensor_data)
        self.objects = node.create_publisher(PoseArray, "object_poses", qos_profile_sensor_data)
        self.valid_stamps, self.sent = set(), {k: 0 for k in KINDS}
        self.kind_of = {}               # stamp -> kind, for failure messages
        self.last_valid = None

    def now(self, offset=0.0):
        return rclpy.time.Time(nanoseconds=self.node.get_clock().now().nanoseconds + int(offset * 1e9)).to_msg()

    def send(self, kind):
        rng = self.rng
        eef, cube = rng.uniform(-0.5, 0.5, 3) + [0, 0, 1.0], rng.uniform(-0.3, 0.3, 3) + [0, 0, 0.8]
        quat = rng.normal(size=4)
        quat /= np.linalg.norm(quat)
        fingers = list(rng.uniform(-0.04, 0.04, 2))
        stamp = self.now()
        with_object = True
        if kind == "nan":
            eef[rng.integers(3)] = np.nan
        elif kind == "inf":
            cube[rng.integers(3)] = rng.choice([np.inf, -np.inf])
        elif kind == "extreme":
            eef[rng.integers(3)] = rng.choice([-1, 1]) * 10.0 ** rng.uniform(4, 30)
        elif kind == "wrong_gripper":
            fingers = list(rng.uniform(-0.04, 0.04, rng.choice([0, 1, 3])))
        elif kind == "zero_quaternion":
            quat = np.zeros(4)
        elif kind == "no_object":
            with_object = False
        elif kind == "stale":
            stamp = self.now(-rng.uniform(1.0, 100.0))
        elif kind == "future":
            stamp = self.now(rng.uniform(1.0, 100.0))
        elif kind == "repeat" and self.last_valid is not None:
            stamp = self.last_valid                # an old valid state again: at most one answer per state
        self.sent[kind] += 1
        if kind == "valid":
            self.valid_stamps.add((stamp.sec, stamp.nanosec))
            self.last_valid = stamp
        self.kind_of.setdefault((stamp.sec, stamp.nanosec), kind)
        objects = [pose(cube, [0, 0, 0, 1])] if with_object else []
        msgs = (JointState(position=fingers), PoseArray(poses=objects), PoseStamped(pose=pose(eef, quat)))
        for msg in msgs:
            msg.header.stamp = stamp
        self.gripper.publish(msgs[0])
        self.objects.publish(msgs[1])
        self.eef.publish(msgs[2])


def fuzz(tmp_path, count, domain):
    model_dir = make_tiny_model(tmp_path)
    info = load_model(model_dir, "cpu").info
    server = start_node("otpr_ros.nodes.policy_server", domain, "/fuzz", f"model_dir:={model_dir}",
                        "max_decision_rate:=1000.0")
    fuzzing = PrivateNode(domain, "fuzzer", "/fuzz")
    node, executor, spin = fuzzing.node, fuzzing.executor, fuzzing.spin
    chunks, status = [], {}
    node.create_subscription(JointTrajectory, "action_chunk", chunks.append,
                             QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE))
    node.create_subscription(String, "policy_server/status", lambda m: status.update(json.loads(m.data)), 10)
    fuzzer = Fuzzer(node, np.random.default_rng(0))
    try:
        assert fuzzing.wait_for(lambda: status, 60), "the server did not come up"
        weights = [40, 4, 4, 4, 3, 3, 3, 4, 4, 4, 0]
        sent, start = 0, time.monotonic()
        while sent < count:
            while sent > RATE * (time.monotonic() - start):     # paced: the server takes most of them
                executor.spin_once(timeout_sec=0.001)
            kind = KINDS[np.random.default_rng(sent).choice(len(KINDS), p=np.array(weights) / sum(weights))]
            if sent % 500 == 0:
                kind = "burst"
            if kind == "burst":
                for _ in range(20):
                    fuzzer.send("valid")
                fuzzer.sent["burst"] += 1
                sent += 20
            else:
                fuzzer.send(kind)
                sent += 1
        spin(3.0)
        refused, accepted, named = dict(status["refused"]), status["accepted"], status["last_out_of_range"]
        # alive and answering a valid state afterwards
        before = len(chunks)
        for _ in range(100):
            fuzzer.send("valid")
            spin(0.1)
            if len(chunks) > before:
                break
        assert len(chunks) > before, "the server stopped answering valid states"
        assert server.poll() is None
    finally:
        fuzzing.close()
        server.terminate()
        output = server.communicate(timeout=30)[0]
    assert server.returncode in (0, -15), output[-3000:]

    low, high = np.array(info.action_low), np.array(info.action_high)
    answered = []
    for chunk in chunks:
        actions = np.array([p.positions for p in chunk.points])
        assert np.isfinite(actions).all() and (actions >= low - 1e-9).all() and (actions <= high + 1e-9).all()
        answered.append((chunk.header.stamp.sec, chunk.header.stamp.nanosec))
    wrong = sorted({fuzzer.kind_of.get(s, "never sent") for s in set(answered) - fuzzer.valid_stamps})
    assert not wrong, f"chunks answered states that were not valid: {wrong}"
    assert len(answered) == len(set(answered)), "a state was answered twice"
    return {"sent": sent, "by_kind": fuzzer.sent, "chunks": len(chunks), "accepted": accepted, "refused": refused,
            "last_out_of_range": named, "unsafe_actions": 0}


def test_fuzzed_states_never_become_unsafe_actions(tmp_path):
    report = fuzz(tmp_path, 3000, domain=ros_domain(67))
    assert report["chunks"] > 0.2 * report["by_kind"]["valid"], report      # the rest: dropped (sensor QoS)
    for reason in ("non_finite", "malformed", "stale", "future_stamp", "out_of_range", "out_of_order"):
        assert report["refused"][reason] > 0, (reason, report["refused"])
    assert report["last_out_of_range"].startswith("component "), report      # which value, for a person
    print(json.dumps(report))


@pytest.mark.slow
def test_fuzz_100k(tmp_path):
    report = fuzz(tmp_path, 100_000, domain=ros_domain(68))
    print(json.dumps(report))
