"""Demonstrations from a rosbag2 recording of a teleoperated session (MCAP or sqlite3, read
with the ``rosbags`` library), as the episodes ``write_dataset`` writes.

What the bag must hold (topic names relative to ``namespace``; docs/robot.md):
- the robot's state, one stamp per instant: ``eef_pose``, ``gripper_state``, ``object_poses``
  (what the policy server reads);
- the teleoperator's commands: ``teleop_action``, trajectory_msgs/JointTrajectory with one
  point per control step (the action in robot units), stamped with the state it answers;
- optionally ``reward`` (std_msgs/Float32, one per command) and ``episode`` (std_msgs/String,
  JSON with ``length`` and ``success``: the bridge's, the recorder's or your own), which
  splits the commands into demonstrations; without it the bag is one demonstration.

Each command is one step: its observation is the state with its stamp, the next observation
the next command's state (after the last, the robot's first state after it). Anything that
does not fit (a topic missing, a command without the state of its stamp, a command of several
points, rewards and commands in different numbers, an episode longer than the commands left)
raises ValueError naming it, and nothing is written.
"""

import json
from pathlib import Path

import numpy as np

from otpr_ros.model.observation import robomimic_observation
from otpr_ros.nodes.robot_state import position, quaternion, stamp_nanoseconds

STATE_TOPICS = ("eef_pose", "gripper_state", "object_poses")
TYPES = {"eef_pose": "geometry_msgs/msg/PoseStamped", "gripper_state": "sensor_msgs/msg/JointState",
         "object_poses": "geometry_msgs/msg/PoseArray", "action": "trajectory_msgs/msg/JointTrajectory",
         "reward": "std_msgs/msg/Float32", "episode": "std_msgs/msg/String"}
OBS_SLICES = {"robot0_eef_pos": slice(0, 3), "robot0_eef_quat": slice(3, 7), "robot0_gripper_qpos": slice(7, 9),
              "object": slice(9, None)}


def read_bag(path, namespace: str = "/", topics=None) -> dict:
    """{relative topic: [(bag time ns, message), ...]} of the wanted topics, in bag order;
    ``_present``: every topic in the bag, ``_types``: {relative topic: its message type}."""
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore

    prefix = "/" + namespace.strip("/") if namespace.strip("/") else ""
    full = {f"{prefix}/{t}": t for t in topics}
    try:
        reader = AnyReader([Path(path)], default_typestore=get_typestore(Stores.ROS2_KILTED))
        reader.open()
    except Exception as error:              # rosbags raises its own errors for unreadable bags
        raise ValueError(f"{path}: not a readable rosbag2 ({type(error).__name__}: {error})") from None
    try:
        wanted = [c for c in reader.connections if c.topic in full]
        messages = {t: [] for t in topics}
        for connection, time_ns, raw in reader.messages(connections=wanted) if wanted else ():   # []: every one
            messages[full[connection.topic]].append((time_ns, reader.deserialize(raw, connection.msgtype)))
        present = sorted({c.topic for c in reader.connections})
        types = {full[c.topic]: c.msgtype for c in wanted}
    finally:
        reader.close()
    messages["_present"], messages["_types"] = present, types
    return messages


def bag_demonstrations(path, task: str, namespace: str = "/", action_topic: str = "teleop_action",
                       episode_topic: str = "episode", object_index: int = 0, keep_failures: bool = False) -> list:
    """The bag's demonstrations as ``write_dataset`` episodes (successful ones only unless
    ``keep_failures``), in order."""
    topics = (*STATE_TOPICS, action_topic, "reward", episode_topic)
    bag = read_bag(path, namespace, topics)
    for topic in (*STATE_TOPICS, action_topic):
        if not bag[topic]:
            raise ValueError(f"{path}: no messages on {topic} under {namespace!r}; the bag holds {bag['_present']}")
    roles = {**{t: t for t in STATE_TOPICS}, "reward": "reward", episode_topic: "episode", action_topic: "action"}
    for topic, kind in bag["_types"].items():
        if kind != TYPES[roles[topic]]:
            raise ValueError(f"{path}: {topic} is {kind}, expected {TYPES[roles[topic]]}")

    parts = {}                                 # stamp -> {topic: msg}: the robot's instants
    for topic in STATE_TOPICS:
        for _, msg in bag[topic]:
            parts.setdefault(stamp_nanoseconds(msg.header.stamp), {})[topic] = msg
    instants = sorted(stamp for stamp, p in parts.items() if len(p) == len(STATE_TOPICS))

    def observation(stamp: int) -> np.ndarray:
        pose, gripper, objects = (parts[stamp][t] for t in STATE_TOPICS)
        if len(objects.poses) <= object_index:
            raise ValueError(f"{path}: object_poses at {stamp} ns holds {len(objects.poses)} poses, the task's object "
                             f"is number {object_index}")
        return robomimic_observation(task, position(pose.pose.position), quaternion(pose.pose.orientation),
                                     list(gripper.position), position(objects.poses[object_index].position),
                                     quaternion(objects.poses[object_index].orientation))

    commands = []
    for _, msg in bag[action_topic]:
        stamp = stamp_nanoseconds(msg.header.stamp)
        if len(msg.points) != 1:
            raise ValueError(f"{path}: {action_topic} at {stamp} ns holds {len(msg.points)} points; a teleoperated "
                             "demonstration has one command per control step")
        if stamp not in parts or len(parts[stamp]) < len(STATE_TOPICS):
            raise ValueError(f"{path}: {action_topic} at {stamp} ns has no complete state with its stamp (have: "
                             f"{sorted(parts.get(stamp, {}))}); the state topics and the commands must share stamps")
        commands.append((stamp, np.asarray(msg.points[0].positions, dtype=np.float64)))
    rewards = [float(msg.data) for _, msg in bag["reward"]]
    if rewards and len(rewards) != len(commands):
        raise ValueError(f"{path}: {len(rewards)} rewards for {len(commands)} commands; the robot's detector "
                         "publishes one reward per control step")
    ends = [json.loads(msg.data) for _, msg in bag[episode_topic]]
    lengths = [int(e["length"]) for e in ends] if ends else [len(commands)]
    if sum(lengths) > len(commands):
        raise ValueError(f"{path}: episodes of {sum(lengths)} steps in all, {len(commands)} commands recorded")

    episodes, start = [], 0
    for number, length in enumerate(lengths):
        steps = commands[start:start + length]
        end = ends[number] if ends else {}
        reward = np.asarray(rewards[start:start + length]) if rewards else np.zeros(length)
        success = bool(end["success"]) if "success" in end else bool(reward.size and reward.max() >= 1.0)
        start += length
        if not steps or not (success or keep_failures):
            continue
        after = [s for s in instants if s > steps[-1][0]]
        if not after:
            raise ValueError(f"{path}: no state after the last command of episode {number}")
        stamps = [s for s, _ in steps]
        obs = np.stack([observation(s) for s in stamps])
        next_obs = np.stack([observation(s) for s in stamps[1:] + [after[0]]])
        if not rewards and success:
            reward[-1] = 1.0
        dones = np.zeros(length)
        dones[-1] = float(success)
        episode = {"obs": {k: obs[:, s] for k, s in OBS_SLICES.items()},
                   "next_obs": {k: next_obs[:, s] for k, s in OBS_SLICES.items()},
                   "actions": np.stack([a for _, a in steps]), "rewards": reward, "dones": dones,
                   "states": np.zeros((length, 0)), "success": success,
                   "attrs": {"source": "rosbag2", **({"seed": int(end["seed"])} if "seed" in end else {})}}
        episodes.append(episode)
    return episodes
