"""Does a critic's advantage on the executed chunks tell successful episodes from failed ones?

For each critic (model directory) and the policy's own episodes of a fine-tuning run (its replay
log): A = Q(s, a) - V(s) on every executed chunk, as guidance ``awr`` weights them, and the
discounted Monte-Carlo return G each chunk earned (gamma^steps-to-success, 0 in a failed
episode). Prints the ROC AUC of A (success-episode chunks vs failure-episode chunks), the mean
awr weight exp(A / std A) in each group, the correlation of Q with G, and the AUC of V at an
episode's first state for its outcome.

    python docs/experiments/scripts/2026-12-02-square-advantage-separation.py \
        --replay runs/square_l1act/utd025/replay --critics models/square runs/square_l1act/utd025/evaluated/final
"""

import argparse
import glob
from types import SimpleNamespace

import numpy as np
import torch

from otpr_ros.model.directory import load_model
from otpr_ros.training.online_learning import OnlineLearner


def auc(positive, negative) -> float:
    """P(a positive scores above a negative), ties half (Mann-Whitney)."""
    positive, negative = np.asarray(positive)[:, None], np.asarray(negative)[None, :]
    return float((positive > negative).mean() + 0.5 * (positive == negative).mean())


def episodes(replay_dir):
    """The replay's policy transitions, each one's episode outcome, the env steps after it to
    the episode's success (its MC return is gamma to that power), and its episode's first row."""
    parts = [dict(np.load(f)) for f in sorted(glob.glob(f"{replay_dir}/*.npz"))]
    data = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    data = {k: v[~data["expert"].astype(bool)] for k, v in data.items()}
    key = np.stack([data["source"], data["stream"], data["episode"]], 1)
    success = np.zeros(len(key), bool)
    to_go = np.zeros(len(key))
    first = np.zeros(len(key), bool)
    for k in np.unique(key, axis=0):
        rows = np.nonzero((key == k).all(1))[0]
        rows = rows[np.argsort(data["sequence"][rows])]
        first[rows[0]] = True
        if data["terminal"][rows].any():
            success[rows] = True
            to_go[rows] = np.cumsum(data["steps"][rows][::-1])[::-1] - data["steps"][rows]   # after this chunk
    return data, success, to_go, first


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--replay", required=True)
    parser.add_argument("--critics", nargs="+", required=True)
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    data, success, to_go, first = episodes(args.replay)
    for path in args.critics:
        model = load_model(path, "cpu")
        ret = np.where(success, model.config.critic.gamma ** to_go, 0.0)
        shim = SimpleNamespace(model=model, action_size=model.config.chunk * model.info.act_dim)
        obs, action, *_ = OnlineLearner._normalised(shim, data)
        obs, action = torch.as_tensor(obs), torch.as_tensor(action)
        critic = model.agent.critic
        q = critic.target_q(obs[:, None, :], action[:, None, :])[:, 0].numpy()
        v = critic.value(obs).numpy()
        a = q - v
        w = np.minimum(np.exp(a / a.std()), 100.0)
        n_ep, n_succ = int(first.sum()), int(success[first].sum())
        print(f"{path}: {len(a)} chunks, {n_ep} episodes ({n_succ} successful)")
        print(f"  AUC of A, success vs failure chunks: {auc(a[success], a[~success]):.3f}; "
              f"mean awr weight {w[success].mean():.3f} vs {w[~success].mean():.3f}")
        print(f"  corr(Q, MC return) {np.corrcoef(q, ret)[0, 1]:.3f}; mean Q success {q[success].mean():.3f} "
              f"vs failure {q[~success].mean():.3f}; AUC of V(s_0) for the outcome "
              f"{auc(v[first & success], v[first & ~success]):.3f}")


if __name__ == "__main__":
    main()
