"""Replay buffer on the configured device, beside the expert demonstrations.

Expert transitions are kept for good (never evicted); online transitions go round a ring
of ``capacity``. Some expert pairs are chosen as keypoints of masked OT: they are what
the mask and the relation cost g refer to, by index. Each transition may carry the
discounted return its episode earned from it on (``mc_return``, NaN until the episode ends).
"""

from dataclasses import dataclass, fields

import torch

from otpr_ros.core.checks import check_batch, check_count, check_finite

FIELDS = ("obs", "action", "reward", "next_obs", "terminal", "steps", "mc_return")


@dataclass
class TransitionBatch:
    obs: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor
    next_obs: torch.Tensor
    terminal: torch.Tensor
    steps: torch.Tensor
    mc_return: torch.Tensor | None = None    # NaN where the episode's return is not known (yet)

    def to(self, device) -> "TransitionBatch":
        return TransitionBatch(*(None if getattr(self, f.name) is None else getattr(self, f.name).to(device)
                                 for f in fields(self)))


class _Store:
    """Preallocated tensors; a ring when ``ring`` is set."""

    def __init__(self, obs_dim, action_dim, capacity, device, ring):
        widths = {"obs": obs_dim, "action": action_dim, "next_obs": obs_dim}
        self.data = {name: torch.zeros((capacity, widths[name]) if name in widths else (capacity,), device=device)
                     for name in FIELDS}
        self.capacity, self.ring, self.size, self.cursor = capacity, ring, 0, 0

    def add(self, batch: dict) -> torch.Tensor:
        """Store ``batch``; the rows it went to."""
        n = batch["obs"].shape[0]
        if not self.ring and self.size + n > self.capacity:
            raise ValueError(f"expert transitions: {self.size + n} exceed the capacity {self.capacity}")
        index = (self.cursor + torch.arange(n)) % self.capacity
        for name in FIELDS:
            self.data[name][index.to(self.data[name].device)] = batch[name].to(self.data[name])
        self.cursor = (self.cursor + n) % self.capacity
        self.size = min(self.size + n, self.capacity)
        return index

    def gather(self, index: torch.Tensor) -> dict:
        return {name: self.data[name][index] for name in FIELDS}


class ReplayBuffer:
    def __init__(self, obs_dim: int, action_dim: int, capacity: int = 250_000, expert_capacity: int = 100_000,
                 device="cpu"):
        self.obs_dim, self.action_dim, self.device = obs_dim, action_dim, torch.device(device)
        self.online = _Store(obs_dim, action_dim, check_count("capacity", capacity), self.device, ring=True)
        self.expert = _Store(obs_dim, action_dim, check_count("expert_capacity", expert_capacity), self.device,
                             ring=False)
        self.keypoint_index = torch.zeros(0, dtype=torch.long, device=self.device)

    def __len__(self) -> int:
        return self.online.size + self.expert.size

    # -- adding --------------------------------------------------------------------------
    def add(self, obs, action, reward, next_obs, terminal, steps, mc_return=None) -> torch.Tensor:
        """Add a batch of online transitions (first dimension = batch); the rows they went to."""
        return self.online.add(self._checked(obs, action, reward, next_obs, terminal, steps, mc_return))

    def add_expert(self, obs, action, reward, next_obs, terminal, steps, mc_return=None) -> torch.Tensor:
        return self.expert.add(self._checked(obs, action, reward, next_obs, terminal, steps, mc_return))

    def set_returns(self, store: str, rows: torch.Tensor, mc_return) -> None:
        """The return each of ``rows`` of ``store`` ("online" or "expert") earned, once its episode ended."""
        target = {"online": self.online, "expert": self.expert}[store].data["mc_return"]
        target[torch.as_tensor(rows, device=target.device)] = torch.as_tensor(mc_return, dtype=torch.float32,
                                                                              device=target.device)

    def _checked(self, obs, action, reward, next_obs, terminal, steps, mc_return=None) -> dict:
        if mc_return is None:
            mc_return = torch.full((len(obs),), float("nan"))
        batch = {name: torch.as_tensor(value, dtype=torch.float32) for name, value in
                 zip(FIELDS, (obs, action, reward, next_obs, terminal, steps, mc_return))}
        check_batch("obs", batch["obs"], self.obs_dim)
        check_batch("action", batch["action"], self.action_dim)
        check_batch("next_obs", batch["next_obs"], self.obs_dim)
        n = batch["obs"].shape[0]
        for name in ("action", "reward", "next_obs", "terminal", "steps"):
            if batch[name].shape[0] != n or (name in ("reward", "terminal", "steps") and batch[name].dim() != 1):
                raise ValueError(f"{name}: expected {n} rows like obs, got shape {tuple(batch[name].shape)}")
            check_finite(name, batch[name])
        if batch["mc_return"].shape != (n,):
            raise ValueError(f"mc_return: expected {n} values like obs, got shape {tuple(batch['mc_return'].shape)}")
        if not bool(((batch["terminal"] == 0) | (batch["terminal"] == 1)).all()):
            raise ValueError("terminal: expected 0 or 1")
        if not bool((batch["steps"] >= 1).all()):
            raise ValueError("steps: every transition executes at least one step")
        return batch

    # -- keypoints -------------------------------------------------------------------------
    def select_keypoints(self, count: int, generator=None) -> None:
        """Choose ``count`` expert pairs as the keypoints of masked OT."""
        check_count("count", count)
        if count > self.expert.size:
            raise ValueError(f"count: {count} keypoints asked for but only {self.expert.size} expert transitions")
        self.keypoint_index = torch.randperm(self.expert.size, generator=generator, device=self.device)[:count]

    @property
    def num_keypoints(self) -> int:
        return self.keypoint_index.numel()

    @property
    def keypoint_obs(self) -> torch.Tensor:
        return self.expert.data["obs"][self.keypoint_index]

    @property
    def keypoint_actions(self) -> torch.Tensor:
        return self.expert.data["action"][self.keypoint_index]

    # -- sampling ----------------------------------------------------------------------------
    def sample(self, batch_size: int, generator=None) -> TransitionBatch:
        """Uniform over expert and online transitions together."""
        index = self._draw(batch_size, generator)
        from_expert = index < self.expert.size
        parts = [self.expert.gather(index[from_expert]), self.online.gather(index[~from_expert] - self.expert.size)]
        return TransitionBatch(**{name: torch.cat([p[name] for p in parts]) for name in FIELDS})

    def sample_mixed(self, batch_size: int, online_fraction: float, generator=None) -> TransitionBatch:
        """``round(online_fraction * batch_size)`` online transitions and the rest expert ones,
        each part uniform over its store (RLPD's symmetric sampling at 0.5). While either store
        is empty the whole batch comes from the other."""
        check_count("batch_size", batch_size)
        if not 0.0 <= online_fraction <= 1.0:
            raise ValueError(f"online_fraction: expected a share in [0, 1], got {online_fraction}")
        if self.online.size == 0 or self.expert.size == 0:
            return self.sample(batch_size, generator)
        n_online = int(round(online_fraction * batch_size))
        parts = [store.gather(torch.randint(0, store.size, (n,), generator=generator, device=self.device))
                 for store, n in ((self.expert, batch_size - n_online), (self.online, n_online))]
        return TransitionBatch(**{name: torch.cat([p[name] for p in parts]) for name in FIELDS})

    def sample_for_transport(self, num_states: int, num_actions: int, generator=None):
        """Independent state and action batches for the dual, keypoint pairs placed first.

        Returns (states, state_keypoint_ids, actions, action_keypoint_ids); ids are -1 for
        points that are not keypoints.
        """
        k = self.num_keypoints
        if k >= min(num_states, num_actions):
            raise ValueError(f"batch: {num_states} states / {num_actions} actions leave no room beside {k} keypoints")
        states = torch.cat([self.keypoint_obs, self.sample(num_states - k, generator).obs])
        actions = torch.cat([self.keypoint_actions, self.sample(num_actions - k, generator).action])
        ids = torch.arange(k, device=self.device)
        state_ids = torch.cat([ids, torch.full((num_states - k,), -1, device=self.device)])
        action_ids = torch.cat([ids, torch.full((num_actions - k,), -1, device=self.device)])
        return states, state_ids, actions, action_ids

    def _draw(self, batch_size: int, generator) -> torch.Tensor:
        check_count("batch_size", batch_size)
        if len(self) == 0:
            raise ValueError("replay buffer: empty, nothing to sample")
        return torch.randint(0, len(self), (batch_size,), generator=generator, device=self.device)

    # -- persistence --------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {store_name: {"size": store.size, "cursor": store.cursor,
                             **{name: store.data[name][:store.size].cpu() for name in FIELDS}}
                for store_name, store in (("online", self.online), ("expert", self.expert))} | \
            {"keypoint_index": self.keypoint_index.cpu()}

    def load_state_dict(self, state: dict) -> None:
        for store_name, store in (("online", self.online), ("expert", self.expert)):
            saved = state[store_name]
            if saved["size"] > store.capacity:
                raise ValueError(f"{store_name}: {saved['size']} saved transitions exceed capacity {store.capacity}")
            for name in FIELDS:
                if name in saved:       # a state saved before mc_return existed leaves it unknown
                    store.data[name][:saved["size"]] = saved[name].to(self.device)
            store.size, store.cursor = saved["size"], saved["cursor"]
        self.keypoint_index = state["keypoint_index"].to(self.device)
