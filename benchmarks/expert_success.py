"""Scripted-expert success and env throughput, for docs/simulation.md.

For each task: 50 episodes of fixed seeds (0..49) with action noise 0.1, success rate and
mean episode length; then aggregate env steps/s (expert episodes, expert included) with 1
and 2 worker processes, 20 episodes each, after the workers have started.

Usage: python benchmarks/expert_success.py [--episodes 50] [--tasks lift can square]
                                           [--throughput-tasks lift can] [--throughput-only] [--json out.json]
       (CALVIN: --tasks calvin_open_drawer ... --throughput-tasks calvin_open_drawer)
"""

import argparse
import json
import os
import platform

from otpr_ros.sim.demonstrations import EpisodeJob, measure


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--noise", type=float, default=0.1)
    parser.add_argument("--tasks", nargs="+", default=["lift", "can", "square"])
    parser.add_argument("--throughput-tasks", nargs="*", default=["lift", "can"])
    parser.add_argument("--throughput-only", action="store_true")
    parser.add_argument("--json")
    args = parser.parse_args()
    results = {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "tasks": {}}
    tasks = [] if args.throughput_only else args.tasks
    if tasks:
        print("| task | success | mean length (steps) | episodes |\n|------|---------|---------------------|----------|")
    for task in tasks:
        jobs = [EpisodeJob(seed, args.noise, 1.0) for seed in range(args.episodes)]
        stats = measure(task, jobs, processes=2)
        results["tasks"][task] = {"success": stats.successes / stats.episodes, "mean_length": stats.steps / stats.episodes}
        print(f"| {task} | {stats.successes}/{stats.episodes} | {stats.steps / stats.episodes:.1f} | {stats.episodes} |")
    print("\n| task | processes | env steps/s |")
    print("|------|-----------|-------------|")
    for task in args.throughput_tasks:
        for processes in (1, 2):
            jobs = [EpisodeJob(1000 + seed, args.noise, 1.0) for seed in range(20)]
            stats = measure(task, jobs, processes)
            results[f"{task}_steps_per_second_{processes}"] = stats.steps_per_second
            print(f"| {task} | {processes} | {stats.steps_per_second:.0f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
