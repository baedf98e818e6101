"""The shipped policy acting over ROS 2: success over the bus next to the offline evaluation,
and the bus round trip (state published -> its chunk received at the bridge) next to the
in-process decision time, all measured in one run.

    python benchmarks/bus_closed_loop.py --task lift --episodes 50

Starts a policy server and a simulation bridge (fast mode) as separate processes on DDS
(loopback, its own ROS_DOMAIN_ID), with the seeds ``otpr-evaluate`` uses (100000 ...), then times
the same decision in this process with the same model and L.
"""

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time

import numpy as np

from otpr_ros.model.directory import load_model
from otpr_ros.model.policy import ChunkPolicy, evaluation_candidates
from otpr_ros.package_files import node_configs, shipped_model
from otpr_ros.sim.evaluation import wilson_interval


def node(module, task, domain, *parameters):
    command = [sys.executable, "-m", module, "--ros-args",
               *[arg for path in node_configs(task) for arg in ("--params-file", str(path))], *[arg for p in parameters for arg in ("-p", p)], "-r", "__ns:=/bench"]
    return subprocess.Popen(command, env=dict(os.environ, ROS_DOMAIN_ID=str(domain)), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def in_process_decisions(task: str, candidates: int, count: int = 300):
    policy = ChunkPolicy(load_model(shipped_model(task)), "torch", candidates, "argmax")
    obs = policy.model.obs_normalizer.unnormalize(np.zeros((1, policy.obs_dim)))[0]
    for _ in range(20):
        policy.decide(obs)
    times = []
    for _ in range(count):
        start = time.perf_counter()
        policy.decide(obs)
        times.append(1e3 * (time.perf_counter() - start))
    return np.percentile(times, [50, 99])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="lift")
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--first-seed", type=int, default=100000)
    parser.add_argument("--domain", type=int, default=90)
    args = parser.parse_args()

    server = node("otpr_ros.nodes.policy_server", args.task, args.domain, "max_decision_rate:=1000.0")
    start = time.perf_counter()
    bridge = node("otpr_ros.nodes.sim_bridge", args.task, args.domain, f"episodes:={args.episodes}",
                  f"first_seed:={args.first_seed}")
    bridge_output = bridge.communicate()[0]
    seconds = time.perf_counter() - start
    server.terminate()
    server.communicate(timeout=30)
    if bridge.returncode != 0:
        sys.exit(f"the bridge failed:\n{bridge_output[-3000:]}")
    status = json.loads(re.search(r"all \d+ episodes done: (\{.*\})", bridge_output).group(1))
    episodes = [line for line in bridge_output.splitlines() if "episode " in line and "(seed" in line]
    steps = sum(int(re.search(r"in (\d+) steps", line).group(1)) for line in episodes)

    candidates = evaluation_candidates(load_model(shipped_model(args.task)).config)
    decide_p50, decide_p99 = in_process_decisions(args.task, candidates)
    successes = status["successes"]
    low, high = wilson_interval(successes, status["episodes"])
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "task": args.task, "num_candidates": candidates, "episodes": status["episodes"],
        "seeds": f"{args.first_seed}-{args.first_seed + status['episodes'] - 1}",
        "success_rate": successes / status["episodes"], "ci95": [round(low, 3), round(high, 3)],
        "bus_round_trip_ms_p50": round(status["round_trip_ms_p50"], 2),
        "bus_round_trip_ms_p99": round(status["round_trip_ms_p99"], 2),
        "in_process_decision_ms_p50": round(float(decide_p50), 2),
        "in_process_decision_ms_p99": round(float(decide_p99), 2),
        "env_steps_per_s": round(steps / seconds, 1), "chunks_dropped": status["chunks_dropped"],
        "state_resent_after_timeout": status["timeouts"],
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
