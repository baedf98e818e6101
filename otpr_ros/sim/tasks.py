"""The simulated tasks a model is trained and fine-tuned on, by name: what their observation and
action are and how to build their environment.

- robomimic (robosuite): ``lift``, ``can``, ``square``; the observation is robomimic's
  low-dim keys (``OBS_KEYS``), 7-dim OSC actions, 20 Hz;
- Franka Kitchen: ``kitchen_complete``, ``kitchen_partial``, ``kitchen_mixed``; the 59-value
  ``observation``, 9 joint velocities, 12.5 Hz;
- CALVIN (scene D): ``calvin_<task>`` for each task with a scripted expert (``calvin_open_drawer``
  ...); ``robot_obs`` and ``scene_obs``, 7-dim relative tcp actions, 30 Hz.

Nothing here imports a simulator; ``make_env`` does, for the one task asked for.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class SimTask:
    name: str
    obs_keys: tuple          # the observation, as the keys of a demonstration file, concatenated in order
    obs_dim: int
    act_dim: int
    control_hz: float
    horizon: int             # control steps per episode (Franka Kitchen reports the normalised score)


def _tasks() -> dict:
    from otpr_ros.sim import calvin_env, calvin_experts, kitchen_env, robomimic_env
    tasks = {name: SimTask(name, robomimic_env.OBS_KEYS, spec.obs_dim, robomimic_env.ACTION_DIM,
                           robomimic_env.CONTROL_HZ, spec.horizon) for name, spec in robomimic_env.TASKS.items()}
    tasks.update({name: SimTask(name, kitchen_env.OBS_KEYS, kitchen_env.OBS_DIM, kitchen_env.ACTION_DIM,
                                kitchen_env.CONTROL_HZ, kitchen_env.HORIZON) for name in kitchen_env.KITCHEN_TASKS})
    tasks.update({f"calvin_{name}": SimTask(f"calvin_{name}", calvin_env.OBS_KEYS,
                                            calvin_env.ROBOT_OBS_DIM + calvin_env.SCENE_OBS_DIM, calvin_env.ACTION_DIM,
                                            calvin_env.CONTROL_HZ, calvin_env.HORIZON)
                  for name in calvin_experts.SCRIPTED})
    return tasks


SIM_TASKS = _tasks()


def sim_task(name: str) -> SimTask:
    if name not in SIM_TASKS:
        raise ValueError(f"task: expected one of {sorted(SIM_TASKS)}, got {name!r}")
    return SIM_TASKS[name]


def is_kitchen(name: str) -> bool:
    """A Franka Kitchen task: a registered ``kitchen_<variant>`` or a ``kitchen:<sub-task>[,...]`` of the
    scripted experts (the one place that asks; anything else is robomimic)."""
    return name.startswith("kitchen")


def is_calvin(name: str) -> bool:
    """A CALVIN task: ``calvin_<calvin_env task>``."""
    return name.startswith("calvin_")


def make_env(name: str, horizon: int | None = None):
    """A fresh environment of the task (``horizon``: None for the task's own)."""
    task = sim_task(name)
    if is_kitchen(task.name):
        from otpr_ros.sim.kitchen_env import KitchenEnv
        return KitchenEnv(name, horizon=horizon or task.horizon)
    if is_calvin(task.name):
        from otpr_ros.sim.calvin_env import CalvinEnv
        return CalvinEnv([name.removeprefix("calvin_")], horizon=horizon or task.horizon, task=name)
    from otpr_ros.sim.robomimic_env import RobomimicEnv
    return RobomimicEnv(name, horizon=horizon)
