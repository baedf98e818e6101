"""Does a pessimistic critic ensemble pick Square's chunks better than one critic?
(2026-12-02: docs/experiments/2026-12-02-square-critic-ensemble.md)

Run from the project root with its venv; every stage writes its result under --output-dir
and a re-run skips what is there (resumable):
    python docs/experiments/scripts/2026-12-02-square-critic-ensemble.py --output-dir runs/square_ensemble

1. rollouts.pt: the model acts (L = 1) for --episodes episodes on seeds from 600000, as
   2026-11-30-can-rollout-critic.py does (the same seeds and policy seed: the same rollouts).
2. member_<k>.pt: --members critics, each freshly initialised (torch seed 1000 + k) and trained
   --critic-steps IQL steps on the demonstrations plus the rollouts, half of each batch from
   the rollouts; each one's diagnostic (Q against the return on held-out demonstrations).
3. eval_<rule>.json: the policy acts by the arg-max over --candidates of its candidates of
   the members' Q combined by <rule> (min, mean, or member0: the first member alone), on
   --eval-episodes exploration seeds from --eval-seed, as `otpr-evaluate` runs an episode.
   `--stage members --member K` trains one member, `--stage eval --rule R` evaluates one rule
   (so that they can run as processes side by side).
"""
import argparse
import copy
import json
import time
from pathlib import Path

import torch

from otpr_ros.model.directory import load_model
from otpr_ros.model.policy import ChunkPolicy
from otpr_ros.sim import evaluation
from otpr_ros.sim.bridge_session import BridgeSession, make_environment
from otpr_ros.training.online_learning import OnlineLearner, apply_overrides, expert_demonstrations

parser = argparse.ArgumentParser()
parser.add_argument("--model", default="models/square")
parser.add_argument("--output-dir", required=True)
parser.add_argument("--episodes", type=int, default=200)
parser.add_argument("--seed", type=int, default=600_000)
parser.add_argument("--members", type=int, default=3)
parser.add_argument("--critic-steps", type=int, default=16_000)
parser.add_argument("--candidates", type=int, default=8)
parser.add_argument("--eval-episodes", type=int, default=50)
parser.add_argument("--eval-seed", type=int, default=800_000)
parser.add_argument("--stage", choices=("all", "rollouts", "members", "eval"), default="all")
parser.add_argument("--member", type=int, action="append", help="members stage: only these members (processes in parallel)")
parser.add_argument("--rule", action="append", choices=("min", "mean", "member0"),
                    help="eval stage: the rules to evaluate (default all three)")
args = parser.parse_args()
out = Path(args.output_dir)
out.mkdir(parents=True, exist_ok=True)


def rollouts() -> list:
    path = out / "rollouts.pt"
    if path.exists():
        return torch.load(path, weights_only=False)   # written by this script
    torch.manual_seed(0)
    model = load_model(args.model, "cpu")
    model.agent.generator.manual_seed(0)
    env, observe = make_environment(model.info.task, None)
    session = BridgeSession(env, observe, model.config.critic.gamma, args.seed)
    policy = ChunkPolicy(model, "torch", 1, "sample", seed=0)
    start, successes, chunks = time.perf_counter(), [], []
    session.reset()
    while len(successes) < args.episodes:
        chunks.append(session.run_chunk(policy.decide).fields())
        if session.done:
            summary, _ = session.end_episode()
            successes.append(summary.success)
            session.reset()
    print(f"rollouts: {len(successes)} episodes, {sum(successes)} successes, {len(chunks)} chunks, "
          f"{time.perf_counter() - start:.0f} s", flush=True)
    torch.save(chunks, path)
    return chunks


def fresh_critic(model, seed: int) -> None:
    """The model's critic re-initialised as a new ChunkCritic would be (torch seed ``seed``),
    its optimiser state cleared."""
    torch.manual_seed(seed)
    critic = model.agent.critic
    for module in critic.modules():
        if isinstance(module, torch.nn.Linear):
            module.reset_parameters()
    critic.q1_target.load_state_dict(critic.q1.state_dict())
    critic.q2_target.load_state_dict(critic.q2.state_dict())
    for optimizer in (model.agent.iql.v_optimizer, model.agent.iql.q_optimizer):
        optimizer.state.clear()


def member(k: int, chunks: list) -> dict:
    path = out / f"member_{k}.pt"
    if path.exists():
        return torch.load(path, weights_only=False)   # written by this script
    model = load_model(args.model, "cpu")
    learner = OnlineLearner(model, expert_demonstrations(model), expert_demonstrations(model, split="valid"))
    for fields in chunks:
        learner.add(fields)
    apply_overrides(model, ["critic.batch_mix=fixed", "critic.online_fraction=0.5", "agent.compile_updates=true"])
    fresh_critic(model, 1000 + k)
    start = time.perf_counter()
    for step in range(1, args.critic_steps + 1):
        model.agent.critic_step(learner.buffer)
        if step % 3000 == 0:
            print(f"member {k}, critic step {step}: {learner.critic_diagnostic()} "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)
    state = {"critic": model.agent.critic.state_dict(), "diagnostic": learner.critic_diagnostic()}
    torch.save(state, path)
    return state


class Ensemble(torch.nn.Module):
    """Target Q of several critics combined by a rule: what acting by Q reads (``target_q``)."""

    def __init__(self, critics, rule: str):
        super().__init__()
        self.critics, self.rule = torch.nn.ModuleList(critics), rule

    def target_q(self, obs, actions):
        q = torch.stack([c.target_q(obs, actions) for c in self.critics])
        return q.min(0).values if self.rule == "min" else q.mean(0)


def evaluate(rule: str, states: list) -> dict:
    path = out / f"eval_{rule}.json"
    if path.exists():
        return json.loads(path.read_text())
    model = load_model(args.model, "cpu")
    apply_overrides(model, ["agent.acting_weights=q", "agent.q_temperature=0.01"])
    critics = []
    for state in states[:1] if rule == "member0" else states:
        critic = copy.deepcopy(model.agent.critic)
        critic.load_state_dict(state["critic"])
        critics.append(critic)
    model.agent.critic = Ensemble(critics, "mean" if rule == "member0" else rule)
    torch.set_num_threads(1)
    evaluation._worker["env"] = make_environment(model.info.task, None)[0]
    evaluation._worker["policy"] = ChunkPolicy(model, "torch", args.candidates, "argmax")
    start, records = time.perf_counter(), []
    for seed in range(args.eval_seed, args.eval_seed + args.eval_episodes):
        records.append(evaluation.run_policy_episode(seed))
    successes = sum(r["success"] for r in records)
    low, high = evaluation.wilson_interval(successes, len(records))
    result = {"rule": rule, "members": len(critics), "successes": successes, "episodes": len(records),
              "ci95": [round(low, 3), round(high, 3)], "seconds": round(time.perf_counter() - start),
              "records": records}
    print(f"arg-max over {args.candidates} of Q ({rule} of {len(critics)}): {successes}/{len(records)} "
          f"(95 % CI {low:.0%}-{high:.0%}), {result['seconds']} s", flush=True)
    path.write_text(json.dumps(result, indent=1))
    return result


chunks = rollouts() if args.stage in ("all", "rollouts", "members") else None
if args.stage in ("all", "members"):
    for k in args.member or range(args.members):
        print(f"member {k}: {member(k, chunks)['diagnostic']}", flush=True)
if args.stage in ("all", "eval"):
    states = [torch.load(out / f"member_{k}.pt", weights_only=False) for k in range(args.members)]
    for rule in args.rule or ("min", "mean", "member0"):
        evaluate(rule, states)
