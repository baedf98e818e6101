"""A chunk's arithmetic in BridgeSession, the one place chunks are executed (bridge, finetune,
evaluation): the discounted reward inside the chunk, early stops, refusals."""

import numpy as np
import pytest

from otpr_ros.sim.bridge_session import BridgeSession


class RewardSchedule:
    """A minimal env with rewards at known steps, to check the arithmetic."""

    class action_space:
        shape = (7,)

    def __init__(self, rewards, terminal_at=None, horizon=100):
        self.rewards, self.terminal_at, self.horizon = rewards, terminal_at, horizon

    def reset(self, seed=None):
        self.t = 0
        return np.zeros(2), {}

    def step(self, action):
        reward = self.rewards[self.t]
        self.t += 1
        terminated = self.terminal_at is not None and self.t == self.terminal_at
        return np.full(2, self.t), reward, terminated, self.t >= self.horizon and not terminated, {"success": terminated}


def chunk_of(env, gamma, steps=4):
    session = BridgeSession(env, None, gamma)
    session.reset()
    return session, session.run_chunk(lambda obs: np.zeros((steps, 7)))


def test_discounted_sum_over_a_full_chunk():
    session, transition = chunk_of(RewardSchedule([1.0, 0.0, 2.0, 0.5]), gamma=0.9)
    assert transition.steps == 4 and not transition.terminal and not transition.truncated and not session.done
    assert transition.reward == pytest.approx(1.0 + 0.9 ** 2 * 2.0 + 0.9 ** 3 * 0.5)
    assert transition.obs.tolist() == [0, 0] and transition.next_obs.tolist() == [4, 4]


def test_chunk_stops_at_termination_and_truncation():
    session, done = chunk_of(RewardSchedule([0, 0, 1, 0], terminal_at=3), gamma=0.5)
    assert (done.steps, done.terminal, session.success, done.reward) == (3, True, True, 0.25) and session.done
    session, cut = chunk_of(RewardSchedule([0] * 4, horizon=2), gamma=0.5)
    assert (cut.steps, cut.truncated, cut.terminal) == (2, True, False)
    summary, partial = session.end_episode()
    assert (summary.length, summary.reason, partial) == (2, "horizon", None)


def test_bad_chunk_is_refused():
    for bad in (np.zeros(7), np.zeros((0, 7)), np.zeros((4, 6)), np.full((4, 7), np.nan)):
        with pytest.raises(ValueError, match="chunk"):
            chunk_of(RewardSchedule([0] * 4), gamma=0.9, steps=4)[0].start_chunk(bad, np.zeros(2))


def test_a_receding_horizon_executes_the_first_actions_and_keeps_the_whole_chunk():
    """``execute`` (the model's agent.execute_steps): that many actions, then the next decision;
    the transition carries the chunk as decided and bootstraps with gamma ** steps executed."""
    env = RewardSchedule([1.0, 2.0, 4.0, 8.0, 0.0, 0.0])
    session = BridgeSession(env, None, 0.5)
    session.reset()
    chunk = np.arange(28, dtype=np.float64).reshape(4, 7) / 28
    transition = session.run_chunk(lambda obs: chunk, execute=2)
    assert transition.steps == 2 and env.t == 2 and transition.reward == pytest.approx(1.0 + 0.5 * 2.0)
    assert np.array_equal(transition.action, chunk) and transition.next_obs.tolist() == [2, 2]
    assert session.run_chunk(lambda obs: chunk, execute=9).steps == 4         # no more than the chunk
    with pytest.raises(ValueError, match="execute"):
        session.start_chunk(chunk, np.zeros(2), execute=-1)
    assert not session.executing and session.length == 6                    # the refused chunk moved nothing
