"""CALVIN (calvin_env, PyBullet) behind the same gymnasium interface as the robomimic tasks.

Observation: ``robot_obs`` (15: tcp position, tcp euler, gripper width, 7 arm joints,
gripper action) then ``scene_obs`` (24: sliding door, drawer, button, switch, lightbulb, led,
then the red, blue and pink blocks' positions and euler angles), float32. A multi-task
environment (``vocabulary``: the instructions it knows) draws each episode's chain from the
seed and appends ``task_id``, the current instruction one-hot over the vocabulary: the
policy's instruction, as CALVIN's language goal is its policies'. Action: 7-dim
relative (tcp position and euler deltas in [-1, 1], calvin_env's 2 cm and 0.05 rad per step;
gripper -1 close / 1 open); the tcp's target is kept inside ``WORKSPACE`` and its orientation
within ``TURN_LIMIT`` of the start (calvin_env bounds neither). Reward: 1 each time the next
task of the chain is completed, as judged by calvin_env's task oracle comparing ``get_info()``
at the start of that task with now (CALVIN's multistep evaluation); the episode terminates
when the chain is done and truncates at the horizon, or when an instruction has had
``instruction_horizon`` steps (CALVIN gives each instruction 360 and ends the chain there).

Resets follow CALVIN's evaluation protocol: the robot at its neutral pose, the scene from an
initial condition (slider left or right, drawer open or closed, lightbulb and led on or off,
the blocks on the table or in the slider) drawn from the seed, with what the chain's tasks
need in order (``open_drawer`` first: the drawer closed).

calvin_env is not on PyPI; importing this module does not need it, constructing
``CalvinEnv`` does, and says how to install it when it is absent. One environment per
process (some of calvin_env's PyBullet calls omit the client id).
"""

import gymnasium as gym
import numpy as np

from otpr_ros.sim.robomimic_env import RobomimicEnv, checked_action

ROBOT_OBS_DIM, SCENE_OBS_DIM, ACTION_DIM = 15, 24, 7
OBS_KEYS = ("robot_obs", "scene_obs")     # a demonstration file's observation keys, in order
TASK_ID_KEY = "task_id"                  # a multi-task environment's instruction, one-hot, after OBS_KEYS
CONTROL_HZ = 30.0                        # calvin_env's control rate (8 PyBullet substeps at 240 Hz)
HORIZON = 360                            # CALVIN's steps per instruction
MAX_CHAIN = 5                            # CALVIN's long-horizon protocol: five instructions in a row
STEP_POSITION, STEP_TURN = 0.02, 0.05    # calvin_env's relative action scale (m, rad per unit)
WORKSPACE = (np.array([-0.45, -0.60, 0.30]), np.array([0.40, 0.20, 0.75]))   # tcp target bounds (m, world)
TURN_LIMIT = np.array([0.6, 0.6, 1.6])   # tcp target euler: at most this far from the start (rad)
INSTALL_HINT = (
    "calvin_env is not installed (it is not on PyPI). Install it from its git checkout:\n"
    "  git clone --recursive https://github.com/mees/calvin_env.git\n"
    "  pip install -e '.[calvin]' && pip install --no-deps -e calvin_env\n"
    "(in this repository, `make setup` does it from ../shared/vendor/calvin_env where that exists)")

# CALVIN's neutral robot state of its evaluation (tcp pose, gripper open, joint angles)
NEUTRAL_ROBOT_OBS = np.array([0.02586889, -0.2313129, 0.5712808, 3.09045411, -0.02908596, 1.50013585, 0.07999963,
                              -1.21779124, 1.03987629, 2.11978254, -2.34205014, -0.87015899, 1.64119093, 0.55344928,
                              1.0])
# where CALVIN's evaluation puts blocks: two places on the table, one in each half of the slider cabinet
BLOCK_PLACES = {"table_a": (0.05, -0.12, 0.46), "table_b": (0.23, -0.12, 0.46),
                "slider_left": (-0.2409, 0.0924, 0.461), "slider_right": (0.0703, 0.0924, 0.461)}
BLOCK_YAW = (np.pi / 2 - np.pi / 8, np.pi / 2 + np.pi / 8)
# scene_obs index and value of each articulated state (the switch and the lightbulb go together)
SCENE_STATES = {"slider": (0, {"right": 0.0, "left": 0.28}), "drawer": (1, {"closed": 0.0, "open": 0.22}),
                "lightbulb": (4, {"off": 0.0, "on": 1.0}), "led": (5, {"off": 0.0, "on": 1.0})}
SWITCH_INDEX, SWITCH_ON = 3, 0.088
# what a task needs before and leaves after: (state, before, after)
TASK_STATES = {
    "open_drawer": ("drawer", "closed", "open"), "close_drawer": ("drawer", "open", "closed"),
    "move_slider_left": ("slider", "right", "left"), "move_slider_right": ("slider", "left", "right"),
    "turn_on_lightbulb": ("lightbulb", "off", "on"), "turn_off_lightbulb": ("lightbulb", "on", "off"),
    "turn_on_led": ("led", "off", "on"), "turn_off_led": ("led", "on", "off"),
}


def task_id(task: str, vocabulary) -> np.ndarray:
    """``task`` one-hot over ``vocabulary`` (a multi-task environment's instruction)."""
    vocabulary = list(vocabulary)
    if task not in vocabulary:
        raise ValueError(f"task: {task!r} is not one of the instructions {vocabulary}")
    return np.eye(len(vocabulary))[vocabulary.index(task)]


def flatten_obs(obs: dict, vocabulary=()) -> np.ndarray:
    """robot_obs (15) + scene_obs (24) (+ task_id, one per instruction of ``vocabulary``) as one
    float32 vector."""
    parts = []
    dims = (("robot_obs", ROBOT_OBS_DIM), ("scene_obs", SCENE_OBS_DIM))
    for key, dim in dims + (((TASK_ID_KEY, len(vocabulary)),) if vocabulary else ()):
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


def bounded_action(action: np.ndarray, target_pos, target_orn, start_orn) -> np.ndarray:
    """``action`` (calvin_env's) with its deltas shrunk so that the tcp's target stays inside
    ``WORKSPACE`` and its orientation within ``TURN_LIMIT`` of ``start_orn``."""
    bounded = action.copy()
    for part, now, step, low, high in ((slice(0, 3), target_pos, STEP_POSITION, *WORKSPACE),
                                       (slice(3, 6), target_orn, STEP_TURN, start_orn - TURN_LIMIT,
                                        start_orn + TURN_LIMIT)):
        wanted = now + step * action[part]
        inside = np.clip(wanted, low, high)
        bounded[part] = np.where(wanted == inside, action[part], (inside - now) / step)   # exact where not bounded
    return bounded


def chain_conditions(tasks) -> dict:
    """The articulated states the chain needs at its start ({state: value}), checking that each
    task finds what it needs after the ones before it; ValueError naming the task that cannot."""
    needed, now = {}, {}
    for task in tasks:
        if task not in TASK_STATES:
            continue
        state, before, after = TASK_STATES[task]
        if now.get(state, before) != before:
            raise ValueError(f"tasks: {task} needs the {state} {before}, but the chain before it leaves it "
                             f"{now[state]}: {list(tasks)}")
        needed.setdefault(state, before)
        now[state] = after
    return needed


def draw_chain(tasks, length: int, rng) -> tuple:
    """``length`` distinct tasks of ``tasks`` in an order each finds what it needs (CALVIN's
    evaluation chains are five), drawn from ``rng``."""
    if not 1 <= length <= min(MAX_CHAIN, len(tasks)):
        raise ValueError(f"length: expected 1..{min(MAX_CHAIN, len(tasks))}, got {length}")
    for _ in range(1000):
        chain = []
        for _ in range(length):
            fits = [t for t in tasks if t not in chain and _fits(chain + [t])]
            if not fits:
                break
            chain.append(str(rng.choice(fits)))
        if len(chain) == length:
            return tuple(chain)
    raise ValueError(f"no chain of {length} of {list(tasks)} where each task finds what it needs")


def _fits(chain) -> bool:
    try:
        chain_conditions(chain)
    except ValueError:
        return False
    return True


def start_state(tasks, rng) -> tuple:
    """(robot_obs, scene_obs) of an episode: CALVIN's neutral robot and a scene drawn from ``rng``
    as CALVIN's initial conditions are, with what the chain needs."""
    conditions = {name: str(rng.choice(list(values))) for name, (_, values) in SCENE_STATES.items()}
    conditions.update(chain_conditions(tasks))
    scene = np.zeros(SCENE_OBS_DIM)
    for name, (index, values) in SCENE_STATES.items():
        scene[index] = values[conditions[name]]
    scene[SWITCH_INDEX] = SWITCH_ON if conditions["lightbulb"] == "on" else 0.0
    places = rng.permutation(list(BLOCK_PLACES))[:3]
    for block, place in enumerate(places):
        scene[6 + 6 * block: 9 + 6 * block] = BLOCK_PLACES[place]
        scene[11 + 6 * block] = rng.uniform(*BLOCK_YAW)
    return NEUTRAL_ROBOT_OBS.copy(), scene


def calvin_config(scene: str = "calvin_scene_D"):
    """calvin_env's robot, scene and task-oracle configuration, composed from its conf/ as its data
    collection does (panda with the longer fingers), without hydra's search path."""
    from pathlib import Path

    import calvin_env
    from omegaconf import OmegaConf
    root = Path(calvin_env.__file__).resolve().parents[1]
    conf = root / "conf"
    scenes = sorted(p.stem for p in (conf / "scene").glob("calvin_scene_*.yaml"))
    if scene not in scenes:
        raise ValueError(f"scene: expected one of {scenes}, got {scene!r}")
    robot = OmegaConf.merge(OmegaConf.load(conf / "robot" / "panda.yaml"),
                            OmegaConf.load(conf / "robot" / "panda_longer_finger.yaml"))
    robot.pop("defaults", None)
    config = OmegaConf.create({"data_path": str(root / "data"),
                               "scene": OmegaConf.load(conf / "scene" / f"{scene}.yaml"), "robot": robot,
                               "tasks": OmegaConf.load(conf / "tasks" / "new_playtable_tasks.yaml")})
    OmegaConf.resolve(config)
    return config


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
    control_hz = CONTROL_HZ

    def __init__(self, tasks=("open_drawer",), horizon: int = HORIZON, scene: str = "calvin_scene_D",
                 task: str | None = None, vocabulary=(), chain_length: int = 1,
                 instruction_horizon: int | None = HORIZON):
        """``task``: the package's name of this environment (``calvin_<task>``), for its records.
        ``vocabulary``: a multi-task environment's instructions; each reset draws a chain of
        ``chain_length`` of them from the seed (``tasks`` is then ignored) and the observation
        ends with the current one's ``task_id``. ``instruction_horizon``: the steps each
        instruction of a chain may take (None: only ``horizon`` bounds the episode)."""
        try:
            import hydra
            from calvin_env.envs import play_table_env
        except ImportError as error:
            raise ModuleNotFoundError(INSTALL_HINT) from error
        if horizon < 1:
            raise ValueError(f"horizon: expected >= 1, got {horizon}")
        self.vocabulary, self.chain_length = tuple(vocabulary), chain_length
        self.instruction_horizon = instruction_horizon or horizon
        if self.vocabulary:
            tasks = draw_chain(self.vocabulary, chain_length, np.random.default_rng(0))
        self.chain, self.horizon = self._checked_chain(tasks), horizon
        self.task = task or f"calvin_{'+'.join(self.chain.tasks)}"
        config = calvin_config(scene)
        self.oracle = hydra.utils.instantiate(config.tasks)
        unknown = sorted(set(self.chain.tasks + self.vocabulary) - set(self.oracle.tasks))
        if unknown:
            raise ValueError(f"tasks: unknown to calvin_env: {unknown} (it knows {sorted(self.oracle.tasks)})")
        # it labels its log with the git commit of its checkout, and fails outside a git repository
        play_table_env.get_git_commit_hash = lambda path: "unknown"
        # no cameras: the policy reads the state vectors only, and rendering costs most of a step
        self.sim = play_table_env.PlayTableSimEnv(
            robot_cfg=config.robot, seed=0, use_vr=False, bullet_time_step=240, cameras={}, show_gui=False,
            scene_cfg=config.scene, use_scene_info=True, use_egl=False, control_freq=int(CONTROL_HZ))
        dim = ROBOT_OBS_DIM + SCENE_OBS_DIM + len(self.vocabulary)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (dim,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (ACTION_DIM,), np.float32)
        self.elapsed = self.instruction_start = 0

    @staticmethod
    def _checked_chain(tasks) -> TaskChain:
        """``tasks`` as a chain: at most ``MAX_CHAIN``, each finding what it needs (ValueError naming why not)."""
        chain = TaskChain(tasks)
        if len(chain.tasks) > MAX_CHAIN:
            raise ValueError(f"tasks: a CALVIN chain has at most {MAX_CHAIN} instructions, got "
                             f"{len(chain.tasks)}: {list(chain.tasks)}")
        chain_conditions(chain.tasks)
        return chain

    def _out_of_steps(self) -> bool:
        """The episode's horizon or the current instruction's steps are spent."""
        return self.elapsed >= self.horizon or self.elapsed - self.instruction_start >= self.instruction_horizon

    @property
    def robot(self):
        return self.sim.robot

    def reset(self, *, seed: int | None = None, options=None):
        """The scene of ``start_state`` drawn from ``seed`` (a multi-task environment's chain first);
        ``options`` may carry ``robot_obs`` and ``scene_obs`` to start from instead (as CALVIN's
        evaluation does from recorded states), and a multi-task environment's ``tasks``."""
        super().reset(seed=seed)
        options, rng = options or {}, np.random.default_rng(seed)
        if self.vocabulary:
            tasks = tuple(options.get("tasks") or draw_chain(self.vocabulary, self.chain_length, rng))
            unknown = sorted(set(tasks) - set(self.vocabulary))
            if unknown:
                raise ValueError(f"tasks: expected at most {MAX_CHAIN} of {list(self.vocabulary)}, got {list(tasks)}")
            self.chain = self._checked_chain(tasks)
        robot_obs, scene_obs = start_state(self.chain.tasks, rng)
        obs = self.sim.reset(robot_obs=options.get("robot_obs", robot_obs),
                             scene_obs=options.get("scene_obs", scene_obs))
        self.start_orn = np.array(self.robot.target_orn, dtype=np.float64)
        self.chain.reset()
        self.start_info, self.elapsed, self.instruction_start = self.sim.get_info(), 0, 0
        self._obs = obs
        return self._flat(), {"success": False, "tasks_completed": 0}

    def step(self, action):
        if self.chain.done or self._out_of_steps():
            raise RuntimeError("step after the episode ended: call reset()")
        action = bounded_action(to_calvin_action(action), self.robot.target_pos, self.robot.target_orn,
                                self.start_orn)
        obs, _, _, info = self.sim.step(action)
        self.elapsed += 1
        completed = self.oracle.get_task_info_for_set(self.start_info, info, {self.chain.current})
        reward = self.chain.update(completed)
        if reward:
            self.start_info, self.instruction_start = info, self.elapsed   # the next task is judged from here
        self._obs = obs
        success = self.chain.done
        truncated = not success and self._out_of_steps()
        return self._flat(), reward, success, truncated, {"success": success,
                                                          "tasks_completed": self.chain.completed}

    def sim_state(self) -> np.ndarray:
        """robot_obs and scene_obs: what ``reset(options=...)`` restores (the robomimic layout's ``states``)."""
        return flatten_obs(self._obs).astype(np.float64)

    def stored_observation(self) -> dict:
        """The observation as a demonstration file keeps it (robomimic layout: key -> values)."""
        return {key: np.asarray(value, dtype=np.float64) for key, value in self._observation().items()}

    def _observation(self) -> dict:
        """calvin_env's state vectors, and a multi-task environment's instruction (the current
        task; the last one once the chain is done)."""
        observation = {key: self._obs[key] for key in OBS_KEYS}
        if self.vocabulary:
            tasks = self.chain.tasks
            observation[TASK_ID_KEY] = task_id(tasks[min(self.chain.completed, len(tasks) - 1)], self.vocabulary)
        return observation

    def _flat(self) -> np.ndarray:
        return flatten_obs(self._observation(), self.vocabulary)

    hold_action = staticmethod(RobomimicEnv.hold_action)     # the same 7-dim relative actions, gripper last

    def close(self):
        if self.sim.ownsPhysicsClient:
            self.sim.close()
            # its __del__ closes again, which would disconnect a later environment given the same client id
            self.sim.ownsPhysicsClient = False
