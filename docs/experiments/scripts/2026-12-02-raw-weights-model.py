"""A copy of a model directory that acts with the raw noise network instead of its EMA.

Pre-training keeps an EMA of the noise network and acts with it; fine-tuning trains the raw
network (ALGORITHM.md) and acts with a new EMA of it, so within ~1/(1 - ema_decay) updates
the acting weights become the raw network's. This writes the model as fine-tuning's first
few hundred updates would leave it without any learning, to measure what that swap alone does:

    python docs/experiments/scripts/2026-12-02-raw-weights-model.py models/can runs/can_raw_weights
    otpr-evaluate --model runs/can_raw_weights --episodes 50 --seed 100000
"""
import sys

from otpr_ros.model.directory import load_model, save_model

source, target = sys.argv[1:3]
model = load_model(source, "cpu")
policy = model.agent.policy
policy.ema_net.load_state_dict(policy.net.state_dict())
save_model(target, model.agent, model.info, model.obs_normalizer, model.action_normalizer,
           f"# {source} acting with its raw noise network (ema_net := net), made by "
           f"docs/experiments/scripts/2026-12-02-raw-weights-model.py\n")
print(f"wrote {target}")
