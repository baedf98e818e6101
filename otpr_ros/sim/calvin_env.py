"""CALVIN (calvin_env, PyBullet) behind the same gymnasium interface as the robomimic tasks.

Observation: ``robot_obs`` (15: tcp position, tcp euler, gripper width, 7 arm joints,
gripper action) then ``scene_obs`` (24: sliding door, drawer, button, switch, two lights,
three blocks' poses), float32. Action: 7-dim relative (tcp position and euler deltas in
[-1, 1], gripper -1 close / 1 open). Reward: 1 each time the next task of the configured
chain is completed, as judged by calvin_env's task oracle comparing ``get_info()`` at the
start of that task with now (CALVIN's multistep evaluation); the episode terminates when
the chain is done and truncates at the horizon.

calvin_env is not on PyPI; importing this module does not need it, constructing
``CalvinEnv`` does, and says how to install it when it is absent.
"""

import gymnasium as gym
import numpy as np

from otpr_ros.sim.robomimic_env import RobomimicEnv, checked_action

ROBOT_OBS_DIM, SCENE_OBS_DIM, ACTION_DIM = 15, 24, 7
INSTALL_HINT = (
    "calvin_env is not installed (it is not on PyPI). Install it from its git checkout:\n"
    "  git clone --recursive https://github.com/mees/calvin_env.git\n"
    "  pip install -e calvin_env/tacto && pip install -e calvin_env")


def flatten_obs(obs: dict) -> np.ndarray:
    """robot_obs (15) + scene_obs (24) as one float32 vector."""
    parts = []
    for key, dim in (("robot_obs", ROBOT_OBS_DIM), ("scene_obs", SCENE_OBS_DIM)):
        if key not in obs:
            raise ValueError(f"observation: key {key!r} missing")
        value = np.asarray(obs[key], dtype=np.float32).ravel()
        if value.shape != (dim,):
            raise ValueError(f"observation: {key} has {value.size} values, expected {dim}")
        parts.append(value)
    return np.concatenate(parts)


def to_calvin_action(action) -> np.ndarray:
    """A policy's 7-dim action as calvin_env's relative action: deltas clipped to [-1, 1],
    the gripper snapped to -1 (close) or 1 (open)."""
    action = checked_action(action, ACTION_DIM)
    deltas = np.clip(action[:6], -1.0, 1.0)
    return np.append(deltas, 1.0 if action[6] >= 0 else -1.0)


class TaskChain:
    """Progress through a chain of CALVIN tasks (one task is a chain of one).

    ``update(completed)`` takes the names the oracle reports completed since the current
    task started; it returns the reward (1 when the current task is among them) and moves
    on. The caller restarts the oracle's reference (``get_info()``) after each completion.
    """

    def __init__(self, tasks):
        self.tasks = tuple(tasks)
        if not self.tasks or not all(isinstance(t, str) and t for t in self.tasks):
            raise ValueError(f"tasks: expected one or more task names, got {tasks!r}")
        self.reset()

    def reset(self) -> None:
        self.completed = 0

    @property
    def current(self) -> str | None:
        return self.tasks[self.completed] if self.completed < len(self.tasks) else None

    @property
    def done(self) -> bool:
        return self.completed == len(self.tasks)

    def update(self, completed) -> float:
        if self.done or self.current not in set(completed):
            return 0.0
        self.completed += 1
        return 1.0


class CalvinEnv(gym.Env):
    metadata = {"render_modes": []}
    control_hz = 30            # CALVIN's recorded rate

    def __init__(self, tasks=("open_drawer",), horizon: int = 360, scene: str = "calvin_scene_D"):
        try:
            import calvin_env
            import hydra
        except ImportError as error:
            raise ModuleNotFoundError(INSTALL_HINT) from error
        from pathlib import Path

        if horizon < 1:
            raise ValueError(f"horizon: expected >= 1, got {horizon}")
        self.chain, self.horizon = TaskChain(tasks), horizon
        config_dir = Path(calvin_env.__file__).resolve().parents[1] / "conf"
        with hydra.initialize_config_dir(config_dir=str(config_dir), version_base=None):
            cfg = hydra.compose("config_data_collection", overrides=[f"scene={scene}"])
        # no cameras: the policy reads the state vectors only, and rendering costs most of a step
        self.sim = hydra.utils.instantiate(cfg.env, show_gui=False, use_vr=False, use_scene_info=True,
                                           cameras={})
        self.oracle = hydra.utils.instantiate(cfg.tasks)
        known = getattr(self.oracle, "tasks", None)      # calvin_env's task table, by name
        unknown = set(self.chain.tasks) - set(known) if known is not None else set()
        if unknown:
            raise ValueError(f"tasks: unknown to calvin_env: {sorted(unknown)}")
        dim = ROBOT_OBS_DIM + SCENE_OBS_DIM
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (dim,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (ACTION_DIM,), np.float32)

    def reset(self, *, seed: int | None = None, options=None):
        """``options`` may carry ``robot_obs`` and ``scene_obs`` to start from (as CALVIN's
        evaluation does from its recorded start states)."""
        super().reset(seed=seed)
        options = options or {}
        obs = self.sim.reset(robot_obs=options.get("robot_obs"), scene_obs=options.get("scene_obs"))
        self.chain.reset()
        self.start_info, self.elapsed = self.sim.get_info(), 0
        return flatten_obs(obs), {"success": False}

    def step(self, action):
        if self.elapsed >= self.horizon:
            raise RuntimeError("step after the episode ended: call reset()")
        obs, _, _, info = self.sim.step(to_calvin_action(action))
        self.elapsed += 1
        completed = self.oracle.get_task_info_for_set(self.start_info, info, {self.chain.current})
        reward = self.chain.update(completed)
        if reward:
            self.start_info = info          # the next task is judged from here
        success = self.chain.done
        truncated = not success and self.elapsed >= self.horizon
        return flatten_obs(obs), reward, success, truncated, {"success": success,
                                                               "tasks_completed": self.chain.completed}

    hold_action = staticmethod(RobomimicEnv.hold_action)     # the same 7-dim relative actions, gripper last

    def close(self):
        self.sim.close()
