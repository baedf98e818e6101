"""Can's fine-tuning curves at 200 held-out episodes per point (2026-12-02).

Each kept evaluated model of a run (``--keep-evaluated``; the learner node's
``keep_evaluated``) was evaluated in the run on seeds 100000-100049 (its ``evaluation.json``)
and afterwards on 100050-100199:

    otpr-evaluate --model runs/can30k_<recipe>/seed<s>/evaluated/<step> --episodes 150 \
        --seed 100050 --processes 1 --output runs/can200/<recipe>_s<s>_<step>.json

This adds the two and prints one markdown row per run: success over the 200 episodes with its
Wilson 95 % interval and the mean episode length, per evaluation point. An argument is an
``otpr-finetune`` ablation folder (its ``seed*`` runs, the 150 episodes in
``runs/can200/<recipe>_s<s>_<step>.json``) or ``RUN=PREFIX``: one run (e.g. a learner node's
output_dir) whose 150 episodes are in ``<PREFIX>_<step>.json``.

    python docs/experiments/scripts/2026-12-02-can-200-episodes.py runs/can30k_constant runs/can30k_cosine
    python docs/experiments/scripts/2026-12-02-can-200-episodes.py runs/node_cos0=runs/node200/cos0
"""
import json
import sys
from pathlib import Path

from otpr_ros.sim.evaluation import wilson_interval


def row(name: str, run: Path, prefix: str) -> str:
    cells = []
    for point in sorted((p for p in (run / "evaluated").iterdir() if p.name != "step_000000000"),
                        key=lambda p: (p.name == "final", p.name)):
        first = json.loads((point / "evaluation.json").read_text())
        rest = json.loads(Path(f"{prefix}_{point.name}.json").read_text())
        n, k = first["episodes"] + rest["episodes"], first["successes"] + rest["successes"]
        low, high = wilson_interval(k, n)
        length = (first["mean_length"] * first["episodes"] + rest["mean_length"] * rest["episodes"]) / n
        cells.append(f"{k / n:.1%} ({low:.0%}-{high:.0%}), {length:.0f} steps")
    return f"| {name} | " + " | ".join(cells) + " |"


for argument in sys.argv[1:]:
    if "=" in argument:
        run, prefix = argument.split("=", 1)
        print(row(Path(run).name, Path(run), prefix))
        continue
    run = Path(argument)
    for seed_dir in sorted(run.glob("seed*")):
        prefix = run.parent / "can200" / f"{run.name.split('_')[-1]}_s{seed_dir.name[4:]}"
        print(row(f"{run.name} {seed_dir.name}", seed_dir, str(prefix)))
