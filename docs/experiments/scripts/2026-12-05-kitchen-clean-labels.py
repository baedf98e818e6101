"""Kitchen demonstrations that record the expert's intended action while executing a noisy one
(DART-style labels: the states a noisy expert visits, the corrections a clean one would make).

`otpr-collect-demos --task kitchen_<variant>` records the executed (noisy) action. This script
collects the same plans (`task_jobs`, the same seeds) in one process, executing
clip(intended + N(0, noise)) and recording clip(intended), then writes the robomimic file as
`otpr-collect-demos` does. --noise 0.1 is the collection's own noise.

    python docs/experiments/scripts/2026-12-05-kitchen-clean-labels.py --task kitchen_partial \
      --episodes 200 --seed 10000 --noise 0.3 --output data/kitchen_partial_clean03.hdf5
"""

import argparse
import json

import numpy as np

from otpr_ros.data.robomimic_hdf5 import write_dataset
from otpr_ros.sim import demonstrations
from otpr_ros.sim.demonstrations import env_args, make_task_expert, task_jobs


def episode(job, env):
    env.reset(seed=job.seed)
    expert = make_task_expert(env, job)
    rng = expert.rng
    obs, actions, rewards, dones, states = [], [], [], [], []
    for _ in range(env.horizon):
        obs.append(env.stored_observation())
        states.append(env.sim_state())
        intended = np.clip(expert.policy(), -1.0, 1.0)
        executed = np.clip(intended + rng.normal(0.0, job.noise, size=intended.shape), -1.0, 1.0)
        _, reward, terminated, truncated, info = env.step(executed)
        actions.append(intended)
        rewards.append(reward)
        dones.append(float(terminated))
        success = set(job.plan) <= set(env.achieved)
        if terminated or truncated or expert.finished:
            break
    next_obs = obs[1:] + [env.stored_observation()]
    return {"obs": {k: np.stack([o[k] for o in obs]) for k in obs[0]},
            "next_obs": {k: np.stack([o[k] for o in next_obs]) for k in obs[0]},
            "actions": np.asarray(actions), "rewards": np.asarray(rewards), "dones": np.asarray(dones),
            "states": np.asarray(states), "success": success, "regrasps": 0,
            "attrs": {"seed": job.seed, "noise": job.noise, "speed": job.speed, "plan": ",".join(job.plan),
                      "labels": "intended"}}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--task", required=True)
    parser.add_argument("--episodes", type=int, required=True)
    parser.add_argument("--seed", type=int, default=10000)
    parser.add_argument("--noise", type=float, default=0.1)
    parser.add_argument("--output", required=True)
    args = parser.parse_args()
    jobs = task_jobs(args.task, args.episodes, "expert", args.seed, args.noise)
    demonstrations._init_worker(args.task, None)
    env = demonstrations._worker["env"]
    kept = [r for r in (episode(job, env) for job in jobs) if r["success"]]
    write_dataset(args.output, kept, env_args(args.task, {"quality": "expert", "seed": args.seed,
                                                          "episodes_run": len(jobs), "labels": "intended",
                                                          "noise": args.noise}), seed=args.seed)
    print(json.dumps({"output": args.output, "episodes_run": len(jobs), "kept": len(kept),
                      "transitions": int(sum(len(r["actions"]) for r in kept))}))


if __name__ == "__main__":
    main()
