"""otpr-bag-to-demos: a rosbag2 of teleoperated demonstrations as the robomimic HDF5 that
``otpr-pretrain`` reads (otpr_ros/data/rosbag_demos.py says what the bag must hold).

    otpr-bag-to-demos runs/teleop_bag --task lift --namespace /arm --output data/my_lift.hdf5
    otpr-pretrain --task lift --dataset data/my_lift.hdf5 --output models/my_lift

Exit 2 with the problem named when the bag does not fit (nothing is written).
"""

import argparse
import json
import sys

from otpr_ros.sim.robomimic_env import TASKS


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="otpr-bag-to-demos", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bag", help="the bag's folder (MCAP or sqlite3)")
    parser.add_argument("--task", required=True, choices=sorted(TASKS))
    parser.add_argument("--output", required=True, help="robomimic HDF5 to write")
    parser.add_argument("--namespace", default="/", help="where the robot's topics are in the bag (default /)")
    parser.add_argument("--action-topic", default="teleop_action")
    parser.add_argument("--episode-topic", default="episode")
    parser.add_argument("--object-index", type=int, default=0, help="the task's object in object_poses")
    parser.add_argument("--keep-failures", action="store_true", help="write unsuccessful episodes too")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from otpr_ros.data.robomimic_hdf5 import write_dataset
    from otpr_ros.data.rosbag_demos import bag_demonstrations
    from otpr_ros.sim.demonstrations import env_args
    try:
        episodes = bag_demonstrations(args.bag, args.task, args.namespace, args.action_topic, args.episode_topic,
                                      args.object_index, args.keep_failures)
    except ValueError as error:
        print(f"otpr-bag-to-demos: {error}; nothing written", file=sys.stderr)
        return 2
    if not episodes:
        print(f"otpr-bag-to-demos: {args.bag}: no {'' if args.keep_failures else 'successful '}demonstration; "
              "nothing written", file=sys.stderr)
        return 2
    write_dataset(args.output, episodes, env_args(args.task, {"source": "rosbag2", "bag": str(args.bag)}))
    print(json.dumps({"output": args.output, "episodes": len(episodes),
                      "transitions": int(sum(len(e["actions"]) for e in episodes))}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
