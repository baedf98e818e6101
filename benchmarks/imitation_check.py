"""Are a dataset's action chunks a function of its observations? A plain MLP regression as the
yardstick for a policy's imitation (docs/kitchen.md: the Kitchen diffusion policy at 1e-4 did
not fit chunks this regression fits).

A 512 x 3 Mish MLP, MSE, Adam 1e-3, --steps batches of 256 on the train split's normalised
(min-max) observations; mean |prediction - demonstration| per action value on the train and
valid splits, beside repeating the last action for the whole chunk. With --model, the same error
for a model's own chunks (one sample, L = 1, as `otpr-evaluate` acts; its chunk size): a policy that
imitates comes near the MLP's error, one that does not stays near repeating the last action.

Usage: python benchmarks/imitation_check.py data/kitchen_complete.hdf5 --task kitchen_complete --chunk 8
       python benchmarks/imitation_check.py data/can_mixed.hdf5 --task can --model models/can
"""

import argparse

import numpy as np
import torch

from otpr_ros.core.normalizer import MinMaxNormalizer
from otpr_ros.data.robomimic_hdf5 import RobomimicDataset
from otpr_ros.model.policy import ChunkPolicy
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
    parser.add_argument("--model", help="also the error of this model's own chunks (sets --chunk to its chunk)")
    args = parser.parse_args()
    torch.manual_seed(0)
    task = sim_task(args.task)
    policy = ChunkPolicy(args.model, candidates=1) if args.model else None
    if policy:
        args.chunk = policy.model.info.chunk
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
    if policy:
        for name, split in (("train", train), ("valid", valid)):
            chunks = np.concatenate([policy.decide_batch(split[0][i:i + 1024])[0].reshape(-1, task.act_dim * args.chunk)
                                     for i in range(0, len(split[0]), 1024)])
            print(f"{name}: model {np.abs(chunks - split[1]).mean():.3f} ({args.model}, one sample per state)")


if __name__ == "__main__":
    main()
