"""Cost of one OTPR update on this machine, step by step (dual, IQL critic, actor), for the
shipped model of a task with its demonstrations, at the paper's actor settings and at the
CPU settings the README suggests.

    python benchmarks/learner_updates.py --task lift

Needs the model's pre-training datasets (``make models`` writes them to data/).
"""

import argparse
import json
import os
import time

import torch

from otpr_ros.model.directory import load_model
from otpr_ros.model.online_learning import OnlineLearner, apply_overrides, expert_demonstrations
from otpr_ros.package_files import shipped_model

SETTINGS = {
    "paper (actor batch 1024, 20-step DDPM candidates)": [],
    "cpu (actor batch 256, 5-step DDIM candidates)": ["agent.actor_batch=256", "agent.actor_sampler=ddim",
                                                      "agent.actor_ddim_steps=5"],
}


def seconds_per_call(function, repeats: int) -> float:
    function()
    start = time.perf_counter()
    for _ in range(repeats):
        function()
    return (time.perf_counter() - start) / repeats


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="lift")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    results = {}
    for name, overrides in SETTINGS.items():
        model = load_model(shipped_model(args.task), args.device)
        apply_overrides(model, overrides)
        learner = OnlineLearner(model, expert_demonstrations(model))
        agent, buffer = learner.agent, learner.buffer
        sync = torch.cuda.synchronize if agent.device.type == "cuda" else (lambda: None)
        results[name] = {step: round(seconds_per_call(lambda f=f: (f(buffer), sync()), args.repeats), 4)
                         for step, f in (("dual_s", agent.dual_step), ("critic_s", agent.critic_step),
                                         ("actor_s", agent.actor_step))}
    print(json.dumps({"device": str(agent.device), "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
                      "task": args.task, **results}, indent=1))


if __name__ == "__main__":
    main()
