"""How much a pre-trained policy depends on the step its constant-rate training stops at.

Re-runs the policy phase of `otpr-pretrain` (the same configuration, data and seed as the model
directory --base was made with, its critic and potentials kept) and writes one model directory
per --at step, with the policy (network and EMA) as it stood after that many steps. With the
base's own seed, the last snapshot equals the base's policy exactly (checked, printed).

    python docs/experiments/scripts/2026-12-03-pretraining-snapshots.py --base models/square \
        --dataset data/square_mixed.hdf5 data/square_mixed_b.hdf5 data/square_mixed_c.hdf5 \
        --seed 0 --at 20000 22500 25000 27500 30000 --output-dir runs/s54/snapshots_s0
    otpr-evaluate --model runs/s54/snapshots_s0/step_020000 --episodes 100 --seed 800000
"""

import argparse
import dataclasses
from pathlib import Path

import torch
from tqdm import tqdm

from otpr_ros.core.diffusion import DiffusionPolicy
from otpr_ros.data.robomimic_hdf5 import RobomimicDataset
from otpr_ros.model.directory import load_model, save_model
from otpr_ros.sim.tasks import sim_task
from otpr_ros.training.pretraining import pretrain


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="model directory: its config, normaliser, critic")
    parser.add_argument("--dataset", nargs="+", required=True, help="the base's demonstrations (its card)")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--at", type=int, nargs="+", required=True, help="policy steps to keep")
    parser.add_argument("--output-dir", required=True)
    args = parser.parse_args()

    base = load_model(args.base, device="cpu")
    config = dataclasses.replace(base.config, seed=args.seed, device="cpu",
                                 transport=dataclasses.replace(base.config.transport, warmup_steps=0))
    task = sim_task(base.info.task)
    dataset = RobomimicDataset(args.dataset, task.obs_keys, act_dim=config.act_dim, split="train")

    snapshots, count, update_ema = {}, [0], DiffusionPolicy.update_ema

    def counting_update_ema(policy, decay):
        update_ema(policy, decay)
        count[0] += 1
        if count[0] in args.at:
            snapshots[count[0]] = {k: v.detach().clone() for k, v in policy.state_dict().items()}

    DiffusionPolicy.update_ema = counting_update_ema
    with tqdm(total=max(args.at), desc="policy steps", unit="step") as bar:
        result = pretrain(dataset, config, max(args.at), 0, progress=bar.update, quaternions=task.quaternions)
    DiffusionPolicy.update_ema = update_ema

    same_normaliser = result.obs_normalizer.to_dict() == base.obs_normalizer.to_dict()
    print(f"normaliser as the base's: {same_normaliser}" + ("" if same_normaliser else
          " (the files differ from the base's: the snapshots keep this run's normaliser)"))
    base_policy = {k: v.clone() for k, v in base.agent.policy.state_dict().items()}   # loading below overwrites
    for step, state in sorted(snapshots.items()):
        equal = all(torch.equal(state[k], base_policy[k]) for k in base_policy)
        base.agent.policy.load_state_dict(state)
        out = Path(args.output_dir) / f"step_{step:06d}"
        card = (f"# snapshot of {args.base}'s policy after {step} constant-rate steps (seed {args.seed}); "
                f"critic and potentials: {args.base}'s\n")
        # the normalisers this run trained with: the base's only when its data were the same
        save_model(out, base.agent, base.info, result.obs_normalizer, result.action_normalizer, card)
        print(f"{out}: policy equal to the base's: {equal}")


if __name__ == "__main__":
    main()
