"""Can: does the actor step alone, without any environment data, degrade the policy?

Run from the project root with its venv, one arm per process:
    python docs/experiments/scripts/2026-11-30-can-actor-drift.py --guidance uniform --sampler ddim \
        --output runs/can_drift_uniform_ddim

Fine-tuning Can collapses the policy whatever the critic (docs/experiments/2026-11-30-can-*.md).
This isolates the actor step: the shipped Can model, its buffer holding the demonstrations only
(no rollouts, no critic or dual steps), and --updates actor steps exactly as fine-tuning makes
them (`OTPRAgent.actor_step`: L candidates of the current policy plus the stored action,
weighted by the guidance, weighted score matching at the fine-tuning learning rate), with
config/can.yaml's CPU settings (actor batch 256) and the candidate sampler under test
(ddim: 5-step DDIM, what the CPU learner uses; ddpm: the model's own 20-step sampler).
Guidance `uniform` is the actor step with guidance removed; `bc` is diffusion BC on the
stored (expert) actions only, the control. Every --every updates the weights act (L = 1, as
the model's card) on --episodes episodes from --seed; the seeds are kept apart from the
held-out 100000.. that claims are made on, and from every other range used so far.
"""
import argparse
import json
import time
from pathlib import Path

import torch

from otpr_ros.sim.evaluation import EvalSettings, evaluate
from otpr_ros.training.ablation_variants import CPU_SETTINGS
from otpr_ros.training.online_learning import OnlineLearner

def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="models/can")
    parser.add_argument("--output", required=True)
    parser.add_argument("--guidance", choices=["uniform", "bc", "compatibility"], required=True)
    parser.add_argument("--sampler", choices=["ddim", "ddpm"], default="ddim")
    parser.add_argument("--updates", type=int, default=1500)
    parser.add_argument("--every", type=int, default=750)
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--seed", type=int, default=800_000)
    parser.add_argument("--train-seed", type=int, default=0)
    parser.add_argument("--no-start", action="store_true", help="no evaluation before the first update (every arm's)")
    args = parser.parse_args()

    torch.manual_seed(args.train_seed)
    overrides = [*CPU_SETTINGS, f"agent.actor_sampler={args.sampler}",     # a later setting wins
                 "transport.masked=false", "transport.beta=0", f"agent.guidance={args.guidance}"]
    learner = OnlineLearner.for_task("can", args.model, "cpu", overrides)
    learner.agent.generator.manual_seed(args.train_seed)
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    results = output / "results.jsonl"
    print(learner.settings(), flush=True)

    def record(updates: int, seconds: float) -> None:
        model_dir = learner.snapshot(output / f"model_{updates}", "actor drift diagnostic\n")
        seeds = range(args.seed, args.seed + args.episodes)
        summary, _ = evaluate(EvalSettings("can", str(model_dir), num_candidates=1), seeds, processes=1)
        row = {"guidance": args.guidance, "sampler": args.sampler, "updates": updates, "train_s": round(seconds),
               "success": summary.successes, "episodes": summary.episodes, "ci95": [round(x, 3) for x in summary.ci95]}
        with results.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(row, flush=True)

    train_s, metrics = 0.0, {}
    if not args.no_start:
        record(0, 0.0)
    for update in range(1, args.updates + 1):
        start = time.perf_counter()
        metrics = learner.agent.actor_step(learner.buffer)
        train_s += time.perf_counter() - start
        if update % 250 == 0:
            print(f"update {update}: {metrics} ({train_s:.0f} s)", flush=True)
        if update % args.every == 0:
            record(update, train_s)


if __name__ == "__main__":        # evaluation workers are spawned: they import this file
    main()
