"""A critic trained on the policy's own episodes of earlier fine-tuning runs, with their
failures bootstrapped at the horizon (``critic.truncation=bootstrap``) or ending there
(``failure``): Square, 2026-12-02 (docs/experiments/2026-12-02-square-failures-and-returns.md).

    python docs/experiments/scripts/2026-12-02-square-truncation-critic.py --truncation failure \
        --replay runs/square_remade10k/seed0/replay runs/square_utd1/seed0/replay \
        --output runs/square_truncation/failure

From the model's critic (default the shipped Square model), --critic-steps IQL steps on the
demonstrations plus every policy transition of the replay logs, half of each batch from them
(as fine-tuning's critic.batch_mix=fixed); the diagnostic on held-out demonstrations every
3 000 steps; saved as a model directory with the model's policy (acting by arg-max Q then
probes how the critic ranks candidates: otpr-evaluate --selection argmax --set agent.acting_weights=q).
"""
import argparse
import glob
import time

import numpy as np
import torch

from otpr_ros.model.directory import load_model
from otpr_ros.training.online_learning import OnlineLearner, apply_overrides, expert_demonstrations

parser = argparse.ArgumentParser()
parser.add_argument("--model", default="models/square")
parser.add_argument("--replay", nargs="+", required=True)
parser.add_argument("--truncation", choices=("bootstrap", "failure"), required=True)
parser.add_argument("--output", required=True)
parser.add_argument("--critic-steps", type=int, default=12_000)
parser.add_argument("--train-seed", type=int, default=0)
args = parser.parse_args()

torch.manual_seed(args.train_seed)
model = load_model(args.model, "cpu")
model.agent.generator.manual_seed(args.train_seed)
apply_overrides(model, [f"critic.truncation={args.truncation}"])
learner = OnlineLearner(model, expert_demonstrations(model), expert_demonstrations(model, split="valid"))
print("model's critic:", learner.critic_diagnostic(), flush=True)
episodes = successes = 0
for replay in args.replay:
    for path in sorted(glob.glob(f"{replay}/*.npz")):
        batch = dict(np.load(path))
        batch = {k: v[~batch["expert"].astype(bool)] for k, v in batch.items()}
        learner._store(batch)       # straight into the replay: runs share (source, stream, sequence) numbers
        episodes += int(((batch["terminal"] != 0) | (batch["truncated"] != 0)).sum())
        successes += int((batch["terminal"] != 0).sum())
print(f"{learner.online_size} policy chunks, {episodes} episodes, {successes} successes", flush=True)

saved = model.config
apply_overrides(model, ["critic.batch_mix=fixed", "critic.online_fraction=0.5", "agent.compile_updates=true"])
start = time.perf_counter()
for step in range(1, args.critic_steps + 1):
    model.agent.critic_step(learner.buffer)
    if step % 3000 == 0:
        print(f"critic step {step}: {learner.critic_diagnostic()} ({time.perf_counter() - start:.0f} s)", flush=True)
model.config = model.agent.config = saved
card = (f"# {model.info.task}: a critic trained on earlier runs' episodes, truncation {args.truncation}\n"
        f"The model's policy ({args.model}); its critic trained {args.critic_steps} more IQL steps on the "
        f"demonstrations plus {episodes} policy episodes ({successes} successes) from {' '.join(args.replay)}, "
        "half of each batch from them. docs/experiments/scripts/2026-12-02-square-truncation-critic.py\n")
print("saved:", learner.snapshot(args.output, card), learner.critic_diagnostic(), flush=True)
