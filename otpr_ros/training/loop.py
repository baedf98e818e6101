"""The online loop of a fine-tuning run (ALGORITHM.md, "The loop"), whoever feeds it.

Transitions in robot units are added as they come (``add``); once ``warmup`` have been
received, an OTPR update is due whenever ``updates < utd * received`` (the update-to-data
ratio, counted on every transition received, not on what the replay ring still holds). Each
update tells the agent where the run stands in its env-step ``budget`` (the actor's rate
schedule, ``diffusion.finetune_lr_schedule``). The run counts environment steps, episodes and
update time, logs each tenth update's metrics to TensorBoard, and gives the rows of the
learning curve. The learner node calls it from its timer between bus work; ``otpr-finetune``
after each chunk it runs.
"""

import time
from collections import deque

from otpr_ros.training.online_learning import OnlineLearner

RECENT_EPISODES = 20      # training episodes the progress line's success rate is over
METRICS_EVERY = 10        # updates between two TensorBoard writes of the update's metrics
# learning curve columns: means of an update metric over the updates since the previous row
ROW_MEANS = {"guidance_ess": "actor/guidance_ess", "online_share": "critic/online_share"}


class OnlineRun:
    def __init__(self, core: OnlineLearner, utd: float, warmup: int, writer=None, budget: int = 0):
        """``budget``: the run's env steps (0: unbounded, which a rate schedule refuses)."""
        schedule = core.model.config.diffusion.finetune_lr_schedule
        if schedule != "constant" and budget <= 0:
            raise ValueError(f"diffusion.finetune_lr_schedule={schedule} anneals the actor's rate over the run's "
                             "env-step budget, and this run has none: set its budget (max_env_steps, --env-steps) "
                             "or use the constant rate")
        self.core, self.utd, self.warmup, self.writer, self.budget = core, utd, warmup, writer, budget
        self.updates, self.update_seconds, self.metrics = 0, 0.0, {}
        self.since_row = dict.fromkeys(ROW_MEANS, (0.0, 0))     # sums and counts since the last row
        self.env_steps = self.episodes = 0
        self.outcomes = deque(maxlen=RECENT_EPISODES)      # success (terminal) of the latest episodes
        self.start = time.perf_counter()

    # -- data ---------------------------------------------------------------------------------
    def add(self, fields: dict) -> str:
        """One transition (``OnlineLearner.add``); an added one counts its steps and episode end."""
        result = self.core.add(fields)
        if result == "added":
            self.env_steps += int(fields["steps"])
            if fields["terminal"] or fields["truncated"]:
                self.episodes += 1
                self.outcomes.append(bool(fields["terminal"]))
        return result

    @property
    def received(self) -> int:
        return self.core.counts.received

    def wanted(self, lead: int, finishing: bool = False) -> int | None:
        """How many transitions the run is ready for: the update-to-data ratio's worth plus
        ``lead`` (what it has once finishing; None when it does not learn, utd 0)."""
        if finishing:
            return self.received
        return int(max(self.warmup, self.updates / self.utd)) + lead if self.utd > 0 else None

    # -- learning -----------------------------------------------------------------------------
    @property
    def update_due(self) -> bool:
        received = self.received
        return received >= self.warmup and self.updates < self.utd * received

    def update(self) -> dict:
        start = time.perf_counter()
        if self.budget:
            self.core.agent.set_progress(self.env_steps / self.budget)
        self.metrics = self.core.update()
        self.update_seconds += time.perf_counter() - start
        self.updates += 1
        for column, metric in ROW_MEANS.items():
            if metric in self.metrics:
                total, count = self.since_row[column]
                self.since_row[column] = (total + float(self.metrics[metric]), count + 1)
        if self.writer is not None and self.updates % METRICS_EVERY == 0:
            for tag, value in {**self.metrics, **{f"learner/{k}": v for k, v in self.rates().items()}}.items():
                self.writer.add_scalar(tag, value, self.updates)
        return self.metrics

    @property
    def updates_per_s(self) -> float | None:
        """Updates per second of updating (what the update itself costs)."""
        return self.updates / self.update_seconds if self.update_seconds else None

    def rates(self) -> dict:
        """Where the run's time goes, since it started: updates and environment steps per
        second of wall time, and the share of that time spent updating (near 1: the learner
        sets the pace and sources wait for it; near 0: the sources do)."""
        wall = max(time.perf_counter() - self.start, 1e-9)
        return {"updates_per_s_wall": self.updates / wall, "env_steps_per_s": self.env_steps / wall,
                "learning_share": self.update_seconds / wall}

    def progress(self, budget: int = 0, evaluation: dict | None = None) -> str:
        """One line for a person watching: env steps of the budget, updates and their rate, the
        training episodes' success, the latest held-out evaluation (a curve row)."""
        line = f"{self.env_steps}{f'/{budget}' if budget else ''} env steps, {self.updates} updates"
        if self.updates_per_s is not None:
            line += f" ({self.updates_per_s:.2f}/s)"
        line += f", {self.episodes} episodes"
        if self.outcomes:
            line += f", training success {sum(self.outcomes) / len(self.outcomes):.0%} (last {len(self.outcomes)})"
        if evaluation is not None:
            line += f", held-out {evaluation['success_rate']:.0%} at {evaluation['env_steps']} env steps"
        return line

    # -- the curve ----------------------------------------------------------------------------
    def row(self, **extra) -> dict:
        """A learning curve row before its evaluation: counters, the critic's diagnostic, and
        the means of ``ROW_MEANS`` over the updates since the previous row (empty without any)."""
        means = {column: round(total / count, 4) for column, (total, count) in self.since_row.items() if count}
        self.since_row = dict.fromkeys(ROW_MEANS, (0.0, 0))
        return {"env_steps": self.env_steps, "updates": self.updates, "episodes": self.episodes,
                "wall_s": round(time.perf_counter() - self.start, 1), **extra, **self.core.critic_diagnostic(),
                **means}

    def evaluate_when_due(self, schedule, **extra) -> str | None:
        """Queue the evaluation ``schedule`` has due now (with the row's ``extra`` fields); its kind."""
        kind = schedule.due(self.env_steps)
        if kind is not None and schedule.every:
            schedule.queue(self.core, self.row(**extra), final=kind == "final")
        return kind

    # -- persistence --------------------------------------------------------------------------
    def state(self) -> dict:
        return {"updates": self.updates, "update_seconds": self.update_seconds,
                "wall_s": time.perf_counter() - self.start}

    def restore(self, state: dict) -> None:
        self.updates, self.update_seconds = state["updates"], state["update_seconds"]
        self.start -= state["wall_s"]

    def checkpoint(self, checkpoints, **extra) -> None:
        """The whole learning state (networks, optimisers, generator, keypoints, counters, and
        ``extra``, e.g. the schedule's state) as checkpoint ``u<updates>`` (``learner_store``)."""
        agent = self.core.agent
        checkpoints.save(f"u{self.updates:09d}", {
            "agent": {k: v for k, v in agent.state_dict().items() if k != "config"},
            "generator": agent.generator.get_state(), "keypoint_index": self.core.buffer.keypoint_index.cpu(),
            "learner": {**self.state(), **extra}})

    def resume(self, checkpoints, warn=print) -> tuple[str | None, dict | None, str | None]:
        """The newest complete checkpoint and every transition in the core's replay log, if
        there are any: (its name, its ``learner`` state with the ``extra`` saved beside, a
        report); (None, None, None) when there is nothing to resume. ``warn`` hears of every
        damaged checkpoint or replay chunk that was skipped."""
        path, state, skipped = checkpoints.latest(map_location=self.core.agent.device)
        for name in skipped:
            warn(f"checkpoint {name} is incomplete or damaged: skipped")
        batches, report = self.core.log.load()
        for name in report["damaged"]:
            warn(f"replay chunk {name} is damaged (checksum): its transitions are skipped")
        if path is None and not batches:
            return None, None, None
        learner = None
        if path is not None:
            agent = self.core.agent
            agent.load_state_dict(state["agent"])
            agent.generator.set_state(state["generator"].cpu())    # a generator's state lives on the CPU
            self.core.buffer.keypoint_index = state["keypoint_index"].to(self.core.buffer.device)
            learner = state["learner"]
            self.restore(learner)
        restored = self.core.restore(batches)
        for batch in batches:
            self.env_steps += int(batch["steps"].sum())
            self.episodes += int(((batch["terminal"] != 0) | (batch["truncated"] != 0)).sum())
        return (path.name if path is not None else None, learner,
                f"checkpoint {path.name if path else '(none)'} ({self.updates} updates), {restored} transitions "
                f"from {report['chunks']} replay chunks"
                + (f", {len(report['damaged'])} damaged chunks skipped" if report["damaged"] else ""))
