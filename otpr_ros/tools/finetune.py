"""otpr-finetune: online OTPR fine-tuning in one process (no bus), for research speed and ablations.

The same loop and evaluation schedule as the learner node (otpr_ros/training/), the same acting as
the policy server (ChunkPolicy: L candidates, compatibility resampling) and the same
episodes and transitions as the simulation bridge (BridgeSession); only the bus is left
out. Training episodes use seeds from --train-seed (apart from the demonstrations' and the
evaluation's). Every --eval-every env steps, and at the end, the current weights are written
as a model directory (<output>/evaluated/step_<env steps>, evaluated/final) and evaluated by
``otpr-evaluate`` (held-out seeds from --eval-seed, L from the model's eval_mode); the first
row is the model before fine-tuning (BC only).

    otpr-finetune --task lift --env-steps 40000 --output runs/finetune_lift
    otpr-finetune --task can --output runs/finetune_can    # config/can.yaml's recipe and 30 000-step budget
    otpr-finetune --task can --recipe model --set agent.guidance=q --output runs/can_q   # an ablation

Settings, in the order they win: the model's config.yaml; with --recipe task (the default) the
learner's ``overrides`` and ``updates_per_transition`` of config/nodes.yaml then
config/<task>.yaml (what the learner node of ``otpr-launch finetune`` reads; its
``max_env_steps`` is the default --env-steps where the task sets one); --set and --utd.
The resolved settings are printed at start.

Writes <output>/curve.csv and curve.png (env steps vs held-out success), summary.json,
policy/ (the final weights), tensorboard/, evaluated/ (the newest and the final evaluated
model; with --keep-evaluated every one) and replay/ (every transition of the run, in the
learner node's replay log format; a new run into the same --output replaces it).

With --validation-seed every evaluation point is also run on a second set of seeds, and the
weights with the best validation success are kept as <output>/selected (ties: the earlier
point). The selected model's held-out success is then a result that no choice has seen:
the held-out seeds only measure, the validation seeds only choose (early stopping, the way
robomimic keeps its best rollout checkpoint, without choosing on the test).
"""

import argparse
import atexit
import faulthandler
import json
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from otpr_ros.model.directory import ModelError
from otpr_ros.model.policy import ChunkPolicy
from otpr_ros.package_files import node_parameters, shipped_model
from otpr_ros.sim.bridge_session import TRANSITION_FIELDS, BridgeSession, make_environment
from otpr_ros.sim.evaluation import check_guided_candidates, check_validation_seed
from otpr_ros.sim.tasks import SIM_TASKS
from otpr_ros.training.learner_store import ReplayLog
from otpr_ros.training.loop import OnlineRun
from otpr_ros.training.online_learning import OnlineLearner
from otpr_ros.training.schedule import EvaluationSchedule

DEFAULT_ENV_STEPS = 40_000     # a run's budget when neither --env-steps nor the task's config sets one


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="otpr-finetune", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", required=True, choices=sorted(SIM_TASKS))
    parser.add_argument("--model", help="model directory (default: the shipped model of --task)")
    parser.add_argument("--datasets", nargs="+", help="expert HDF5 (default: the model's pre-training datasets)")
    parser.add_argument("--output", required=True)
    parser.add_argument("--env-steps", type=int,
                        help="budget of environment steps (default: with --recipe task the learner's max_env_steps "
                             f"of config/<task>.yaml when it sets one, e.g. Can's 30 000; else {DEFAULT_ENV_STEPS})")
    parser.add_argument("--recipe", choices=("task", "model"), default="task",
                        help="task (default): the learner node's overrides and updates_per_transition from "
                             "config/nodes.yaml and config/<task>.yaml, as `otpr-launch finetune` runs; model: the "
                             "model's own config.yaml alone and --utd 1 (otpr-finetune until 2026-11-30); --set and "
                             "--utd win over either")
    parser.add_argument("--utd", type=float, help="updates per transition (chunk); default: from --recipe")
    parser.add_argument("--warmup", type=int, default=64, help="online transitions before the first update")
    parser.add_argument("--eval-every", type=int, default=10_000, help="env steps between evaluations")
    parser.add_argument("--eval-episodes", type=int, default=50)
    parser.add_argument("--eval-seed", type=int, default=100_000)
    parser.add_argument("--train-seed", type=int, default=200_000)
    parser.add_argument("--validation-seed", type=int,
                        help="first seed of the validation episodes (--eval-episodes of them) that choose "
                             "<output>/selected; apart from the held-out and the training seeds")
    parser.add_argument("--guided-candidates", type=int, default=0, metavar="L",
                        help="also evaluate each point on the held-out seeds acting by the arg-max of the acting "
                             "weights over L candidates (H, or Q under agent.acting_weights=q): their "
                             "ranking, curve.csv's guided_success_rate; 0 (default): not")
    parser.add_argument("--processes", type=int, default=2, help="evaluation workers")
    parser.add_argument("--no-offline-eval", action="store_true",
                        help="skip the first row (the model before fine-tuning), e.g. when an ablation "
                             "evaluates it once for all its variants")
    parser.add_argument("--keep-evaluated", action="store_true",
                        help="keep every evaluated model as <output>/evaluated/step_<env steps> (else the "
                             "newest only), to look into the curve afterwards")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="fine-tuning setting, e.g. agent.guidance=q, transport.masked=false, "
                             "transport.beta=0, agent.actor_batch=256")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the learner's draws (batches, noise) and of the acting policy's sampling; "
                             "episode seeds come from --train-seed")
    args = parser.parse_args(argv)
    # the learner node's parameters, read once: --recipe task's overrides, ratio and budget
    args.learner = node_parameters(args.task, "learner") if args.recipe == "task" else {}
    if args.env_steps is None:
        args.env_steps = args.learner.get("max_env_steps") or DEFAULT_ENV_STEPS
    if min(args.env_steps, args.eval_every, args.eval_episodes, args.processes) < 1 or (args.utd or 0) < 0:
        parser.error("--env-steps, --eval-every, --eval-episodes and --processes must be >= 1, --utd >= 0")
    try:
        check_guided_candidates(args.guided_candidates)
    except ValueError as error:
        parser.error(f"--{error}".replace("_", "-", 1))
    return args


def recipe(args) -> tuple[list, float]:
    """The run's overrides (a later one wins) and update-to-data ratio: --recipe's, then --set and --utd."""
    if args.recipe == "model":
        return list(args.set), 1.0 if args.utd is None else args.utd
    overrides = [o for o in args.learner.get("overrides") or () if o] + list(args.set)
    return overrides, float(args.learner["updates_per_transition"]) if args.utd is None else args.utd


def main(argv=None) -> int:
    """Runs the fine-tuning; SIGTERM (kill, timeout, a job scheduler) stops it as Ctrl-C does: the
    running evaluation and its workers stop with it (they run in a session of their own)."""
    if threading.current_thread() is not threading.main_thread():
        return run(argv)
    try:       # a run that seems stuck: `kill -USR1 <pid>` prints every thread's stack to stderr
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    except (OSError, ValueError):      # stderr is no file (called in-process, its output captured)
        pass
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    # Ctrl-C stops it even where it was started with SIGINT ignored (a shell's background job)
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return run(argv)
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)


def _exit_on_sigterm(signum, _frame):
    raise SystemExit(128 + signum)


def run(argv=None) -> int:
    args = parse_args(argv)
    try:
        check_validation_seed(args.validation_seed, args.eval_episodes, args.eval_seed, [args.train_seed],
                              args.env_steps)
    except ValueError as error:
        print(f"otpr-finetune: --validation-seed: {error}", file=sys.stderr)
        return 2
    output = Path(args.output)
    model_dir = Path(args.model) if args.model else shipped_model(args.task)
    overrides, utd = recipe(args)
    try:
        learner = OnlineLearner.for_task(args.task, model_dir, args.device, overrides, args.datasets or (),
                                         args.seed)
    except (ModelError, ValueError, OSError) as error:
        print(f"otpr-finetune: {error}", file=sys.stderr)
        return 2
    print(f"otpr-finetune: {learner.describe()}\notpr-finetune: recipe {args.recipe}, {utd:g} updates per "
          f"transition; {learner.settings()}", flush=True)
    output.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(output / "replay", ignore_errors=True)
    learner.log = ReplayLog(output / "replay", TRANSITION_FIELDS)
    from torch.utils.tensorboard import SummaryWriter
    writer = SummaryWriter(str(output / "tensorboard"))
    model = learner.model
    config = model.config
    env, observe = make_environment(args.task, None, model.info.obs_keys)
    session = BridgeSession(env, observe, config.critic.gamma, args.train_seed)
    policy = ChunkPolicy(model, "torch", "train", "sample", seed=args.seed)
    run = OnlineRun(learner, utd, args.warmup, writer, args.env_steps)
    schedule = EvaluationSchedule(output, args.task, args.eval_episodes, args.eval_seed, args.validation_seed,
                                  args.eval_every, args.env_steps, args.processes, args.keep_evaluated,
                                  f"OTPR fine-tuning, {args.task}", args.guided_candidates)
    atexit.register(schedule.stop)     # Ctrl-C, SIGTERM: the evaluation runs in a session of its own, workers and all
    train_successes = []

    def evaluated(rows):
        learner.log.flush()
        for row in rows:
            tqdm.write(f"otpr-finetune: {schedule.report(row, writer)}")

    if not args.no_offline_eval:
        schedule.queue(learner, run.row())          # the model as it comes (BC only)
        evaluated(schedule.wait())
    session.reset()
    with tqdm(total=args.env_steps, desc=f"otpr-finetune {args.task}", unit="step") as bar:
        while not schedule.finishing:
            transition = session.run_chunk(policy.decide, policy.execute_steps)
            run.add(transition.fields())
            bar.update(transition.steps)
            while run.update_due:
                run.update()
            if session.done:
                summary, _ = session.end_episode()
                train_successes.append(summary.success)
                writer.add_scalar("train/success", float(summary.success), run.env_steps)
                bar.set_postfix(updates=run.updates, train_success=f"{np.mean(train_successes[-20:]):.2f}")
                session.reset()
            recent = train_successes[-20:]
            if run.evaluate_when_due(schedule, train_success_rate=round(float(np.mean(recent)), 3) if recent
                                     else None):
                evaluated(schedule.wait())
    learner.snapshot(output / "policy", f"# otpr-finetune {args.task}: {run.env_steps} env steps, "
                                        f"{run.updates} updates (the final weights)\n")
    rows, selected = schedule.rows, schedule.selected
    offline = None if args.no_offline_eval else rows[0]
    result = {"task": args.task, "model": str(model_dir), "recipe": args.recipe, "overrides": overrides,
              "env_steps": run.env_steps, "updates": run.updates, "utd": utd,
              "wall_s": round(time.perf_counter() - run.start, 1),
              "updates_per_s": None if run.updates_per_s is None else round(run.updates_per_s, 3),
              **{k: round(v, 3) for k, v in run.rates().items()},
              "offline": offline, "final": rows[-1], "selected": selected, "curve": rows}
    (output / "summary.json").write_text(json.dumps(result, indent=1))
    before = f"{offline['success_rate']:.0%} -> " if offline else ""
    print(f"otpr-finetune {args.task}: held-out success {before}{rows[-1]['success_rate']:.0%} "
          f"after {run.env_steps} env steps, {run.updates} updates, {result['wall_s'] / 60:.1f} min; "
          f"{output}/curve.png")
    if selected:
        print(f"otpr-finetune {args.task}: selected by validation success {selected['validation_success_rate']:.0%}: "
              f"the weights at {selected['env_steps']} env steps, held-out success {selected['success_rate']:.0%}; "
              f"{output}/selected")
    return 0


if __name__ == "__main__":
    sys.exit(main())
