"""Can Square's policy learn from its own successes, given enough actor steps?
(2026-12-03: docs/experiments/2026-12-03-square-self-imitation.md)

Run from the project root with its venv; every stage writes its result under --output-dir
and a re-run skips what is there (resumable):

1. rollouts_<part>.pt: the model acts (L = 1) for --episodes episodes on seeds from
   --seed + part * --episodes; each episode kept as (success, its chunks' transition fields).
   `--stage rollouts --part K` (parts as processes side by side).
2. <variant>/: the policy fine-tuned offline, --actor-steps actor steps at --lr on batches of
   --actor-batch, half from the demonstrations and half from the rollouts (the learner's
   `actor_batch_mix: fixed`), by --guidance: `bc` on the successful rollouts only (filtered
   BC, self-imitation), `awr` with A = G - V on every rollout (advantage_source return,
   --temperature), or `demos`: bc on the demonstrations alone (the control: as many steps
   without the rollouts; --model may then be any Square model); saved as a model directory
   for `otpr-evaluate`.
"""
import argparse
import time
from pathlib import Path

import torch

from otpr_ros.model.directory import load_model
from otpr_ros.model.policy import ChunkPolicy
from otpr_ros.sim.bridge_session import BridgeSession, make_environment
from otpr_ros.training.online_learning import OnlineLearner, apply_overrides, expert_demonstrations

parser = argparse.ArgumentParser()
parser.add_argument("--model", default="models/square")
parser.add_argument("--output-dir", required=True)
parser.add_argument("--stage", choices=("rollouts", "train"), required=True)
parser.add_argument("--part", type=int, default=0)
parser.add_argument("--parts", type=int, default=2, help="train: rollout parts to read")
parser.add_argument("--episodes", type=int, default=100, help="rollouts per part")
parser.add_argument("--seed", type=int, default=600_000)
parser.add_argument("--variant", default="bc_1e4")
parser.add_argument("--guidance", choices=("bc", "awr", "demos"), default="bc")
parser.add_argument("--temperature", type=float, default=1.0)
parser.add_argument("--lr", type=float, default=1e-4)
parser.add_argument("--actor-steps", type=int, default=3000)
parser.add_argument("--actor-batch", type=int, default=256)
parser.add_argument("--train-seed", type=int, default=0)
args = parser.parse_args()
out = Path(args.output_dir)
out.mkdir(parents=True, exist_ok=True)
torch.set_num_threads(1)


def rollouts(part: int) -> list:
    path = out / f"rollouts_{part}.pt"
    if path.exists():
        return torch.load(path, weights_only=False)   # written by this script
    torch.manual_seed(part)
    model = load_model(args.model, "cpu")
    model.agent.generator.manual_seed(part)
    env, observe = make_environment(model.info.task, None)
    session = BridgeSession(env, observe, model.config.critic.gamma, args.seed + part * args.episodes)
    policy = ChunkPolicy(model, "torch", 1, "sample", seed=part)
    start, episodes, chunks = time.perf_counter(), [], []
    session.reset()
    while len(episodes) < args.episodes:
        fields = session.run_chunk(policy.decide).fields()
        fields["stream"] = float(part)
        chunks.append(fields)
        if session.done:
            summary, _ = session.end_episode()
            episodes.append((bool(summary.success), chunks))
            chunks = []
            session.reset()
    print(f"rollouts part {part}: {len(episodes)} episodes, {sum(s for s, _ in episodes)} successes, "
          f"{time.perf_counter() - start:.0f} s", flush=True)
    torch.save(episodes, path)
    return episodes


def train() -> None:
    target = out / args.variant
    if target.exists():
        print(f"{target} exists", flush=True)
        return
    episodes = [] if args.guidance == "demos" else [e for part in range(args.parts) for e in rollouts(part)]
    torch.manual_seed(args.train_seed)
    model = load_model(args.model, "cpu")
    model.agent.generator.manual_seed(args.train_seed)
    learner = OnlineLearner(model, expert_demonstrations(model), expert_demonstrations(model, split="valid"))
    kept = [chunks for success, chunks in episodes
            if args.guidance == "awr" or (success and args.guidance == "bc")]
    for chunks in kept:
        for fields in chunks:
            learner.add(fields)
    settings = [f"agent.guidance={'awr' if args.guidance == 'awr' else 'bc'}", "agent.actor_batch_mix=fixed",
                "critic.online_fraction=0.5", f"agent.actor_batch={args.actor_batch}", f"diffusion.finetune_lr={args.lr}",
                "agent.advantage_source=return", f"agent.advantage_temperature={args.temperature}",
                "agent.compile_updates=true"]
    apply_overrides(model, settings)
    start = time.perf_counter()
    for step in range(1, args.actor_steps + 1):
        metrics = model.agent.actor_step(learner.buffer)
        if step % 500 == 0:
            print(f"{args.variant} step {step}: loss {metrics['actor/loss']:.4f} "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)
    apply_overrides(model, ["agent.compile_updates=false"])
    successes = sum(s for s, _ in episodes)
    data = ("the demonstrations alone" if args.guidance == "demos" else
            f"half demonstrations, half from {len(kept)} of {len(episodes)} rollouts ({successes} successes)")
    card = (f"# {model.info.task}'s policy trained further offline ({args.variant})\n"
            f"{args.model}'s policy, {args.actor_steps} actor steps at {args.lr} (batch {args.actor_batch}, {data}; "
            f"guidance {args.guidance}, temperature {args.temperature}). "
            "docs/experiments/scripts/2026-12-03-square-self-imitation.py\n")
    print("saved:", learner.snapshot(target, card), flush=True)


if args.stage == "rollouts":
    rollouts(args.part)
else:
    train()
