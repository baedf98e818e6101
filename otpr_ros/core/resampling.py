"""Compatibility resampling (paper Algorithm 1): pick one of L candidates per state."""

import torch


SELECTIONS = ("sample", "argmax")


def select(weights: torch.Tensor, score: torch.Tensor, how: str, uniform: torch.Tensor | None = None) -> torch.Tensor:
    """The one rule by which every acting path picks a candidate (the agent, the torch, ONNX and
    OpenVINO backends). ``sample``: a draw from ``weights / sum(weights)`` by one uniform
    number in [0, 1) per row (the first candidate whose cumulative weight passes ``u * sum``);
    ``argmax``: the largest weight. Negative or non-finite weights count as 0; rows with no
    positive weight take the arg-max of ``score`` (for H: ``u + v - c``, the candidate closest
    to being compatible).

    weights, score: (B, L); uniform: (B,) for ``sample``. Returns (B,) long.
    """
    if how not in SELECTIONS:
        raise ValueError(f"selection: expected one of {SELECTIONS}, got {how!r}")
    if weights.dim() != 2 or weights.shape[1] == 0:
        raise ValueError(f"weights: expected shape (batch, L >= 1), got {tuple(weights.shape)}")
    if score.shape != weights.shape:
        raise ValueError(f"score: expected shape {tuple(weights.shape)}, got {tuple(score.shape)}")
    weights = torch.where(torch.isfinite(weights), weights.clamp_min(0.0), torch.zeros_like(weights))
    totals = weights.sum(dim=1)
    fallback = torch.where(torch.isfinite(score), score, torch.full_like(score, float("-inf"))).argmax(dim=1)
    if how == "argmax":
        chosen = weights.argmax(dim=1)
    else:
        if uniform is None or uniform.shape != totals.shape:
            raise ValueError(f"uniform: expected one number per row, shape {tuple(totals.shape)}")
        cumulative = weights.cumsum(dim=1)
        chosen = (cumulative < (uniform * totals)[:, None]).sum(dim=1).clamp_max(weights.shape[1] - 1)
    return torch.where(totals > 0, chosen, fallback)


def expectile_weights(advantage: torch.Tensor, tau: float) -> torch.Tensor:
    """IDQL's weights ``|tau - 1(Q - V < 0)|``, used before the potentials are trained."""
    return torch.where(advantage < 0, 1.0 - tau, tau)


def effective_sample_size(weights: torch.Tensor) -> torch.Tensor:
    """Per row of (B, L) non-negative weights: ``(sum w)^2 / sum w^2``, from 1 (one candidate
    takes all) to L (uniform: the weighting does not discriminate). All-zero rows give 0."""
    total = weights.sum(dim=1)
    squares = weights.pow(2).sum(dim=1)
    return torch.where(squares > 0, total.pow(2) / squares.clamp_min(1e-30), torch.zeros_like(total))
