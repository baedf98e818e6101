"""Franka Kitchen: the scripted experts' success per sub-task and per benchmark, and the
environment's steps/s, for docs/kitchen.md.

For each sub-task (``kitchen:<sub-task>``) and each benchmark's four targets in order: episodes
of seeds 0.. with action noise 0.1, success rate (every target done within the 280-step
horizon), mean and largest episode length; then, for each benchmark's demonstrations as
``otpr-collect-demos`` draws them (D4RL's definitions: each episode its own plan of four
sub-tasks), the share whose plan is done within the horizon (seeds 0..); then steps/s of one
process with random actions.

Usage: python benchmarks/kitchen_experts.py [--episodes 50] [--noise 0.1] [--json out.json]
       [--tasks kitchen:hinge_cabinet ...]   (only these rows: no demonstrations, no steps/s)
"""

import argparse
import json
import os
import platform
import time

import numpy as np

from otpr_ros.sim.demonstrations import run_episodes, task_jobs
from otpr_ros.sim.kitchen_env import KITCHEN_TASKS, KitchenEnv
from otpr_ros.sim.kitchen_experts import SCRIPTS, KitchenExpert

TASKS = [f"kitchen:{s}" for s in SCRIPTS] + ["kitchen_complete", "kitchen_partial"]   # mixed: partial's targets


def measure(task: str, episodes: int, noise: float) -> dict:
    env = KitchenEnv(task)
    successes, lengths = 0, []
    for seed in range(episodes):
        env.reset(seed=seed)
        expert = KitchenExpert(env, noise=noise, rng=np.random.default_rng(seed))
        while True:
            _, _, terminated, truncated, info = env.step(expert.act())
            if terminated or truncated:
                break
        successes += info["success"]
        lengths.append(env.elapsed)
    env.close()
    return {"success": successes / episodes, "mean_length": float(np.mean(lengths)), "max_length": max(lengths),
            "episodes": episodes}


def measure_plans(task: str, episodes: int, noise: float) -> dict:
    records = list(run_episodes(task, task_jobs(task, episodes, "expert", 0, noise), processes=1))
    lengths = [len(r["actions"]) for r in records]
    return {"success": float(np.mean([r["success"] for r in records])), "mean_length": float(np.mean(lengths)),
            "max_length": max(lengths), "episodes": episodes}


def steps_per_second(steps: int = 2000) -> float:
    env = KitchenEnv("kitchen_complete", horizon=10**6)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for _ in range(steps):
        env.step(rng.uniform(-1, 1, 9))
    return steps / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--noise", type=float, default=0.1)
    parser.add_argument("--json")
    names = {t.replace(" ", "_"): t for t in TASKS}       # the rows' tasks as one word each
    parser.add_argument("--tasks", nargs="+", choices=names, metavar="TASK",
                        help=f"only these rows (spaces as _): {', '.join(names)}")
    args = parser.parse_args()
    tasks = TASKS if args.tasks is None else [names[t] for t in args.tasks]
    results = {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "noise": args.noise, "tasks": {}}
    print("| task | targets | success | mean length | largest | episodes |\n| --- | --- | --- | --- | --- | --- |")
    for task in tasks:
        row = results["tasks"][task] = measure(task, args.episodes, args.noise)
        targets = ", ".join(KITCHEN_TASKS.get(task, (task.removeprefix("kitchen:"),)))
        print(f"| {task} | {targets} | {row['success']:.0%} | {row['mean_length']:.0f} | {row['max_length']} | "
              f"{row['episodes']} |", flush=True)
    for task in KITCHEN_TASKS if args.tasks is None else ():
        row = results["tasks"][f"{task} demonstrations"] = measure_plans(task, args.episodes, args.noise)
        print(f"| {task}, demonstrations | each its plan | {row['success']:.0%} | {row['mean_length']:.0f} | "
              f"{row['max_length']} | {row['episodes']} |", flush=True)
    if args.tasks is None:
        results["steps_per_second"] = steps_per_second()
        print(f"steps/s, one process, random actions: {results['steps_per_second']:.0f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
