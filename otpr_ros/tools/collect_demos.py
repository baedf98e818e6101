"""otpr-collect-demos: scripted-expert demonstrations written as a robomimic HDF5 file.

    otpr-collect-demos --task lift --episodes 200 --quality mixed --seed 0 --output data/lift_mixed.hdf5

    otpr-collect-demos --task kitchen_mixed --episodes 200 --seed 0 --output data/kitchen_mixed.hdf5

Only successful episodes are kept. ``--quality mixed`` imitates robomimic's multi-human
data (operators at several noise levels and speeds); ``expert`` uses ``--noise``. A Franka
Kitchen task's demonstrations follow D4RL's definition of its dataset (complete: the four
targets; partial: some the targets, the others other sub-tasks; mixed: never all four
targets): each episode does its own plan of sub-tasks and is kept when the plan is done.
"""

import argparse
import json
import sys

from tqdm import tqdm

from otpr_ros.data.robomimic_hdf5 import write_dataset
from otpr_ros.sim.demonstrations import QUALITY_MIXES, env_args, run_episodes, task_jobs
from otpr_ros.sim.tasks import SIM_TASKS


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="otpr-collect-demos", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", required=True, choices=sorted(SIM_TASKS))
    parser.add_argument("--episodes", type=int, required=True, help="episodes to run (failures are dropped)")
    parser.add_argument("--output", required=True, help="HDF5 file to write")
    parser.add_argument("--quality", default="expert", choices=sorted(QUALITY_MIXES))
    parser.add_argument("--noise", type=float, default=0.1, help="action noise std for --quality expert")
    parser.add_argument("--seed", type=int, default=0, help="episode i uses seed + i")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--horizon", type=int, default=None)
    args = parser.parse_args(argv)
    if args.episodes < 1 or args.processes < 1 or args.noise < 0:
        parser.error("--episodes and --processes must be >= 1, --noise >= 0")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        jobs = task_jobs(args.task, args.episodes, args.quality, args.seed,
                         args.noise if args.quality == "expert" else None)
    except ValueError as error:
        print(f"otpr-collect-demos: {error}", file=sys.stderr)
        return 2
    kept, bar = [], tqdm(total=len(jobs), desc=f"{args.task} demos", unit="ep")

    def progress(record):
        bar.update(1)
        bar.set_postfix(success=f"{(len(kept) + record['success'])}/{bar.n}")

    for record in run_episodes(args.task, jobs, args.processes, args.horizon, progress):
        if record["success"]:
            kept.append(record)
    bar.close()
    if not kept:
        print(f"otpr-collect-demos: no successful episode out of {len(jobs)}; nothing written", file=sys.stderr)
        return 1
    write_dataset(args.output, kept, env_args(args.task, {"quality": args.quality, "seed": args.seed,
                                                          "episodes_run": len(jobs)}), seed=args.seed)
    print(json.dumps({"output": args.output, "episodes_run": len(jobs), "kept": len(kept),
                      "transitions": int(sum(len(r["actions"]) for r in kept))}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
