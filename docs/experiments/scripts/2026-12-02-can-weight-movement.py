"""How far fine-tuning moves Can's noise network between evaluation points (2026-12-02).

For each run directory (``otpr-finetune --keep-evaluated``): |w_b - w_a| / |w_0| of the acting
(EMA) network between the kept points 0, 10k, 20k and the final weights, w_0 the shipped EMA;
and how far the raw network, which fine-tuning trains, is from the EMA at the start.

    python docs/experiments/scripts/2026-12-02-can-weight-movement.py runs/can30k_constant/seed0 ...
"""
import sys
from pathlib import Path

import torch


def flat(point: Path, prefix: str) -> torch.Tensor:
    policy = torch.load(point / "weights.pt", map_location="cpu", weights_only=False)["policy"]
    return torch.cat([v.flatten().float() for k, v in sorted(policy.items()) if k.startswith(prefix)])


for run in map(Path, sys.argv[1:]):
    points = sorted(p for p in (run / "evaluated").iterdir() if p.name.startswith("step_"))[:3] + \
        [run / "evaluated" / "final"]
    ema = [flat(p, "ema_net.") for p in points]
    raw_start, scale = flat(points[0], "net."), ema[0].norm()
    moves = ", ".join(f"{a.name[-6:]} -> {b.name[-6:]}: {float((ema[j] - ema[i]).norm() / scale):.4f}"
                      for i, j, a, b in ((i, i + 1, points[i], points[i + 1]) for i in range(3)))
    print(f"{run}: EMA {moves}; raw vs EMA at the start {float((raw_start - ema[0]).norm() / scale):.4f}; "
          f"raw network moved by the final {float((flat(points[-1], 'net.') - raw_start).norm() / scale):.4f}")
