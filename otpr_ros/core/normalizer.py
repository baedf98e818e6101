"""Min-max normaliser to [-1, 1], with the stats saved beside a model.

A dimension that never varies in the data (high == low) maps to 0 and back to its
constant value, instead of dividing by zero.

Quaternions whose sign is a convention: q and -q are one rotation, and a simulator that
writes every quaternion with w >= 0 flips the sign of all four values each time a rotation
passes w = 0. robosuite does so for the object-to-hand orientation of Can and Square, and a
hand above an object, turned to grasp it, sits near w = 0 (Square: ~20 flips per
demonstration, most of them while it grasps and carries the nut). ``fit`` puts each such
quaternion in the hemisphere of a reference fitted to the data (its boundary where the
rotations are rarest), and ``normalize`` does so before scaling: the policy sees one
continuous value per rotation.
"""

import json
from pathlib import Path

import numpy as np


def reference_quaternion(quaternions) -> np.ndarray:
    """The sign reference for (N, 4) unit quaternions: of the two principal directions of
    their q q^T (quaternion averaging, Markley et al. 2007) and the two directions between them,
    the one farthest, at the data's 1st percentile, from the hemisphere boundary q . r = 0.
    Rotations that gather around two orientations (a symmetric grasp, turned by a half
    turn: q a quarter turn apart in 4-D) then both sit a full eighth of a turn inside it."""
    q = np.asarray(quaternions, dtype=np.float64)
    first, second = np.linalg.eigh(q.T @ q)[1][:, [-1, -2]].T
    candidates = [first, second, (first + second) / np.sqrt(2.0), (first - second) / np.sqrt(2.0)]
    return max(candidates, key=lambda r: float(np.quantile(np.abs(q @ r), 0.01)))


class MinMaxNormalizer:
    def __init__(self, low, high, quaternions=()):
        """``quaternions``: ``(start, reference)`` pairs, a sign-free (x, y, z, w) quaternion at
        ``start`` put in the hemisphere of ``reference`` (a unit 4-vector) before scaling."""
        low, high = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
        if low.ndim != 1 or low.shape != high.shape or low.size == 0:
            raise ValueError(f"low/high: expected two equal non-empty 1-D arrays, got {low.shape} and {high.shape}")
        if not (np.isfinite(low).all() and np.isfinite(high).all()):
            raise ValueError("low/high: NaN or Inf in the normalisation stats")
        if (high < low).any():
            raise ValueError(f"low/high: high < low at dims {np.flatnonzero(high < low).tolist()}")
        self.quaternions = []
        for start, reference in quaternions:
            reference = np.asarray(reference, dtype=np.float64)
            if not (isinstance(start, (int, np.integer)) and 0 <= start <= low.size - 4) or reference.shape != (4,) \
                    or not np.isclose(np.linalg.norm(reference), 1.0, atol=1e-6):
                raise ValueError(f"quaternions: expected (start in 0..{low.size - 4}, a unit 4-vector), "
                                 f"got ({start!r}, {reference.tolist()})")
            self.quaternions.append((int(start), reference))
        self.low, self.high = low, high
        span = high - low
        self._scale = np.where(span > 0, span / 2.0, 1.0)
        self._centre = (high + low) / 2.0

    @classmethod
    def fit(cls, data, quaternions=()) -> "MinMaxNormalizer":
        """Stats of ``data`` (N, dim); ``quaternions``: the starts of sign-free quaternions in it."""
        data = np.asarray(data, dtype=np.float64)
        if data.ndim != 2 or data.shape[0] == 0:
            raise ValueError(f"data: expected a non-empty (N, dim) array, got shape {data.shape}")
        references = [(start, reference_quaternion(data[:, start:start + 4])) for start in quaternions]
        data = cls(data.min(axis=0), data.max(axis=0), references).canonical(data)
        return cls(data.min(axis=0), data.max(axis=0), references)

    @property
    def dim(self) -> int:
        return self.low.size

    def _check(self, x):
        x = np.asarray(x)
        if x.shape[-1:] != (self.dim,):
            raise ValueError(f"x: expected last dimension {self.dim}, got shape {x.shape}")
        return x

    def canonical(self, x):
        """``x`` with each sign-free quaternion in its reference's hemisphere (a copy if any)."""
        x = self._check(x)
        if not self.quaternions:
            return x
        x = np.array(x, dtype=x.dtype if x.dtype.kind == "f" else np.float64)
        for start, reference in self.quaternions:
            q = x[..., start:start + 4]
            q *= np.where(q @ reference < 0.0, -1.0, 1.0)[..., None]
        return x

    def bounds(self, limit: float, margin: float = 0.0):
        """The raw values whose normalised values lie in [-limit, limit] (low, high), widened to at
        least the centre +- ``margin`` (raw units: for components the data held nearly constant);
        a sign-free quaternion's components in [-1, 1], since either sign is the same rotation."""
        low, high = (self.unnormalize(np.full(self.dim, v)) for v in (-limit, limit))
        low, high = np.minimum(low, self._centre - margin), np.maximum(high, self._centre + margin)
        for start, _ in self.quaternions:
            low[start:start + 4], high[start:start + 4] = -1.0, 1.0
        return low, high

    def normalize(self, x):
        x = self.canonical(x)
        return ((x - self._centre) / self._scale).astype(x.dtype if x.dtype.kind == "f" else np.float64)

    def unnormalize(self, y):
        y = self._check(y)
        return (y * self._scale + self._centre).astype(y.dtype if y.dtype.kind == "f" else np.float64)

    def to_dict(self) -> dict:
        state = {"low": self.low.tolist(), "high": self.high.tolist()}
        if self.quaternions:
            state["quaternions"] = [{"start": s, "reference": r.tolist()} for s, r in self.quaternions]
        return state

    @classmethod
    def from_dict(cls, state: dict) -> "MinMaxNormalizer":
        missing = {"low", "high"} - set(state)
        if missing:
            raise ValueError(f"normaliser stats: missing {sorted(missing)}")
        return cls(state["low"], state["high"],
                   [(q["start"], q["reference"]) for q in state.get("quaternions", ())])

    def save(self, path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path) -> "MinMaxNormalizer":
        try:
            state = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise ValueError(f"{path}: cannot read normaliser stats ({error})") from error
        return cls.from_dict(state)
