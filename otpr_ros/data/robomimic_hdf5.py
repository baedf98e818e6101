"""Robomimic HDF5 datasets, both ways (the v1.4.1 low-dim ph/mh layout).

    data                 attrs: total (transitions), env_args (JSON)
    data/demo_N          attrs: num_samples
        obs/<key>        (T, dim)      next_obs/<key>   (T, dim)
        actions (T, 7)   rewards (T,)  dones (T,)       states (T, state_dim)
    mask/train, mask/valid   demo names

The loader accepts the project's files and robomimic's own, picks the configured
observation keys in order, and gives (observation, action chunk) pairs for imitation and
chunked transitions for the critic. A file that breaks the layout gets one ValueError that
names the file and the problem.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from otpr_ros.core.normalizer import MinMaxNormalizer


# -- writing ---------------------------------------------------------------------------------
def write_dataset(path, episodes, env_args: dict, valid_fraction: float = 0.1, seed: int = 0) -> None:
    """Write episodes (dicts with obs, next_obs (key -> (T, dim)), actions, rewards, dones,
    states, and optional per-episode ``attrs``) as a robomimic file."""
    if not episodes:
        raise ValueError("episodes: nothing to write")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with h5py.File(tmp, "w") as f:
        data = f.create_group("data")
        total = 0
        for i, episode in enumerate(episodes):
            demo = data.create_group(f"demo_{i}")
            for group in ("obs", "next_obs"):
                for key, value in episode[group].items():
                    demo.create_dataset(f"{group}/{key}", data=np.asarray(value))
            for name in ("actions", "rewards", "dones", "states"):
                demo.create_dataset(name, data=np.asarray(episode[name]))
            demo.attrs["num_samples"] = len(episode["actions"])
            for key, value in episode.get("attrs", {}).items():
                demo.attrs[key] = value
            total += len(episode["actions"])
        data.attrs["total"] = total
        data.attrs["env_args"] = json.dumps(env_args)
        names = np.array([f"demo_{i}" for i in range(len(episodes))])
        order = np.random.default_rng(seed).permutation(len(names))
        n_valid = int(round(valid_fraction * len(names)))
        f.create_dataset("mask/valid", data=np.sort(names[order[:n_valid]]).astype("S"))
        f.create_dataset("mask/train", data=np.sort(names[order[n_valid:]]).astype("S"))
    tmp.replace(path)  # a half-written file never carries the final name


# -- reading ---------------------------------------------------------------------------------
@dataclass
class Demo:
    name: str
    obs: np.ndarray        # (T, obs_dim), keys concatenated in order
    next_obs: np.ndarray
    actions: np.ndarray    # (T, act_dim)
    rewards: np.ndarray    # (T,)
    dones: np.ndarray      # (T,)

    def earned_returns(self, gamma: float) -> np.ndarray:
        """(T,): the discounted return earned from each step on, up to the next done."""
        earned, running = np.zeros(len(self.rewards)), 0.0
        for t in range(len(self.rewards) - 1, -1, -1):
            running = float(self.rewards[t]) + gamma * running * float(self.dones[t] == 0)
            earned[t] = running
        return earned


def _demo_order(name: str) -> int:
    return int(name.split("_")[-1]) if name.split("_")[-1].isdigit() else 0


class RobomimicDataset:
    def __init__(self, paths, obs_keys, act_dim: int = 7, split: str | None = None, split_required: bool = True):
        """``split``: only the demonstrations a file's ``mask/<split>`` lists (None: all); a
        file without that mask is refused, or gives none when ``split_required`` is False."""
        paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
        if not paths:
            raise ValueError("paths: no dataset given")
        self.obs_keys, self.act_dim = tuple(obs_keys), act_dim
        self.key_dims: dict = {}
        self.demos: list[Demo] = []
        self.env_args = None            # of the last file
        self.env_args_by_file: dict = {}
        for path in paths:
            self._read(Path(path), split, split_required)

    def _read(self, path: Path, split, split_required):
        def fail(problem):
            raise ValueError(f"{path}: {problem}")

        try:
            f = h5py.File(path, "r")
        except OSError as error:
            fail(f"cannot be opened as HDF5 ({error})")
        with f:
            if "data" not in f or not isinstance(f["data"], h5py.Group):
                fail("not a robomimic dataset (no 'data' group)")
            names = sorted((n for n in f["data"] if n.startswith("demo")), key=_demo_order)
            if not names:
                fail("not a robomimic dataset (no demo_N groups under 'data')")
            if split is not None:
                if f"mask/{split}" not in f and split_required:
                    fail(f"no 'mask/{split}' split")
                wanted = {n.decode() if isinstance(n, bytes) else str(n)
                          for n in (f[f"mask/{split}"][()] if f"mask/{split}" in f else ())}
                names = [n for n in names if n in wanted]
            if "env_args" in f["data"].attrs:
                self.env_args = json.loads(f["data"].attrs["env_args"])
                self.env_args_by_file[str(path)] = self.env_args
            for name in names:
                self.demos.append(self._read_demo(f["data"][name], name, fail))

    def _read_demo(self, group, name, fail) -> Demo:
        for field in ("actions", "obs", "next_obs"):
            if field not in group:
                fail(f"{name} has no '{field}'")
        actions = group["actions"][()]
        if actions.ndim != 2 or actions.shape[1] != self.act_dim:
            fail(f"{name}/actions has shape {actions.shape}, expected (T, {self.act_dim})")
        length = actions.shape[0]
        if length == 0:
            fail(f"{name} is empty")

        def stacked(which):
            parts = []
            for key in self.obs_keys:
                if key not in group[which]:
                    fail(f"{name} has no {which} key '{key}'")
                value = group[which][key][()]
                value = value.reshape(length, -1) if value.ndim == 1 and value.shape[0] == length else value
                if value.ndim != 2 or value.shape[0] != length:
                    fail(f"{name}/{which}/{key} has shape {value.shape}, expected ({length}, dim)")
                expected = self.key_dims.setdefault(key, value.shape[1])
                if value.shape[1] != expected:
                    fail(f"{name}/{which}/{key} has {value.shape[1]} dims, earlier demos {expected}")
                parts.append(value)
            return np.concatenate(parts, axis=1)

        rewards = group["rewards"][()] if "rewards" in group else np.zeros(length)
        dones = group["dones"][()] if "dones" in group else np.zeros(length)
        if rewards.shape != (length,) or dones.shape != (length,):
            fail(f"{name}: rewards/dones have shapes {rewards.shape}/{dones.shape}, expected ({length},)")
        # the file's own dtypes: what was written reads back bit for bit
        demo = Demo(name, stacked("obs"), stacked("next_obs"), actions, rewards, dones)
        if not all(np.isfinite(a).all() for a in (demo.obs, demo.next_obs, demo.actions, demo.rewards)):
            fail(f"{name} holds NaN or Inf")
        return demo

    # -- views -----------------------------------------------------------------------------------
    @property
    def obs_dim(self) -> int:
        return sum(self.key_dims[k] for k in self.obs_keys)

    def __len__(self) -> int:
        return sum(len(d.actions) for d in self.demos)

    def normalizers(self, quaternions=()):
        """Min-max stats over every observation and action of the dataset; ``quaternions``: the
        starts of sign-free quaternions in the observation (``MinMaxNormalizer.fit``)."""
        obs = np.concatenate([np.concatenate([d.obs, d.next_obs[-1:]]) for d in self.demos])
        actions = np.concatenate([d.actions for d in self.demos])
        return MinMaxNormalizer.fit(obs, quaternions), MinMaxNormalizer.fit(actions)

    def imitation_pairs(self, chunk: int):
        """(obs_t, actions t..t+Ta-1 flattened) for every t; past the end the last action repeats."""
        obs, chunks = [], []
        for d in self.demos:
            index = np.minimum(np.arange(len(d.actions))[:, None] + np.arange(chunk), len(d.actions) - 1)
            obs.append(d.obs)
            chunks.append(d.actions[index].reshape(len(d.actions), -1))
        return np.concatenate(obs), np.concatenate(chunks)

    def chunk_transitions(self, chunk: int, gamma: float, execute: int = 0):
        """Chunked transitions from every t, as the chunk runner would produce them online:
        the whole chunk from t, executed whole or its first ``execute`` actions (> 0: the
        model's ``agent.execute_steps``), stopping at a done; the reward is the discounted sum
        over the executed steps, ``next_obs`` the observation after them; ``mc_return``: the
        discounted return the demonstration earned from t on (to its next done)."""
        if not 0 <= execute <= chunk:
            raise ValueError(f"execute: expected 0 (the whole chunk) to chunk = {chunk}, got {execute}")
        out = {k: [] for k in ("obs", "action", "reward", "next_obs", "terminal", "steps", "mc_return")}
        for d in self.demos:
            length = len(d.actions)
            earned = d.earned_returns(gamma)
            for t in range(length):
                end = min(t + (execute or chunk), length)
                done_at = np.flatnonzero(d.dones[t:end])
                end = t + done_at[0] + 1 if done_at.size else end
                steps = end - t
                index = np.minimum(np.arange(t, t + chunk), length - 1)
                out["obs"].append(d.obs[t])
                out["action"].append(d.actions[index].reshape(-1))
                out["reward"].append(float(np.sum(d.rewards[t:end] * gamma ** np.arange(steps))))
                out["next_obs"].append(d.next_obs[end - 1])
                out["terminal"].append(float(d.dones[end - 1] > 0 and d.rewards[end - 1] > 0))
                out["steps"].append(float(steps))
                out["mc_return"].append(earned[t])
        return {k: np.asarray(v, dtype=np.float32) for k, v in out.items()}

    def chunked_episodes(self, chunk: int, gamma: float):
        """Each demonstration as (obs (T, obs_dim), the chunk started at each step (T, chunk *
        act_dim), the discounted return earned from each step on (T,)), up to its first done:
        what a value function of the demonstrated behaviour must give at every step."""
        episodes = []
        for d in self.demos:
            done = np.flatnonzero(d.dones)
            length = int(done[0]) + 1 if done.size else len(d.actions)
            index = np.minimum(np.arange(length)[:, None] + np.arange(chunk), length - 1)
            episodes.append((d.obs[:length], d.actions[index].reshape(length, -1), d.earned_returns(gamma)[:length]))
        return episodes
