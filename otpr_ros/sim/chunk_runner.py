"""Execute one action chunk and return the chunk-level transition (ALGORITHM.md).

The reward is the discounted sum inside the chunk, ``sum_i gamma^i r_i``, and the
bootstrap discount of the transition is ``gamma ** steps``, with ``steps`` the number of
actions actually executed: the chunk stops early when the episode terminates or truncates.
"""

from dataclasses import dataclass

import numpy as np


@dataclass
class ChunkResult:
    obs: np.ndarray        # observation after the last executed action
    reward: float          # discounted sum of the per-step rewards inside the chunk
    steps: int             # actions executed (<= Ta)
    terminated: bool
    truncated: bool
    success: bool


def run_chunk(env, chunk, gamma: float) -> ChunkResult:
    chunk = np.asarray(chunk, dtype=np.float64)
    if chunk.ndim != 2 or chunk.shape[0] == 0:
        raise ValueError(f"chunk: expected shape (Ta >= 1, act_dim), got {chunk.shape}")
    total, discount = 0.0, 1.0
    for steps, action in enumerate(chunk, start=1):
        obs, reward, terminated, truncated, info = env.step(action)
        total += discount * reward
        discount *= gamma
        if terminated or truncated:
            break
    return ChunkResult(obs, total, steps, bool(terminated), bool(truncated), bool(info.get("success", False)))
