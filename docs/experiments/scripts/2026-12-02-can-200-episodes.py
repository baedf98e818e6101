"""Can's fine-tuning curves at 200 held-out episodes per point (2026-12-02).

Each kept evaluated model of a run (``--keep-evaluated``) was evaluated in the run on seeds
100000-100049 (its ``evaluation.json``) and afterwards on 100050-100199:

    otpr-evaluate --model runs/can30k_<recipe>/seed<s>/evaluated/<step> --episodes 150 \
        --seed 100050 --processes 1 --output runs/can200/<recipe>_s<s>_<step>.json

This adds the two and prints one markdown row per run: success over the 200 episodes with its
Wilson 95 % interval and the mean episode length, per evaluation point.

    python docs/experiments/scripts/2026-12-02-can-200-episodes.py runs/can30k_constant runs/can30k_cosine
"""
import json
import sys
from pathlib import Path

from otpr_ros.sim.evaluation import wilson_interval

for run in map(Path, sys.argv[1:]):
    for seed_dir in sorted(run.glob("seed*")):
        cells = []
        for point in sorted((p for p in (seed_dir / "evaluated").iterdir() if p.name != "step_000000000"),
                           key=lambda p: (p.name == "final", p.name)):
            first = json.loads((point / "evaluation.json").read_text())
            rest = json.loads((run.parent / "can200" / f"{run.name.split('_')[-1]}_s{seed_dir.name[4:]}_"
                                                      f"{point.name}.json").read_text())
            n, k = first["episodes"] + rest["episodes"], first["successes"] + rest["successes"]
            low, high = wilson_interval(k, n)
            length = (first["mean_length"] * first["episodes"] + rest["mean_length"] * rest["episodes"]) / n
            cells.append(f"{k / n:.1%} ({low:.0%}-{high:.0%}), {length:.0f} steps")
        print(f"| {run.name} {seed_dir.name} | " + " | ".join(cells) + " |")
