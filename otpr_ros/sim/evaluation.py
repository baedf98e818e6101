"""Policy evaluation on the simulated tasks (``otpr_ros.sim.tasks``), episodes in parallel worker processes.

Each worker owns one environment and one policy (torch limited to one thread, so two
workers share two cores without oversubscription) and runs whole episodes: observation
-> chunk -> ``BridgeSession.run_chunk`` (the model's ``agent.execute_steps`` of it), until success
or the horizon.
"""

import math
from dataclasses import asdict, dataclass, replace

import numpy as np

from otpr_ros.sim.worker_pool import spawn_pool

_worker = {}


@dataclass(frozen=True)
class EvalSettings:
    task: str
    model_dir: str
    backend: str = "torch"
    num_candidates: int | None = None
    selection: str = "argmax"
    horizon: int | None = None
    overrides: tuple = ()        # acting settings (``otpr-finetune --set`` form), e.g. ("transport.beta=0",)
    chain_length: int = 1        # calvin_multi: instructions per episode (CALVIN's long-horizon evaluation: 5)


def acting_model(settings: EvalSettings):
    """The model directory, or the model loaded with ``settings.overrides`` applied (torch
    only: an ONNX graph holds the exported cost). A ValueError names a bad override."""
    if not settings.overrides:
        return settings.model_dir
    if settings.backend != "torch":
        raise ValueError(f"overrides {list(settings.overrides)}: only the torch backend can act with changed "
                         f"settings (the ONNX graph holds the exported ones)")
    from otpr_ros.model.directory import load_model
    from otpr_ros.training.online_learning import apply_overrides
    model = load_model(settings.model_dir)
    apply_overrides(model, settings.overrides)
    return model


def evaluation_candidates(model_dir) -> int:
    """L for evaluation from the model directory's config (``policy.evaluation_candidates``)."""
    from pathlib import Path

    from otpr_ros.core.config import OTPRConfig
    from otpr_ros.model.policy import evaluation_candidates as from_config
    return from_config(OTPRConfig.from_yaml(Path(model_dir) / "config.yaml"))


def _init_worker(settings: EvalSettings):
    import torch

    from otpr_ros.model.policy import ChunkPolicy
    from otpr_ros.sim.tasks import make_env
    torch.set_num_threads(1)
    policy = ChunkPolicy(acting_model(settings), settings.backend, settings.num_candidates, settings.selection)
    _worker["policy"] = policy
    _worker["env"] = make_env(settings.task, settings.horizon, settings.chain_length, policy.model.info.obs_keys)


def run_policy_episode(seed: int) -> dict:
    from otpr_ros.sim.bridge_session import BridgeSession

    policy = _worker["policy"]
    policy.rng = np.random.default_rng(seed)     # the episode is a function of its seed
    session = BridgeSession(_worker["env"], None, gamma=1.0, first_seed=seed)
    session.reset()
    while not session.done:
        session.run_chunk(policy.decide, policy.execute_steps)
    summary, _ = session.end_episode()
    record = {"seed": seed, "success": summary.success, "length": summary.length, "return": summary.return_,
              "provider": policy.backend.provider}
    chain = getattr(_worker["env"], "chain", None)         # CALVIN: the instructions and how many were done
    if chain is not None:
        record.update(tasks=list(chain.tasks), tasks_completed=chain.completed)
    return record


def wilson_interval(successes: int, n: int, z: float = 1.96):
    """95 % Wilson score interval of a success rate."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass
class EvalSummary:
    episodes: int
    successes: int
    success_rate: float
    ci95: tuple
    mean_length: float
    seeds: list
    mean_return: float = 0.0     # undiscounted (Franka Kitchen: sub-tasks done, 0-4; robomimic: the success rate)
    return_ci95: tuple = (0.0, 0.0)      # 95 % interval of the mean return (normal approximation)

    def to_dict(self) -> dict:
        return asdict(self)

    def record(self) -> dict:
        """What a benchmark keeps of an evaluation: episodes, rate, interval and length, rounded."""
        return {"episodes": self.episodes, "success_rate": self.success_rate,
                "ci95": [round(x, 3) for x in self.ci95], "mean_length": round(self.mean_length, 1)}


def success_cell(success_rate: float, ci95) -> str:
    """A success rate and its 95 % interval as the README's tables write them: '74% (60%-84%)'."""
    low, high = ci95
    return f"{success_rate:.0%} ({low:.0%}-{high:.0%})"


def score_cell(summary: "EvalSummary") -> str:
    """Franka Kitchen's result as the paper reports it: the normalised score (D4RL's: 100 x mean
    sub-tasks done / 4) with its 95 % interval, e.g. 'normalised score 62.5 (55.0-70.0)'."""
    from otpr_ros.sim.kitchen_env import normalised_score
    low, high = (normalised_score([max(0.0, r)]) for r in summary.return_ci95)
    return f"normalised score {normalised_score([summary.mean_return]):.1f} ({low:.1f}-{high:.1f})"


def instruction_cells(records) -> str:
    """CALVIN episodes by instruction: the first instruction's success per task, e.g.
    'open_drawer 5/7, turn_on_led 6/6'."""
    counts = {}
    for record in records:
        done = counts.setdefault(record["tasks"][0], [0, 0])
        done[0] += record["tasks_completed"] >= 1
        done[1] += 1
    return ", ".join(f"{task} {done}/{n}" for task, (done, n) in sorted(counts.items()))


def chain_cells(records, length: int) -> str:
    """CALVIN's long-horizon metric: the share of chains with at least i instructions done in a
    row (i = 1..length) and the average number done, e.g. '1: 90% 2: 70% ... average 2.80 of 5'."""
    done = np.array([r["tasks_completed"] for r in records])
    return " ".join(f"{i}: {np.mean(done >= i):.0%}" for i in range(1, length + 1)) + \
        f", average {done.mean():.2f} of {length}"


SEEDS_PER_BRIDGE = 1_000_000       # bridge i starts from seed i * this: bridges never share a scene


def seed_overlap(validation_seed: int, episodes: int, others: dict) -> str | None:
    """The name of the first of ``others`` (name -> range of seeds) that the ``episodes``
    validation seeds from ``validation_seed`` share, or None when they are apart from all:
    the one rule by which ``otpr-finetune`` and the learner keep choosing apart from measuring
    and from training."""
    validation = range(validation_seed, validation_seed + episodes)
    for name, other in others.items():
        if validation.start < other.stop and other.start < validation.stop:
            return name
    return None


def check_guided_candidates(number: int) -> None:
    """ValueError unless ``number`` is 0 (no guided evaluation) or >= 2 candidates."""
    if number < 0 or number == 1:
        raise ValueError(f"guided_candidates: expected 0 (no guided evaluation) or a number of candidates >= 2 "
                         f"to take the arg-max of, got {number}")


def check_validation_seed(validation_seed, episodes: int, held_out_seed: int, training_seeds, span: int) -> None:
    """ValueError naming the overlap when the ``episodes`` validation seeds from
    ``validation_seed`` (None: no validation) share a seed (``seed_overlap``) with a fine-tuning
    run's held-out seeds (``episodes`` from ``held_out_seed``) or its training episodes'
    (``span`` from each of ``training_seeds``: a training episode takes at least one env step)."""
    overlap = validation_seed is not None and seed_overlap(validation_seed, episodes, {
        f"held-out seeds from {held_out_seed}": range(held_out_seed, held_out_seed + episodes),
        **{f"training seeds from {first}": range(first, first + span) for first in training_seeds}})
    if overlap:
        raise ValueError(f"validation seed {validation_seed}: its {episodes} seeds overlap the {overlap}; a choice "
                         "made on them would not be measured on unseen seeds: choose a range apart from both")


def summarise(records) -> EvalSummary:
    successes = sum(r["success"] for r in records)
    n = len(records)
    returns = np.array([r.get("return", float(r["success"])) for r in records], dtype=np.float64)
    return EvalSummary(n, successes, successes / n if n else 0.0, wilson_interval(successes, n),
                       float(np.mean([r["length"] for r in records])) if n else 0.0, [r["seed"] for r in records],
                       float(returns.mean()) if n else 0.0, mean_interval(returns))


def mean_interval(values, z: float = 1.96) -> tuple:
    """95 % interval of a mean (normal approximation; (0, 0) for no values, the value itself for one)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return 0.0, 0.0
    half = z * values.std(ddof=1) / np.sqrt(values.size) if values.size > 1 else 0.0
    return float(values.mean() - half), float(values.mean() + half)


def evaluate(settings: EvalSettings, seeds, processes: int = 2, progress=None) -> tuple[EvalSummary, list]:
    """``settings.num_candidates`` None: from the model's config (``evaluation_candidates``)."""
    seeds = list(seeds)
    if settings.num_candidates is None:
        settings = replace(settings, num_candidates=evaluation_candidates(settings.model_dir))
    records = []
    with spawn_pool(min(processes, len(seeds)), _init_worker, (settings,)) as pool:
        for record in pool.map(run_policy_episode, seeds):
            records.append(record)
            if progress:
                progress(record)
    return summarise(records), records
