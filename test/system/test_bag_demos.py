"""Demonstrations from bags, round trip: a simulated teleoperator (the scripted expert) drives the
robot-mode bridge over DDS, otpr-record-bag writes a real rosbag2 (MCAP), otpr-bag-to-demos
turns it into robomimic HDF5, and that file equals the one otpr-collect-demos writes for the
same seeds; otpr-pretrain trains on it. Bags that do not fit are refused with the problem
named and nothing written."""

import json
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest
import yaml

rclpy = pytest.importorskip("rclpy", reason="rclpy is not installed (the ros extra)")
pytest.importorskip("robosuite", reason="the simulation extra is not installed")
pytest.importorskip("rosbags", reason="rosbags is not installed (the ros extra)")

from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from model_fixtures import TINY_CONFIG  # noqa: E402
from ros_fixtures import PrivateNode, domain, start_node  # noqa: E402

DOMAIN = domain(75)
NAMESPACE = "/demo"
EPISODES, FIRST_SEED = 3, 10000
KEYS = ("robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos", "object")


def tool(name: str, *args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", f"otpr_ros.tools.{name}", *args], capture_output=True, text=True,
                          **kwargs)


@pytest.fixture(scope="module")
def bag(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bags")
    bridge = start_node("otpr_ros.nodes.sim_bridge", DOMAIN, NAMESPACE, "mode:=robot", "teleop:=expert",
                        f"first_seed:={FIRST_SEED}")
    recorder = subprocess.Popen([sys.executable, "-m", "otpr_ros.tools.record_bag", str(folder / "teleop"),
                                 "--namespace", NAMESPACE, "--episodes", str(EPISODES),
                                 "--episode-topic", "sim_bridge/episode"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env=dict(os.environ, ROS_DOMAIN_ID=str(DOMAIN)))
    operator = PrivateNode(DOMAIN, "operator", NAMESPACE)
    ended = []
    operator.node.create_subscription(String, "sim_bridge/episode", lambda m: ended.append(json.loads(m.data)),
                                      QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
    reset = operator.node.create_client(Trigger, "sim_bridge/reset")
    teleop = operator.node.create_client(Trigger, "sim_bridge/teleop")
    try:
        assert reset.wait_for_service(timeout_sec=120), "the bridge never came up"
        graph = operator.node
        recorded = lambda: len(graph.get_subscriptions_info_by_topic(f"{NAMESPACE}/sim_bridge/episode")) >= 2  # noqa
        assert operator.wait_for(recorded, 60), "otpr-record-bag never subscribed"
        operator.spin(1.0)              # its other subscriptions matched too
        for episode in range(EPISODES):
            for call in (reset, teleop):           # the scene is set; the teleoperator takes the arm
                future = call.call_async(Trigger.Request())
                assert operator.wait_for(future.done, 30) and future.result().success
            # ~10 s alone; a shared 2-core machine (load 5) once took over 120 s
            assert operator.wait_for(lambda: len(ended) > episode, 360), f"episode {episode} never ended"
        output = recorder.communicate(timeout=60)[0]
        assert recorder.returncode == 0, output
    finally:
        operator.close()
        for process in (recorder, bridge):
            if process.poll() is None:
                process.terminate()
                process.communicate(timeout=30)
    return folder / "teleop", ended


def test_a_teleoperated_bag_converts_to_the_demonstrations_collect_demos_writes(bag, tmp_path):
    path, ended = bag
    assert [e["seed"] for e in ended] == list(range(FIRST_SEED, FIRST_SEED + EPISODES))
    converted = tool("bag_to_demos", str(path), "--task", "lift", "--namespace", NAMESPACE,
                     "--episode-topic", "sim_bridge/episode", "--output", str(tmp_path / "bag.hdf5"))
    assert converted.returncode == 0, converted.stderr
    collected = tool("collect_demos", "--task", "lift", "--episodes", str(EPISODES), "--quality", "expert",
                     "--seed", str(FIRST_SEED), "--processes", "1", "--output", str(tmp_path / "collected.hdf5"))
    assert collected.returncode == 0, collected.stderr
    with h5py.File(tmp_path / "bag.hdf5") as mine, h5py.File(tmp_path / "collected.hdf5") as theirs:
        names = sorted(theirs["data"], key=lambda n: int(n.split("_")[1]))
        assert sorted(mine["data"]) == sorted(theirs["data"]) and len(names) == sum(e["success"] for e in ended) > 0
        for name in names:
            a, b = mine["data"][name], theirs["data"][name]
            assert a.attrs["seed"] == b.attrs["seed"]
            np.testing.assert_array_equal(a["actions"][()], b["actions"][()])
            np.testing.assert_array_equal(a["rewards"][()], b["rewards"][()])
            np.testing.assert_array_equal(a["dones"][()], b["dones"][()])
            for key in KEYS:
                bag_obs, sim_obs = a["obs"][key][()], b["obs"][key][()]
                if key == "object":         # robosuite zeroes the relative part of a reset's first observation
                    sim_obs[0, 7:] = bag_obs[0, 7:]
                np.testing.assert_allclose(bag_obs, sim_obs, atol=1e-9, err_msg=f"{name} {key}")
                np.testing.assert_allclose(a["next_obs"][key][()], b["next_obs"][key][()], atol=1e-9)
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY_CONFIG))
    trained = tool("pretrain", "--task", "lift", "--dataset", str(tmp_path / "bag.hdf5"), "--output",
                   str(tmp_path / "model"), "--config", str(config), "--policy-steps", "20", "--critic-steps", "20",
                   "--batch-size", "16", "--no-onnx", "--device", "cpu", "--logdir", str(tmp_path / "logs"))
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert (tmp_path / "model" / "model.json").exists()


def test_a_bag_that_does_not_fit_is_refused_and_nothing_is_written(bag, tmp_path):
    path, _ = bag
    for args, problem in ((["--namespace", "/elsewhere"], "no messages on eef_pose"),
                          (["--action-topic", "reward"], "std_msgs/msg/Float32, expected trajectory_msgs/msg/JointTrajectory")):
        result = tool("bag_to_demos", str(path), "--task", "lift", "--output", str(tmp_path / "x.hdf5"),
                      "--episode-topic", "sim_bridge/episode", *(["--namespace", NAMESPACE] if
                                                                 "--namespace" not in args else []), *args)
        assert result.returncode == 2 and problem in result.stderr and "nothing written" in result.stderr, \
            result.stderr
        assert not (tmp_path / "x.hdf5").exists()
    result = tool("bag_to_demos", str(tmp_path / "no_bag"), "--task", "lift", "--output", str(tmp_path / "x.hdf5"))
    assert result.returncode == 2 and "not a readable rosbag2" in result.stderr
