"""Online fine-tuning from chunk-level transitions (ALGORITHM.md, "The loop"), without ROS.

The learner node and the in-process ``otpr-finetune`` command both run this: transitions in
robot units arrive (from any number of sources), are normalised with the model's stats and
stored beside the expert demonstrations; ``update()`` runs one OTPR iteration (dual steps,
IQL, OT-guided score matching); ``snapshot()`` writes a complete model directory the policy
server can swap in.

The expert demonstrations are the pre-training datasets (HDF5). The model's keypoints are
found among them again, so masked OT keeps the pairs the potentials were trained with; if
a keypoint is not in the data, new keypoints are drawn (and ``keypoints_reused`` says so).
Transitions are numbered per bridge run (source, stream): a repeated sequence number is
dropped, a skipped one counted as lost; a new stream of a source whose last episode was
still open closes that episode as truncated (the bridge restarted in its middle).
"""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from otpr_ros.core.agent import check_config
from otpr_ros.core.critic import value_error
from otpr_ros.data.robomimic_hdf5 import RobomimicDataset
from otpr_ros.model.directory import Model, save_model
from otpr_ros.training.pretraining import OBS_CLIP, expert_buffer, held_out_episodes, normalise_chunks

RECENT_STREAMS = 16   # streams listed one by one in the status (a bridge restart adds one)
# what may differ from the pre-training configuration when fine-tuning (no network shape)
TUNABLE = {"agent": ("num_candidates", "guidance", "actor_batch", "actor_batch_mix", "actor_sampler", "actor_ddim_steps",
                     "q_normalisation", "q_temperature", "advantage_temperature", "advantage_clip", "advantage_source",
                     "compile_updates", "compile_mode", "acting_weights", "execute_steps"),
           "transport": ("masked", "beta", "rho", "distance", "ot_every", "ot_steps", "batch_states", "batch_actions",
                         "lr"),
           "critic": ("batch_size", "lr", "steps_per_update", "batch_mix", "online_fraction", "truncation"),
           "diffusion": ("finetune_lr", "finetune_lr_schedule", "sampler", "ddim_steps", "eta")}


def overridden_config(config, overrides):
    """``config`` with ``section.key=value`` settings (YAML values) for fine-tuning, e.g. the
    paper's ablations (``agent.guidance=q``, ``transport.masked=false``) or a smaller actor
    batch on a CPU. Only settings that leave the networks' shapes alone are accepted; a
    ValueError names one that is not, or a value the agent refuses."""
    from otpr_ros.core.config import with_settings
    config = with_settings(config, overrides, TUNABLE, "override")
    try:
        check_config(config)
    except ValueError as error:
        raise ValueError(f"overrides: {error}") from None
    return config


def apply_overrides(model: Model, overrides) -> None:
    """``overridden_config``'s settings applied to a loaded ``model`` (its agent's rates and
    transport cost follow)."""
    model.config = model.agent.config = overridden_config(model.config, overrides)
    model.agent.set_learning_rates()
    relation = model.agent.relation_cost
    if relation is not None:          # the transport cost holds beta
        model.agent.set_keypoints(relation.obs, relation.actions)


def expert_demonstrations(model: Model, paths=(), split: str = "train") -> RobomimicDataset:
    """The expert demonstrations for fine-tuning ``model``: ``paths``, or else the model's
    pre-training datasets; a ValueError names missing files and the commands that make them.
    ``split="valid"``: the files' held-out demonstrations (the critic's diagnostic), none
    from a file without a valid split."""
    paths = [p for p in paths if p] or model.info.extra.get("datasets", [])
    missing = [p for p in paths if not Path(p).is_file()]
    if not paths or missing:
        commands = "; ".join(model.info.extra.get("dataset_commands", []))
        raise ValueError(f"datasets: expert demonstrations {missing or '(none)'} not found; make them with: "
                         f"{commands or 'otpr-collect-demos'}")
    return RobomimicDataset(paths, model.info.obs_keys, act_dim=model.info.act_dim, split=split,
                            split_required=split == "train")


@dataclass
class StreamCounts:
    """One run of one bridge (source, stream): its sequence numbers start at 0."""
    last_sequence: int = -1
    received: int = 0
    duplicates: int = 0
    lost: int = 0
    open_episode: bool = False      # its last transition neither ended nor truncated an episode


@dataclass
class TransitionCounts:
    streams: dict = field(default_factory=dict)      # (source, stream) -> StreamCounts
    current: dict = field(default_factory=dict)      # source -> its newest stream
    refused: int = 0
    interrupted: int = 0            # episodes left open by a bridge that restarted: closed as truncated

    @property
    def received(self) -> int:
        """Transitions added over every stream (all taken, not what the replay ring still holds)."""
        return sum(s.received for s in self.streams.values())

    def summary(self) -> dict:
        return {"received": self.received,
                "duplicates": sum(s.duplicates for s in self.streams.values()),
                "lost": sum(s.lost for s in self.streams.values()), "refused": self.refused,
                "sources": len(self.current), "streams": len(self.streams), "interrupted_episodes": self.interrupted,
                "by_stream": {f"{source}:{stream}": {"received": s.received, "last_sequence": s.last_sequence}
                              for (source, stream), s in list(self.streams.items())[-RECENT_STREAMS:]}}

    def stream(self, source: int, stream: int) -> StreamCounts:
        key = (source, stream)
        if key not in self.streams:
            previous = self.streams.get((source, self.current.get(source)))
            if previous is not None and previous.open_episode:
                # the bridge restarted in the middle of an episode: that episode ends there,
                # truncated (its last transition bootstraps from its next observation)
                self.interrupted += 1
                previous.open_episode = False
            self.streams[key] = StreamCounts()
            self.current[source] = stream
        return self.streams[key]


def find_rows(table: torch.Tensor, rows: torch.Tensor, atol: float = 1e-5):
    """Index of each of ``rows`` in ``table`` (None if any is missing)."""
    index = []
    for row in rows:
        hits = torch.nonzero((table - row).abs().max(dim=1).values <= atol).flatten()
        if hits.numel() == 0:
            return None
        index.append(int(hits[0]))
    return torch.tensor(index, device=table.device)


class OnlineLearner:
    @classmethod
    def for_task(cls, task: str, model_dir, device: str = "auto", overrides=(), datasets=(),
                 seed: int = 0) -> "OnlineLearner":
        """A learner for fine-tuning the model at ``model_dir`` on ``task``, the one way the
        learner node and ``otpr-finetune`` open it: loaded on ``device``, ``overrides``
        applied, the expert demonstrations (``datasets`` or the model's own) for training and
        their valid split for the critic's diagnostic, its random draws (batches, noise) from
        ``seed``. ModelError or ValueError name a problem."""
        from otpr_ros.model.directory import ModelError, load_model
        model = load_model(model_dir, device)
        model.agent.generator.manual_seed(seed)     # as it was made (the model's seed), unless seed differs
        if model.info.task != task:
            raise ModelError(f"{model_dir}: trained for {model.info.task!r}, not for {task!r}")
        overrides = [o for o in overrides if o]
        apply_overrides(model, overrides)
        datasets = [d for d in datasets if d]
        learner = cls(model, expert_demonstrations(model, datasets), expert_demonstrations(model, datasets, split="valid"))
        learner.overrides = overrides
        torch.manual_seed(seed)
        return learner

    def __init__(self, model: Model, dataset, held_out=None):
        """``model``: loaded on the learning device; ``dataset``: the expert demonstrations
        (a RobomimicDataset with the model's observation keys); ``held_out``: demonstrations
        kept out of training, on which ``critic_diagnostic`` measures Q (none: no diagnostic)."""
        if dataset.obs_dim != model.info.obs_dim:
            raise ValueError(f"dataset: observations of {dataset.obs_dim} values, the model takes {model.info.obs_dim}")
        self.model, self.agent, config = model, model.agent, model.config
        self.buffer = expert_buffer(dataset, config, model.obs_normalizer, model.action_normalizer, self.agent.device)
        self.held_out = [] if held_out is None or not held_out.demos else held_out_episodes(
            held_out, config, model.obs_normalizer, model.action_normalizer, self.agent.device)
        self.keypoints_reused = self._reuse_keypoints()
        self.counts = TransitionCounts()
        self.open_episodes = {}     # (source, stream) -> [(store, row, reward, steps)] of its open episode
        self.log = None             # a ReplayLog, where transitions must survive a crash
        self.action_size = config.chunk * config.act_dim
        self.overrides = []         # the fine-tuning settings applied to the model's (``for_task``)

    def describe(self) -> str:
        """What is fine-tuned, where, from how much expert data (the line a run starts with)."""
        return (f"fine-tuning {self.model.path} on {self.agent.device} ({torch.get_num_threads()} CPU threads) with "
                f"{self.buffer.expert.size} expert transitions (keypoints "
                f"{'reused' if self.keypoints_reused else 'drawn anew'})")

    def settings(self) -> str:
        """Where this run's settings come from, in the order they win, and what they resolve to:
        the model's own config.yaml, then the overrides (each named as such)."""
        config = self.model.config.to_dict()
        overridden = {o.partition("=")[0] for o in self.overrides}
        names = [f"{s}.{k}" for s, keys in {**TUNABLE, "critic": ("gamma", "tau", *TUNABLE["critic"]),
                                               "transport": ("lam", *TUNABLE["transport"])}.items() for k in keys]
        values = ", ".join(f"{n}={config[n.split('.')[0]][n.split('.')[1]]}{' (override)' if n in overridden else ''}"
                           for n in names)
        return (f"settings: {self.model.path}/config.yaml, then the overrides {self.overrides or '(none)'} "
                f"(a later one wins): {values}")

    def _reuse_keypoints(self) -> bool:
        relation = self.agent.relation_cost
        expert = self.buffer.expert
        if relation is not None:
            obs_index = find_rows(expert.data["obs"][:expert.size], relation.obs)
            if obs_index is not None and torch.allclose(expert.data["action"][obs_index], relation.actions, atol=1e-5):
                self.buffer.keypoint_index = obs_index
                return True
        count = min(self.model.config.transport.num_keypoints, expert.size - 1)
        self.buffer.select_keypoints(count, self.agent.generator)
        self.agent.set_keypoints(self.buffer.keypoint_obs, self.buffer.keypoint_actions)
        return False

    # -- data ---------------------------------------------------------------------------------
    def add(self, fields: dict) -> str:
        """One transition (robot units, ``bus_messages.transition_fields``): 'added',
        'duplicate', or raises ValueError naming the problem (counted as refused). Added
        transitions go to the replay log too, when there is one."""
        counts = self.counts.stream(int(fields["source"]), int(fields.get("stream", 0)))
        sequence = int(fields["sequence"])
        if sequence <= counts.last_sequence:
            counts.duplicates += 1
            return "duplicate"
        try:
            self._store({k: np.asarray(v)[None] for k, v in fields.items()})
        except ValueError:
            self.counts.refused += 1
            raise
        self._count(counts, sequence, fields)
        if self.log is not None:
            self.log.append(fields)
        return "added"

    def _count(self, counts: StreamCounts, sequence: int, fields) -> None:
        counts.lost += sequence - counts.last_sequence - 1
        counts.last_sequence = sequence
        counts.received += 1
        counts.open_episode = not (fields["terminal"] or fields["truncated"])

    def restore(self, batches) -> int:
        """Transitions persisted by a replay log (``ReplayLog.load``), added again in order."""
        restored = 0
        for batch in batches:
            keep = []
            for i in range(len(batch["sequence"])):
                counts = self.counts.stream(int(batch["source"][i]), int(batch["stream"][i]))
                sequence = int(batch["sequence"][i])
                if sequence <= counts.last_sequence:
                    continue                      # a redelivered duplicate that was logged twice
                self._count(counts, sequence, {k: batch[k][i] for k in ("terminal", "truncated")})
                keep.append(i)
            if keep:
                self._store({k: v[keep] for k, v in batch.items()})
                restored += len(keep)
        return restored

    def _store(self, batch: dict) -> None:
        """A batch of transitions into the replay: a person's chunks (``expert``: an
        intervention) beside the demonstrations, the policy's with the online data. Once an
        episode ends (terminal or truncated), its transitions get the discounted return they
        earned (``mc_return``: nothing after its end)."""
        n = len(batch["sequence"])
        expert = np.asarray(batch.get("expert", np.zeros(n)), dtype=bool)
        placed = [None] * n
        for rows, store, add in ((~expert, "online", self.buffer.add), (expert, "expert", self.buffer.add_expert)):
            if rows.any():
                index = add(*self._normalised({k: np.asarray(v)[rows] for k, v in batch.items()}))
                for i, row in zip(np.flatnonzero(rows), index.tolist()):
                    placed[i] = (store, row)
        gamma = self.model.config.critic.gamma
        sources, streams = np.asarray(batch["source"]), np.asarray(batch.get("stream", np.zeros(n)))
        for i in range(n):
            key = (int(sources[i]), int(streams[i]))
            if key not in self.open_episodes:       # a restarted bridge's open episode never ends: dropped
                for old in [k for k in self.open_episodes if k[0] == key[0]]:
                    del self.open_episodes[old]
            episode = self.open_episodes.setdefault(key, [])
            episode.append((*placed[i], float(batch["reward"][i]), float(batch["steps"][i])))
            if batch["terminal"][i] or batch["truncated"][i]:
                del self.open_episodes[key]
                earned, returns = 0.0, {"online": ([], []), "expert": ([], [])}
                for store, row, reward, steps in reversed(episode):
                    earned = reward + gamma ** steps * earned
                    returns[store][0].append(row)
                    returns[store][1].append(earned)
                for store, (rows, values) in returns.items():
                    if rows:
                        self.buffer.set_returns(store, rows, values)

    def _normalised(self, fields: dict):
        """A batch of transitions (first dimension) in the buffer's units."""
        obs_dim = self.model.info.obs_dim
        obs, next_obs = (np.asarray(fields[k], np.float64) for k in ("obs", "next_obs"))
        action = np.asarray(fields["action"], np.float64)
        n = obs.shape[0]
        if obs.shape != (n, obs_dim) or next_obs.shape != (n, obs_dim) or action.shape != (n, self.action_size):
            raise ValueError(f"transition: expected obs/next_obs of {obs_dim} and action of {self.action_size} "
                             f"values, got {obs.shape[1:]}, {next_obs.shape[1:]}, {action.shape[1:]}")
        normalise = self.model.obs_normalizer.normalize
        scalar = lambda name: np.asarray(fields[name], np.float32).reshape(n)  # noqa: E731
        terminal = scalar("terminal") != 0
        if self.model.config.critic.truncation == "failure":
            terminal |= scalar("truncated") != 0         # cut short without success: nothing after
        return (np.clip(normalise(obs), -OBS_CLIP, OBS_CLIP).astype(np.float32),
                normalise_chunks(self.model.action_normalizer, action, self.model.info.act_dim).astype(np.float32),
                scalar("reward"), np.clip(normalise(next_obs), -OBS_CLIP, OBS_CLIP).astype(np.float32),
                terminal.astype(np.float32), scalar("steps"))

    @property
    def online_size(self) -> int:
        return self.buffer.online.size

    # -- learning -----------------------------------------------------------------------------
    def update(self) -> dict:
        return self.agent.update(self.buffer)

    def critic_diagnostic(self) -> dict:
        """For a learning curve's row: ``value_error`` of the current critic on the held-out
        demonstrations as ``critic_error``, ``q_start`` and ``return_start`` (empty without them)."""
        if not self.held_out:
            return {}
        check = value_error(self.agent.critic, self.held_out)
        return {"critic_error": round(check["mean_abs_error"], 4), "q_start": round(check["q_start"], 4),
                "return_start": round(check["return_start"], 4)}

    def snapshot(self, path, card: str) -> Path:
        """The current weights as a model directory (atomic: a crash leaves no half model)."""
        return save_model(path, self.agent, self.model.info, self.model.obs_normalizer, self.model.action_normalizer,
                          card)
