"""The actor step skips, under masked OT, the candidates of keypoint states (their weights are
exactly 0) without changing what it computes: from the same seed it reports the losses, and
leaves the weights, of the step that samples and scores every candidate."""

import types

import pytest
import torch
from learning_fixtures import filled_buffer, small_agent
from otpr_ros.core.resampling import effective_sample_size

UPDATES = 5
TOLERANCE = {"rel": 1e-5, "abs": 1e-7}


def every_candidate_actor_step(agent, buffer) -> dict:
    """The actor step as it was before the skip (commit 3087e45): every state's candidates
    sampled, scored and put through the weighted noise-matching loss."""
    a = agent.config.agent
    batch, _ = agent.draw(buffer, a.actor_batch, a.actor_batch_mix)
    states, stored = batch.obs, batch.action
    stored_ids = torch.full((states.shape[0],), -1, device=agent.device)
    if agent.config.transport.masked and buffer.num_keypoints:
        states = torch.cat([buffer.keypoint_obs, states])
        stored = torch.cat([buffer.keypoint_actions, stored])
        stored_ids = torch.cat([torch.arange(buffer.num_keypoints, device=agent.device), stored_ids])
    with torch.no_grad():
        sampled = agent.policy.sample(states, a.num_candidates, a.actor_sampler, a.actor_ddim_steps,
                                      generator=agent.generator, use_ema=False, compiled=agent.compilation())
        candidates = torch.cat([sampled, stored[:, None, :]], dim=1)
        weights = agent.guidance_weights(states, candidates, stored_ids)
    n, count, width = candidates.shape
    loss = agent.policy.noise_matching_loss(states.repeat_interleave(count, 0), candidates.reshape(n * count, width),
                                            weights.reshape(-1), agent.generator, compiled=agent.compilation())
    agent.step_actor(loss)
    return {"actor/loss": float(loss.detach()), "actor/stored_weight": float(weights[:, -1].mean()),
            "actor/guidance_ess": float(effective_sample_size(weights).mean())}


@pytest.mark.parametrize("masked,guidance", [(True, "compatibility"), (False, "compatibility"), (True, "q")])
def test_skipping_keypoint_candidates_changes_no_update(masked, guidance):
    runs, weights = {}, {}
    for reference in (False, True):
        agent = small_agent(**({} if masked else {"masked": False, "beta": 0.0}))
        buffer = filled_buffer(agent)
        agent.config.agent.actor_sampler, agent.config.agent.actor_ddim_steps = "ddim", 3
        agent.config.agent.guidance = guidance
        if reference:
            agent.actor_step = types.MethodType(every_candidate_actor_step, agent)
        runs[reference] = [agent.update(buffer) for _ in range(UPDATES)]
        weights[reference] = agent.policy.net.state_dict()
    assert any("actor/loss" in metrics for metrics in runs[False])
    for skipped, full in zip(runs[False], runs[True]):
        assert skipped.keys() == full.keys()
        for name, value in full.items():
            assert skipped[name] == pytest.approx(value, **TOLERANCE), name
    if masked and guidance == "compatibility":          # the keypoints' rows: imitation of their pairs
        assert runs[False][-1]["actor/stored_weight"] > 16 / (16 + 128) - 1e-6
    for key, value in weights[True].items():
        torch.testing.assert_close(weights[False][key], value, rtol=1e-5, atol=1e-6)
