import numpy as np
import pytest

pytest.importorskip("robosuite", reason="the simulation extra is not installed")

from otpr_ros.core.normalizer import MinMaxNormalizer  # noqa: E402
from otpr_ros.sim.experts import make_expert  # noqa: E402
from otpr_ros.sim.robomimic_env import RobomimicEnv, task_spec  # noqa: E402
from otpr_ros.sim.tasks import sim_task  # noqa: E402

# (task, obs_dim, a seed whose noisy expert episode succeeds)
TASKS = [("lift", 19, 0), ("can", 23, 0), ("square", 23, 0)]


@pytest.fixture(scope="module", params=TASKS, ids=[t[0] for t in TASKS])
def env_case(request):
    task, obs_dim, seed = request.param
    env = RobomimicEnv(task)
    yield env, obs_dim, seed
    env.close()


def test_reset_step_and_seeds(env_case):
    env, obs_dim, _ = env_case
    obs, info = env.reset(seed=11)
    assert obs.shape == (obs_dim,) and obs.dtype == np.float32 and info == {"success": False}
    again, _ = env.reset(seed=11)
    other, _ = env.reset(seed=12)
    assert np.array_equal(obs, again) and not np.array_equal(obs, other)
    moved, reward, terminated, truncated, info = env.step(np.array([1.0, 0, 0, 0, 0, 0, -1]))
    assert moved.shape == (obs_dim,) and reward == 0.0 and not terminated and not truncated
    assert moved[0] > other[0]  # the end effector moved along +x


def test_expert_episode_reports_success(env_case):
    """... and the quaternions the task declares sign-free are unit quaternions that robosuite
    flips (Square: while the hand holds the nut); the normaliser fitted with them sees none."""
    env, _, seed = env_case
    observations = [env.reset(seed=seed)[0]]
    expert = make_expert(env, noise=0.1, rng=np.random.default_rng(seed))
    for step in range(env.horizon):
        obs, reward, terminated, truncated, info = env.step(expert.act())
        observations.append(obs)
        if terminated or truncated:
            break
    assert terminated and not truncated and reward == 1.0 and info["success"]
    assert step + 1 < env.horizon
    observations = np.array(observations[1:], dtype=np.float64)     # robosuite's first has them 0
    starts = sim_task(env.task).quaternions
    flips = lambda x, s: int((np.linalg.norm(np.diff(x[:, s:s + 4], axis=0), axis=1) > 0.5).sum())  # noqa: E731
    canonical = MinMaxNormalizer.fit(observations, starts).canonical(observations)
    for start in starts:
        assert np.allclose(np.linalg.norm(observations[:, start:start + 4], axis=1), 1.0, atol=1e-4)
        assert flips(canonical, start) == 0
    if env.task == "square":                                          # robosuite's flips are real
        assert flips(observations, starts[0]) > 0


def test_horizon_truncates_and_bad_actions_are_refused():
    env = RobomimicEnv("lift", horizon=3)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action: expected shape"):
        env.step(np.zeros(6))
    with pytest.raises(ValueError, match="NaN"):
        env.step(np.array([0, 0, np.nan, 0, 0, 0, 0]))
    flags = [env.step(np.zeros(7))[3] for _ in range(3)]
    assert flags == [False, False, True]
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(7))


def test_unknown_task_is_refused():
    with pytest.raises(ValueError, match="task: expected one of"):
        task_spec("stack")


def test_robosuite_notices_are_silenced_and_its_other_messages_pass():
    """A user sees none of robosuite's notices about its private macros, optional robot models,
    the humanoid's IK or the controller file it loads; robosuite's other warnings still show."""
    import subprocess
    import sys
    code = ("from otpr_ros.sim.robomimic_env import RobomimicEnv\n"
            "RobomimicEnv('lift').reset(seed=0)\n"
            "import logging; logging.getLogger('robosuite_logs').warning('a real robosuite warning')\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    output = result.stdout + result.stderr
    assert "a real robosuite warning" in output
    for notice in ("macro", "robosuite_models", "mink", "controller configuration"):
        assert notice not in output, output[-2000:]
