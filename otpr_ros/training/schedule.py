"""When a fine-tuning run is evaluated, how, and which weights it keeps (the learner node and
``otpr-finetune`` alike).

Held-out evaluations every ``every`` environment steps (the first row: the model before
fine-tuning) and a final one when the budget is spent. Each evaluates a snapshot by
``otpr-evaluate`` in a child process, one at a time, so learning goes on meanwhile (a driver
that wants to wait calls ``wait``); each row goes to ``<output>/curve.csv`` and ``curve.png``.
With ``guided_candidates`` L each snapshot is also run on the held-out seeds acting by the
arg-max of its acting weights over L candidates (H, or Q under ``agent.acting_weights: q``;
before the potentials are trained Q, as IDQL's two-level weights have no arg-max to speak
of): the weights' ranking put to the test, episode for episode beside the plain policy
(``guided_success_rate``). With validation seeds every snapshot is also run on those, and
the one they rate best (ties: the earlier) is copied to ``<output>/selected``: the held-out
seeds only measure, the validation seeds only choose.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from otpr_ros.learning_curve import write_curve
from otpr_ros.model.directory import amend_card
from otpr_ros.sim.evaluation import check_guided_candidates
from otpr_ros.sim.tasks import is_kitchen

# the evaluations of one snapshot, in order, and the file each writes in the snapshot
HELD_OUT, GUIDED, VALIDATION = "held_out", "guided", "validation"
RESULT_FILES = {HELD_OUT: "evaluation.json", GUIDED: "guided.json", VALIDATION: "validation.json"}


class EvaluationSchedule:
    def __init__(self, output: Path, task: str, episodes: int, seed: int, validation_seed: int | None = None,
                 every: int = 0, budget: int = 0, processes: int = 1, keep_evaluated: bool = False,
                 title: str = "OTPR fine-tuning", guided_candidates: int = 0):
        """``every``: env steps between evaluations (0: none); ``budget``: env steps after which
        the run finishes with a final snapshot and evaluation (0: never); ``keep_evaluated``:
        keep every evaluated snapshot under ``<output>/evaluated`` (else the newest only);
        ``guided_candidates``: L of the guided evaluation (0: none)."""
        check_guided_candidates(guided_candidates)
        self.output, self.task, self.episodes, self.seed = Path(output), task, episodes, seed
        self.validation_seed, self.every, self.budget = validation_seed, every, budget
        self.processes, self.keep_evaluated, self.title = processes, keep_evaluated, title
        self.guided_candidates = guided_candidates
        self.phases = [HELD_OUT] + [GUIDED] * bool(guided_candidates) + [VALIDATION] * (validation_seed is not None)
        self.waiting, self.running, self.rows = [], None, []
        self.next_eval = every or None
        self.finishing = False

    # -- when ---------------------------------------------------------------------------------
    def due(self, env_steps: int) -> str | None:
        """'final' once the budget is spent (then nothing more), 'evaluate' when an evaluation
        is due at ``env_steps`` (and the next one scheduled), else None."""
        if self.finishing:
            return None
        if self.budget and env_steps >= self.budget:
            self.finishing = True
            return "final"
        if self.next_eval is not None and env_steps >= self.next_eval:
            self.next_eval += self.every
            return "evaluate"
        return None

    def pending(self, env_steps: int) -> bool:
        """Whether ``due(env_steps)`` would answer (without scheduling anything)."""
        return not self.finishing and bool((self.budget and env_steps >= self.budget)
                                           or (self.next_eval is not None and env_steps >= self.next_eval))

    @property
    def idle(self) -> bool:
        return self.running is None and not self.waiting

    @property
    def finished(self) -> bool:
        return self.finishing and self.idle

    @property
    def selected(self) -> dict | None:
        """The row of the weights in ``<output>/selected`` (None before the first validation)."""
        rated = [row for row in self.rows if row.get("validation_success_rate") is not None]
        return max(rated, key=lambda row: row["validation_success_rate"]) if rated else None

    def state(self) -> dict:
        """What a checkpoint keeps of the schedule."""
        return {"next_eval": self.next_eval, "evaluations": self.rows}

    def restore(self, state: dict) -> None:
        self.next_eval, self.rows = state["next_eval"], state["evaluations"]

    # -- how ----------------------------------------------------------------------------------
    def queue(self, core, row: dict, final: bool = False) -> None:
        """Snapshot ``core`` (an OnlineLearner) now and evaluate it when the child process is free."""
        name = "final" if final else f"step_{row['env_steps']:09d}"
        path = core.snapshot(self.output / "evaluated" / name,
                             f"# evaluated at {row['env_steps']} env steps, {row['updates']} updates\n")
        agent = core.agent
        ranks_by_q = not agent.potentials_ready and agent.config.agent.acting_weights != "q"
        self.waiting.append((path, row, ["--set", "agent.acting_weights=q"] if ranks_by_q else []))
        self._start()

    def _launch(self, path: Path, row: dict, guided_sets: list, phase: str) -> None:
        seed = self.validation_seed if phase == VALIDATION else self.seed
        command = [sys.executable, "-m", "otpr_ros.tools.evaluate", "--model", str(path), "--episodes",
                   str(self.episodes), "--seed", str(seed), "--processes", str(self.processes), "--output",
                   str(path / RESULT_FILES[phase])]
        if phase == GUIDED:
            command += ["--num-candidates", str(self.guided_candidates), "--selection", "argmax", *guided_sets]
        # a session of its own: stopping the evaluation stops its episode workers with it
        self.running = (subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                         start_new_session=True), path, row, guided_sets, phase)

    def _start(self) -> None:
        if self.running is not None or not self.waiting:
            return
        path, row, guided_sets = self.waiting.pop(0)
        self._launch(path, row, guided_sets, self.phases[0])

    def stop(self) -> None:
        """The run is stopping: so is a running evaluation, workers and all (they would outlive it
        otherwise)."""
        if self.running is not None and self.running[0].poll() is None:
            try:
                os.killpg(self.running[0].pid, signal.SIGKILL)
            except ProcessLookupError:       # ended meanwhile
                pass
            self.running[0].wait()
        self.running, self.waiting = None, []

    def wait(self, poll_seconds: float = 0.05) -> list:
        """Every queued evaluation to its end; their rows."""
        rows = []
        while not self.idle:
            row = self.poll()
            if row is not None:
                rows.append(row)
            elif self.running is not None:
                time.sleep(poll_seconds)
        return rows

    def poll(self) -> dict | None:
        """The row of an evaluation that just ended (None if none did, or only some of its phases)."""
        if self.running is None or self.running[0].poll() is None:
            return None
        process, path, row, guided_sets, phase = self.running
        self.running = None
        if process.returncode != 0:
            self._start()
            raise RuntimeError(f"evaluation of {path} failed: {process.stderr.read()[-2000:]}")
        summary = json.loads((path / RESULT_FILES[phase]).read_text())
        if phase == HELD_OUT:
            row = {**row, "success_rate": summary["success_rate"], "ci_low": round(summary["ci95"][0], 3),
                   "ci_high": round(summary["ci95"][1], 3), "mean_return": round(summary["mean_return"], 3)}
        elif phase == GUIDED:
            row = {**row, "guided_success_rate": summary["success_rate"]}
        else:
            row = {**row, "validation_success_rate": summary["success_rate"]}
        following = self.phases.index(phase) + 1
        if following < len(self.phases):
            self._launch(path, row, guided_sets, self.phases[following])
            return None
        self._start()
        best = self.selected
        self.rows.append(row)
        if "validation_success_rate" in row and (best is None or row["validation_success_rate"]
                                                 > best["validation_success_rate"]):
            self._select(path, row)
        write_curve(self.output, self.rows, self.title)
        if not (path.name == "final" or self.keep_evaluated):
            # snapshots still queued or being evaluated stay (validation doubles an evaluation's
            # time, so a queue forms when evaluations take longer than ``every`` env steps)
            pending = {p.name for p, _, _ in self.waiting} | ({self.running[1].name} if self.running else set())
            for old in sorted((self.output / "evaluated").glob("step_*"))[:-1]:
                if old.name not in pending:
                    shutil.rmtree(old, ignore_errors=True)
        return row

    def report(self, row: dict, writer=None) -> str:
        """An evaluated row as TensorBoard scalars (``eval/...``) and one line for the log."""
        if writer is not None:
            for name in ("success_rate", "mean_return", "guided_success_rate", "validation_success_rate",
                         "critic_error"):
                if row.get(name) is not None:
                    writer.add_scalar(f"eval/{name}", row[name], row["env_steps"])
        line = (f"held-out success after {row['env_steps']} env steps, {row['updates']} updates: "
                f"{row['success_rate']:.0%} ({row['ci_low']:.2f}-{row['ci_high']:.2f})")
        if is_kitchen(self.task) and row.get("mean_return") is not None:
            line += f", normalised score {25.0 * row['mean_return']:.1f} ({row['mean_return']:.2f} of 4 sub-tasks)"
        if row.get("guided_success_rate") is not None:
            line += f"; arg-max of {self.guided_candidates} candidates {row['guided_success_rate']:.0%}"
        if row.get("validation_success_rate") is not None:
            selected = self.selected
            line += (f"; validation success {row['validation_success_rate']:.0%}; selected: the weights at "
                     f"{selected['env_steps']} env steps (validation {selected['validation_success_rate']:.0%}) in "
                     f"{self.output / 'selected'}")
        return line

    def _select(self, path: Path, row: dict) -> None:
        """Copy the snapshot at ``path`` to ``<output>/selected``, replacing the one there whole."""
        staged = self.output / "selected.partial"
        shutil.rmtree(staged, ignore_errors=True)
        shutil.copytree(path, staged)
        amend_card(staged, f"Chosen by validation success {row['validation_success_rate']:.0%} on seeds from "
                           f"{self.validation_seed}.\n")
        shutil.rmtree(self.output / "selected", ignore_errors=True)
        staged.rename(self.output / "selected")
