"""The synchronizing CUDA calls of one learner update under CUDA graphs (Lift's shipped model and
learner settings), by file and line, for the code tree given (default: this checkout). Needs a
GPU; run from the repository root (the demonstrations are read from data/):

    python docs/experiments/scripts/2026-12-04-update-syncs.py [TREE]

docs/performance.md ("Host syncs are not what is left") counted 23 with it, and timed a copy
of the code without 15 of them against this code with benchmarks/learner_updates.py.
"""
import sys
import warnings

TREE = sys.argv[1] if len(sys.argv) > 1 else "."
sys.path[:0] = [TREE, TREE + "/benchmarks"]
import torch  # noqa: E402
from learner_updates import Bench, learner_overrides  # noqa: E402

bench = Bench("lift", "cuda", learner_overrides("lift"), 3)
bench.compile("reduce-overhead")
for _ in range(3):                  # compiled and recorded: the steady state
    bench.agent.update(bench.buffer)
torch.cuda.synchronize()
torch.cuda.set_sync_debug_mode("warn")
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    bench.agent.update(bench.buffer)
torch.cuda.set_sync_debug_mode(0)
print(f"{TREE}: {len(caught)} synchronizing calls in one update")
for warning in caught:
    print(f"  {warning.filename.split('/')[-1]}:{warning.lineno}")
