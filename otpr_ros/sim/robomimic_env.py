"""Robomimic low-dim tasks on robosuite 1.5 (real MuJoCo physics) as gymnasium environments.

Panda with robosuite's default controller (OSC on delta pose + gripper, 7-dim actions in
[-1, 1]), 20 Hz, no rendering. The observation is robomimic's low-dim keys concatenated
in this order: ``robot0_eef_pos`` (3), ``robot0_eef_quat`` (4), ``robot0_gripper_qpos`` (2),
``object`` (robosuite's ``object-state``: 10 for Lift, 14 for Can and Square).

Reward is sparse: 1 at the step the task succeeds, which terminates the episode; the
horizon truncates. ``reset(seed=s)`` reseeds robosuite's placement sampler, so the same
seed gives the same initial scene; ``model_seed`` fixes what robosuite randomises once when
it builds the model (Lift's cube size), so separate processes build the same model.
"""

import logging
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

OBS_KEYS = ("robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos", "object")
ROBOSUITE_KEY = {"object": "object-state"}  # robomimic's name -> robosuite's
# robomimic low-dim keys a demonstration file keeps (the policy reads the ones its config names)
STORED_KEYS = ("robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos", "robot0_joint_pos",
               "robot0_joint_vel", "robot0_gripper_qvel", "object")


@dataclass(frozen=True)
class TaskSpec:
    env_name: str
    horizon: int
    object_dim: int
    object_name: str       # robosuite's name of the task's object (its ``<name>_pos``, ``<name>_quat``)
    hand_quat: int | None = None   # where robosuite's object-to-hand quaternion starts in ``object`` (sign-free)

    @property
    def obs_dim(self) -> int:
        return 3 + 4 + 2 + self.object_dim

    @property
    def quaternions(self) -> tuple:
        """Starts, in the flat observation, of quaternions whose sign robosuite picks (w >= 0)."""
        return () if self.hand_quat is None else (3 + 4 + 2 + self.hand_quat,)


TASKS = {
    "lift": TaskSpec("Lift", 300, 10, "cube"),
    # Can's hand quaternion flips too (~6 times a demonstration), but declaring it gave imitation no
    # measurable gain (docs/experiments/2026-12-03-can-quaternion-sign.md): left undeclared
    "can": TaskSpec("PickPlaceCan", 300, 14, "Can"),
    "square": TaskSpec("NutAssemblySquare", 400, 14, "SquareNut", hand_quat=3),
}
ACTION_DIM = 7
CONTROL_HZ = 20


@dataclass(frozen=True)
class RobotState:
    """One instant of the robot and its object, in robosuite's world frame (quaternions x, y, z, w)."""
    joint_pos: np.ndarray       # the 7 arm joints, rad
    joint_vel: np.ndarray
    eef_pos: np.ndarray         # robomimic's robot0_eef_pos / robot0_eef_quat: the frame the policy knows
    eef_quat: np.ndarray
    gripper_qpos: np.ndarray    # the 2 finger joints, m
    object_pos: np.ndarray
    object_quat: np.ndarray


JOINT_NAMES = tuple(f"panda_joint{i}" for i in range(1, 8))
FINGER_NAMES = ("panda_finger_joint1", "panda_finger_joint2")


def task_spec(task: str) -> TaskSpec:
    if task not in TASKS:
        raise ValueError(f"task: expected one of {sorted(TASKS)}, got {task!r}")
    return TASKS[task]


def checked_action(action, dim: int) -> np.ndarray:
    """``action`` as float64 of shape (dim,); ValueError naming what is wrong (shape, NaN or Inf)."""
    action = np.asarray(action, dtype=np.float64)
    if action.shape != (dim,):
        raise ValueError(f"action: expected shape ({dim},), got {action.shape}")
    if not np.isfinite(action).all():
        raise ValueError("action: NaN or Inf")
    return action


def flatten_obs(raw: dict, keys=OBS_KEYS) -> np.ndarray:
    """Concatenate robomimic keys (from a robosuite observation dict) in order, as float32."""
    parts = []
    for key in keys:
        name = ROBOSUITE_KEY.get(key, key)
        if name not in raw:
            raise ValueError(f"observation: key {key!r} ({name!r} in robosuite) missing")
        parts.append(np.asarray(raw[name], dtype=np.float32).ravel())
    return np.concatenate(parts)


# robosuite's notices at import and per environment that say nothing to this package's users: it runs
# without a private macro file, the optional robot models and the humanoid's IK, with the default controller
ROBOSUITE_NOTICES = ("No private macro file", "It is recommended to use a private macro file", "To setup, run:",
                     "Could not import robosuite_models", "Could not load the mink-based",
                     "Loading controller configuration from")


class QuietRobosuite(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(ROBOSUITE_NOTICES)


def quiet_robosuite() -> None:
    """Drop ROBOSUITE_NOTICES from robosuite's logger (its other messages pass)."""
    logger = logging.getLogger("robosuite_logs")
    if not any(isinstance(f, QuietRobosuite) for f in logger.filters):
        logger.addFilter(QuietRobosuite())


class RobomimicEnv(gym.Env):
    metadata = {"render_modes": []}
    control_hz = CONTROL_HZ

    def __init__(self, task: str = "lift", horizon: int | None = None, model_seed: int = 0,
                 hard_reset: bool = False):
        quiet_robosuite()
        import robosuite  # imported here: the core and its tests do not need MuJoCo

        self.task, self.spec_ = task, task_spec(task)
        self.horizon = horizon or self.spec_.horizon
        if self.horizon < 1:
            raise ValueError(f"horizon: expected >= 1, got {self.horizon}")
        global_state = np.random.get_state()  # robosuite builds models from numpy's global RNG
        np.random.seed(model_seed)
        try:
            self.sim_env = robosuite.make(
                self.spec_.env_name, robots="Panda", has_renderer=False, has_offscreen_renderer=False,
                use_camera_obs=False, control_freq=CONTROL_HZ, ignore_done=True, hard_reset=hard_reset,
                reward_shaping=False, seed=model_seed)
        finally:
            np.random.set_state(global_state)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (self.spec_.obs_dim,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (ACTION_DIM,), np.float32)
        self.raw_obs: dict = {}
        self.elapsed = 0

    def reset(self, *, seed: int | None = None, options=None):
        super().reset(seed=seed)
        if seed is not None:
            self._reseed(seed)
        self.raw_obs = self.sim_env.reset()
        self.elapsed = 0
        return flatten_obs(self.raw_obs), {"success": False}

    def step(self, action):
        action = checked_action(action, ACTION_DIM)
        if self.elapsed >= self.horizon:
            raise RuntimeError("step after the episode ended: call reset()")
        self.raw_obs, _, _, _ = self.sim_env.step(np.clip(action, -1.0, 1.0))
        self.elapsed += 1
        success = bool(self.sim_env._check_success())
        truncated = not success and self.elapsed >= self.horizon
        return flatten_obs(self.raw_obs), float(success), success, truncated, {"success": success}

    @staticmethod
    def hold_action(gripper_command: float) -> np.ndarray:
        """Holding still: zero end-effector motion, the gripper as last commanded."""
        return np.array([0.0] * (ACTION_DIM - 1) + [gripper_command])

    def robot_state(self) -> RobotState:
        """What a robot and its perception would publish about the current state."""
        raw, name = self.raw_obs, self.spec_.object_name
        return RobotState(*(np.asarray(raw[key], np.float64).copy() for key in (
            "robot0_joint_pos", "robot0_joint_vel", "robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos",
            f"{name}_pos", f"{name}_quat")))

    def stored_observation(self) -> dict:
        """The observation as a demonstration file keeps it (``STORED_KEYS`` -> values)."""
        return {k: np.asarray(self.raw_obs[ROBOSUITE_KEY.get(k, k)], dtype=np.float64).copy() for k in STORED_KEYS}

    def sim_state(self) -> np.ndarray:
        """The flattened MuJoCo state (robomimic's ``states``)."""
        return np.asarray(self.sim_env.sim.get_state().flatten())

    def _reseed(self, seed: int) -> None:
        # robosuite draws placements from env.rng, which its samplers hold by reference
        rng = np.random.default_rng(seed)
        self.sim_env.rng = rng
        initializer = self.sim_env.placement_initializer
        for sampler in [initializer, *getattr(initializer, "samplers", {}).values()]:
            sampler.rng = rng

    def close(self):
        self.sim_env.close()
