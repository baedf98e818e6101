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

import matplotlib

matplotlib.use("Agg")
from matplotlib import pyplot as plt  # noqa: E402

LABELS = {"bc": "BC only (no fine-tuning)", "otpr": "OTPR: H, masked OT", "unmasked": "OTPR-U: H, unmasked OT",
          "q": "Q guidance", "advantage": "advantage guidance", "recipe": "Can's recipe (config/can.yaml)"}
*runs, png = sys.argv[1:]
curves = []      # per seed: variant -> rows
for run in runs:
    by_variant = {}
    for row in csv.DictReader(open(Path(run) / "can" / "ablation.csv")):
        by_variant.setdefault(row["variant"], []).append(row)
    curves.append(by_variant)

cell = lambda r: f"{float(r['success_rate']):.0%} ({float(r['ci_low']):.0%}-{float(r['ci_high']):.0%})"  # noqa: E731
print("| Can, 50 held-out episodes per point | " + " | ".join(f"seed {i}: 5 000 / 10 000, final"
                                                             for i in range(len(runs))) + " |")
print("| --- |" + " --- |" * len(runs))
for variant, label in LABELS.items():
    cells = [" / ".join(cell(r) for r in seed.get(variant, [])) or "-" for seed in curves]
    print(f"| {label} | " + " | ".join(cells) + " |")

fig, axes = plt.subplots(1, len(runs), figsize=(5.5 * len(runs), 4), squeeze=False)
for i, (ax, seed) in enumerate(zip(axes[0], curves)):
    bc = seed["bc"][0]
    for variant, rows in seed.items():
        if variant == "bc":
            continue
        rows = [bc] + rows
        y = [float(r["success_rate"]) for r in rows]
        ax.errorbar([int(r["env_steps"]) for r in rows], y, capsize=3, marker="o", label=LABELS[variant], alpha=0.85,
                    yerr=[[v - float(r["ci_low"]) for v, r in zip(y, rows)],
                          [float(r["ci_high"]) - v for v, r in zip(y, rows)]])
    ax.axhline(float(bc["success_rate"]), color="grey", linestyle="--", label=LABELS["bc"])
    ax.set(xlabel="environment steps", ylabel="held-out success (50 episodes)", ylim=(0, 1.02),
           title=f"Can, seed {i} (utd 0.25, 2-core CPU)")
    ax.grid(alpha=0.3)
axes[0][0].legend(loc="lower left", fontsize=8)
fig.tight_layout()
fig.savefig(png, dpi=120)
