"""What the acting side accepts before it decides: the controller's guard.

An observation is refused, counted by reason and never acted on when it is the wrong
size, not finite, outside the plausible range (a sensor glitch, or a state far from any the
policy was trained on), older than ``max_obs_age``, stamped in the future, stamped before the
server was last enabled (a state from before an episode's start, delivered late: the robot
would execute a chunk its transition recorder refuses), not newer than the last one acted on
(out of order or repeated), or arrives while the server is inactive (a managed server not
activated), disabled, or a person has the arm (an intervention).
"""

from collections import Counter

import numpy as np

REASONS = ("inactive", "disabled", "intervention", "incomplete", "malformed", "wrong_size", "non_finite",
           "out_of_range", "stale", "future_stamp", "before_enable", "out_of_order", "unsafe_output")
FUTURE_TOLERANCE = 0.05   # s: clocks of two machines disagree a little


class ObservationGate:
    def __init__(self, obs_dim: int, max_obs_age: float, low=None, high=None):
        """``low``/``high``: per-component limits of a plausible observation (None: none)."""
        if max_obs_age <= 0:
            raise ValueError(f"max_obs_age: expected > 0 s, got {max_obs_age}")
        self.obs_dim, self.max_obs_age = obs_dim, max_obs_age
        self.low = None if low is None else np.asarray(low, dtype=np.float64)
        self.high = None if high is None else np.asarray(high, dtype=np.float64)
        self.refused = Counter({reason: 0 for reason in REASONS})
        self.accepted = 0
        self.last_stamp = -np.inf
        self.not_before = -np.inf    # s: the moment the server was last enabled (no older state is acted on)
        self.out_of_range = None     # the last observation refused as out of range: where, as text

    def refuse(self, reason: str) -> str:
        self.refused[reason] += 1
        return reason

    def check(self, obs, stamps, now: float) -> str | None:
        """None if ``obs`` may be acted on at ``now``; else the reason. ``stamps`` (seconds) are
        those of every message the observation was built from: the oldest must be fresh and
        not older than ``not_before``, none may be from the future, and the newest must be newer
        than the last one acted on."""
        obs, stamps = np.asarray(obs), np.atleast_1d(np.asarray(stamps, dtype=np.float64))
        if obs.shape != (self.obs_dim,):
            return self.refuse("wrong_size")
        if not np.isfinite(obs).all() or not np.isfinite(stamps).all() or stamps.size == 0:
            return self.refuse("non_finite")
        outside = np.flatnonzero((obs < self.low) | (obs > self.high)) if self.low is not None else ()
        if len(outside):
            self.out_of_range = ", ".join(f"component {i} = {obs[i]:.4g} outside [{self.low[i]:.4g}, "
                                          f"{self.high[i]:.4g}]" for i in outside[:3]) + \
                (f" (and {len(outside) - 3} more)" if len(outside) > 3 else "")
            return self.refuse("out_of_range")
        if stamps.max() > now + FUTURE_TOLERANCE:
            return self.refuse("future_stamp")
        if now - stamps.min() > self.max_obs_age:
            return self.refuse("stale")
        if stamps.min() < self.not_before:
            return self.refuse("before_enable")
        if stamps.max() <= self.last_stamp:
            return self.refuse("out_of_order")
        self.last_stamp = float(stamps.max())
        self.accepted += 1
        return None
