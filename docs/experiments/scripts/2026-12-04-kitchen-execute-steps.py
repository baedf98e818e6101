"""Evaluate a model executing only the first k actions of each chunk (a receding horizon), and when
each target was done: the measurement behind agent.execute_steps on Kitchen (docs/kitchen.md).
Before agent.execute_steps existed; otpr-evaluate --set agent.execute_steps=k now does the same."""
import argparse
import json

import numpy as np
from otpr_ros.sim import evaluation as ev

K = {"k": 8}

def _init(settings, k):
    ev._init_worker(settings)
    K["k"] = k

def episode(seed):
    from otpr_ros.sim.bridge_session import BridgeSession
    policy = ev._worker["policy"]
    policy.rng = np.random.default_rng(seed)
    session = BridgeSession(ev._worker["env"], None, gamma=1.0, first_seed=seed)
    session.reset()
    env = ev._worker["env"]
    while not hasattr(env, "completed") and hasattr(env, "env"):
        env = env.env
    times = []
    while not session.done:
        obs = session.observation()
        session.start_chunk(policy.decide(obs)[:K["k"]], obs)
        while session.executing:
            session.step()
            times += [env.elapsed] * (len(env.completed) - len(times))
        session.finish_chunk()
    summary, _ = session.end_episode()
    return {"seed": seed, "success": summary.success, "length": summary.length, "return": summary.return_,
            "completed": list(getattr(env, "completed", [])), "times": times,
            "achieved": list(getattr(env, "achieved", []))}

if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--model"); p.add_argument("--task"); p.add_argument("--k", type=int)
    p.add_argument("--seed", type=int); p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--processes", type=int, default=2); p.add_argument("--output")
    a = p.parse_args()
    from otpr_ros.sim.worker_pool import spawn_pool
    s = ev.EvalSettings(a.task, a.model, num_candidates=1, selection="argmax")
    with spawn_pool(a.processes, _init, (s, a.k)) as pool:
        recs = list(pool.map(episode, range(a.seed, a.seed + a.episodes)))
    summ = ev.summarise(recs)
    out = {"k": a.k, "model": a.model, "mean_return": summ.mean_return, "score": 25 * summ.mean_return,
           "score_ci": [25 * x for x in summ.return_ci95], "episodes_detail": recs}
    json.dump(out, open(a.output, "w"), indent=1)
    from collections import Counter
    print("first:", Counter(tuple(r["completed"][:1]) for r in recs), "each:", Counter(t for r in recs for t in r["completed"]))
    print(a.k, a.model, "score", out["score"], out["score_ci"], "all4", summ.successes)
