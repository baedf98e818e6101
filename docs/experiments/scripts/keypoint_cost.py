"""What the keypoint relation cost g does to acting: the shipped model picks the arg-max of H
over L = 8 candidates, with the transport cost ``c = -Qn + beta * g`` at several (beta, rho),
on the same held-out seeds; L = 1 (the diffusion policy alone) for reference.

    python docs/experiments/scripts/keypoint_cost.py --tasks lift can --episodes 50

No training happens: every row acts with the same policy, critic and potentials, and only
the cost that ranks the candidates changes (``otpr-evaluate --set``). The shipped potentials
have had 500 dual steps, so H is still close to ``(const + Qn - beta * g)_+``: this measures
whether g ranks candidates well, which is what it contributes to compatibility resampling
and, through the same H, to the actor's guidance. Writes ``<output>/<task>.json`` (one
evaluation per setting, kept so an interrupted run goes on) and ``<output>/keypoint_cost.md``.
"""

import argparse
import json
import sys
from pathlib import Path

from otpr_ros.package_files import shipped_model
from otpr_ros.sim.evaluation import EvalSettings, evaluate, success_cell

# (label, L, overrides); the shipped configs use beta 1, rho 1
SETTINGS = [
    ("L = 1 (diffusion policy alone)", 1, ()),
    ("beta 0 (no g: Q and v)", 8, ("transport.beta=0",)),
    ("beta 0.1, rho 1", 8, ("transport.beta=0.1",)),
    ("beta 0.3, rho 1", 8, ("transport.beta=0.3",)),
    ("beta 1, rho 1 (shipped)", 8, ()),
    ("beta 1, rho 0.1", 8, ("transport.rho=0.1",)),
    ("beta 1, rho 10", 8, ("transport.rho=10",)),
]


def measure(task: str, args, results: dict) -> dict:
    seeds = range(args.eval_seed, args.eval_seed + args.episodes)
    for label, candidates, overrides in SETTINGS:
        if label in results:
            continue
        settings = EvalSettings(task, str(shipped_model(task)), "torch", candidates, "argmax", None, overrides)
        summary, _ = evaluate(settings, seeds, args.processes)
        results[label] = {"L": candidates, "overrides": list(overrides), "eval_seed": args.eval_seed,
                          **summary.record()}
        print(f"keypoint cost {task}: {label}: {summary.successes}/{summary.episodes}", flush=True)
        (args.output / f"{task}.json").write_text(json.dumps(results, indent=1))
    return results


def table(all_results: dict, episodes: int) -> str:
    tasks = list(all_results)
    lines = [f"Held-out success ({episodes} episodes, 95 % interval), arg-max of H over L = 8 unless said",
             "", "| setting | " + " | ".join(tasks) + " |", "| --- |" + " --- |" * len(tasks)]
    for label, _, _ in SETTINGS:
        cells = []
        for task in tasks:
            row = all_results[task][label]
            cells.append(success_cell(row["success_rate"], row["ci95"]))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", default=["lift", "can"], choices=["lift", "can", "square"])
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--eval-seed", type=int, default=100_000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--output", type=Path, default=Path("runs/keypoint_cost"))
    args = parser.parse_args(argv)
    args.output.mkdir(parents=True, exist_ok=True)
    all_results = {}
    for task in args.tasks:
        path = args.output / f"{task}.json"
        kept = json.loads(path.read_text()) if path.exists() else {}
        # only what was measured on the same held-out seeds goes on into the table
        kept = {k: v for k, v in kept.items() if (v["episodes"], v.get("eval_seed")) == (args.episodes, args.eval_seed)}
        all_results[task] = measure(task, args, kept)
    text = table(all_results, args.episodes)
    (args.output / "keypoint_cost.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
