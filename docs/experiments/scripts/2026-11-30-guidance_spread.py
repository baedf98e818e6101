"""Does the actor's guidance (H, unmasked, beta 0) or Q discriminate among candidates on held-out
expert states? Run from the project root with its venv, with model directories as arguments:
    .venv/bin/python docs/experiments/scripts/2026-11-30-guidance_spread.py /tmp/old/models/can models/can
(the model before 2026-11-30: git archive f7c0d61 models/can | tar -x -C /tmp/old).

Every 8th state of the model's held-out demonstrations (valid split); 8 policy candidates
(DDPM, seed 0) plus the demonstration's own chunk; the actor's guidance weights over those
9, their effective sample size (9 = uniform), and the expert chunk's rank among them by Q."""

import sys

import torch

from otpr_ros.core.resampling import effective_sample_size
from otpr_ros.model.directory import load_model
from otpr_ros.training.online_learning import OnlineLearner, apply_overrides, expert_demonstrations

torch.set_num_threads(1)
for path in sys.argv[1:]:
    model = load_model(path, "cpu")
    apply_overrides(model, ["transport.masked=false", "transport.beta=0"])
    learner = OnlineLearner(model, expert_demonstrations(model), expert_demonstrations(model, split="valid"))
    obs = torch.cat([o for o, _, _ in learner.held_out])
    chunks = torch.cat([c for _, c, _ in learner.held_out])
    pick = torch.arange(0, len(obs), 8)
    states, expert = obs[pick], chunks[pick]
    with torch.no_grad():
        candidates = model.agent.policy.sample(states, 8, "ddpm", generator=torch.Generator().manual_seed(0))
        every = torch.cat([candidates, expert[:, None]], 1)
        weights = model.agent.guidance_weights(states, every, torch.full((len(states),), -1))
        q = model.agent.critic.target_q(states[:, None, :], every)
    rank = float((q[:, :8] > q[:, 8:9]).float().sum(1).mean())
    ratio = float((weights.max(1).values / weights.min(1).values.clamp_min(1e-12)).mean())
    print(f"{path}: {len(states)} held-out expert states; guidance over 8 candidates + the expert chunk: "
          f"ESS {float(effective_sample_size(weights).mean()):.2f} of 9, largest/smallest {ratio:.2f}; "
          f"expert chunk's rank by Q {rank:.2f} (0 best, 4 chance); Q std over candidates "
          f"{float(q[:, :8].std(1).mean()):.4f}; Q scale {model.agent.q_scale.scale:.3f}")
