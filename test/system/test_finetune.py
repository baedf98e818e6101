"""The in-process finetune command on a short budget: it learns from the environment, writes
the learning curve (CSV, PNG) and a summary, and refuses what it cannot use."""

import csv
import json

import pytest

pytest.importorskip("robosuite", reason="the simulation extra is not installed")

from model_fixtures import make_tiny_model  # noqa: E402
from otpr_ros.tools.finetune import main  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("finetune"))


def test_short_run_writes_curve_and_summary(tiny, tmp_path):
    output = tmp_path / "run"
    code = main(["--task", "lift", "--model", str(tiny), "--output", str(output), "--env-steps", "120",
                 "--eval-every", "120", "--eval-episodes", "2", "--warmup", "8", "--device", "cpu",
                 "--set", "agent.actor_batch=16", "--processes", "1", "--guided-candidates", "3"])
    assert code == 0
    rows = list(csv.DictReader(open(output / "curve.csv")))
    assert len(rows) == 2 and int(rows[0]["env_steps"]) == 0 and int(rows[1]["env_steps"]) >= 120
    # each point also acted by the arg-max over 3 candidates on the same held-out seeds
    assert all(0 <= float(row["guided_success_rate"]) <= 1 for row in rows)
    assert json.loads((output / "evaluated" / "final" / "guided.json").read_text())["num_candidates"] == 3
    assert int(rows[0]["updates"]) == 0 and int(rows[-1]["updates"]) > 0
    summary = json.loads((output / "summary.json").read_text())
    assert summary["env_steps"] >= 120 and summary["updates"] == int(rows[-1]["updates"])
    # the learner node's recipe (config/nodes.yaml, config/lift.yaml), then --set
    assert summary["recipe"] == "task" and summary["utd"] == 0.5
    assert summary["overrides"] == ["agent.actor_batch=256", "agent.actor_sampler=ddim", "agent.actor_ddim_steps=5",
                                    "agent.actor_batch=16"]
    assert (output / "curve.png").stat().st_size > 1000
    assert (output / "policy" / "model.json").is_file()


def test_without_the_offline_row_only_fine_tuned_weights_are_evaluated(tiny, tmp_path):
    output = tmp_path / "run"
    assert main(["--task", "lift", "--model", str(tiny), "--output", str(output), "--env-steps", "60",
                 "--eval-every", "1000", "--eval-episodes", "1", "--warmup", "8", "--device", "cpu",
                 "--set", "agent.actor_batch=16", "--processes", "1", "--no-offline-eval"]) == 0
    rows = list(csv.DictReader(open(output / "curve.csv")))
    assert len(rows) == 1 and int(rows[0]["env_steps"]) >= 60 and int(rows[0]["updates"]) > 0
    summary = json.loads((output / "summary.json").read_text())
    assert summary["offline"] is None and summary["final"]["env_steps"] == int(rows[0]["env_steps"])


def test_a_receding_horizon_executes_part_of_each_chunk_and_keeps_the_chunk(tiny, tmp_path):
    """agent.execute_steps 2 of the tiny model's chunks of 4: every transition of the run
    executed two actions (the last of an episode may be cut) and carries the whole chunk."""
    from otpr_ros.sim.bridge_session import TRANSITION_FIELDS
    from otpr_ros.training.learner_store import ReplayLog
    output = tmp_path / "run"
    assert main(["--task", "lift", "--model", str(tiny), "--output", str(output), "--env-steps", "20",
                 "--eval-every", "1000", "--eval-episodes", "1", "--warmup", "8", "--device", "cpu",
                 "--set", "agent.actor_batch=16", "--set", "agent.execute_steps=2", "--processes", "1",
                 "--no-offline-eval"]) == 0
    batches, report = ReplayLog(output / "replay", TRANSITION_FIELDS).load()
    steps = [int(s) for b in batches for s in b["steps"]]
    assert len(steps) >= 10 and set(steps) == {2} and not report["damaged"], (steps, report)
    assert all(b["action"].shape[1] == 4 * 7 for b in batches)


def test_each_task_s_recipe_is_the_learner_node_s_unless_asked_otherwise():
    from otpr_ros.package_files import node_parameters
    from otpr_ros.tools.finetune import parse_args, recipe
    overrides, utd = recipe(parse_args(["--task", "can", "--output", "x", "--set", "agent.q_temperature=0.1"]))
    learner = node_parameters("can", "learner")
    assert overrides == [*learner["overrides"], "agent.q_temperature=0.1"] and utd == 0.25
    assert "agent.guidance=awr" in overrides
    assert recipe(parse_args(["--task", "can", "--output", "x", "--utd", "2"]))[1] == 2.0
    # the budget too: Can's rate anneals over config/can.yaml's 30 000 env steps, as on the node
    assert parse_args(["--task", "can", "--output", "x"]).env_steps == learner["max_env_steps"] == 30000
    assert parse_args(["--task", "can", "--output", "x", "--env-steps", "500"]).env_steps == 500
    assert parse_args(["--task", "can", "--output", "x", "--recipe", "model"]).env_steps == 40000
    assert parse_args(["--task", "lift", "--output", "x"]).env_steps == 40000
    assert recipe(parse_args(["--task", "can", "--output", "x", "--recipe", "model", "--set", "a.b=1"])) == (["a.b=1"],
                                                                                                          1.0)


def test_validation_seeds_choose_the_selected_model(tiny, tmp_path):
    output = tmp_path / "run"
    assert main(["--task", "lift", "--model", str(tiny), "--output", str(output), "--env-steps", "120",
                 "--eval-every", "60", "--eval-episodes", "1", "--warmup", "8", "--device", "cpu",
                 "--set", "agent.actor_batch=16", "--processes", "1", "--validation-seed", "300000"]) == 0
    rows = list(csv.DictReader(open(output / "curve.csv")))
    assert len(rows) == 3 and all(row["validation_success_rate"] != "" for row in rows)
    summary = json.loads((output / "summary.json").read_text())
    chosen = summary["selected"]
    best = max(row["validation_success_rate"] for row in summary["curve"])
    assert chosen["validation_success_rate"] == best
    assert chosen == next(row for row in summary["curve"] if row["validation_success_rate"] == best)
    card = (output / "selected" / "MODEL_CARD.md").read_text()
    assert f"{chosen['env_steps']} env steps" in card and "seeds from 300000" in card
    assert json.loads((output / "selected" / "model.json").read_text())["files"]


def test_validation_seeds_overlapping_the_others_are_refused(tiny, tmp_path, capsys):
    for first, message in (("100010", "held-out"), ("200100", "training")):
        assert main(["--task", "lift", "--model", str(tiny), "--output", str(tmp_path / "run"),
                     "--env-steps", "1000", "--validation-seed", first]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_bad_settings_are_refused_by_name(tiny, tmp_path, capsys):
    for setting, message in (("agent.hidden=[8]", "agent.hidden"), ("agent.guidance=magic", "guidance"),
                             ("transport.masked=false", "beta=0"),
                             ("transport.batch_actions=999", "batch_actions <= batch_states")):
        assert main(["--task", "lift", "--model", str(tiny), "--output", str(tmp_path), "--set", setting]) == 2
        assert message in capsys.readouterr().err
    assert main(["--task", "lift", "--model", str(tiny), "--output", str(tmp_path), "--datasets",
                 str(tmp_path / "none.hdf5")]) == 2
    assert "none.hdf5" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stopped:
        main(["--task", "lift", "--model", str(tiny), "--output", str(tmp_path), "--eval-every", "0"])
    assert stopped.value.code == 2 and "--eval-every" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stopped:
        main(["--task", "lift", "--model", str(tiny), "--output", str(tmp_path), "--guided-candidates", "1"])
    assert stopped.value.code == 2 and "--guided-candidates" in capsys.readouterr().err
    assert main(["--task", "can", "--model", str(tiny), "--output", str(tmp_path)]) == 2
    assert "trained for 'lift', not for 'can'" in capsys.readouterr().err


@pytest.mark.parametrize("signum", ["SIGINT", "SIGTERM"])
def test_ctrl_c_or_sigterm_stops_the_running_evaluation_and_its_workers(tiny, tmp_path, signum):
    """Evaluations run in a session of their own (so the schedule can stop their workers), out
    of the terminal's reach: Ctrl-C (SIGINT) or a kill (SIGTERM) of otpr-finetune must stop them
    through the schedule."""
    import signal
    import subprocess
    import sys
    import time

    from process_fixtures import children, wait_until_gone
    process = subprocess.Popen([sys.executable, "-m", "otpr_ros.tools.finetune", "--task", "lift", "--model",
                                str(tiny), "--output", str(tmp_path / "run"), "--eval-episodes", "5000",
                                "--processes", "2", "--device", "cpu"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        evaluation, workers = set(), set()
        deadline = time.monotonic() + 300
        while len(workers) < 2 and time.monotonic() < deadline:     # the first evaluation's workers are up
            evaluation = children(process.pid)
            workers = set().union(*(children(pid) for pid in evaluation)) if evaluation else set()
            time.sleep(0.2)
        assert len(workers) >= 2 and process.poll() is None, (evaluation, workers)
        process.send_signal(getattr(signal, signum))
        try:
            process.communicate(timeout=120)
        except subprocess.TimeoutExpired:      # where it is stuck
            process.send_signal(signal.SIGUSR1)
            time.sleep(5)
            process.kill()
            pytest.fail(f"otpr-finetune still running 120 s after {signum}; its stacks:\n"
                        f"{process.communicate(timeout=60)[1][-6000:]}")
        # stopped at once, not when the evaluation next writes to the closed pipe and its workers
        # have run out the episodes already queued
        assert not wait_until_gone(evaluation | workers, 15)
    finally:
        if process.poll() is None:
            process.kill()
