import numpy as np
import pytest
import torch

from model_fixtures import make_tiny_model
from otpr_ros.data.robomimic_hdf5 import RobomimicDataset
from otpr_ros.model.directory import load_model
from otpr_ros.training.online_learning import OnlineLearner


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("learner")
    model_dir = make_tiny_model(root)
    return model_dir, root / "demos.hdf5"


def learner_for(tiny):
    model_dir, demos = tiny
    model = load_model(model_dir, "cpu")
    return OnlineLearner(model, RobomimicDataset([demos], model.info.obs_keys, split="train"))


def transition(sequence, source=0, steps=4, reward=0.0, rng=np.random.default_rng(0)):
    return {"obs": rng.normal(size=19), "action": rng.uniform(-1, 1, 28), "reward": reward,
            "next_obs": rng.normal(size=19), "terminal": float(reward > 0), "truncated": 0.0, "steps": float(steps),
            "sequence": float(sequence), "episode": 0.0, "source": float(source)}


def test_transitions_are_stored_normalised_with_their_discount_data(tiny):
    learner = learner_for(tiny)
    assert learner.keypoints_reused, "the model's keypoints are in its own demonstrations"
    sent = transition(0, steps=3, reward=0.998)
    assert learner.add(sent) == "added"
    store = learner.buffer.online
    model = learner.model
    expected_obs = np.clip(model.obs_normalizer.normalize(sent["obs"][None]), -5, 5)[0]
    np.testing.assert_allclose(store.data["obs"][0].numpy(), expected_obs, atol=1e-5)
    expected_action = model.action_normalizer.normalize(sent["action"].reshape(4, 7)).ravel()
    np.testing.assert_allclose(store.data["action"][0].numpy(), expected_action, atol=1e-5)
    assert (float(store.data["reward"][0]), float(store.data["steps"][0]), float(store.data["terminal"][0])) == \
        (pytest.approx(0.998), 3.0, 1.0)


def test_duplicates_are_dropped_and_gaps_counted_per_source(tiny):
    learner = learner_for(tiny)
    for sequence, source in ((0, 0), (1, 0), (1, 0), (4, 0), (0, 1), (0, 1), (1, 1)):
        learner.add(transition(sequence, source))
    counts = learner.counts.summary()
    assert (counts["received"], counts["duplicates"], counts["lost"], counts["sources"]) == (5, 2, 2, 2)
    assert learner.online_size == 5
    with pytest.raises(ValueError, match="action of 28 values"):
        learner.add({**transition(5), "action": np.zeros(7)})
    assert learner.counts.refused == 1 and learner.online_size == 5


def test_updates_change_the_policy_and_a_snapshot_reloads_to_the_same_weights(tiny, tmp_path):
    learner = learner_for(tiny)
    for sequence in range(40):
        learner.add(transition(sequence, reward=float(sequence % 10 == 9)))
    before = [p.detach().clone() for p in learner.agent.policy.ema_net.parameters()]
    for _ in range(3):
        metrics = learner.update()
    assert np.isfinite(list(metrics.values())).all()
    after = list(learner.agent.policy.ema_net.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, after)), "the acting (EMA) weights did not move"
    path = learner.snapshot(tmp_path / "v000001", "# test\n")
    reloaded = load_model(path, "cpu")
    for name, tensor in learner.agent.weights_state_dict()["policy"].items():
        torch.testing.assert_close(reloaded.agent.weights_state_dict()["policy"][name], tensor)
    assert reloaded.info == learner.model.info


def test_a_restarted_bridge_is_a_new_stream_and_its_open_episode_is_closed_truncated(tiny):
    learner = learner_for(tiny)
    for sequence in range(3):
        learner.add({**transition(sequence), "stream": 5.0})
    assert learner.add({**transition(0), "stream": 9.0}) == "added", "not a duplicate: the bridge restarted"
    assert learner.add({**transition(0), "stream": 9.0}) == "duplicate"
    counts = learner.counts.summary()
    assert (counts["received"], counts["lost"], counts["streams"], counts["sources"]) == (4, 0, 2, 1)
    assert counts["interrupted_episodes"] == 1
    assert counts["by_stream"] == {"0:5": {"received": 3, "last_sequence": 2},
                                   "0:9": {"received": 1, "last_sequence": 0}}
    learner.add({**transition(1, reward=1.0), "stream": 9.0})        # ends its episode
    learner.add({**transition(0), "stream": 11.0})
    assert learner.counts.summary()["interrupted_episodes"] == 1, "an ended episode is not interrupted"


def test_the_replay_log_restores_the_buffer_and_the_sequence_numbers(tiny, tmp_path):
    from otpr_ros.sim.bridge_session import TRANSITION_FIELDS
    from otpr_ros.training.learner_store import ReplayLog
    first = learner_for(tiny)
    first.log = ReplayLog(tmp_path, TRANSITION_FIELDS)
    for sequence in range(30):
        first.add({**transition(sequence, steps=1 + sequence % 4, reward=float(sequence % 10 == 9)), "stream": 3.0})
        if sequence % 8 == 7:
            first.log.flush()
    first.log.flush()
    second = learner_for(tiny)
    second.log = ReplayLog(tmp_path, TRANSITION_FIELDS)
    batches, report = second.log.load()
    assert second.restore(batches) == 30 and report["transitions"] == 30
    for name, column in first.buffer.online.data.items():     # the bus carries float32, as the log does
        torch.testing.assert_close(column[:30], second.buffer.online.data[name][:30], atol=1e-6, rtol=1e-6)
    assert second.log.acknowledged == {(0, 3): 29}
    assert second.add({**transition(29), "stream": 3.0}) == "duplicate", "redelivered after a restart"
    assert second.add({**transition(30), "stream": 3.0}) == "added" and second.counts.summary()["lost"] == 0


@pytest.mark.parametrize("task", ["lift", "can", "square", "calvin_multi", "kitchen_complete", "kitchen_partial",
                                  "kitchen_mixed"])
def test_each_task_yaml_s_learner_overrides_apply_to_its_shipped_model(task):
    from otpr_ros.package_files import node_parameters, shipped_model
    from otpr_ros.training.online_learning import apply_overrides
    overrides = node_parameters(task, "learner")["overrides"]
    model = load_model(shipped_model(task), "cpu")
    apply_overrides(model, [o for o in overrides if o])
    assert model.config.agent.actor_batch == 256
    # Can's actor learns only from stored chunks, weighted by advantage; its training episodes act by Q
    # (docs/experiments/2026-11-30-can-stored-action-updates.md): H guidance drifted it. CALVIN took it too.
    # Square's acts by the sample, its advantages from earned returns: nothing reads the critic's
    # ranking of candidates (docs/experiments/2026-12-03-square-longer-pretraining.md). Kitchen's
    # is Square's at an actor rate of 1e-4 and 1 update a transition (docs/kitchen.md).
    agent, critic = model.config.agent, model.config.critic
    recipe = {"lift": (True, "compatibility", "compatibility", 8, "critic", 1, "uniform"),
              "can": (False, "awr", "q", 8, "critic", 8, "fixed"),
              "calvin_multi": (False, "awr", "q", 8, "critic", 8, "fixed"),
              "square": (False, "awr", "compatibility", 1, "return", 8, "fixed"),
              "kitchen_complete": (False, "awr", "compatibility", 1, "return", 8, "fixed"),
              "kitchen_partial": (False, "awr", "compatibility", 1, "return", 8, "fixed"),
              "kitchen_mixed": (False, "awr", "compatibility", 1, "return", 8, "fixed")}[task]
    assert (model.config.transport.masked, agent.guidance, agent.acting_weights, agent.num_candidates,
            agent.advantage_source, critic.steps_per_update, critic.batch_mix) == recipe
    assert model.config.diffusion.finetune_lr == (1e-4 if task.startswith("kitchen") else 1e-5)


def test_keypoint_cost_settings_can_be_overridden_for_fine_tuning(tiny):
    from otpr_ros.training.online_learning import apply_overrides
    model = learner_for(tiny).model
    relation = model.agent.relation_cost
    apply_overrides(model, ["transport.rho=0.25", "transport.beta=0.5"])
    assert (model.agent.relation_cost.rho, model.agent.cost.beta) == (0.25, 0.5)
    torch.testing.assert_close(model.agent.relation_cost.obs, relation.obs)     # the same keypoints
    with pytest.raises(ValueError, match="rho"):
        apply_overrides(model, ["transport.rho=0"])
    assert model.config.transport.rho == 0.25 and model.agent.relation_cost.rho == 0.25, "a refused override changes nothing"


def test_the_acting_sampler_can_be_overridden_and_a_bad_one_is_refused_by_name(tiny):
    from otpr_ros.model.policy import ChunkPolicy
    from otpr_ros.training.online_learning import apply_overrides
    model = learner_for(tiny).model
    ddpm_steps = ChunkPolicy(model, "torch").draw_noise(1).shape[0]
    apply_overrides(model, ["diffusion.sampler=ddim", "diffusion.ddim_steps=3", "diffusion.eta=0"])
    policy = ChunkPolicy(model, "torch", candidates=2)
    assert ddpm_steps == model.config.diffusion.num_steps and policy.draw_noise(1).shape[0] == 3
    obs = np.random.default_rng(0).normal(size=(1, 19)).astype(np.float32)
    noise = policy.draw_noise(1)
    other = noise.copy()
    other[1:] = policy.draw_noise(1)[1:]       # eta 0: only the initial noise matters
    np.testing.assert_allclose(policy.backend(obs, other)[0], policy.backend(obs, noise)[0], atol=1e-6)
    for bad, name in (("diffusion.sampler=dpm", "diffusion.sampler"), ("diffusion.eta=2", "diffusion.eta"),
                      ("diffusion.ddim_steps=0", "diffusion.ddim_steps")):
        with pytest.raises(ValueError, match=name):
            apply_overrides(model, [bad])
    assert model.config.diffusion.sampler == "ddim", "a refused override changes nothing"


def test_learning_rates_can_be_overridden_and_survive_a_restored_checkpoint(tiny):
    from otpr_ros.training.online_learning import apply_overrides
    agent = learner_for(tiny).model.agent
    checkpoint = agent.state_dict()                     # optimisers at the pre-training rates
    model = learner_for(tiny).model                     # a second learner from the same model
    apply_overrides(model, ["diffusion.finetune_lr=3e-6", "transport.lr=1e-3", "critic.lr=1e-4"])
    rates = lambda a: [g["lr"] for o in (a.actor_optimizer, a.potential_optimizer, a.iql.v_optimizer,  # noqa: E731
                                         a.iql.q_optimizer) for g in o.param_groups]
    assert rates(model.agent) == [3e-6, 1e-3, 1e-4, 1e-4]
    model.agent.load_state_dict(checkpoint)             # a resumed learner keeps its overrides
    assert rates(model.agent) == [3e-6, 1e-3, 1e-4, 1e-4]
    assert rates(agent) != rates(model.agent)
    with pytest.raises(ValueError, match="transport.lr"):
        apply_overrides(model, ["transport.lr=0"])
    assert rates(model.agent) == [3e-6, 1e-3, 1e-4, 1e-4], "a refused override changes nothing"


def test_critic_settings_can_be_overridden_and_the_critic_is_measured_on_held_out_demos(tiny):
    from otpr_ros.training.online_learning import apply_overrides
    model_dir, demos = tiny
    learner = learner_for(tiny)
    assert learner.critic_diagnostic() == {}                     # no held-out demonstrations given
    apply_overrides(learner.model, ["critic.steps_per_update=4", "critic.batch_mix=fixed",
                                    "critic.online_fraction=0.5"])
    critic = learner.model.config.critic
    assert (critic.steps_per_update, critic.batch_mix, critic.online_fraction) == (4, "fixed", 0.5)
    with pytest.raises(ValueError, match="critic.batch_mix"):
        apply_overrides(learner.model, ["critic.batch_mix=sometimes"])
    model = load_model(model_dir, "cpu")
    demonstrations = RobomimicDataset([demos], model.info.obs_keys, split="train")
    measured = OnlineLearner(model, demonstrations, demonstrations).critic_diagnostic()
    assert set(measured) == {"critic_error", "q_start", "return_start"} and measured["critic_error"] > 0


def test_truncation_failure_ends_an_episode_cut_at_the_horizon_and_bootstrap_does_not(tiny):
    """``critic.truncation``: a chunk that ran out the horizon without success is stored with
    terminal 0 (IQL bootstraps from its next state) by default, terminal 1 (nothing after it)
    with ``failure``; a success stays terminal and a mid-episode chunk stays open in both."""
    from otpr_ros.training.online_learning import apply_overrides
    stored = {}
    for truncation in ("bootstrap", "failure"):
        learner = learner_for(tiny)
        apply_overrides(learner.model, [f"critic.truncation={truncation}"])
        cut = {**transition(1), "truncated": 1.0}
        for sent in (transition(0), cut, {**transition(2), "episode": 1.0, "reward": 0.99, "terminal": 1.0}):
            assert learner.add(sent) == "added"
        stored[truncation] = learner.buffer.online.data["terminal"][:3].tolist()
    assert stored == {"bootstrap": [0.0, 0.0, 1.0], "failure": [0.0, 1.0, 1.0]}
    with pytest.raises(ValueError, match="critic.truncation"):
        apply_overrides(learner.model, ["critic.truncation=sometimes"])


def test_an_ended_episode_s_transitions_get_the_return_they_earned_and_an_open_one_none(tiny):
    """``mc_return``: once an episode ends, each of its transitions holds the discounted return
    from it on (the reward of each chunk, gamma^steps between them; a person's chunks in the
    expert store too); a failed (truncated) episode earned 0; an open episode's stay NaN; a
    restarted bridge's open episode never gets one."""
    learner = learner_for(tiny)
    gamma = learner.model.config.critic.gamma
    experts = learner.buffer.expert.size
    success = [transition(0, steps=4), {**transition(1, steps=3), "expert": 1.0}, transition(2, steps=2, reward=0.9)]
    failure = [{**t, "episode": 1.0} for t in (transition(3), {**transition(4), "truncated": 1.0})]
    for sent in success + failure + [{**transition(5), "episode": 2.0}]:
        assert learner.add(sent) == "added"
    online, expert = learner.buffer.online.data["mc_return"], learner.buffer.expert.data["mc_return"]
    assert online[:2].tolist() == pytest.approx([0.9 * gamma ** 3 * gamma ** 4, 0.9])
    assert float(expert[experts]) == pytest.approx(0.9 * gamma ** 3)
    assert online[2:4].tolist() == [0.0, 0.0] and torch.isnan(online[4])
    learner.add({**transition(0), "episode": 3.0, "stream": 1.0})          # the bridge restarted
    assert list(learner.open_episodes) == [(0, 1)]


def test_a_persons_chunks_join_the_demonstrations_and_survive_the_replay_log(tiny, tmp_path):
    """An intervention's chunks (``expert`` 1) go beside the demonstrations, the policy's to the
    online replay; a replay log from before the field reads it as 0 (the policy's)."""
    from otpr_ros.sim.bridge_session import TRANSITION_FIELDS
    from otpr_ros.training.learner_store import ReplayLog
    first = learner_for(tiny)
    first.log = ReplayLog(tmp_path / "new", TRANSITION_FIELDS)
    experts_before = first.buffer.expert.size
    for sequence in range(6):
        assert first.add({**transition(sequence), "stream": 1.0, "expert": float(sequence < 2)}) == "added"
    assert (first.buffer.expert.size - experts_before, first.online_size) == (2, 4)
    first.log.flush()
    second = learner_for(tiny)
    second.log = ReplayLog(tmp_path / "new", TRANSITION_FIELDS)
    assert second.restore(second.log.load()[0]) == 6
    assert (second.buffer.expert.size - experts_before, second.online_size) == (2, 4)
    old = ReplayLog(tmp_path / "old", TRANSITION_FIELDS[:-1])       # written before ``expert`` existed
    for sequence in range(3):
        old.append({**transition(sequence), "stream": 2.0})
    old.flush()
    third = learner_for(tiny)
    batches, report = ReplayLog(tmp_path / "old", TRANSITION_FIELDS).load()
    assert report["damaged"] == [] and third.restore(batches) == 3 and third.online_size == 3


def test_the_demonstrations_execute_what_an_execute_steps_override_executes(tiny):
    """Fine-tuning with agent.execute_steps 2 (chunks of 4): the demonstrations' transitions in
    the learner's buffer step 2 actions, as the online ones will; without it they step 4."""
    model_dir, _ = tiny
    whole = OnlineLearner.for_task("lift", model_dir, "cpu").buffer.expert
    two = OnlineLearner.for_task("lift", model_dir, "cpu", ["agent.execute_steps=2"]).buffer.expert
    assert whole.size == two.size and set(whole.data["steps"][:whole.size].tolist()) == {1.0, 2.0, 3.0, 4.0}
    assert set(two.data["steps"][:two.size].tolist()) == {1.0, 2.0}
