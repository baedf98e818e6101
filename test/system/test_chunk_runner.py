import numpy as np
import pytest

from otpr_ros.sim.chunk_runner import run_chunk


class RewardSchedule:
    """A minimal env with rewards at known steps, to check the runner's arithmetic."""

    def __init__(self, rewards, terminal_at=None, horizon=100):
        self.rewards, self.terminal_at, self.horizon, self.t = rewards, terminal_at, horizon, 0

    def step(self, action):
        reward = self.rewards[self.t]
        self.t += 1
        terminated = self.terminal_at is not None and self.t == self.terminal_at
        return np.full(2, self.t), reward, terminated, self.t >= self.horizon and not terminated, {"success": terminated}


def test_discounted_sum_over_a_full_chunk():
    result = run_chunk(RewardSchedule([1.0, 0.0, 2.0, 0.5]), np.zeros((4, 7)), gamma=0.9)
    assert result.steps == 4 and not result.terminated and not result.truncated
    assert result.reward == pytest.approx(1.0 + 0.9 ** 2 * 2.0 + 0.9 ** 3 * 0.5)
    assert result.obs.tolist() == [4, 4]


def test_chunk_stops_at_termination_and_truncation():
    done = run_chunk(RewardSchedule([0, 0, 1, 0], terminal_at=3), np.zeros((4, 7)), gamma=0.5)
    assert (done.steps, done.terminated, done.success, done.reward) == (3, True, True, 0.25)
    cut = run_chunk(RewardSchedule([0] * 4, horizon=2), np.zeros((4, 7)), gamma=0.5)
    assert (cut.steps, cut.truncated, cut.terminated) == (2, True, False)


def test_bad_chunk_is_refused():
    with pytest.raises(ValueError, match="chunk"):
        run_chunk(RewardSchedule([0]), np.zeros(7), gamma=0.9)


def test_real_lift_episode_in_chunks():
    pytest.importorskip("robosuite", reason="the simulation extra is not installed")
    from otpr_ros.sim.experts import make_expert
    from otpr_ros.sim.robomimic_env import RobomimicEnv
    env = RobomimicEnv("lift")
    env.reset(seed=0)
    expert = make_expert(env, noise=0.0)

    class ExpertChunks:
        """Steps the env with the expert's action, ignoring the chunk's (closed loop)."""

        def step(self, _):
            return env.step(expert.act())

    total_steps = 0
    for _ in range(100):
        result = run_chunk(ExpertChunks(), np.zeros((4, 7)), gamma=0.99)
        total_steps += result.steps
        if result.terminated:
            break
    assert result.terminated and result.success
    assert result.reward == pytest.approx(0.99 ** (result.steps - 1))
    assert total_steps == env.elapsed
