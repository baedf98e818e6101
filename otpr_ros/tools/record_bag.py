"""otpr-record-bag: record topics into a rosbag2 (MCAP or sqlite3), where ``ros2 bag`` is missing.

    otpr-record-bag runs/teleop_bag --namespace /arm                    # until Ctrl-C
    otpr-record-bag runs/teleop_bag --namespace /arm --episodes 10 --episode-topic sim_bridge/episode

Subscribes to each topic once a publisher of it is seen (its type from the graph; reliable
when every publisher is, else best effort, as ``ros2 bag record`` adapts) and writes each
message's serialized bytes, stamped with the time it was received, with the ``rosbags``
library: the bag ``ros2 bag play`` and ``otpr-bag-to-demos`` read. The default topics are
what a teleoperated demonstration needs: the robot's state, the teleoperator's commands,
rewards and episode ends.
"""

import argparse
import importlib
import signal
import sys
import time
from pathlib import Path

TOPICS = ("eef_pose", "gripper_state", "object_poses", "joint_states", "teleop_action", "reward", "episode")
STORAGES = ("mcap", "sqlite3")


def message_class(type_name: str):
    """``geometry_msgs/msg/PoseStamped`` -> the rclpy message class."""
    package, _, name = type_name.split("/")
    return getattr(importlib.import_module(f"{package}.msg"), name)


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="otpr-record-bag", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output", help="the bag's folder (must not exist)")
    parser.add_argument("--topics", nargs="+", default=list(TOPICS), help="topics, relative to --namespace")
    parser.add_argument("--namespace", default="/", help="where the relative topic names are (default /)")
    parser.add_argument("--storage", choices=STORAGES, default="mcap")
    parser.add_argument("--episodes", type=int, default=0, help="stop after this many messages on --episode-topic "
                        "(then 1 s more for the messages after it); 0: until Ctrl-C")
    parser.add_argument("--episode-topic", default="episode")
    parser.add_argument("--seconds", type=float, default=0.0, help="stop after this long; 0: no limit")
    args = parser.parse_args(argv)
    if args.episodes < 0 or args.seconds < 0:
        parser.error("--episodes and --seconds must be >= 0")
    if args.episodes and args.episode_topic not in args.topics:
        args.topics.append(args.episode_topic)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    output = Path(args.output)
    if output.exists():
        print(f"otpr-record-bag: {output} exists; a bag is written to a new folder", file=sys.stderr)
        return 2
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    typestore = get_typestore(Stores.ROS2_KILTED)
    stop = []
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, lambda *_: stop.append(True))
    rclpy.init(args=[], signal_handler_options=rclpy.signals.SignalHandlerOptions.NO)
    node = rclpy.create_node("otpr_record_bag", namespace=args.namespace)
    writer = Writer(output, version=9, storage_plugin=StoragePlugin.MCAP if args.storage == "mcap"
                    else StoragePlugin.SQLITE3)
    writer.open()
    connections, counts, episodes_seen = {}, {}, []
    started, ended_at = time.monotonic(), None

    def on_message(topic, data):
        writer.write(connections[topic], node.get_clock().now().nanoseconds, bytes(data))
        counts[topic] += 1
        if args.episodes and topic == args.episode_topic:
            episodes_seen.append(True)

    def subscribe_new():
        for topic in args.topics:
            if topic in connections:
                continue
            full = node.resolve_topic_name(topic)
            publishers = node.get_publishers_info_by_topic(full)
            if not publishers:
                continue
            type_name = publishers[0].topic_type
            if type_name not in typestore.types:
                print(f"otpr-record-bag: {full}: type {type_name} unknown to the bag's type store; not recorded",
                      file=sys.stderr)
                connections[topic] = None
                continue
            reliable = all(p.qos_profile.reliability == ReliabilityPolicy.RELIABLE for p in publishers)
            qos = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE if reliable
                             else ReliabilityPolicy.BEST_EFFORT)
            connections[topic] = writer.add_connection(full, type_name, typestore=typestore)
            counts[topic] = 0
            node.create_subscription(message_class(type_name), topic, lambda data, t=topic: on_message(t, data),
                                     qos, raw=True)
            print(f"otpr-record-bag: recording {full} ({type_name}, {'reliable' if reliable else 'best effort'})",
                  flush=True)

    looked = 0.0
    try:
        while not stop:
            now = time.monotonic()
            if now - looked > 0.5:             # new publishers
                subscribe_new()
                looked = now
            rclpy.spin_once(node, timeout_sec=0.05)
            if args.episodes and len(episodes_seen) >= args.episodes and ended_at is None:
                ended_at = now
            if (ended_at is not None and now - ended_at > 1.0) or (args.seconds and now - started > args.seconds):
                break
    finally:
        writer.close()
        node.destroy_node()
        rclpy.try_shutdown()
    print(f"otpr-record-bag: {output}: {counts}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
