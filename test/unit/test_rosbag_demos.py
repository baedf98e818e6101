"""otpr-bag-to-demos on bags written here with the rosbags library (real MCAP and sqlite3 files):
a well-formed bag converts step for step; a bag that does not fit is refused with the problem
named and nothing is written."""

import json

import numpy as np
import pytest

pytest.importorskip("rosbags", reason="rosbags is not installed (the ros extra)")

from rosbags.rosbag2 import StoragePlugin, Writer  # noqa: E402
from rosbags.typesys import Stores, get_typestore  # noqa: E402

from otpr_ros.data.rosbag_demos import bag_demonstrations  # noqa: E402
from otpr_ros.tools.bag_to_demos import main  # noqa: E402

STORE = get_typestore(Stores.ROS2_KILTED)
T = STORE.types


def header(stamp_ns):
    return T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=stamp_ns // 10**9,
                                                                           nanosec=stamp_ns % 10**9), frame_id="world")


def pose(position, quaternion=(0.0, 0.0, 0.0, 1.0)):
    return T["geometry_msgs/msg/Pose"](position=T["geometry_msgs/msg/Point"](x=position[0], y=position[1],
                                                                            z=position[2]),
                                       orientation=T["geometry_msgs/msg/Quaternion"](x=quaternion[0], y=quaternion[1],
                                                                                     z=quaternion[2], w=quaternion[3]))


def state(stamp):
    """The three state messages of one instant: the arm moves 1 cm per step."""
    x = stamp * 1e-9
    eef = T["geometry_msgs/msg/PoseStamped"](header=header(stamp), pose=pose([x, 0.0, 1.0]))
    gripper = T["sensor_msgs/msg/JointState"](header=header(stamp), name=["f1", "f2"], position=np.array([0.02, -0.02]),
                                              velocity=np.array([], dtype=np.float64),
                                              effort=np.array([], dtype=np.float64))
    objects = T["geometry_msgs/msg/PoseArray"](header=header(stamp), poses=[pose([0.1, 0.0, 0.8])])
    return {"eef_pose": eef, "gripper_state": gripper, "object_poses": objects}


def command(stamp, action, points=1):
    point = T["trajectory_msgs/msg/JointTrajectoryPoint"](
        positions=np.asarray(action, dtype=np.float64), velocities=np.array([], dtype=np.float64),
        accelerations=np.array([], dtype=np.float64), effort=np.array([], dtype=np.float64),
        time_from_start=T["builtin_interfaces/msg/Duration"](sec=0, nanosec=50_000_000))
    return T["trajectory_msgs/msg/JointTrajectory"](header=header(stamp), joint_names=list("abcdefg"),
                                                    points=[point] * points)


def write_bag(path, steps=5, storage=StoragePlugin.MCAP, drop_state=None, rewards=None, points=1, episodes=None):
    """One teleoperated episode of ``steps`` commands, a state before each and after the last."""
    stamps = [10**9 * (i + 1) for i in range(steps + 1)]
    kinds = {"eef_pose": "geometry_msgs/msg/PoseStamped", "gripper_state": "sensor_msgs/msg/JointState",
             "object_poses": "geometry_msgs/msg/PoseArray", "teleop_action": "trajectory_msgs/msg/JointTrajectory",
             "reward": "std_msgs/msg/Float32", "episode": "std_msgs/msg/String"}
    rewards = [0.0] * (steps - 1) + [1.0] if rewards is None else rewards
    episodes = [{"length": steps, "success": True, "seed": 7}] if episodes is None else episodes
    with Writer(path, version=9, storage_plugin=storage) as writer:
        connections = {t: writer.add_connection(f"/arm/{t}", k, typestore=STORE) for t, k in kinds.items()}

        def put(topic, msg, time):
            writer.write(connections[topic], time, STORE.serialize_cdr(msg, kinds[topic]))
        for i, stamp in enumerate(stamps):
            if stamp != drop_state:
                for topic, msg in state(stamp).items():
                    put(topic, msg, stamp)
            if i < steps:
                put("teleop_action", command(stamp, np.full(7, 0.1 * i), points), stamp + 1)
            if i < len(rewards):
                put("reward", T["std_msgs/msg/Float32"](data=rewards[i]), stamp + 2)
        for end in episodes:
            put("episode", T["std_msgs/msg/String"](data=json.dumps(end)), stamps[-1] + 3)
    return path


@pytest.mark.parametrize("storage", [StoragePlugin.MCAP, StoragePlugin.SQLITE3])
def test_a_well_formed_bag_converts_step_for_step(tmp_path, storage):
    episodes = bag_demonstrations(write_bag(tmp_path / "bag", storage=storage), "lift", "/arm")
    assert len(episodes) == 1
    e = episodes[0]
    np.testing.assert_array_equal(e["actions"], [np.full(7, 0.1 * i) for i in range(5)])
    np.testing.assert_array_equal(e["rewards"], [0, 0, 0, 0, 1])
    np.testing.assert_array_equal(e["dones"], [0, 0, 0, 0, 1])
    np.testing.assert_allclose(e["obs"]["robot0_eef_pos"][:, 0], [1, 2, 3, 4, 5])
    np.testing.assert_allclose(e["next_obs"]["robot0_eef_pos"][:, 0], [2, 3, 4, 5, 6])       # the last: the state after
    np.testing.assert_allclose(e["obs"]["object"][0], [0.1, 0, 0.8, 0, 0, 0, 1, 0.1 - 1, 0, -0.2])
    assert e["attrs"]["seed"] == 7


@pytest.mark.parametrize("problem, bag, named", [
    ("a command without its state", dict(drop_state=3 * 10**9), "no complete state with its stamp"),
    ("rewards at another rate", dict(rewards=[0.0] * 3), "3 rewards for 5 commands"),
    ("a chunk, not a command", dict(points=4), "holds 4 points"),
    ("episodes longer than the commands", dict(episodes=[{"length": 9, "success": True}]), "episodes of 9 steps"),
])
def test_a_bag_that_does_not_fit_is_refused_and_nothing_is_written(tmp_path, capsys, problem, bag, named):
    path = write_bag(tmp_path / "bag", **bag)
    output = tmp_path / "demos.hdf5"
    assert main([str(path), "--task", "lift", "--namespace", "/arm", "--output", str(output)]) == 2, problem
    error = capsys.readouterr().err
    assert named in error and "nothing written" in error, error
    assert not output.exists()
