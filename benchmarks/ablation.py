"""The paper's ablations on one task, with identical seeds and budgets: BC only (the shipped
model, no fine-tuning), OTPR (H guidance, masked OT), OTPR-U (unmasked), Q and advantage
guidance, each fine-tuned by the in-process ``finetune`` (one process per variant) and
evaluated on the same held-out seeds.

    python benchmarks/ablation.py --task lift --env-steps 3000 --eval-every 1500
    python benchmarks/ablation.py --task can --env-steps 4000 --eval-every 2000

Every variant runs on top of the CPU fine-tuning settings (otpr_ros/model/ablation_variants.py)
with the same training seeds, evaluation seeds and update-to-data ratio. Writes, under
``<output>/<task>/``: one finetune output per variant (skipped when its summary.json is
already there, so an interrupted ablation goes on where it stopped), ``bc.json``,
``ablation.csv`` (every evaluation of every variant), ``ablation.md`` (the table) and
``ablation.png`` (held-out success against environment steps, 95 % intervals).
"""

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

from otpr_ros.model.ablation_variants import CPU_SETTINGS, VARIANTS
from otpr_ros.package_files import shipped_model
from otpr_ros.sim.evaluation import EvalSettings, evaluate

DEFAULT_VARIANTS = ["otpr", "unmasked", "q", "advantage"]
LABELS = {"bc": "BC only (no fine-tuning)", "otpr": "OTPR: H, masked OT", "unmasked": "OTPR-U: H, unmasked OT",
          "mask_without_g": "H, mask without keypoint cost", "q": "Q guidance", "advantage": "advantage guidance"}


def bc_row(task: str, seeds, output: Path) -> dict:
    path = output / "bc.json"
    if not path.exists():
        summary, _ = evaluate(EvalSettings(task, str(shipped_model(task))), seeds)
        low, high = summary.ci95
        path.write_text(json.dumps({"env_steps": 0, "updates": 0, "success_rate": summary.success_rate,
                                    "ci_low": round(low, 3), "ci_high": round(high, 3)}))
    return json.loads(path.read_text())


def run_variant(args, variant: str, output: Path) -> dict:
    folder = output / variant
    if not (folder / "summary.json").exists():
        command = [sys.executable, "-m", "otpr_ros.tools.finetune", "--task", args.task, "--output", str(folder),
                   "--env-steps", str(args.env_steps), "--eval-every", str(args.eval_every), "--utd", str(args.utd),
                   "--eval-episodes", str(args.episodes), "--eval-seed", str(args.eval_seed),
                   "--train-seed", str(args.train_seed), "--seed", str(args.seed), "--device", args.device,
                   "--no-offline-eval"]
        for override in CPU_SETTINGS + VARIANTS[variant]:
            command += ["--set", override]
        print(f"ablation {args.task}: {variant}: {' '.join(command)}", flush=True)
        subprocess.run(command, check=True)
    return json.loads((folder / "summary.json").read_text())


def write_table(task: str, bc: dict, results: dict, output: Path, args) -> None:
    rows = [{"variant": "bc", **bc}] + [{"variant": v, **row} for v, s in results.items() for row in s["curve"]]
    with open(output / "ablation.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, ["variant", "env_steps", "updates", "success_rate", "ci_low", "ci_high",
                                    "train_success_rate", "wall_s"], extrasaction="ignore", restval="")
        writer.writeheader()
        writer.writerows(rows)
    steps = sorted({row["env_steps"] for s in results.values() for row in s["curve"]})
    percent = lambda row: f"{row['success_rate']:.0%} ({row['ci_low']:.0%}-{row['ci_high']:.0%})"  # noqa: E731
    header = " | ".join(f"{n:,} steps".replace(",", " ") for n in [0, *steps])
    lines = [f"| {task} | {header} | fine-tuning min |",
             "| --- " * (len(steps) + 3) + "|",
             f"| {LABELS['bc']} | {percent(bc)} |" + " |" * len(steps) + " |"]
    for variant, summary in results.items():
        by_step = {row["env_steps"]: row for row in summary["curve"]}
        cells = [percent(by_step[n]) if n in by_step else "" for n in steps]
        minutes = summary["wall_s"] / 60
        lines.append(f"| {LABELS[variant]} | {percent(bc)} | " + " | ".join(cells) + f" | {minutes:.1f} |")
    (output / "ablation.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))

    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for variant, summary in results.items():
        curve = [bc] + summary["curve"]
        x = [row["env_steps"] for row in curve]
        ax.errorbar(x, [row["success_rate"] for row in curve], capsize=3, marker="o", label=LABELS[variant],
                    yerr=[[row["success_rate"] - row["ci_low"] for row in curve],
                          [row["ci_high"] - row["success_rate"] for row in curve]], alpha=0.85)
    ax.axhline(bc["success_rate"], color="grey", linestyle="--", label=LABELS["bc"])
    ax.set(xlabel="environment steps", ylabel=f"held-out success ({args.episodes} episodes)", ylim=(0, 1.02),
           title=f"{task}: guidance and masking ablations (utd {args.utd:g}, 2-core CPU)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(output / "ablation.png", dpi=120)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="lift")
    parser.add_argument("--variants", nargs="+", default=DEFAULT_VARIANTS, choices=list(VARIANTS))
    parser.add_argument("--env-steps", type=int, default=3000)
    parser.add_argument("--eval-every", type=int, default=1500)
    parser.add_argument("--utd", type=float, default=0.25)
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--eval-seed", type=int, default=100_000)
    parser.add_argument("--train-seed", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="runs/ablation")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    output = Path(args.output) / args.task
    output.mkdir(parents=True, exist_ok=True)
    bc = bc_row(args.task, range(args.eval_seed, args.eval_seed + args.episodes), output)
    results = {}
    for variant in args.variants:
        results[variant] = run_variant(args, variant, output)
        write_table(args.task, bc, results, output, args)     # after every variant: a stopped run keeps its rows


if __name__ == "__main__":
    main()
