"""Compatibility resampling (paper Algorithm 1): pick one of L candidates per state."""

import torch

from otpr_ros.core.checks import check_finite


def resample(weights: torch.Tensor, fallback_score: torch.Tensor, generator=None) -> torch.Tensor:
    """Index per row drawn from ``weights / sum(weights)``; all-zero rows take the argmax of
    ``fallback_score`` (for H: ``u + v - c``, the candidate closest to being compatible).

    weights, fallback_score: (B, L), weights >= 0. Returns (B,) long.
    """
    if weights.dim() != 2 or weights.shape[1] == 0:
        raise ValueError(f"weights: expected shape (batch, L >= 1), got {tuple(weights.shape)}")
    if fallback_score.shape != weights.shape:
        raise ValueError(f"fallback_score: expected shape {tuple(weights.shape)}, got {tuple(fallback_score.shape)}")
    check_finite("weights", weights)
    if bool((weights < 0).any()):
        raise ValueError("weights: negative entries")
    total = weights.sum(dim=1)
    usable = total > 0
    probs = torch.where(usable[:, None], weights, torch.ones_like(weights))
    drawn = torch.multinomial(probs, 1, generator=generator).squeeze(1)
    return torch.where(usable, drawn, fallback_score.argmax(dim=1))


def expectile_weights(advantage: torch.Tensor, tau: float) -> torch.Tensor:
    """IDQL's weights ``|tau - 1(Q - V < 0)|``, used before the potentials are trained."""
    return torch.where(advantage < 0, 1.0 - tau, tau)


def effective_sample_size(weights: torch.Tensor) -> torch.Tensor:
    """Per row of (B, L) non-negative weights: ``(sum w)^2 / sum w^2``, from 1 (one candidate
    takes all) to L (uniform: the weighting does not discriminate). All-zero rows give 0."""
    total = weights.sum(dim=1)
    squares = weights.pow(2).sum(dim=1)
    return torch.where(squares > 0, total.pow(2) / squares.clamp_min(1e-30), torch.zeros_like(total))
