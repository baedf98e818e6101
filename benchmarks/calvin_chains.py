"""CALVIN's long-horizon metric for the scripted experts: chains of five instructions, each
chain drawn from its seed among the scripted tasks (each task finding what it needs), the
scene from the same seed; 360 steps per instruction. Prints the share of chains with at least
i instructions done in a row (i = 1..5) and the average number done, as CALVIN reports them.

Usage: python benchmarks/calvin_chains.py [--chains 50] [--noise 0.1] [--first-seed 0]
"""

import argparse

import numpy as np

from otpr_ros.sim.calvin_env import HORIZON, MAX_CHAIN, CalvinEnv, draw_chain
from otpr_ros.sim.calvin_experts import SCRIPTED, CalvinExpert


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chains", type=int, default=50)
    parser.add_argument("--noise", type=float, default=0.1)
    parser.add_argument("--first-seed", type=int, default=0)
    args = parser.parse_args()
    done, lengths = [], []
    for seed in range(args.first_seed, args.first_seed + args.chains):
        chain = draw_chain(SCRIPTED, MAX_CHAIN, np.random.default_rng(seed))
        env = CalvinEnv(chain, horizon=HORIZON * len(chain))
        env.reset(seed=seed)
        expert = CalvinExpert(env, args.noise, rng=np.random.default_rng(seed))
        while True:
            _, _, terminated, truncated, info = env.step(expert.act())
            if terminated or truncated:
                break
        done.append(info["tasks_completed"])
        lengths.append(env.elapsed)
        env.close()
        print(seed, " -> ".join(chain), f"{info['tasks_completed']}/5 in {env.elapsed} steps", flush=True)
    done = np.array(done)
    print("| instructions in a row | " + " | ".join(str(i) for i in range(1, 6)) + " | average |")
    print("| --- " * 7 + "|")
    print("| chains | " + " | ".join(f"{np.mean(done >= i):.0%}" for i in range(1, 6)) +
          f" | {done.mean():.2f} of 5 |")
    print(f"{len(done)} chains, mean length {np.mean(lengths):.0f} steps")


if __name__ == "__main__":
    main()
