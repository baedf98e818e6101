"""A critic that has seen the policy's own failures, as a model to fine-tune from (Can,
2026-11-30; Square with --model models/square, 2026-12-02: docs/experiments/2026-12-02-square-critic-ranking.md).

Run from the project root with its venv:
    python docs/experiments/scripts/2026-11-30-can-rollout-critic.py --output runs/can_rollout_critic/model

1. The model (default the shipped Can model) acts (L = 1, as its card's offline evaluation) for --episodes
   episodes on seeds from 600000 (apart from the demonstrations' 10000.., the held-out
   100000.., fine-tuning's 200000..); every transition goes through the same path as
   fine-tuning's (BridgeSession -> OnlineLearner.add), successes and failures alike.
2. --critic-steps IQL steps from the shipped critic on the demonstrations plus those
   rollouts, half of each batch from the rollouts (critic.batch_mix=fixed, 0.5).
3. The potentials re-fitted to that critic as pre-training does (transport.warmup_steps dual
   steps, the model's own transport settings).
4. The diagnostic (Q against the return on held-out demonstrations), and the result saved as
   a model directory with the shipped policy and the model's own configuration.

The finding this repeats: ../shared/docs/findings/critic_with_failures_can.py (arg-max Q over
8 candidates 27/30 with such a critic, 12/30 with the demonstrations-only one).
"""
import argparse
import copy
import time

import torch

from otpr_ros.model.directory import load_model
from otpr_ros.model.policy import ChunkPolicy
from otpr_ros.sim.bridge_session import BridgeSession, make_environment
from otpr_ros.training.online_learning import OnlineLearner, apply_overrides, expert_demonstrations

parser = argparse.ArgumentParser()
parser.add_argument("--model", default="models/can")
parser.add_argument("--output", required=True)
parser.add_argument("--episodes", type=int, default=40)
parser.add_argument("--seed", type=int, default=600_000)
parser.add_argument("--critic-steps", type=int, default=12_000)
parser.add_argument("--train-seed", type=int, default=0, help="torch seed and the learner's batch draws")
parser.add_argument("--policy-seed", type=int, default=0, help="the acting policy's denoising noise")
args = parser.parse_args()

torch.manual_seed(args.train_seed)
model = load_model(args.model, "cpu")
model.agent.generator.manual_seed(args.train_seed)
config = copy.deepcopy(model.config)
learner = OnlineLearner(model, expert_demonstrations(model), expert_demonstrations(model, split="valid"))
print("shipped critic:", learner.critic_diagnostic(), flush=True)

env, observe = make_environment(model.info.task, None)
session = BridgeSession(env, observe, config.critic.gamma, args.seed)
policy = ChunkPolicy(model, "torch", 1, "sample", seed=args.policy_seed)
start, successes = time.perf_counter(), []
session.reset()
while len(successes) < args.episodes:
    learner.add(session.run_chunk(policy.decide).fields())
    if session.done:
        summary, _ = session.end_episode()
        successes.append(summary.success)
        session.reset()
print(f"rollouts: {len(successes)} episodes, {sum(successes)} successes, {learner.online_size} chunks, "
      f"{time.perf_counter() - start:.0f} s", flush=True)

# compiled updates: the same losses as eager ones (test/system/test_compiled_updates.py), faster
apply_overrides(model, ["critic.batch_mix=fixed", "critic.online_fraction=0.5", "agent.compile_updates=true"])
start = time.perf_counter()
for step in range(1, args.critic_steps + 1):
    model.agent.critic_step(learner.buffer)
    if step % 3000 == 0:
        print(f"critic step {step}: {learner.critic_diagnostic()} ({time.perf_counter() - start:.0f} s)", flush=True)
model.config = model.agent.config = config
start = time.perf_counter()
config.agent.compile_updates = True
for _ in range(config.transport.warmup_steps):
    model.agent.dual_step(learner.buffer)
config.agent.compile_updates = False        # the saved model: the shipped configuration
print(f"potentials: {config.transport.warmup_steps} dual steps ({time.perf_counter() - start:.0f} s)", flush=True)
card = (f"# {model.info.task} with a critic that has seen the policy's own rollouts\n"
        f"The model's policy ({args.model}); its critic trained "
        f"{args.critic_steps} more IQL steps on the demonstrations plus {args.episodes} rollouts of the policy "
        f"(L = 1, seeds from {args.seed}: {sum(successes)} successes), half of each batch from the rollouts; "
        f"potentials re-fitted ({config.transport.warmup_steps} dual steps). "
        "docs/experiments/scripts/2026-11-30-can-rollout-critic.py\n")
print("saved:", learner.snapshot(args.output, card), learner.critic_diagnostic(), flush=True)
