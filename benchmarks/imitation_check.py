"""Are a dataset's action chunks a function of its observations? A plain MLP regression as the
yardstick for a policy's imitation (docs/kitchen.md: the Kitchen diffusion policy at 1e-4 did
not fit chunks this regression fits).

A 512 x 3 Mish MLP, MSE, Adam 1e-3, --steps batches of 256 on the train split's normalised
(min-max) observations; mean |prediction - demonstration| per action value on the train and
valid splits, beside repeating the last action for the whole chunk.

Usage: python benchmarks/imitation_check.py data/kitchen_complete.hdf5 --task kitchen_complete --chunk 8
"""

import argparse

import numpy as np
import torch

from otpr_ros.core.normalizer import MinMaxNormalizer
from otpr_ros.data.robomimic_hdf5 import RobomimicDataset
from otpr_ros.sim.tasks import sim_task


def pairs(path, task, split: str, chunk: int):
    data = RobomimicDataset(path, task.obs_keys, act_dim=task.act_dim, split=split)
    obs, chunks, repeated = [], [], []
    for demo in data.demos:
        for t in range(len(demo.obs) - chunk):
            obs.append(demo.obs[t])
            chunks.append(demo.actions[t:t + chunk].ravel())
            repeated.append(np.tile(demo.actions[max(t - 1, 0)], chunk))
    return np.array(obs), np.array(chunks), np.array(repeated)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset")
    parser.add_argument("--task", required=True)
    parser.add_argument("--chunk", type=int, default=8)
    parser.add_argument("--steps", type=int, default=4000)
    args = parser.parse_args()
    torch.manual_seed(0)
    task = sim_task(args.task)
    train, valid = (pairs(args.dataset, task, split, args.chunk) for split in ("train", "valid"))
    normalizer = MinMaxNormalizer.fit(train[0])
    x = {name: torch.tensor(normalizer.normalize(split[0]), dtype=torch.float32)
         for name, split in (("train", train), ("valid", valid))}
    y = {name: torch.tensor(split[1], dtype=torch.float32) for name, split in (("train", train), ("valid", valid))}
    width = 512
    net = torch.nn.Sequential(torch.nn.Linear(task.obs_dim, width), torch.nn.Mish(), torch.nn.Linear(width, width),
                              torch.nn.Mish(), torch.nn.Linear(width, width), torch.nn.Mish(),
                              torch.nn.Linear(width, task.act_dim * args.chunk))
    optimizer = torch.optim.Adam(net.parameters(), 1e-3)
    for _ in range(args.steps):
        batch = torch.randint(0, len(x["train"]), (256,))
        loss = (net(x["train"][batch]) - y["train"][batch]).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        for name, split in (("train", train), ("valid", valid)):
            error = (net(x[name]) - y[name]).abs().mean().item()
            print(f"{name}: MLP {error:.3f}, repeating the last action {np.abs(split[2] - split[1]).mean():.3f} "
                  f"(mean |chunk - demonstration| per action value, chunks of {args.chunk}, {len(split[0])} states)")


if __name__ == "__main__":
    main()
