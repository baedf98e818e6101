"""Learner throughput over ROS 2 with 1 and with 2 simulation bridges, measured in one run:
gradient steps per second (each OTPR update is one potentials step, one IQL critic step and
one actor step at the task's ``ot_every`` / ``ot_steps``), environment steps per second
sustained, and the share of time the bridges waited for the learner.

    python benchmarks/learner_throughput.py --task lift --seconds 240

For each bridge count it starts ``otpr-launch finetune --num-envs N`` (fast mode, the task's
YAML: update-to-data ratio, CPU overrides, no evaluations) on its own ROS_DOMAIN_ID and a
fresh output directory, waits until the learner is past its warm-up, then reads the nodes'
status topics over a window of ``--seconds``.
"""

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time



def read_statuses(domain: int, topics, seconds: float) -> dict:
    """The newest status (JSON) on each topic after ``seconds`` of listening."""
    import rclpy
    from std_msgs.msg import String
    rclpy.init(domain_id=domain)
    node = rclpy.create_node("learner_throughput")
    latest = {}
    for topic in topics:
        node.create_subscription(String, topic, lambda msg, t=topic: latest.__setitem__(t, json.loads(msg.data)), 10)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.1)
    node.destroy_node()
    rclpy.shutdown()
    return latest


def measure(task: str, bridges: int, seconds: float, domain: int, output: str) -> dict:
    command = [sys.executable, "-m", "otpr_ros.tools.launch", "finetune", "--task", task, "--num-envs", str(bridges),
               "--output-dir", output, "--eval-every", "0", "--env-steps", "0"]
    launch = subprocess.Popen(command, env=dict(os.environ, ROS_DOMAIN_ID=str(domain)), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    topics = ["/otpr/learner/status"] + [f"/otpr/env{i}/sim_bridge/status" for i in range(bridges)]
    try:
        deadline = time.monotonic() + 300
        while True:            # past the warm-up: the learner is updating
            first = read_statuses(domain, topics, 3.0)
            if first.get("/otpr/learner/status", {}).get("updates", 0) > 0 and len(first) == len(topics):
                break
            if time.monotonic() > deadline or launch.poll() is not None:
                raise RuntimeError(f"{bridges} bridge(s): the learner did not start updating")
        start = time.monotonic()
        last = read_statuses(domain, topics, seconds)
        elapsed = time.monotonic() - start
    finally:
        launch.send_signal(signal.SIGINT)
        launch.wait(timeout=60)
    learner, learner0 = last["/otpr/learner/status"], first["/otpr/learner/status"]
    waited = [last[t]["waited_for_learner_s"] - first[t]["waited_for_learner_s"] for t in topics[1:]]
    return {"bridges": bridges, "window_s": round(elapsed, 1),
            "updates_per_s": round((learner["updates"] - learner0["updates"]) / elapsed, 3),
            "env_steps_per_s": round((learner["env_steps"] - learner0["env_steps"]) / elapsed, 1),
            "transitions_per_s": round((learner["received"] - learner0["received"]) / elapsed, 2),
            "bridge_waiting_share": [round(w / elapsed, 2) for w in waited],
            "lost": learner["lost"], "duplicates": learner["duplicates"],
            "learning_share": learner.get("learning_share")}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="lift")
    parser.add_argument("--seconds", type=float, default=240.0, help="measuring window per bridge count")
    parser.add_argument("--domain", type=int, default=91)
    parser.add_argument("--bridges", type=int, nargs="+", default=[1, 2], help="bridge counts to measure")
    args = parser.parse_args()

    from otpr_ros.model.directory import read_config
    from otpr_ros.package_files import shipped_model
    transport = read_config(shipped_model(args.task)).transport      # the model's, as the learner's
    per_update = {"potentials": transport.ot_steps / transport.ot_every, "critic": 1, "actor": 1}
    rows = []
    for bridges in args.bridges:
        with tempfile.TemporaryDirectory() as output:
            row = measure(args.task, bridges, args.seconds, args.domain, output)
        row["gradient_steps_per_s"] = {k: round(v * row["updates_per_s"], 3) for k, v in per_update.items()}
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(json.dumps({"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
                      "task": args.task, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
