import pytest
import torch

from learning_fixtures import filled_buffer, small_agent
from otpr_ros.core.agent import OTPRAgent
from otpr_ros.core.config import AgentConfig, CriticConfig, DiffusionConfig, OTPRConfig


# -- acting --------------------------------------------------------------------------------
def test_act_returns_one_in_bounds_chunk_per_state():
    agent = small_agent()
    buffer = filled_buffer(agent)
    obs = torch.rand(5, 1) * 2 - 1
    for mode in ("sample", "argmax", "single"):
        decision = agent.act(obs, mode=mode)
        assert decision.chunk.shape == (5, 2) and decision.chunk.abs().max() <= 1
        assert torch.equal(decision.chunk, decision.candidates[torch.arange(5), decision.index])
    assert agent.act(obs, mode="single").candidates.shape == (5, 1, 2)
    assert agent.act(obs, mode="sample").candidates.shape == (5, 8, 2)
    del buffer


def test_weights_switch_from_idql_to_compatibility_after_warmup():
    agent = small_agent(warmup_steps=3)
    buffer = filled_buffer(agent)
    obs = torch.zeros(4, 1)
    decision = agent.act(obs, mode="argmax")
    tau = agent.config.critic.tau
    assert torch.isclose(decision.weights[..., None], torch.tensor([tau, 1 - tau])).any(-1).all()
    for _ in range(3):
        agent.dual_step(buffer)
    assert agent.potentials_ready
    weights, score = agent.candidate_weights(obs, agent.act(obs).candidates)
    lam = agent.config.transport.lam
    assert torch.allclose(weights, torch.relu(score) / (2 * lam))


def test_argmax_mode_picks_the_most_compatible_candidate():
    agent = small_agent(warmup_steps=0)
    filled_buffer(agent)
    decision = agent.act(torch.rand(16, 1) * 2 - 1, mode="argmax")
    best = torch.where(decision.weights.sum(1) > 0, decision.weights.argmax(1), decision.index)
    assert torch.equal(decision.index, best)


# -- learning --------------------------------------------------------------------------------
@pytest.mark.parametrize("guidance", ["compatibility", "q", "advantage", "uniform", "bc", "awr"])
def test_guidance_weights_are_distributions(guidance):
    agent = small_agent()
    agent.config.agent.guidance = guidance
    buffer = filled_buffer(agent)
    metrics = agent.update(buffer)
    assert {"critic/q_loss", "actor/loss", "transport/dual_objective"} <= set(metrics)
    states = torch.rand(6, 1)
    candidates = torch.rand(6, 9, 2) * 2 - 1
    weights = agent.guidance_weights(states, candidates, torch.full((6,), -1))
    assert torch.allclose(weights.sum(1), torch.ones(6)) and (weights >= 0).all()


def test_uniform_and_bc_guidance_weigh_as_named():
    agent = small_agent()
    states, candidates = torch.rand(6, 1), torch.rand(6, 9, 2) * 2 - 1
    agent.config.agent.guidance = "uniform"
    assert torch.allclose(agent.guidance_weights(states, candidates, torch.full((6,), -1)), torch.full((6, 9), 1 / 9))
    agent.config.agent.guidance = "bc"
    bc = agent.guidance_weights(states, candidates, torch.full((6,), -1))
    assert torch.equal(bc, torch.nn.functional.one_hot(torch.full((6,), 8), 9).float())


def test_bc_actor_step_is_score_matching_on_the_stored_actions_without_candidates(monkeypatch):
    agent = small_agent()
    agent.config.agent.guidance = "bc"
    buffer = filled_buffer(agent)
    reference = small_agent()
    reference.load_weights(agent.weights_state_dict())
    generator = agent.generator.get_state()
    monkeypatch.setattr(agent.policy, "sample", lambda *a, **k: pytest.fail("bc guidance drew candidates"))
    metrics = agent.actor_step(buffer)
    reference.generator.set_state(generator)
    batch = buffer.sample(agent.config.agent.actor_batch, reference.generator)
    states, stored = torch.cat([buffer.keypoint_obs, batch.obs]), torch.cat([buffer.keypoint_actions, batch.action])
    expected = reference.policy.noise_matching_loss(states, stored, None, reference.generator)
    assert metrics["actor/loss"] == pytest.approx(float(expected), rel=1e-6)
    assert metrics["actor/stored_weight"] == 1.0
    moved = [not torch.equal(p, q) for p, q in zip(agent.policy.net.parameters(), reference.policy.net.parameters())]
    assert any(moved)                                    # and the step was taken


def test_keypoint_rows_under_masked_ot_imitate_the_paired_action():
    agent = small_agent(warmup_steps=0)
    buffer = filled_buffer(agent)
    states = buffer.keypoint_obs[:4]
    candidates = torch.cat([torch.rand(4, 8, 2) * 2 - 1, buffer.keypoint_actions[:4, None, :]], dim=1)
    weights = agent.guidance_weights(states, candidates, torch.arange(4))
    assert torch.equal(weights, torch.nn.functional.one_hot(torch.full((4,), 8), 9).float())


def test_unmasked_variant_runs_without_keypoint_cost():
    agent = small_agent(masked=False, beta=0.0)
    buffer = filled_buffer(agent)
    assert agent.cost.beta == 0.0
    assert "transport/dual_objective" in agent.update(buffer)
    with pytest.raises(ValueError, match="beta"):
        small_agent(masked=False, beta=1.0)


def test_masked_config_with_more_actions_than_states_is_refused():
    with pytest.raises(ValueError, match="batch_actions <= batch_states"):
        small_agent(batch_states=32, batch_actions=64)


def test_state_dict_round_trip_gives_the_same_decisions():
    agent = small_agent(warmup_steps=1)
    buffer = filled_buffer(agent)
    for _ in range(3):
        agent.update(buffer)
    copy = small_agent(warmup_steps=1)
    copy.load_state_dict(agent.state_dict())
    obs = torch.rand(3, 1)
    noise = torch.randn(agent.policy.noise_shape(3, 8))
    a, b = agent.act(obs, mode="argmax", noise=noise), copy.act(obs, mode="argmax", noise=noise)
    assert torch.equal(a.chunk, b.chunk) and torch.allclose(a.weights, b.weights)


@pytest.mark.parametrize("obs, mode, message", [
    (torch.rand(2, 3), "sample", "obs: expected shape"),
    (torch.zeros(0, 1), "sample", "obs: empty batch"),
    (torch.tensor([[float("inf")]]), "sample", "obs: 1 entries are NaN or Inf"),
    (torch.rand(2, 1), "greedy", "mode"),
])
def test_bad_act_input_is_refused(obs, mode, message):
    with pytest.raises(ValueError, match=message):
        small_agent().act(obs, mode=mode)


def test_zero_candidates_is_refused():
    agent = small_agent()
    agent.config.agent.num_candidates = 0
    with pytest.raises(ValueError, match="num_candidates"):
        agent.act(torch.rand(2, 1))


def test_bad_agent_config_is_refused():
    with pytest.raises(ValueError, match="guidance"):
        OTPRAgent(OTPRConfig(obs_dim=1, agent=AgentConfig(guidance="reward")))
    with pytest.raises(ValueError, match="eval_mode"):
        OTPRAgent(OTPRConfig(obs_dim=1, agent=AgentConfig(eval_mode="sample")))
    for steps in (-1, 5):               # more than the chunk of 4, or negative
        with pytest.raises(ValueError, match="agent.execute_steps"):
            OTPRAgent(OTPRConfig(obs_dim=1, chunk=4, agent=AgentConfig(execute_steps=steps)))


def test_critic_steps_per_update_run_that_many_iql_steps():
    agent = small_agent()
    buffer = filled_buffer(agent)
    agent.config.critic.steps_per_update = 3
    agent.update(buffer)
    agent.update(buffer)
    state = agent.iql.q_optimizer.state_dict()["state"]
    assert {int(s["step"]) for s in state.values()} == {6}       # Adam counts its steps


def test_fixed_batch_mix_gives_the_critic_its_online_share():
    """Expert transitions are marked by reward -1: a fixed mix of 0.25 gives the critic 32 of
    128 rows from the online data whatever its share of the buffer (here 512 of 576)."""
    agent = small_agent()
    buffer = filled_buffer(agent)
    buffer.expert.data["reward"][:buffer.expert.size] = -1.0
    seen = []
    update = agent.iql.update
    agent.iql.update = lambda batch, **kw: seen.append(int((batch.reward >= 0).sum())) or update(batch, **kw)
    agent.critic_step(buffer)
    agent.config.critic.batch_mix, agent.config.critic.online_fraction = "fixed", 0.25
    metrics = agent.critic_step(buffer)
    assert seen[0] > 90 and seen[1] == 32 and metrics["critic/online_share"] == 0.25


def test_awr_weighs_the_stored_actions_by_their_advantage_and_draws_no_candidates(monkeypatch):
    agent = small_agent(masked=False, beta=0.0)
    agent.config.agent.guidance, agent.config.agent.advantage_temperature = "awr", 1.0
    buffer = filled_buffer(agent)
    states, stored = torch.rand(64, 1) * 2 - 1, torch.rand(64, 2) * 2 - 1
    weights = agent.stored_action_weights(states, stored)
    advantage = agent.critic.target_q(states[:, None], stored[:, None])[:, 0] - agent.critic.value(states)
    assert torch.equal(weights.argsort(), advantage.argsort())        # the better the action, the larger
    assert torch.allclose(weights.log(), advantage / advantage.std(), atol=1e-5)   # temperature 1, under the clip
    agent.config.agent.advantage_clip = 1.5
    assert agent.stored_action_weights(states, stored).max() <= 1.5
    monkeypatch.setattr(agent.policy, "sample", lambda *a, **k: pytest.fail("awr drew candidates"))
    metrics = agent.actor_step(buffer)
    assert 0 < metrics["actor/batch_ess_share"] <= 1 and metrics["actor/stored_weight"] == 1.0


def test_awr_from_returns_uses_the_earned_return_where_it_is_known_and_q_elsewhere():
    """``agent.advantage_source: return``: A = G - V(s) for rows whose episode ended (G known),
    Q(s, a) - V(s) for the others (NaN); the default ignores G."""
    agent = small_agent(masked=False, beta=0.0)
    agent.config.agent.guidance, agent.config.agent.advantage_temperature = "awr", 1.0
    states, stored = torch.rand(64, 1) * 2 - 1, torch.rand(64, 2) * 2 - 1
    earned = torch.rand(64)
    earned[::2] = float("nan")
    q = agent.critic.target_q(states[:, None], stored[:, None])[:, 0]
    by_critic = agent.stored_action_weights(states, stored, earned)
    assert torch.allclose(by_critic, agent.stored_action_weights(states, stored))     # default: G ignored
    agent.config.agent.advantage_source = "return"
    advantage = torch.where(torch.isnan(earned), q, earned) - agent.critic.value(states)
    assert torch.allclose(agent.stored_action_weights(states, stored, earned).log(), advantage / advantage.std(),
                          atol=1e-5)
    with pytest.raises(ValueError, match="agent.advantage_source"):
        OTPRAgent(OTPRConfig(obs_dim=1, agent=AgentConfig(advantage_source="oracle")))


def test_fixed_actor_batch_mix_gives_the_actor_its_online_share():
    agent = small_agent(masked=False, beta=0.0)
    agent.config.agent.guidance = "bc"
    buffer = filled_buffer(agent)
    buffer.expert.data["reward"][:buffer.expert.size] = -1.0
    seen = []
    sample = buffer.sample_mixed
    buffer.sample_mixed = lambda *a, **k: seen.append(sample(*a, **k)) or seen[-1]
    agent.actor_step(buffer)
    assert seen == []                                      # uniform: the default
    agent.config.agent.actor_batch_mix, agent.config.critic.online_fraction = "fixed", 0.25
    agent.actor_step(buffer)
    assert int((seen[0].reward >= 0).sum()) == 32           # 0.25 of the actor's 128 rows
    with pytest.raises(ValueError, match="agent.actor_batch_mix"):
        OTPRAgent(OTPRConfig(obs_dim=1, agent=AgentConfig(actor_batch_mix="rlpd")))


def test_an_unknown_compile_mode_is_refused():
    with pytest.raises(ValueError, match="agent.compile_mode"):
        OTPRAgent(OTPRConfig(obs_dim=1, agent=AgentConfig(compile_mode="cudagraphs")))


def test_bad_critic_settings_are_refused():
    with pytest.raises(ValueError, match="critic.batch_mix"):
        OTPRAgent(OTPRConfig(obs_dim=1, critic=CriticConfig(batch_mix="rlpd")))
    with pytest.raises(ValueError, match="critic.online_fraction"):
        OTPRAgent(OTPRConfig(obs_dim=1, critic=CriticConfig(batch_mix="fixed", online_fraction=1.5)))
    with pytest.raises(ValueError, match="critic.steps_per_update"):
        OTPRAgent(OTPRConfig(obs_dim=1, critic=CriticConfig(steps_per_update=0)))


def test_cosine_schedule_anneals_the_actors_rate_to_zero_and_constant_ignores_progress():
    """The actor's Adam steps with lr(p) = finetune_lr (1 + cos(pi p)) / 2 at progress p; the
    critic's rate stays; with the constant schedule progress changes nothing."""
    agent = small_agent()
    buffer = filled_buffer(agent)
    rate = agent.config.diffusion.finetune_lr
    agent.config.diffusion.finetune_lr_schedule = "cosine"
    seen = []
    for progress in (0.0, 0.5, 1.0, 1.5):
        agent.set_progress(progress)
        metrics = agent.update(buffer)
        seen.append((agent.actor_optimizer.param_groups[0]["lr"], metrics["actor/lr"]))
    assert [s[0] for s in seen] == pytest.approx([rate, rate / 2, 0.0, 0.0], abs=1e-15)
    assert [s[1] for s in seen] == [s[0] for s in seen]
    assert agent.iql.q_optimizer.param_groups[0]["lr"] == agent.config.critic.lr
    before = [p.detach().clone() for p in agent.policy.net.parameters()]
    agent.update(buffer)                                      # at the budget's end the actor holds still
    assert all(torch.equal(b, p) for b, p in zip(before, agent.policy.net.parameters()))
    agent.set_learning_rates()                                # a restored optimiser gets the scheduled rate
    assert agent.actor_optimizer.param_groups[0]["lr"] == 0.0
    agent.config.diffusion.finetune_lr_schedule = "constant"
    agent.set_progress(0.9)
    assert agent.actor_optimizer.param_groups[0]["lr"] == rate
    with pytest.raises(ValueError, match="diffusion.finetune_lr_schedule"):
        OTPRAgent(OTPRConfig(obs_dim=1, diffusion=DiffusionConfig(finetune_lr_schedule="linear")))


@pytest.mark.parametrize("guidance", ["q", "advantage"])
def test_candidates_normalisation_weighs_by_the_ranking_however_flat_q_is(guidance):
    """Q that differs by 1e-3 across candidates: divided by its scale the guidance is uniform
    (effective sample size ~ L + 1); standardised over each state's candidates it follows Q's
    order, and shifting or scaling Q changes nothing."""
    from otpr_ros.core.resampling import effective_sample_size
    agent = small_agent()
    agent.config.agent.guidance = guidance
    states, candidates = torch.rand(6, 1), torch.rand(6, 9, 2) * 2 - 1
    flat = torch.linspace(0.5, 0.501, 9).expand(6, 9)
    agent.critic.target_q = lambda obs, actions: flat.clone()
    uniform = agent.guidance_weights(states, candidates, torch.full((6,), -1))
    agent.config.agent.q_normalisation = "candidates"
    ranked = agent.guidance_weights(states, candidates, torch.full((6,), -1))
    assert effective_sample_size(uniform).min() > 8.99 and effective_sample_size(ranked).max() < 7.5
    assert bool((ranked.diff(dim=1) > 0).all()) and torch.allclose(ranked.sum(1), torch.ones(6))
    agent.critic.target_q = lambda obs, actions: 3.0 * flat + 7.0
    shifted = agent.guidance_weights(states, candidates, torch.full((6,), -1))
    torch.testing.assert_close(shifted, ranked, atol=1e-3, rtol=0)          # float32 rounding of 1e-3 steps


def test_candidates_normalisation_with_compatibility_guidance_is_refused():
    with pytest.raises(ValueError, match="agent.q_normalisation"):
        OTPRAgent(OTPRConfig(obs_dim=1, agent=AgentConfig(q_normalisation="candidates")))
    with pytest.raises(ValueError, match="agent.q_normalisation"):
        OTPRAgent(OTPRConfig(obs_dim=1, agent=AgentConfig(guidance="q", q_normalisation="rank")))


def test_q_acting_weights_rank_candidates_by_q_even_with_trained_potentials():
    """``agent.acting_weights: q`` acts by a softmax of Q over the candidates (arg-max: the
    largest Q), also after the potentials are trained; ``compatibility`` by H, as the paper does."""
    agent = small_agent()
    filled_buffer(agent)
    agent.dual_steps = agent.config.transport.warmup_steps          # the potentials count as trained
    obs, candidates = torch.rand(16, 1) * 2 - 1, torch.rand(16, 8, 2) * 2 - 1
    h, _ = agent.candidate_weights(obs, candidates)
    agent.config.agent.acting_weights = "q"
    weights, score = agent.candidate_weights(obs, candidates)
    q = agent.critic.target_q(obs[:, None, :], candidates)
    assert torch.allclose(score, q)
    assert torch.allclose(weights, torch.softmax(q / agent.q_scale.scale, dim=1))
    assert not torch.allclose(weights, h)
    assert torch.equal(weights.argmax(1), q.argmax(1))                 # arg-max acting picks the best Q
    with pytest.raises(ValueError, match="agent.acting_weights"):
        OTPRAgent(OTPRConfig(obs_dim=1, agent=AgentConfig(acting_weights="critic")))
