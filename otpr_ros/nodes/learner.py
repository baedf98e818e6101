"""learner: transitions in, fine-tuned policy out (otpr_ros/training/online_learning.py).

Subscribes ``transition`` (any number of bridges or recorders, one deep reliable queue), stores
them beside the expert demonstrations, and once ``warmup_transitions`` have arrived runs OTPR
updates at ``updates_per_transition`` updates per received transition. At its start (the weights
as they come, with the run's settings: the servers act by them from the first chunk) and every
``publish_every`` updates it writes the weights as ``<output_dir>/policy/v<version>`` (a model directory,
atomically) and announces it on ``policy_update`` (latched, signed with ``update_key``, versions
of this run: ``<output_dir>/run_id``); the policy servers swap it in. Transitions arrive into an
inbox on an executor thread of their own; updates run in short slices, and between two updates
the inbox is taken, the replay log written and acknowledged, the status published (``~/status``,
JSON, 1 Hz), every 30 s a progress line logged (TensorBoard: ``<output_dir>/tensorboard``).

Nothing learned is lost to a crash (otpr_ros/training/learner_store.py): received transitions
are appended to ``<output_dir>/replay`` in checksummed chunks every ``replay_flush_every`` s,
and only then acknowledged on ``learner_progress`` (latched), which also tells fast-mode bridges
how many transitions the learner is ready for (its update-to-data ratio plus
``max_lead_transitions``). The whole learning state is checkpointed atomically to
``<output_dir>/checkpoints`` with a snapshot, at most every ``checkpoint_every`` s. A learner
started on an ``output_dir`` with a checkpoint resumes from the newest complete one and the
replay log (``resume``), takes what it missed from the bridges' transient-local history, and
publishes versions above every one it published before.
"""

import json
import os
import sys
import threading
import time
from collections import deque
from pathlib import Path

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rclpy.task import Future
from std_msgs.msg import Float32MultiArray, String

from otpr_ros.model.directory import ModelError, read_config
from otpr_ros.model.update_auth import load_key
from otpr_ros.nodes.bus_messages import (LATCHED, TRANSITION_FIELDS, TRANSITION_QOS, learner_progress_message,
                                         policy_update_message, transition_fields)
from otpr_ros.nodes.node_main import CPU_THREADS, apply_cpu_threads, declare_parameters, run_node, status_topic
from otpr_ros.package_files import shipped_model
from otpr_ros.sim.evaluation import SEEDS_PER_BRIDGE, check_validation_seed
from otpr_ros.training.learner_store import Checkpoints, PolicySnapshots, ReplayLog, check_fresh_output, run_id
from otpr_ros.training.loop import OnlineRun
from otpr_ros.training.online_learning import OnlineLearner, overridden_config
from otpr_ros.training.schedule import EvaluationSchedule

SLICE_SECONDS = 0.2        # s of updates before the executor has its thread back
STATUS_PERIOD = 1.0        # s between two ~/status messages
PROGRESS_PERIOD = 30.0     # s between two progress lines in the log
SEEDS = (0, 2**31 - 1)
# the learner's parameters: name, default, description, (low, high) or None, read-only
PARAMETERS = (
    ("task", "lift", "simulated task: lift | can | square | kitchen_complete | kitchen_partial | kitchen_mixed "
     "| calvin_<task>", None, True),
    ("model_dir", "", "model to fine-tune; empty: the shipped model of the task", None, True),
    ("datasets", [""], "expert demonstrations (HDF5); empty: the model's pre-training datasets", None, True),
    ("device", "auto", "auto (CUDA when present) | cpu | cuda[:i]", None, True),
    ("seed", 0, "seed of the learner's draws (batches, noise); otpr-finetune's --seed", SEEDS, True),
    ("output_dir", "runs/finetune", "published snapshots and TensorBoard logs", None, True),
    ("updates_per_transition", 1.0, "update-to-data ratio: OTPR updates per received transition", (0, 64), False),
    ("warmup_transitions", 64, "online transitions before the first update", (0, 10**7), False),
    ("publish_every", 50, "updates between two policy_update snapshots", (1, 10**6), False),
    ("max_lead_transitions", 64, "fast-mode bridges may run this many transitions ahead of the update-to-data "
     "ratio", (1, 10**6), False),
    ("replay_flush_every", 1.0, "s between two writes of received transitions to the replay log (then "
     "acknowledged)", (0.05, 60), False),
    ("checkpoint_every", 30.0, "s: at most one checkpoint of the whole learning state per this time (written with "
     "a snapshot)", (0, 3600), False),
    ("resume", True, "resume from the newest checkpoint and the replay log in output_dir, when there is one", None,
     True),
    ("overrides", [""], "fine-tuning settings section.key=value (otpr-finetune --set), e.g. agent.actor_batch=256",
     None, True),
    ("max_env_steps", 0, "stop after this many environment steps (final snapshot and evaluation); 0: never",
     (0, 10**9), True),
    ("eval_every", 0, "environment steps between held-out evaluations of the weights (a separate process, robomimic "
     "tasks); 0: none", (0, 10**9), True),
    ("eval_episodes", 50, "episodes per evaluation", (1, 10000), True),
    ("eval_seed", 100000, "first held-out seed", SEEDS, True),
    ("keep_evaluated", False, "keep every evaluated snapshot under <output_dir>/evaluated (else the newest and the "
     "final)", None, True),
    ("training_seeds", [0], "first episode seed of each bridge feeding this learner (the launch sets them); each "
     f"uses up to max_env_steps seeds from it ({SEEDS_PER_BRIDGE} when unbounded)", None, True),
    ("update_key", "", "file holding the key that signs each policy_update (otpr-keygen); empty: unsigned, and "
     "any participant on the domain may swap the servers' policy", None, True),
    ("guided_candidates", 0, "L of a second held-out evaluation at each point acting by the arg-max of the acting "
     "weights over L candidates (curve.csv guided_success_rate); 0: none", (0, 64), True),
    ("validation_seed", -1, "first seed of validation episodes (eval_episodes of them) run beside each held-out "
     "evaluation; the weights they rate best are copied to <output_dir>/selected; -1: none", (-1, SEEDS[1]), True),
) + (CPU_THREADS,)


class Learner(Node):
    def __init__(self):
        super().__init__("learner")
        self.core = self.schedule = None     # destroy_node runs also when construction fails
        # _learn's slices run on an executor thread while the main thread may destroy the node
        # (finished, or stopped): destroy_node waits for the slice in flight, and later ones do
        # nothing (a CI run lost a replay chunk's file to both writing it at once)
        self.working, self.destroyed = threading.Lock(), False
        declare_parameters(self, PARAMETERS)
        apply_cpu_threads(self)
        value = lambda name: self.get_parameter(name).value  # noqa: E731
        episodes, held_out, validation = value("eval_episodes"), value("eval_seed"), value("validation_seed")
        validation = validation if validation >= 0 else None
        span = value("max_env_steps") or SEEDS_PER_BRIDGE        # a training episode takes >= 1 step
        check_validation_seed(validation, episodes, held_out, value("training_seeds"), span)
        model_dir = value("model_dir") or str(shipped_model(value("task")))
        config = read_config(model_dir)                  # checked before the demonstrations load
        executed = overridden_config(config, [o for o in value("overrides") if o]).agent.execute_steps
        if executed != config.agent.execute_steps:       # the bridge (or robot) reads model_dir's
            raise ValueError(f"overrides: agent.execute_steps {executed} is not the model's "
                             f"{config.agent.execute_steps}: over ROS 2 the bridge or the robot executes the "
                             f"chunks, as {model_dir}/config.yaml says; set it there")
        self.core = OnlineLearner.for_task(value("task"), model_dir, value("device"), value("overrides"),
                                           value("datasets"), value("seed"))
        self.output = Path(value("output_dir"))
        self.publish_every, self.lead, self.checkpoint_every, self.flush_every = (value(name) for name in (
            "publish_every", "max_lead_transitions", "checkpoint_every", "replay_flush_every"))
        self.snapshots = PolicySnapshots(self.output / "policy")
        self.schedule = EvaluationSchedule(self.output, value("task"), episodes, held_out, validation,
                                           value("eval_every"), value("max_env_steps"),
                                           keep_evaluated=value("keep_evaluated"),
                                           guided_candidates=value("guided_candidates"),
                                           title=f"OTPR fine-tuning over ROS 2, {value('task')}")
        check_fresh_output(self.output, value("resume"))
        self.key = load_key(value("update_key")) if value("update_key") else None
        self.run_id = run_id(self.output, value("resume"))
        self.checkpoints = Checkpoints(self.output / "checkpoints")
        self.resumed_from = None
        self.last_checkpoint = time.monotonic()
        self.core.log = ReplayLog(self.output / "replay", TRANSITION_FIELDS)
        from torch.utils.tensorboard import SummaryWriter
        self.writer = SummaryWriter(str(self.output / "tensorboard"))
        self.run = OnlineRun(self.core, value("updates_per_transition"), value("warmup_transitions"), self.writer,
                             value("max_env_steps"))
        resumed = self._resume() if value("resume") else None
        # agent.compile_updates: torch.compile runs now, before the node subscribes (a starting
        # learner is waited for), not in the first update, which would leave the bridges stopped
        # mid-episode at max_unacknowledged for as long as it compiles
        compiled_in = self.core.agent.compile_updates_now(self.core.buffer)
        self.finished = Future()

        # transient local: transitions published before this node was up are delivered too. They
        # are taken on a thread of their own into the inbox while an update runs (one executor
        # thread would take one message per update), and stored between two updates.
        self.inbox = deque()
        self.executor_threads = 2
        self.create_subscription(Float32MultiArray, "transition", lambda msg: self.inbox.append(msg), TRANSITION_QOS,
                                 callback_group=MutuallyExclusiveCallbackGroup())
        self.update_pub = self.create_publisher(String, "policy_update", LATCHED)
        self.progress_pub = self.create_publisher(String, "learner_progress", LATCHED)
        self.publish_status = status_topic(self, period=None)      # on the loop's own clock, below
        # One timer for learning and the periodic work, which also runs between two updates: timers
        # of their own would starve behind the learning timer, and the bridges would wait for
        # acknowledgements the learner has already earned.
        self.next_flush = self.next_status = time.monotonic()
        self.create_timer(0.01, self._learn)
        if self.schedule.every and resumed is None:     # the first row: the model as it comes (BC only)
            self.schedule.queue(self.core, self.run.row())
        self.get_logger().info(self.core.describe() + (f"; resumed: {resumed}" if resumed else ""))
        self.get_logger().info(self.core.settings())
        if compiled_in is not None:
            self.get_logger().info(f"updates compiled before subscribing: {compiled_in:.1f} s")
        if self.key is None:
            self.get_logger().warning("policy updates are unsigned (no update_key): servers without a key take any "
                                      "participant's, servers with one refuse these")
        # The weights as they start (a resumed run's as a newer version), so that the servers act by
        # this run's settings (its overrides: L, acting weights) from the first chunk, as
        # otpr-finetune acts, and not by the served model's until the first update is published.
        self._publish_snapshot()
        self._publish_progress()

    # -- persistence ----------------------------------------------------------------------------
    def _resume(self) -> str | None:
        """The newest complete checkpoint and every persisted transition, if there are any."""
        self.resumed_from, learner, report = self.run.resume(self.checkpoints, self.get_logger().warning)
        if report is None:
            return None
        if learner is not None:
            self.schedule.restore(learner)
        return f"{report}; version {self.snapshots.resume(learner['version'] if learner else 0)}"

    def destroy_node(self) -> None:
        with self.working:
            self.destroyed = True
            if self.core is not None and self.core.log is not None:
                self.core.log.flush()            # stopped (Ctrl-C, SIGTERM): what arrived is kept
            if self.schedule is not None:
                self.schedule.stop()
        super().destroy_node()

    def _publish_progress(self) -> None:
        wanted = self.run.wanted(self.lead, self.schedule.finishing)     # finishing: no more acting
        self.progress_pub.publish(learner_progress_message(self.core.log.acknowledged, self.run.received, wanted,
                                                           self.run.updates, self.snapshots.version))

    def _on_transition(self, msg: Float32MultiArray) -> None:
        try:
            fields = transition_fields(msg, self.core.model.info.obs_dim, self.core.action_size)
        except ValueError as error:
            self.core.counts.refused += 1
            self.get_logger().warning(f"transition refused: {error}", throttle_duration_sec=5.0)
            return
        try:
            self.run.add(fields)     # counts its own refusals
        except ValueError as error:
            self.get_logger().warning(f"transition refused: {error}", throttle_duration_sec=5.0)

    def _take_inbox(self) -> None:
        """Received transitions into the run, up to one that makes an evaluation due: the rest
        wait until the updates owed so far are done and the evaluation is queued (what
        ``otpr-finetune`` does after each chunk, so both evaluate the same weights)."""
        while self.inbox and not self.schedule.pending(self.run.env_steps):
            self._on_transition(self.inbox.popleft())

    def _periodic(self) -> None:
        """Transitions taken, persisted and acknowledged, status published, when due."""
        self._take_inbox()
        now = time.monotonic()
        if now >= self.next_flush:             # received transitions to disk, then acknowledged (with the pace)
            self.next_flush = now + self.flush_every
            self.core.log.flush()
            self._publish_progress()
        if now >= self.next_status:
            self.next_status = now + STATUS_PERIOD
            self.publish_status()
            self.get_logger().info(self.run.progress(self.schedule.budget, (self.schedule.rows or [None])[-1]),
                                   throttle_duration_sec=PROGRESS_PERIOD)

    def _learn(self) -> None:
        with self.working:
            if not self.destroyed:
                self._learn_slice()

    def _learn_slice(self) -> None:
        self._periodic()
        end = time.perf_counter() + SLICE_SECONDS
        while not self.schedule.finishing and self.run.update_due and time.perf_counter() < end:
            self.run.update()
            self._periodic()
            if self.run.updates % self.publish_every == 0:
                self._publish_snapshot()
        self._evaluate_when_due()

    def _evaluate_when_due(self) -> None:
        """Held-out evaluations in a separate process (acting and learning go on meanwhile),
        each once the updates owed to the transitions before it are done; at the budget: a
        last snapshot, a last evaluation, then the node is finished."""
        row = self.schedule.poll()
        if row is not None:
            self.get_logger().info(self.schedule.report(row, self.writer))
        if not self.run.update_due and self.run.evaluate_when_due(self.schedule) == "final":
            self._publish_snapshot(checkpoint=True)
        if self.schedule.finished and not self.finished.done():
            self.get_logger().info(f"done after {self.run.env_steps} env steps, {self.run.updates} updates: "
                                   f"{json.dumps(self.status())}")
            self.finished.set_result(True)

    def _publish_snapshot(self, checkpoint: bool = False) -> None:
        version, path, sha = self.snapshots.write(self.core, (
            f"# Fine-tuned by the otpr_ros learner\n\nFrom `{self.core.model.path}`, version "
            f"{self.snapshots.version + 1}, {self.run.updates} updates on {self.core.online_size} online transitions.\n"))
        if checkpoint or time.monotonic() - self.last_checkpoint >= self.checkpoint_every:
            # before announcing: a restart never re-issues this version
            self.run.checkpoint(self.checkpoints, **self.schedule.state(), version=self.snapshots.version)
            self.last_checkpoint = time.monotonic()
        self.update_pub.publish(policy_update_message(self.run_id, version, str(path.resolve()), sha, self.key))
        self.writer.add_scalar("learner/version", version, self.run.updates)

    def status(self) -> dict:
        return {**self.core.counts.summary(), "pid": os.getpid(), "online": self.core.online_size,
                "updates": self.run.updates, "env_steps": self.run.env_steps, "evaluations": self.schedule.rows,
                "inbox": len(self.inbox), "run": self.run_id, "version": self.snapshots.version,
                "resumed_from": self.resumed_from, "updates_per_s": self.run.updates_per_s, **self.run.rates(),
                **{k: float(v) for k, v in self.run.metrics.items()}}


def main(args=None) -> int:
    return run_node("learner", Learner, args, (ModelError, ValueError, OSError))


if __name__ == "__main__":
    sys.exit(main())
