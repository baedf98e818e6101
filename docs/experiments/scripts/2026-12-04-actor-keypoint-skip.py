"""Interleaved in one process: the actor step (and the whole update) that skips the keypoint
states' candidates under masked OT, against the step that samples and scores every candidate
(the code before; test/unit/test_actor_step.py keeps it as the reference), Lift's shipped model
and learner settings, eager and compiled, ROUNDS rounds of 3 calls each.

    .venv/bin/python docs/experiments/scripts/2026-12-04-actor-keypoint-skip.py 16
"""
import statistics
import sys
import types

sys.path[:0] = ["benchmarks", "test", "test/unit"]
from learner_updates import Bench, learner_overrides          # noqa: E402
from test_actor_step import every_candidate_actor_step       # noqa: E402


bench = Bench("lift", "cpu", learner_overrides("lift"), repeats=3)
agent = bench.agent
new_actor = agent.actor_step
old_actor = types.MethodType(every_candidate_actor_step, agent)
rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 8
for compiled in (False, "default"):
    bench.compile(compiled)
    for f in (new_actor, old_actor):       # warm-up / compilation
        agent.actor_step = f
        agent.update(bench.buffer)
        f(bench.buffer)
    times = {k: [] for k in ("actor new", "actor old", "update new", "update old")}
    for _ in range(rounds):
        for name, f in (("new", new_actor), ("old", old_actor)):
            agent.actor_step = f
            times[f"actor {name}"].append(bench.seconds(lambda: f(bench.buffer)))
            times[f"update {name}"].append(bench.seconds(lambda: agent.update(bench.buffer)))
    med = {k: 1000 * statistics.median(v) for k, v in times.items()}
    ratios = [o / n for o, n in zip(times["actor old"], times["actor new"])]
    uratios = [o / n for o, n in zip(times["update old"], times["update new"])]
    print(f"compiled={compiled}: " + ", ".join(f"{k} {v:.1f} ms" for k, v in med.items())
          + f"; old/new per round: actor {statistics.median(ratios):.3f} ({min(ratios):.2f}-{max(ratios):.2f}),"
          f" update {statistics.median(uratios):.3f} ({min(uratios):.2f}-{max(uratios):.2f})", flush=True)
