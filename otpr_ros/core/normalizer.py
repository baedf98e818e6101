"""Min-max normaliser to [-1, 1], with the stats saved beside a model.

A dimension that never varies in the data (high == low) maps to 0 and back to its
constant value, instead of dividing by zero.
"""

import json
from pathlib import Path

import numpy as np


class MinMaxNormalizer:
    def __init__(self, low, high):
        low, high = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
        if low.ndim != 1 or low.shape != high.shape or low.size == 0:
            raise ValueError(f"low/high: expected two equal non-empty 1-D arrays, got {low.shape} and {high.shape}")
        if not (np.isfinite(low).all() and np.isfinite(high).all()):
            raise ValueError("low/high: NaN or Inf in the normalisation stats")
        if (high < low).any():
            raise ValueError(f"low/high: high < low at dims {np.flatnonzero(high < low).tolist()}")
        self.low, self.high = low, high
        span = high - low
        self._scale = np.where(span > 0, span / 2.0, 1.0)
        self._centre = (high + low) / 2.0

    @classmethod
    def fit(cls, data) -> "MinMaxNormalizer":
        data = np.asarray(data, dtype=np.float64)
        if data.ndim != 2 or data.shape[0] == 0:
            raise ValueError(f"data: expected a non-empty (N, dim) array, got shape {data.shape}")
        return cls(data.min(axis=0), data.max(axis=0))

    @property
    def dim(self) -> int:
        return self.low.size

    def _check(self, x):
        x = np.asarray(x)
        if x.shape[-1:] != (self.dim,):
            raise ValueError(f"x: expected last dimension {self.dim}, got shape {x.shape}")
        return x

    def normalize(self, x):
        x = self._check(x)
        return ((x - self._centre) / self._scale).astype(x.dtype if x.dtype.kind == "f" else np.float64)

    def unnormalize(self, y):
        y = self._check(y)
        return (y * self._scale + self._centre).astype(y.dtype if y.dtype.kind == "f" else np.float64)

    def to_dict(self) -> dict:
        return {"low": self.low.tolist(), "high": self.high.tolist()}

    @classmethod
    def from_dict(cls, state: dict) -> "MinMaxNormalizer":
        missing = {"low", "high"} - set(state)
        if missing:
            raise ValueError(f"normaliser stats: missing {sorted(missing)}")
        return cls(state["low"], state["high"])

    def save(self, path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path) -> "MinMaxNormalizer":
        try:
            state = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise ValueError(f"{path}: cannot read normaliser stats ({error})") from error
        return cls.from_dict(state)
