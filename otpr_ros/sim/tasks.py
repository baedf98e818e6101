"""The simulated tasks a model is trained and fine-tuned on, by name: what their observation and
action are and how to build their environment.

- robomimic (robosuite): ``lift``, ``can``, ``square``; the observation is robomimic's
  low-dim keys (``OBS_KEYS``), 7-dim OSC actions, 20 Hz;
- Franka Kitchen: ``kitchen_complete``, ``kitchen_partial``, ``kitchen_mixed``; the 59-value
  ``observation``, 9 joint velocities, 12.5 Hz;
- CALVIN (scene D): ``calvin_<task>`` for each task with a scripted expert (``calvin_open_drawer``
  ...); ``robot_obs`` and ``scene_obs``, 7-dim relative tcp actions, 30 Hz. ``calvin_multi``:
  each episode one of those tasks, drawn from the seed, its ``task_id`` (one-hot) in the
  observation: one policy for all of them.

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
    quaternions: tuple = ()  # starts of quaternions in the observation whose sign is a convention (normalizer.py)
    other_observations: tuple = ()   # (obs_keys, obs_dim) a model may take instead (Franka Kitchen: positions)

    def observation(self, obs_keys=None) -> tuple:
        """(obs_keys, obs_dim): the task's own observation (None) or one of its others, by keys."""
        keys = self.obs_keys if obs_keys is None else tuple(obs_keys)
        choices = dict(((self.obs_keys, self.obs_dim),) + self.other_observations)
        if keys not in choices:
            raise ValueError(f"obs_keys: {self.name} observes " + " or ".join(",".join(k) for k in choices)
                             + f", got {','.join(keys)}")
        return keys, choices[keys]


def _tasks() -> dict:
    from otpr_ros.sim import calvin_env, calvin_experts, kitchen_env, robomimic_env
    tasks = {name: SimTask(name, robomimic_env.OBS_KEYS, spec.obs_dim, robomimic_env.ACTION_DIM,
                           robomimic_env.CONTROL_HZ, spec.horizon, spec.quaternions)
             for name, spec in robomimic_env.TASKS.items()}
    positions = (("positions",), kitchen_env.OBS_KEY_DIMS["positions"])
    tasks.update({name: SimTask(name, kitchen_env.OBS_KEYS, kitchen_env.OBS_DIM, kitchen_env.ACTION_DIM,
                                kitchen_env.CONTROL_HZ, kitchen_env.HORIZON, other_observations=(positions,))
                  for name in kitchen_env.KITCHEN_TASKS})
    tasks.update({f"calvin_{name}": SimTask(f"calvin_{name}", calvin_env.OBS_KEYS,
                                            calvin_env.ROBOT_OBS_DIM + calvin_env.SCENE_OBS_DIM, calvin_env.ACTION_DIM,
                                            calvin_env.CONTROL_HZ, calvin_env.HORIZON)
                  for name in calvin_experts.SCRIPTED})
    tasks[CALVIN_MULTI] = SimTask(CALVIN_MULTI, calvin_env.OBS_KEYS + (calvin_env.TASK_ID_KEY,),
                                  calvin_env.ROBOT_OBS_DIM + calvin_env.SCENE_OBS_DIM + len(calvin_experts.SCRIPTED),
                                  calvin_env.ACTION_DIM, calvin_env.CONTROL_HZ, calvin_env.HORIZON)
    return tasks


CALVIN_MULTI = "calvin_multi"     # one policy for every scripted CALVIN task, told which by a task id


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


def calvin_env_kwargs(name: str) -> dict:
    """``CalvinEnv``'s arguments for a CALVIN task of the registry (a demonstration file keeps them)."""
    if name == CALVIN_MULTI:
        from otpr_ros.sim.calvin_experts import SCRIPTED
        return {"vocabulary": list(SCRIPTED), "chain_length": 1}
    return {"tasks": [name.removeprefix("calvin_")]}


def make_env(name: str, horizon: int | None = None, chain_length: int = 1, obs_keys=None):
    """A fresh environment of the task (``horizon``: None for the task's own, per instruction of a
    chain). ``chain_length``: ``calvin_multi`` episodes of that many instructions in a row
    (CALVIN's long-horizon evaluation: five). ``obs_keys``: the observation the model takes (None:
    the task's own; ``SimTask.observation``)."""
    task = sim_task(name)
    obs_keys, _ = task.observation(obs_keys)
    if chain_length != 1 and name != CALVIN_MULTI:
        raise ValueError(f"chain_length {chain_length}: only {CALVIN_MULTI} draws chains of instructions, not {name}")
    if is_kitchen(task.name):
        from otpr_ros.sim.kitchen_env import KitchenEnv
        return KitchenEnv(name, horizon=horizon or task.horizon, obs_keys=obs_keys)
    if is_calvin(task.name):
        from otpr_ros.sim.calvin_env import CalvinEnv
        kwargs = calvin_env_kwargs(name)
        if chain_length != 1:
            kwargs["chain_length"] = chain_length
        return CalvinEnv(horizon=(horizon or task.horizon) * chain_length, instruction_horizon=horizon or task.horizon,
                         task=name, **kwargs)
    from otpr_ros.sim.robomimic_env import RobomimicEnv
    return RobomimicEnv(name, horizon=horizon)
