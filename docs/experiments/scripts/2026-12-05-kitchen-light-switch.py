"""Kitchen complete: where do the model's episodes stop, and how does it meet the light switch?

Run from the project root with its venv:
    python docs/experiments/scripts/2026-12-05-kitchen-light-switch.py --model models/kitchen_complete \
        --seed 800000 --episodes 16 --output runs/klight/shipped.json

The model acts as its config says (L = 1, its `agent.execute_steps`), each episode a function of
its seed as in `otpr-evaluate`. Per episode: the step each target was done at; and, between the
kettle and the light switch, where the hand (the `end_effector` site) is relative to the switch
(`light_site`, world frame, m) at the first step the switch has moved (its distance to the goal
below 0.67 of 0.69 at rest): the push's start. The scripted expert pushes from 0.08 m to the
right of the switch, 0.05 m in front, at its height (kitchen_experts.SCRIPTS).
"""
import argparse
import json
from pathlib import Path

import mujoco
import numpy as np
import torch
from gymnasium_robotics.envs.franka_kitchen.kitchen_env import OBS_ELEMENT_GOALS, OBS_ELEMENT_INDICES

from otpr_ros.model.policy import ChunkPolicy
from otpr_ros.sim.tasks import make_env

MOVED = 0.67        # the switch's distance to its goal: 0.69 at rest, done below 0.3


def episode(policy, env, seed: int) -> dict:
    policy.rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    model, data = env.model, env.data
    hand = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, "end_effector")
    switch = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, "light_site")
    done_at, push_start, steps, ended = {}, None, 0, False
    while not ended:
        for action in policy.decide(obs)[:policy.execute_steps or None]:
            obs, _, success, truncated, info = env.step(action)
            steps += 1
            for target in info["completed"]:
                done_at.setdefault(target, steps)
            distance = np.linalg.norm(data.qpos[OBS_ELEMENT_INDICES["light switch"]] -
                                      OBS_ELEMENT_GOALS["light switch"])
            if push_start is None and "kettle" in done_at and distance < MOVED:
                push_start = (data.site_xpos[hand] - data.site_xpos[switch]).round(4).tolist()
            if success or truncated:
                ended = True
                break
    return {"seed": seed, "length": steps, "done_at": done_at, "push_start": push_start,
            "light_switch": "light switch" in done_at}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--task", default="kitchen_complete")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--episodes", type=int, default=16)
    parser.add_argument("--output", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    policy = ChunkPolicy(args.model, "torch", "eval", "argmax")
    env = make_env(args.task, None, 1, policy.model.info.obs_keys)
    records = []
    for seed in range(args.seed, args.seed + args.episodes):
        records.append(episode(policy, env, seed))
        print(json.dumps(records[-1]), flush=True)
    heights = {ok: [r["push_start"][2] for r in records if r["push_start"] and r["light_switch"] == ok]
               for ok in (True, False)}
    summary = {"model": args.model, "episodes": len(records),
               "after_kettle": sum("kettle" in r["done_at"] for r in records),
               "light_switch_done": sum(r["light_switch"] for r in records),
               "push_height_done": heights[True], "push_height_missed": heights[False],
               "no_push": sum("kettle" in r["done_at"] and r["push_start"] is None for r in records)}
    print(json.dumps(summary))
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps({"summary": summary, "episodes": records}, indent=1))


if __name__ == "__main__":
    main()
