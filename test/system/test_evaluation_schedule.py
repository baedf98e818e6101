"""The evaluation schedule's evaluations: otpr-evaluate in child processes, one at a time,
rows in order, the best by validation kept whole."""

import time

import pytest

from model_fixtures import make_tiny_model
from process_fixtures import children, wait_until_gone
from otpr_ros.model.directory import load_model
from otpr_ros.model.policy import evaluation_candidates
from otpr_ros.training.online_learning import OnlineLearner, expert_demonstrations
from otpr_ros.training.schedule import EvaluationSchedule


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("schedule"))


def test_evaluations_queued_faster_than_they_run_are_all_evaluated(tiny, tmp_path):
    """Three snapshots queued at once, each evaluated on held-out and validation seeds: none
    is removed while it waits (the newest-only clean-up once deleted queued snapshots)."""
    model = load_model(tiny, "cpu")
    core = OnlineLearner(model, expert_demonstrations(model))
    runs = tmp_path / "runs"
    evaluation = EvaluationSchedule(runs, "lift", 1, 100000, validation_seed=300000)
    for steps in (0, 100, 200):
        evaluation.queue(core, {"env_steps": steps, "updates": 0, "episodes": 0, "wall_s": 0.0})
    rows = []
    deadline = time.monotonic() + 300
    while len(rows) < 3 and time.monotonic() < deadline:
        row = evaluation.poll()
        rows += [row] if row else []
        time.sleep(0.2)
    assert [r["env_steps"] for r in rows] == [0, 100, 200], rows
    assert all(r["validation_success_rate"] is not None and 0 <= r["success_rate"] <= 1 for r in rows)
    assert evaluation.idle
    assert load_model(runs / "selected").info.task == "lift"
    assert "on seeds from 300000" in (runs / "selected" / "MODEL_CARD.md").read_text()
    assert sorted(p.name for p in (runs / "evaluated").iterdir()) == ["step_000000200"]


def test_guided_evaluation_acts_by_the_arg_max_of_l_candidates_on_the_held_out_seeds(tiny, tmp_path):
    """guided_candidates L: each point is evaluated a second time on the same held-out seeds with
    L candidates and the arg-max of the acting weights (of Q before the potentials are
    trained); its success is the row's guided_success_rate, in curve.csv beside the plain
    policy's."""
    import csv
    import json
    model = load_model(tiny, "cpu")
    core = OnlineLearner(model, expert_demonstrations(model))
    runs = tmp_path / "runs"
    evaluation = EvaluationSchedule(runs, "lift", 2, 100000, guided_candidates=3, keep_evaluated=True)
    core.agent.dual_steps = 0
    evaluation.queue(core, {"env_steps": 0, "updates": 0, "episodes": 0, "wall_s": 0.0})
    core.agent.dual_steps = model.config.transport.warmup_steps       # the potentials count as trained
    evaluation.queue(core, {"env_steps": 10, "updates": 0, "episodes": 0, "wall_s": 0.0})
    row, _ = evaluation.wait()
    assert json.loads((runs / "evaluated" / "step_000000010" / "guided.json").read_text())["overrides"] == []
    guided = json.loads((runs / "evaluated" / "step_000000000" / "guided.json").read_text())
    plain = json.loads((runs / "evaluated" / "step_000000000" / "evaluation.json").read_text())
    assert (guided["num_candidates"], guided["selection"], guided["seeds"]) == (3, "argmax", [100000, 100001])
    assert plain["num_candidates"] == evaluation_candidates(model.config) != 3 and plain["seeds"] == guided["seeds"]
    assert guided["overrides"] == ["agent.acting_weights=q"] and plain["overrides"] == []
    assert row["guided_success_rate"] == guided["success_rate"] and row["success_rate"] == plain["success_rate"]
    written, _ = csv.DictReader(open(runs / "curve.csv"))
    assert float(written["guided_success_rate"]) == guided["success_rate"]
    assert "arg-max of 3 candidates" in evaluation.report(row)
    with pytest.raises(ValueError, match="guided_candidates"):
        EvaluationSchedule(runs, "lift", 2, 100000, guided_candidates=1)


def test_stopping_a_run_stops_its_evaluation_s_workers_too(tiny, tmp_path):
    """A run that stops mid-evaluation takes the evaluation's worker processes with it: killing
    otpr-evaluate alone once left its episode workers running, orphaned, for half an hour."""
    model = load_model(tiny, "cpu")
    core = OnlineLearner(model, expert_demonstrations(model))
    evaluation = EvaluationSchedule(tmp_path / "runs", "lift", 200, 100000, processes=2)
    evaluation.queue(core, {"env_steps": 0, "updates": 0, "episodes": 0, "wall_s": 0.0})
    process = evaluation.running[0]
    deadline = time.monotonic() + 300
    while len(children(process.pid)) < 2 and time.monotonic() < deadline:   # the pool's workers are up
        time.sleep(0.2)
    workers = children(process.pid)
    assert len(workers) >= 2 and process.poll() is None, workers
    evaluation.stop()
    assert evaluation.idle and process.poll() is not None
    assert not wait_until_gone(workers, 60)
