"""Where does fine-tuning pull the policy before it has seen any online data?

Runs N OTPR updates (dual step, IQL step, guided actor step, exactly as the learner does)
on the expert demonstrations alone, with no environment, then evaluates the result on
held-out seeds like ``otpr-evaluate``. With no new data there is nothing to learn, so a good
guidance leaves the success rate where it was; a guidance whose preferences among the
policy's own candidates are wrong pulls the policy toward them, and the success rate drops.
This separates "the guidance misleads the actor" from "the online data are bad".

    python docs/experiments/scripts/guidance_drift.py --task can --updates 626 --variants otpr uniform unmasked
    python docs/experiments/scripts/guidance_drift.py --task can --model runs/can_rollout_critic/model --variants q \
        --set agent.q_normalisation=candidates --set agent.q_temperature=0.5 --output runs/drift_rc

Variants (each on top of the CPU fine-tuning settings, actor batch 256 and 5-step DDIM
candidates): ``otpr`` (the shipped model's config: masked OT, H guidance), ``unmasked`` (OTPR-U:
``transport.masked=false``, ``beta=0``), ``mask_without_g`` (the keypoint mask kept,
the keypoint relation cost dropped: ``beta=0``; tells the two parts of masked OT apart),
``advantage`` and ``q`` (the paper's other guidances), ``uniform`` (the same update with
every candidate weighted equally: what the actor step does with no guidance at all).
Needs the model's pre-training datasets.
"""

import argparse
import json
from pathlib import Path

import torch

from otpr_ros.model.directory import load_model
from otpr_ros.package_files import shipped_model
from otpr_ros.sim.evaluation import EvalSettings, evaluate, success_cell
from otpr_ros.training.ablation_variants import CPU_SETTINGS, VARIANTS as ABLATIONS
from otpr_ros.training.online_learning import OnlineLearner, apply_overrides, expert_demonstrations

VARIANTS = {**ABLATIONS, "uniform": []}         # uniform: the weights are replaced, not configured


def uniform_weights(states, candidates, stored_ids):
    return torch.full(candidates.shape[:2], 1.0 / candidates.shape[1], device=candidates.device)


def drifted_model(task: str, variant: str, updates: int, output: Path, device: str, model_dir=None,
                  extra=()) -> Path:
    model = load_model(model_dir or shipped_model(task), device)
    apply_overrides(model, CPU_SETTINGS + VARIANTS[variant] + list(extra))
    learner = OnlineLearner(model, expert_demonstrations(model))
    if variant == "uniform":
        learner.agent.guidance_weights = uniform_weights
    for _ in range(updates):
        learner.update()
    return learner.snapshot(output / variant, f"# guidance_drift {task} {variant}: {updates} updates, no online data\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="can")
    parser.add_argument("--updates", type=int, default=626, help="OTPR updates (626: 10 000 env steps at utd 0.25)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--seed", type=int, default=100_000)
    parser.add_argument("--output", default="runs/guidance_drift")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--model", help="model directory (default: the shipped model of --task)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="more fine-tuning settings on top of each variant's (otpr-finetune --set)")
    args = parser.parse_args()
    output = Path(args.output) / args.task
    seeds = range(args.seed, args.seed + args.episodes)
    results = {}
    for variant in args.variants:
        path = drifted_model(args.task, variant, args.updates, output, args.device, args.model, args.set)
        summary, _ = evaluate(EvalSettings(args.task, str(path)), seeds)
        results[variant] = summary.to_dict()
        print(f"{args.task} {variant}: {args.updates} updates, no online data: success "
              f"{summary.successes}/{summary.episodes}, {success_cell(summary.success_rate, summary.ci95)}", flush=True)
    (output / "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
