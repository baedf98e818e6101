"""The robot's state as the policy server and the transition recorder read it.

``eef_pose`` (PoseStamped), ``gripper_state`` (JointState, two finger positions) and
``object_poses`` (PoseArray) of one instant, made into the model's robomimic observation.
``exact``: the three messages carry one stamp (one driver, or the bridge, stamps one instant),
whatever order they arrive in and even when the next instant's messages overtake them;
``latest``: every end-effector pose, with the latest of the others.
"""

import numpy as np
from geometry_msgs.msg import PoseArray, PoseStamped
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import JointState

from otpr_ros.model.observation import robomimic_observation

ROBOT_STATE = ("eef_pose", "gripper_state", "object_poses")
STATE_TYPES = {"eef_pose": PoseStamped, "gripper_state": JointState, "object_poses": PoseArray}
SYNCS = ("exact", "latest")
PARTIAL_STATES = 16      # instants kept while their messages arrive (exact sync)


def stamp_seconds(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def stamp_nanoseconds(stamp) -> int:
    return stamp.sec * 1_000_000_000 + stamp.nanosec


def position(p):
    return [p.x, p.y, p.z]


def quaternion(q):
    return [q.x, q.y, q.z, q.w]


class RobotStateSync:
    def __init__(self, task: str, sync: str = "exact"):
        if sync not in SYNCS:
            raise ValueError(f"state_sync: expected one of {SYNCS}, got {sync!r}")
        self.task, self.sync = task, sync
        self.latest = {}                        # topic -> its newest message
        self.partial, self.state = {}, None     # messages by stamp (exact); the newest whole state

    def subscribe(self, node, on_message) -> None:
        """``node`` subscribes to the three topics (sensor-data QoS, as drivers publish);
        ``on_message(topic, msg)`` gets each message."""
        for topic in ROBOT_STATE:
            node.create_subscription(STATE_TYPES[topic], topic, lambda msg, t=topic: on_message(t, msg),
                                     qos_profile_sensor_data)

    def add(self, topic: str, msg) -> bool:
        """Take a message of one of ``ROBOT_STATE``; whether it completes a state (then the
        newest whole state, which ``observation`` reads)."""
        self.latest[topic] = msg
        if self.sync == "latest":
            if topic != "eef_pose" or any(t not in self.latest for t in ROBOT_STATE):
                return topic == "eef_pose"          # incomplete: observation() says so
            self.state = {t: self.latest[t] for t in ROBOT_STATE}
            return True
        key = (msg.header.stamp.sec, msg.header.stamp.nanosec)
        parts = self.partial.setdefault(key, {})
        parts[topic] = msg
        if len(parts) < len(ROBOT_STATE):
            while len(self.partial) > PARTIAL_STATES:          # the oldest instants never completed
                self.partial.pop(next(iter(self.partial)))
            return False
        for older in [k for k in self.partial if k <= key]:  # this instant is the newest whole state
            del self.partial[older]
        self.state = parts
        return True

    def observation(self, object_index: int = 0):
        """(observation, the stamps of its messages in s, the state's stamp) of the newest whole
        state, or why there is none to act on: incomplete | malformed | non_finite."""
        if self.state is None:
            return "incomplete"
        pose, gripper, objects = (self.state[t] for t in ROBOT_STATE)
        if len(objects.poses) <= object_index or len(gripper.position) != 2:
            return "malformed"
        try:
            obs = robomimic_observation(self.task, position(pose.pose.position), quaternion(pose.pose.orientation),
                                        list(gripper.position), position(objects.poses[object_index].position),
                                        quaternion(objects.poses[object_index].orientation))
        except ValueError:
            return "non_finite" if not all(np.isfinite(position(pose.pose.position))) else "malformed"
        return obs, [stamp_seconds(m.header.stamp) for m in (pose, gripper, objects)], pose.header.stamp
