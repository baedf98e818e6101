"""The paper's ablations as fine-tuning overrides (``otpr-finetune --set``), shared by the
benchmarks that compare them (benchmarks/ablation.py, benchmarks/guidance_drift.py)."""

# actor batch 256 and 5-step DDIM training candidates: the update a 2-core CPU affords
# (the paper's batch 1024 with 20-step DDPM candidates is 10x slower per update)
CPU_SETTINGS = ["agent.actor_batch=256", "agent.actor_sampler=ddim", "agent.actor_ddim_steps=5"]

VARIANTS = {
    "otpr": [],                                                 # the shipped config: masked OT, H guidance
    "unmasked": ["transport.masked=false", "transport.beta=0"],  # OTPR-U (fig. 3 right)
    "mask_without_g": ["transport.beta=0"],         # the keypoint mask kept, the keypoint relation cost dropped
    "q": ["agent.guidance=q"],                      # fig. 3 left
    "advantage": ["agent.guidance=advantage"],      # fig. 3 left
}
