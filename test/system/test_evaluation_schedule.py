"""The evaluation schedule's evaluations: otpr-evaluate in child processes, one at a time,
rows in order, the best by validation kept whole."""

import time

import pytest

from model_fixtures import make_tiny_model
from otpr_ros.model.directory import load_model
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
