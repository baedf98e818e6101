"""The bridge's episode bookkeeping on the real Lift simulation."""

import numpy as np
import pytest

pytest.importorskip("robosuite", reason="the simulation extra is not installed")

from otpr_ros.sim.bridge_session import BridgeSession, make_environment  # noqa: E402


@pytest.fixture(scope="module")
def lift():
    env, observe = make_environment("lift", horizon=6)
    yield env, observe
    env.close()


def test_episodes_are_seeded_in_order(lift):
    env, observe = lift
    session = BridgeSession(env, observe, gamma=0.9, first_seed=5)
    session.reset()
    first = session.observation()
    env_obs, _ = env.reset(seed=5)
    np.testing.assert_allclose(first[:9], env_obs[:9], atol=1e-6)      # eef pose and fingers: robosuite's own
    session.reset()
    assert (session.episode, session.seed) == (1, 6)
    assert not np.allclose(session.observation()[9:12], first[9:12])   # another cube position


def test_chunk_becomes_one_transition_and_the_horizon_truncates(lift):
    env, observe = lift
    session = BridgeSession(env, observe, gamma=0.9, first_seed=0)
    session.reset()
    decided_on = session.observation()
    chunk = np.tile([0.0, 0.0, 0.5, 0.0, 0.0, 0.0, -1.0], (4, 1))
    session.start_chunk(chunk, decided_on)
    while session.executing:
        session.step()
    first = session.finish_chunk()
    assert (first.steps, first.sequence, first.terminal, first.truncated) == (4, 0, False, False)
    np.testing.assert_array_equal(first.obs, decided_on)
    np.testing.assert_allclose(first.next_obs, session.observation())
    assert first.next_obs[2] > decided_on[2] + 0.01           # the arm went up
    session.start_chunk(chunk, first.next_obs)
    while session.executing:
        session.step()
    second = session.finish_chunk()                             # horizon 6: 2 of 4 actions executed
    assert (second.steps, second.sequence, second.truncated) == (2, 1, True) and session.done
    summary, partial = session.end_episode()
    assert partial is None and summary.truncated and summary.reason == "horizon" and summary.length == 6
    with pytest.raises(RuntimeError, match="reset first"):
        session.step()


def test_without_a_chunk_the_arm_holds_still(lift):
    env, observe = lift
    session = BridgeSession(env, observe, gamma=0.9, first_seed=1)
    session.reset()
    start = env.robot_state().eef_pos
    for _ in range(5):
        session.step()
    assert session.held_steps == 5 and session.gripper_command == -1.0
    assert np.linalg.norm(env.robot_state().eef_pos - start) < 0.005


def test_reset_in_the_middle_of_a_chunk_truncates_it(lift):
    env, observe = lift
    session = BridgeSession(env, observe, gamma=0.5, first_seed=2)
    session.reset()
    session.start_chunk(np.zeros((4, 7)), session.observation())
    session.step()
    session.step()
    summary, partial = session.end_episode("reset")
    assert summary.truncated and summary.reason == "reset" and not summary.success
    assert partial.steps == 2 and partial.truncated and not partial.terminal


def test_bad_chunks_are_refused_and_nothing_moves(lift):
    env, observe = lift
    session = BridgeSession(env, observe, gamma=0.9, first_seed=3)
    session.reset()
    obs = session.observation()
    for bad, message in ((np.full((4, 7), np.nan), "NaN"), (np.zeros((4, 6)), "shape"), (np.zeros((0, 7)), "shape")):
        with pytest.raises(ValueError, match=message):
            session.start_chunk(bad, obs)
    assert session.length == 0 and not session.executing
    np.testing.assert_array_equal(session.observation(), obs)
    with pytest.raises(ValueError, match="gamma"):
        BridgeSession(env, observe, gamma=0.0)


def test_run_chunk_decides_on_the_current_observation_and_executes_the_whole_chunk(lift):
    env, observe = lift
    session = BridgeSession(env, observe, gamma=0.9, first_seed=0)
    session.reset()
    seen = []

    def decide(obs):
        seen.append(obs)
        return np.tile([0.0, 0.0, 0.5, 0.0, 0.0, 0.0, -1.0], (4, 1))
    start = session.observation()
    transition = session.run_chunk(decide)
    np.testing.assert_array_equal(seen[0], start)
    np.testing.assert_array_equal(transition.obs, start)
    assert (transition.steps, transition.sequence) == (4, 0) and not session.executing
    assert transition.next_obs[2] > start[2] + 0.01            # the arm went up
    assert session.run_chunk(decide).steps == 2 and session.done   # horizon 6 cuts the second chunk
