"""One simulated robot driven by action chunks, the way the simulation bridge runs it (no ROS).

The one place a chunk is executed: the bridge node adapts messages to this class,
``otpr-finetune`` and the evaluation workers call ``run_chunk``. The episode bookkeeping:

- episodes are seeded ``first_seed, first_seed + 1, ...`` (the same scenes as ``otpr-evaluate``
  with the same seeds);
- a chunk is executed one action per control step, whole or its first ``execute`` actions (the
  model's ``agent.execute_steps``), and stops early when the episode ends; it becomes one
  chunk-level transition (ALGORITHM.md): the observation the chunk was decided on, the chunk
  (all of it), ``sum_i gamma^i r_i`` over the executed actions, the observation after,
  terminal on success, truncated at the horizon or when a reset cuts the episode, and
  ``steps`` executed (the learner bootstraps with ``gamma ** steps``);
- without a chunk the robot holds still: zero end-effector motion and the last gripper
  command (robosuite's OSC holds its pose against gravity). Held steps belong to no
  transition;
- every transition carries the bridge's sequence number, so a learner can drop duplicates
  and count gaps.
"""

from dataclasses import dataclass

import numpy as np

from otpr_ros.model.observation import robomimic_observation

HOLD_GRIPPER_AT_START = -1.0      # open: the gripper command before any chunk
# the named fields of a transition (``Transition.fields``), as the bus carries them and replay logs keep them
TRANSITION_FIELDS = ("obs", "action", "reward", "next_obs", "terminal", "truncated", "steps", "sequence",
                     "episode", "source", "stream", "expert")


def make_environment(task: str, horizon: int | None, obs_keys=None):
    """(env, observe) for a task: robomimic observations are built from the published poses,
    exactly as the policy server builds them; CALVIN and Franka Kitchen publish their own vector,
    the one the model takes (``obs_keys``: its ``model.json``'s; None: the task's own)."""
    from otpr_ros.sim.tasks import is_calvin, is_kitchen, make_env, sim_task
    if is_kitchen(task) or is_calvin(task):
        return make_env(task, horizon, obs_keys=obs_keys), None
    sim_task(task).observation(obs_keys)
    from otpr_ros.sim.robomimic_env import RobomimicEnv
    env = RobomimicEnv(task, horizon=horizon)

    def observe(env, env_obs):
        s = env.robot_state()
        return robomimic_observation(task, s.eef_pos, s.eef_quat, s.gripper_qpos, s.object_pos, s.object_quat)
    return env, observe


@dataclass
class Transition:
    obs: np.ndarray
    action: np.ndarray       # (chunk, act_dim) as decided (all of it, also the actions not executed)
    reward: float
    next_obs: np.ndarray
    terminal: bool
    truncated: bool
    steps: int
    sequence: int
    episode: int
    expert: bool = False     # the chunk a person commanded (an intervention), not the policy

    def fields(self, source: int = 0, stream: int = 0) -> dict:
        """The named fields the bus carries (``transition`` topic) and a learner takes;
        ``stream`` tells one run of a bridge from the next (sequences restart at 0)."""
        return {"obs": self.obs, "action": np.asarray(self.action).ravel(), "reward": self.reward,
                "next_obs": self.next_obs, "terminal": float(self.terminal), "truncated": float(self.truncated),
                "steps": float(self.steps), "sequence": float(self.sequence), "episode": float(self.episode),
                "source": float(source), "stream": float(stream), "expert": float(self.expert)}


@dataclass
class EpisodeSummary:
    episode: int
    seed: int
    return_: float          # undiscounted sum of rewards
    success: bool
    length: int             # control steps, held steps included
    truncated: bool
    held_steps: int
    reason: str             # success | horizon | reset | stalled (the sim bridge: no chunk came)

    def to_dict(self) -> dict:
        return {"episode": self.episode, "seed": self.seed, "return": self.return_, "success": self.success,
                "length": self.length, "truncated": self.truncated, "held_steps": self.held_steps,
                "reason": self.reason}


class BridgeSession:
    def __init__(self, env, observe, gamma: float, first_seed: int = 0):
        """``observe(env, env_obs)`` -> the observation vector as the policy server builds it
        (robomimic tasks: from the published poses); None: the environment's own vector
        (CALVIN, and evaluation, which acts on robosuite's observation as it comes)."""
        if not 0.0 < gamma <= 1.0:
            raise ValueError(f"gamma: expected in (0, 1], got {gamma}")
        self.env, self.observe, self.gamma, self.first_seed = env, observe, gamma, first_seed
        self.episode = -1
        self.sequence = 0
        self._plan = None

    # -- episodes -------------------------------------------------------------------------------
    def reset(self):
        """Start the next episode."""
        self.episode += 1
        self.seed = self.first_seed + self.episode
        self.env_obs, _ = self.env.reset(seed=self.seed)
        self.length = self.held_steps = 0
        self.return_, self.success, self.done, self.truncated = 0.0, False, False, False
        self.gripper_command = HOLD_GRIPPER_AT_START
        self._plan = None

    def observation(self) -> np.ndarray:
        obs = self.env_obs if self.observe is None else self.observe(self.env, self.env_obs)
        return np.asarray(obs, dtype=np.float64)

    def end_episode(self, reason: str | None = None):
        """Close the episode, after it ended or cut short (``reason="reset"``, truncated).
        Returns its summary and, for a chunk cut in the middle, that chunk's truncated
        transition (else None)."""
        cut = not self.done
        if reason is None:
            reason = "success" if self.success else "horizon"
        self.done = True
        self.truncated = self.truncated or cut
        partial = None
        if self._plan is not None and self._next > 0:
            partial = self.finish_chunk()
        self._plan = None
        return EpisodeSummary(self.episode, self.seed, self.return_, self.success, self.length, self.truncated,
                              self.held_steps, reason), partial

    # -- chunks ---------------------------------------------------------------------------------
    @property
    def executing(self) -> bool:
        return self._plan is not None and not self.done and self._next < self._stop

    @property
    def has_finished_chunk(self) -> bool:
        return self._plan is not None and not self.executing

    def start_chunk(self, actions, decided_on: np.ndarray, execute: int = 0) -> None:
        """Execute ``actions`` (chunk, act_dim), decided on the observation ``decided_on``: all of
        them, or the first ``execute`` (> 0; the transition still carries the whole chunk)."""
        actions = np.asarray(actions, dtype=np.float64)
        if actions.ndim != 2 or actions.shape[0] == 0 or actions.shape[1] != self.env.action_space.shape[0]:
            raise ValueError(f"chunk: expected shape (steps >= 1, {self.env.action_space.shape[0]}), "
                             f"got {actions.shape}")
        if not np.isfinite(actions).all():
            raise ValueError("chunk: NaN or Inf")
        if self.done:
            raise RuntimeError("chunk for an episode that has ended: reset first")
        if execute < 0:
            raise ValueError(f"execute: expected 0 (the whole chunk) or a count of actions, got {execute}")
        self._plan, self._next = actions, 0
        self._stop = min(execute, len(actions)) if execute else len(actions)
        self._obs, self._reward, self._discount = np.asarray(decided_on, np.float64), 0.0, 1.0

    def step(self) -> float:
        """One control step: the plan's next action, or holding still without one."""
        if self.done:
            raise RuntimeError("step after the episode ended: reset first")
        executing = self.executing
        if executing:
            action = self._plan[self._next]
            self._next += 1
            self.gripper_command = float(action[-1])
        else:
            action = self.hold_action()
            self.held_steps += 1
        self.env_obs, reward, terminated, truncated, info = self.env.step(action)
        self.length += 1
        self.return_ += reward
        self.success = self.success or bool(info.get("success", False))
        self.done, self.truncated = bool(terminated or truncated), bool(truncated)
        if executing:
            self._reward += self._discount * reward
            self._discount *= self.gamma      # an ended episode executes no more of the chunk
        return float(reward)

    def hold_action(self) -> np.ndarray:
        """The action that holds the robot still, the environment's own (robomimic, CALVIN: zero
        end-effector motion and the last gripper command; Franka Kitchen: zero joint velocities)."""
        return self.env.hold_action(self.gripper_command)

    def run_chunk(self, decide, execute: int = 0) -> Transition:
        """One chunk without a bus: ``decide(observation)`` -> actions, executed to the end (or
        the episode's, or after ``execute`` actions), and its transition (in-process fine-tuning,
        evaluation, tests)."""
        obs = self.observation()
        self.start_chunk(decide(obs), obs, execute)
        while self.executing:
            self.step()
        return self.finish_chunk()

    def finish_chunk(self) -> Transition:
        """The transition of the chunk just executed."""
        if self._plan is None or self.executing:
            raise RuntimeError("no executed chunk to finish")
        transition = Transition(self._obs, self._plan, self._reward, self.observation(), self.success,
                                self.truncated, self._next, self.sequence, self.episode)
        self.sequence += 1
        self._plan = None
        return transition
