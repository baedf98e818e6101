"""The learning curve of a fine-tuning run: held-out success against environment steps, as
CSV (every row) and PNG (success with its 95 % interval)."""

import csv
from pathlib import Path

CURVE_FIELDS = ("env_steps", "updates", "episodes", "wall_s", "success_rate", "ci_low", "ci_high", "mean_return",
                "train_success_rate", "guided_success_rate", "validation_success_rate", "critic_error", "q_start",
                "return_start", "guidance_ess", "online_share")


def write_curve(output: Path, rows: list, title: str) -> None:
    """``rows``: dicts with CURVE_FIELDS (missing ones left empty); mean_return: of the held-out
    episodes (Franka Kitchen: sub-tasks done, 0-4; its normalised score is 25 x that); guided_success_rate:
    the same episodes acting by the arg-max of the acting weights over L candidates
    (``EvaluationSchedule``, guided_candidates); critic_error, q_start and
    return_start: the critic on held-out demonstrations (``OnlineLearner.critic_diagnostic``);
    guidance_ess, online_share: means over the updates since the previous row of the actor's
    effective number of candidates (of L + 1) and of the online share of the critic's batches."""
    with open(output / "curve.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, CURVE_FIELDS, restval="")
        writer.writeheader()
        writer.writerows(rows)
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    steps = [r["env_steps"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(steps, [r["success_rate"] for r in rows], marker="o", label="held-out success")
    ax.fill_between(steps, [r["ci_low"] for r in rows], [r["ci_high"] for r in rows], alpha=0.2, label="95 % CI")
    if any(r.get("guided_success_rate") is not None for r in rows):
        ax.plot(steps, [r.get("guided_success_rate") for r in rows], marker="^", linestyle=":",
                label="arg-max of L candidates")
    if any(r.get("validation_success_rate") is not None for r in rows):
        ax.plot(steps, [r.get("validation_success_rate") for r in rows], marker="s", linestyle="--",
                label="validation success (chooses)")
    ax.set(xlabel="environment steps", ylabel="success rate", ylim=(0, 1), title=title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(output / "curve.png", dpi=120)
    plt.close(fig)
