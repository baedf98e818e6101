"""Where a Square policy fails: the furthest stage each held-out episode reaches.

Square is picked up by the nut's handle, carried over the peg, turned to a quarter turn
and lowered on. A success rate alone does not say which of these a policy misses; this
runs the model as ``otpr-evaluate`` does (torch backend, L from the model's eval_mode, seeds
from --seed) and records per episode:

- never lifted: the nut never rose 6 cm above the table (the grasp failed or never came);
- lifted: carried, but its centre never came within 3 cm of the peg (horizontally);
- near peg: within 3 cm, never within 1 cm;
- over peg: within 1 cm of the peg's axis, but not seated (turn or lowering missed);
- success.

Each episode also records how close the Panda's last joint came to its limit (+-2.897 rad):
the scripted expert turns a held nut a half turn in the direction joint 7 has room for, and
keeps 0.35 rad from the limit; the observation holds no joint position.

Usage: python docs/experiments/scripts/square_stages.py --model models/square [--episodes 50] [--seed 100000]
                                          [--processes 2] [--json out.json]
"""

import argparse
import json
from multiprocessing import get_context

import numpy as np

from otpr_ros.sim.experts import JOINT7_LIMIT

STAGES = ("never lifted", "lifted", "near peg (< 3 cm)", "over peg (< 1 cm)", "success")
_worker = {}


def _init(model_dir: str):
    import torch

    from otpr_ros.model.policy import ChunkPolicy
    from otpr_ros.sim.evaluation import evaluation_candidates
    from otpr_ros.sim.robomimic_env import RobomimicEnv
    torch.set_num_threads(1)
    _worker["env"] = RobomimicEnv("square")
    _worker["policy"] = ChunkPolicy(model_dir, "torch", evaluation_candidates(model_dir), "argmax")


def furthest_stage(seed: int) -> dict:
    from otpr_ros.sim.bridge_session import BridgeSession

    env, policy = _worker["env"], _worker["policy"]
    policy.rng = np.random.default_rng(seed)      # as evaluate: the episode is a function of its seed
    session = BridgeSession(env, None, gamma=1.0, first_seed=seed)
    session.reset()
    table = env.sim_env.table_offset[2]
    peg = np.array(env.sim_env.sim.data.body_xpos[env.sim_env.peg1_body_id][:2])
    lifted, closest, margin = False, np.inf, np.inf
    while not session.done:
        session.run_chunk(policy.decide)
        margin = min(margin, JOINT7_LIMIT - abs(float(env.sim_env.robots[0]._joint_positions[6])))
        nut = np.asarray(env.raw_obs["SquareNut_pos"])
        lifted = lifted or nut[2] > table + 0.06
        if lifted:
            closest = min(closest, float(np.linalg.norm(nut[:2] - peg)))
    if session.success:
        stage = "success"
    elif closest < 0.01:
        stage = "over peg (< 1 cm)"
    elif closest < 0.03:
        stage = "near peg (< 3 cm)"
    else:
        stage = "lifted" if lifted else "never lifted"
    return {"seed": seed, "stage": stage, "closest_to_peg_m": None if np.isinf(closest) else round(closest, 4),
            "joint7_margin_rad": round(margin, 3)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--seed", type=int, default=100_000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--json")
    args = parser.parse_args()
    seeds = range(args.seed, args.seed + args.episodes)
    with get_context("spawn").Pool(args.processes, _init, (args.model,)) as pool:
        episodes = pool.map(furthest_stage, seeds, chunksize=1)
    counts = {stage: sum(e["stage"] == stage for e in episodes) for stage in STAGES}
    print(f"{args.model}, {args.episodes} episodes from seed {args.seed}\n\n"
          "| furthest stage | episodes | joint 7 within 0.1 rad of its limit |\n| --- | --- | --- |")
    for stage in STAGES:
        near_limit = sum(e["stage"] == stage and e["joint7_margin_rad"] < 0.1 for e in episodes)
        print(f"| {stage} | {counts[stage]} | {near_limit} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"model": args.model, "seeds": [seeds.start, seeds.stop - 1], "counts": counts,
                       "episodes": episodes}, f, indent=1)


if __name__ == "__main__":
    main()
