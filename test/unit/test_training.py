"""The one online loop (otpr_ros/training/): pacing by the update-to-data ratio, the evaluation
schedule, and the evaluations themselves (child processes running otpr-evaluate)."""


import numpy as np
import pytest
import torch

from model_fixtures import make_tiny_model
from otpr_ros.model.directory import load_model
from otpr_ros.training.loop import OnlineRun
from otpr_ros.training.online_learning import OnlineLearner, expert_demonstrations
from otpr_ros.training.schedule import EvaluationSchedule


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("training"))


def transition(sequence, end=False, rng=np.random.default_rng(0)):
    return {"obs": rng.normal(size=19), "action": rng.uniform(-1, 1, 28), "reward": float(end),
            "next_obs": rng.normal(size=19), "terminal": float(end), "truncated": 0.0, "steps": 4.0,
            "sequence": float(sequence), "episode": 0.0, "source": 0.0}


def test_updates_follow_the_update_to_data_ratio_after_the_warmup(tiny):
    model = load_model(tiny, "cpu")
    run = OnlineRun(OnlineLearner(model, expert_demonstrations(model)), utd=0.5, warmup=6)
    for sequence in range(20):
        run.add(transition(sequence, end=sequence % 5 == 4))
        run.add(transition(sequence))                      # a duplicate: not received, not counted
        while run.update_due:
            run.update()
        received = sequence + 1
        assert run.updates == (0 if received < 6 else int(np.ceil(0.5 * received))), (received, run.updates)
    assert (run.env_steps, run.episodes, run.received) == (80, 4, 20)
    assert run.wanted(lead=3) == 20 + 3            # max(warmup, updates / utd) + lead
    assert run.wanted(lead=3, finishing=True) == 20
    row = run.row(train_success_rate=0.5)
    assert (row["env_steps"], row["updates"], row["episodes"], row["train_success_rate"]) == (80, 10, 4, 0.5)
    assert 1.0 <= row["guidance_ess"] <= run.core.model.config.agent.num_candidates + 1
    assert 0.0 < row["online_share"] < 1.0           # uniform batches: the online share of the buffer
    assert "guidance_ess" not in run.row()           # no update since the previous row: no mean
    restored = OnlineRun(run.core, 0.5, 6)
    restored.restore(run.state())
    assert (restored.updates, restored.update_seconds) == (run.updates, run.update_seconds) and run.updates_per_s > 0
    rates = run.rates()         # per second of wall time since the run started, and the share spent updating
    assert 0 < rates["learning_share"] <= 1 and rates["updates_per_s_wall"] <= run.updates_per_s
    assert rates["env_steps_per_s"] == pytest.approx(80 / 10 * rates["updates_per_s_wall"], rel=1e-3)
    line = run.progress(200, {"success_rate": 0.92, "env_steps": 60})      # the line the learner logs
    assert line.startswith("80/200 env steps, 10 updates (") and ", 4 episodes, training success 100% (last 4), " \
        "held-out 92% at 60 env steps" in line, line
    run.add({**transition(20), "terminal": 0.0, "truncated": 1.0})         # an episode cut by the horizon
    assert "training success 80% (last 5)" in run.progress() and "/" not in run.progress().split(" env")[0]


def test_the_run_anneals_the_actors_rate_over_its_budget_and_an_unbounded_run_refuses(tiny):
    from otpr_ros.training.online_learning import apply_overrides
    model = load_model(tiny, "cpu")
    apply_overrides(model, ["diffusion.finetune_lr_schedule=cosine"])
    learner = OnlineLearner(model, expert_demonstrations(model))
    with pytest.raises(ValueError, match="finetune_lr_schedule=cosine .* has none"):
        OnlineRun(learner, utd=1.0, warmup=2)
    run = OnlineRun(learner, utd=0.5, warmup=2, budget=40)
    rates, steps = [], []
    for sequence in range(10):                      # 4 env steps each
        run.add(transition(sequence))
        while run.update_due:
            steps.append(run.env_steps)
            rates.append(run.update()["actor/lr"])
    assert steps == [8, 12, 20, 28, 36]
    rate = model.config.diffusion.finetune_lr
    assert rates == pytest.approx([rate * 0.5 * (1 + np.cos(np.pi * s / 40)) for s in steps], rel=1e-9)
    assert learner.agent.actor_optimizer.param_groups[0]["lr"] == rates[-1] < rate / 40


def test_the_schedule_evaluates_every_interval_and_finishes_at_the_budget(tmp_path):
    schedule = EvaluationSchedule(tmp_path, "lift", 1, 100000, every=100, budget=250)
    due = {steps: schedule.due(steps) for steps in (0, 99, 104, 150, 200, 240, 252, 300, 400)}
    assert due == {0: None, 99: None, 104: "evaluate", 150: None, 200: "evaluate", 240: None, 252: "final",
                   300: None, 400: None}
    assert schedule.finishing and schedule.finished and schedule.state()["next_eval"] == 300
    never = EvaluationSchedule(tmp_path, "lift", 1, 100000)
    assert [never.due(steps) for steps in (0, 10**6)] == [None, None] and not never.finishing


def test_a_run_checkpointed_and_resumed_goes_on_exactly_where_it_stopped(tiny, tmp_path):
    """Checkpoint + replay log -> a new run: the same counters, buffer and generator, so its
    next update gives the original's losses."""
    from otpr_ros.sim.bridge_session import TRANSITION_FIELDS
    from otpr_ros.training.learner_store import Checkpoints, ReplayLog

    def opened():
        run = OnlineRun(OnlineLearner.for_task("lift", tiny, "cpu"), utd=1.0, warmup=4)
        run.core.log = ReplayLog(tmp_path / "replay", TRANSITION_FIELDS)
        return run

    first = opened()
    for sequence in range(12):
        first.add({**transition(sequence, end=sequence == 5), "stream": 0.0})
        while first.update_due:
            first.update()
    first.core.log.flush()
    first.checkpoint(Checkpoints(tmp_path / "checkpoints"), version=3)
    second = opened()
    name, learner, report = second.resume(Checkpoints(tmp_path / "checkpoints"))
    assert name == "u000000012" and learner["version"] == 3 and "12 transitions" in report
    assert (second.updates, second.env_steps, second.episodes) == (first.updates, first.env_steps, first.episodes)
    # (the replay log keeps float32: the restored buffer may differ from the live one in the last bits)
    assert first.update() == pytest.approx(second.update(), rel=1e-5)
    fresh = OnlineRun(OnlineLearner.for_task("lift", tiny, "cpu"), 1.0, 4)
    fresh.core.log = ReplayLog(tmp_path / "no_replay", TRANSITION_FIELDS)
    assert fresh.resume(Checkpoints(tmp_path / "no_checkpoints")) == (None, None, None)


def test_a_model_for_another_task_or_a_bad_override_is_refused_by_name(tiny):
    from otpr_ros.model.directory import ModelError
    with pytest.raises(ModelError, match="trained for 'lift', not for 'can'"):
        OnlineLearner.for_task("can", tiny, "cpu")
    with pytest.raises(ValueError, match="guidance"):
        OnlineLearner.for_task("lift", tiny, "cpu", ["agent.guidance=magic"])
    learner = OnlineLearner.for_task("lift", tiny, "cpu", ["agent.actor_batch=16", ""])
    assert learner.model.config.agent.actor_batch == 16 and learner.held_out == []


def test_the_seed_sets_the_learners_draws(tiny):
    draws = lambda seed: torch.rand(4, generator=OnlineLearner.for_task("lift", tiny, "cpu", seed=seed)  # noqa: E731
                                    .agent.generator)
    assert torch.equal(draws(0), draws(0)) and not torch.equal(draws(0), draws(1))
    model_seed = OnlineLearner.for_task("lift", tiny, "cpu").model.config.seed
    fresh = torch.Generator().manual_seed(model_seed)       # seed 0 = the model's: draws as the model was made
    assert model_seed == 0 and torch.equal(draws(0), torch.rand(4, generator=fresh))


def test_a_run_states_where_its_settings_come_from_and_what_they_resolve_to(tiny):
    learner = OnlineLearner.for_task("lift", tiny, "cpu", ["agent.actor_batch=16", "transport.beta=0", ""])
    text = learner.settings()
    assert text.startswith(f"settings: {tiny}/config.yaml, then the overrides ['agent.actor_batch=16', "
                           "'transport.beta=0']")
    assert "agent.actor_batch=16 (override)" in text and "transport.beta=0.0 (override)" in text
    gamma = learner.model.config.critic.gamma           # the model's own, not overridden
    assert f"critic.gamma={gamma}," in text and f"critic.gamma={gamma} (override)" not in text
