"""Fig. 3 on Can at 10 000 env steps, two seeds (2026-12-02): one markdown table and one plot
(a panel per seed) from the ablation CSVs of

    OMP_NUM_THREADS=1 python benchmarks/ablation.py --tasks can --env-steps 10000 --eval-every 5000 \
        --variants otpr unmasked q advantage recipe --seed <s> --train-seed <200000 | 300000> \
        --output runs/fig3_10k_seed<s>

    python docs/experiments/scripts/2026-12-02-fig3-can-10k.py runs/fig3_10k_seed0 runs/fig3_10k_seed1 \
        docs/experiments/2026-12-02-fig3-can-10k.png
"""
import csv
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))
from ablation import LABELS, plot_panels  # noqa: E402

labels = {**LABELS, "recipe": "Can's recipe (config/can.yaml)"}
*runs, png = sys.argv[1:]
curves = []      # per seed: variant -> rows
for run in runs:
    by_variant = {}
    for row in csv.DictReader(open(Path(run) / "can" / "ablation.csv")):
        numbers = {key: float(row[key]) for key in ("env_steps", "success_rate", "ci_low", "ci_high")}
        by_variant.setdefault(row["variant"], []).append(numbers)
    curves.append(by_variant)

cell = lambda r: f"{r['success_rate']:.0%} ({r['ci_low']:.0%}-{r['ci_high']:.0%})"  # noqa: E731
print("| Can, 50 held-out episodes per point | " + " | ".join(f"seed {i}: 5 000 / 10 000, final"
                                                             for i in range(len(runs))) + " |")
print("| --- |" + " --- |" * len(runs))
for variant, label in labels.items():
    if any(variant in seed for seed in curves):
        cells = [" / ".join(cell(r) for r in seed.get(variant, [])) or "-" for seed in curves]
        print(f"| {label} | " + " | ".join(cells) + " |")

panels = [(f"Can, seed {i} (utd 0.25, 2-core CPU)", seed["bc"][0], {v: rows for v, rows in seed.items() if v != "bc"})
          for i, seed in enumerate(curves)]
plot_panels(panels, Path(png), "held-out success (50 episodes)", legend="lower left", labels=labels)
