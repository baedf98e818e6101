"""The paper's ablations as fine-tuning overrides (``otpr-finetune --set``), shared by the
benchmarks that compare them (benchmarks/ablation.py, docs/experiments/scripts/guidance_drift.py)."""

from otpr_ros.package_files import node_parameters

# the learner's overrides for a 2-core CPU, from their one home (config/nodes.yaml): actor batch
# 256 and 5-step DDIM training candidates (the paper's batch 1024 with 20-step DDPM candidates
# is 10x slower per update)
CPU_SETTINGS = [o for o in node_parameters(None, "learner")["overrides"] if o]

VARIANTS = {
    "otpr": [],                                                 # the shipped config: masked OT, H guidance
    "unmasked": ["transport.masked=false", "transport.beta=0"],  # OTPR-U (fig. 3 right)
    "mask_without_g": ["transport.beta=0"],         # the keypoint mask kept, the keypoint relation cost dropped
    "q": ["agent.guidance=q"],                      # fig. 3 left
    "advantage": ["agent.guidance=advantage"],      # fig. 3 left
}
