"""Franka Kitchen (gymnasium-robotics' ``FrankaKitchen-v1``, MuJoCo) as the paper's three Kitchen
benchmarks, defined as D4RL defines the environments of its kitchen datasets.

- ``kitchen_complete``: targets microwave, kettle, light switch, slide cabinet (D4RL's
  ``KitchenMicrowaveKettleLightSliderV0``);
- ``kitchen_partial`` and ``kitchen_mixed``: targets microwave, kettle, bottom burner, light
  switch (``KitchenMicrowaveKettleBottomBurnerLightV0``); the two differ only in their
  demonstrations (partial: some solve the four targets, others other sub-tasks; mixed: none
  solves all four).

Observation: FrankaKitchen-v1's ``observation``, 59 float32: the robot's 9 joint positions and
9 joint velocities, then the kitchen's 21 object positions and 20 object velocities (with its
observation noise, drawn from the reset's seed). ``positions``, 30 float32: the 9 + 21
positions alone, D4RL's observation (its 60 are these and a 30-value goal, the same in every
episode); a model takes one or the other (its ``obs_keys``), a demonstration file keeps both.
Action: 9 joint velocities in [-1, 1] (times 2 rad/s; the fingers too), 12.5 Hz.
Reward: at each step, the number of targets completed at that step for the first time (a
target counts once, when its joints come within 0.3 of the goal: D4RL's); the return is the
number of targets done, 0-4; the episode terminates when all four are done and truncates at
280 steps. ``normalised_score``: 100 x return / 4 (D4RL's reference scores 0 and 4), what the
paper reports. ``achieved`` lists every sub-task done so far, targets or not, by the same rule
(what a demonstration that does other sub-tasks is judged by).

gymnasium-robotics is the ``kitchen`` extra; importing this module does not need it.
"""

import contextlib
import io

import gymnasium as gym
import numpy as np

from otpr_ros.sim.robomimic_env import checked_action

SUBTASKS = ("bottom burner", "top burner", "light switch", "slide cabinet", "hinge cabinet", "microwave", "kettle")
KITCHEN_TASKS = {
    "kitchen_complete": ("microwave", "kettle", "light switch", "slide cabinet"),
    "kitchen_partial": ("microwave", "kettle", "bottom burner", "light switch"),
    "kitchen_mixed": ("microwave", "kettle", "bottom burner", "light switch"),
}
HORIZON = 280
OBS_DIM, ACTION_DIM = 59, 9
OBS_KEYS = ("observation",)     # the default observation: FrankaKitchen-v1's, velocities included
POSITIONS = np.r_[0:9, 18:39]   # D4RL's observation within it: the robot's 9 and the objects' 21 positions
OBS_KEY_DIMS = {"observation": OBS_DIM, "positions": len(POSITIONS)}    # what a model may take, and its size
CONTROL_HZ = 12.5               # FrankaKitchen-v1: 40 MuJoCo steps of 2 ms per action
INSTALL_HINT = "Franka Kitchen needs gymnasium-robotics: pip install -e '.[kitchen]' (gymnasium-robotics==1.4.2)"


def kitchen_targets(task: str) -> tuple:
    """The targets of a benchmark (``kitchen_complete`` ...) or of sub-tasks in a row
    (``kitchen:microwave`` or ``kitchen:microwave,light switch``: what the scripted experts are
    measured on)."""
    if task in KITCHEN_TASKS:
        return KITCHEN_TASKS[task]
    targets = tuple(task.removeprefix("kitchen:").split(",")) if task.startswith("kitchen:") else ()
    if not targets or not set(targets) <= set(SUBTASKS) or len(set(targets)) != len(targets):
        raise ValueError(f"task: expected one of {sorted(KITCHEN_TASKS)} or kitchen:<sub-task>[,<sub-task>...] with "
                         f"distinct sub-tasks of {SUBTASKS}, got {task!r}")
    return targets


def observation_keys(obs_keys) -> tuple:
    """A model's observation keys checked: ``observation`` or ``positions`` (``OBS_KEY_DIMS``)."""
    keys = tuple(obs_keys)
    if len(keys) != 1 or keys[0] not in OBS_KEY_DIMS:
        raise ValueError(f"obs_keys: a Franka Kitchen model takes one of {sorted(OBS_KEY_DIMS)}, got {list(keys)}")
    return keys


def observation_dim(obs_keys) -> int:
    return sum(OBS_KEY_DIMS[k] for k in observation_keys(obs_keys))


def normalised_score(returns) -> float:
    """D4RL's normalised score of episode returns (sub-tasks done, 0-4): 100 x mean / 4."""
    returns = np.asarray(returns, dtype=np.float64)
    if returns.size == 0 or not np.isfinite(returns).all():
        raise ValueError("returns: expected one or more finite episode returns")
    return float(100.0 * returns.mean() / 4.0)


class KitchenEnv(gym.Env):
    metadata = {"render_modes": []}
    control_hz = CONTROL_HZ

    def __init__(self, task: str = "kitchen_complete", horizon: int = HORIZON, obs_keys=OBS_KEYS):
        try:
            # its import prints a notice about the Adroit hand's rewards, nothing to do with the kitchen
            with contextlib.redirect_stderr(io.StringIO()):
                import gymnasium_robotics
        except ImportError as error:
            raise ModuleNotFoundError(INSTALL_HINT) from error
        if horizon < 1:
            raise ValueError(f"horizon: expected >= 1, got {horizon}")
        self.task, self.targets, self.horizon = task, kitchen_targets(task), horizon
        self.obs_keys = observation_keys(obs_keys)
        gym.register_envs(gymnasium_robotics)
        # the horizon is this wrapper's; the kitchen itself neither truncates nor drops finished targets early
        self.kitchen = gym.make("FrankaKitchen-v1", tasks_to_complete=list(self.targets),
                                remove_task_when_completed=True, terminate_on_tasks_completed=True).unwrapped
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (observation_dim(self.obs_keys),), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (ACTION_DIM,), np.float32)
        from gymnasium_robotics.envs.franka_kitchen.kitchen_env import BONUS_THRESH, OBS_ELEMENT_GOALS, \
            OBS_ELEMENT_INDICES
        self._goals = {t: (OBS_ELEMENT_INDICES[t], OBS_ELEMENT_GOALS[t]) for t in SUBTASKS}
        self._threshold = BONUS_THRESH
        self.completed: list = []
        self.achieved: list = []
        self.elapsed = 0

    @property
    def model(self):
        return self.kitchen.model

    @property
    def data(self):
        return self.kitchen.data

    def reset(self, *, seed: int | None = None, options=None):
        super().reset(seed=seed)
        obs, _ = self.kitchen.reset(seed=seed)
        self.completed, self.achieved, self.elapsed = [], [], 0
        self._observe(obs)
        return self._obs, {"success": False, "completed": ()}

    def step(self, action):
        action = checked_action(action, ACTION_DIM)
        if self.elapsed >= self.horizon or len(self.completed) == len(self.targets):
            raise RuntimeError("step after the episode ended: call reset()")
        obs, _, _, _, info = self.kitchen.step(np.clip(action, -1.0, 1.0))
        self.elapsed += 1
        new = [t for t in info["step_task_completions"] if t not in self.completed]
        self.completed += new
        qpos = self.data.qpos
        self.achieved += [t for t, (index, goal) in self._goals.items() if t not in self.achieved and
                          np.linalg.norm(qpos[index] - goal) < self._threshold]
        self._observe(obs)
        success = len(self.completed) == len(self.targets)
        truncated = not success and self.elapsed >= self.horizon
        return self._obs, float(len(new)), success, truncated, {"success": success,
                                                                       "completed": tuple(self.completed)}

    def sim_state(self) -> np.ndarray:
        """MuJoCo's positions and velocities (the robomimic layout's ``states``)."""
        return np.concatenate([self.data.qpos, self.data.qvel]).copy()

    def stored_observation(self) -> dict:
        """The observation as a demonstration file keeps it (robomimic layout: key -> values)."""
        return {key: values.astype(np.float64) for key, values in self._stored.items()}

    @staticmethod
    def hold_action(gripper_command: float) -> np.ndarray:
        """Holding still: every joint's velocity (the fingers' too) zero."""
        return np.zeros(ACTION_DIM)

    def _observe(self, obs: dict) -> None:
        """Keep FrankaKitchen-v1's observation as the file stores it and as the model takes it."""
        full = np.asarray(obs["observation"], dtype=np.float32)
        self._stored = {"observation": full, "positions": full[POSITIONS]}
        self._obs = np.concatenate([self._stored[k] for k in self.obs_keys])

    def close(self):
        self.kitchen.close()
