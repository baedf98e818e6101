"""The learner's transitions from what a robot shows on the bus: the transition recorder's
bookkeeping, without ROS (otpr_ros/nodes/transition_recorder.py adapts the messages).

What the recorder assumes of a robot (docs/robot.md):
- it publishes its state (the topics the policy server reads, one stamp per instant), and for
  each state it asks a decision on it executes the ``action_chunk`` decided on that state (the
  server stamps a chunk with its state's stamp) whole, then publishes its state again;
- its success detector publishes one ``reward`` per control step executed (``step_source``
  ``reward``: steps and rewards exact), or no one counts steps and each chunk counts as
  executed whole (``chunk``: rewards only from success reports);
- an operator, a detector or a step limit ends an episode, and an operator confirms the start
  of the next after a reset;
- while a person has the arm (an intervention), their commands come one per control step on
  ``teleop_action``, stamped with the state each answers: every ``chunk`` consecutive commands
  make one chunk marked ``expert``, decided on the first one's state; commands that do not fill
  a chunk (the person let go, or the episode ended) are executed steps but no transition.

States are kept by stamp, the running episode's chunks in the order they came and its
rewards in order. The rewards are cut into chunks by the chunks' lengths: a chunk's rewards
are the next ``len(chunk)`` of the episode (fewer for the chunk in which the episode ended),
so states, chunks and rewards may reach the recorder in any order relative to each other
(three topics from three publishers) and the transitions are the same. A transition is
complete when its rewards and its next observation are known: the state the next chunk was
decided on, once the robot has begun that chunk (a reward of it came, or the episode ended);
for the episode's last chunk, the robot's newest state after it.

Nothing is invented: a chunk whose state never comes, rewards or a final state that never
come (``expire``) end the episode as ``lost`` and drop its transitions not yet complete, all
counted; a chunk decided on the same observation as the one before it is a repeated request
(a robot that sent its state again while it waited), not a chunk the robot executed.
"""

from collections import Counter, OrderedDict
from dataclasses import dataclass

import numpy as np

from otpr_ros.sim.bridge_session import Transition

STEP_SOURCES = ("reward", "chunk")
OUTCOMES = ("success", "failure", "stopped", "timeout", "lost")    # how an episode ended
TERMINAL = ("success", "failure")            # the others are cut short: truncated (the learner bootstraps)
REFUSALS = ("no_episode", "before_episode", "out_of_order", "repeated_state", "malformed", "after_end",
            "ended_twice", "no_state", "no_reward", "no_final_state", "partial_intervention")
STATES_KEPT = 256


@dataclass
class _Chunk:
    stamp: int                  # ns: the state it was decided on
    actions: np.ndarray         # (steps, act_dim), robot units
    received: float             # s (the caller's clock): when it came
    obs: np.ndarray | None = None
    expert: bool = False        # a person's commands (an intervention)
    whole: bool = True          # False: a person's commands that do not fill a chunk (no transition)


class TransitionAssembler:
    def __init__(self, gamma: float, obs_dim: int, act_dim: int, step_source: str = "reward",
                 success_reward: float = 1.0, max_episode_steps: int = 0, wait_timeout: float = 5.0, chunk: int = 4):
        if not 0.0 < gamma <= 1.0:
            raise ValueError(f"gamma: expected in (0, 1], got {gamma}")
        if step_source not in STEP_SOURCES:
            raise ValueError(f"step_source: expected one of {STEP_SOURCES}, got {step_source!r}")
        if max_episode_steps < 0 or wait_timeout <= 0:
            raise ValueError(f"max_episode_steps >= 0 and wait_timeout > 0 expected, got {max_episode_steps} "
                             f"and {wait_timeout}")
        self.gamma, self.obs_dim, self.act_dim, self.chunk = gamma, obs_dim, act_dim, chunk
        self.step_source, self.success_reward = step_source, success_reward
        self.max_episode_steps, self.wait_timeout = max_episode_steps, wait_timeout
        self.states = OrderedDict()             # stamp (ns) -> observation
        self.refused = Counter({reason: 0 for reason in REFUSALS})
        self.episode, self.sequence = -1, 0
        self.running = False                    # an episode is recorded (started, not yet closed)
        self.ready, self.summaries = [], []     # complete transitions, closed episodes: for the caller to take

    # -- episodes -------------------------------------------------------------------------------
    def start(self, stamp: int, now: float) -> str | None:
        """An operator confirmed a new episode at ``stamp`` (ns): chunks decided on older states
        are not of it. None, or why not."""
        if self.running:
            return f"episode {self.episode} is still being recorded"
        self.episode += 1
        self.running, self.start_stamp, self.started_at = True, stamp, now
        self.chunks, self.rewards, self.first_step = [], [], 0
        self.commands = []                      # a person's commands not yet a chunk: (stamp, action)
        self.end, self.ended_at = None, None            # (outcome, steps) once known
        self.last_stamp, self.last_obs = stamp - 1, None
        self.emitted, self.return_ = 0, 0.0
        return None

    def report(self, outcome: str, now: float) -> str | None:
        """The episode ends: ``outcome`` from an operator, a detector or a limit (``OUTCOMES``
        less lost) after the steps executed so far. None, or why it was refused."""
        if outcome not in OUTCOMES[:-1]:
            raise ValueError(f"outcome: expected one of {OUTCOMES[:-1]}, got {outcome!r}")
        if not self.running:
            return self._refuse("no_episode", "no episode is being recorded")
        if self.end is not None:
            return self._refuse("ended_twice", f"episode {self.episode} already ended ({self.end[0]})")
        self._flush_commands(now)
        if self.step_source == "chunk":
            self._count_whole_chunks(len(self.chunks), now)  # the chunk being executed counts whole
            if outcome == "success" and self.rewards:
                self.rewards[-1] = self.success_reward
        self._end(outcome, len(self.rewards), now)
        self._advance()
        return None

    def _end(self, outcome: str, steps: int, now: float) -> None:
        self.end, self.ended_at = (outcome, steps), now

    # -- what the robot shows -------------------------------------------------------------------
    def add_state(self, stamp: int, obs) -> None:
        obs = np.asarray(obs, dtype=np.float64)
        if obs.shape != (self.obs_dim,) or not np.isfinite(obs).all():
            self._refuse("malformed")
            return
        self.states[stamp] = obs
        while len(self.states) > STATES_KEPT:
            self.states.popitem(last=False)
        if self.running:
            for chunk in self.chunks:
                if chunk.obs is None and chunk.stamp == stamp:
                    chunk.obs = obs
            self._drop_repeated()
            self._advance()

    def add_chunk(self, stamp: int, actions, now: float) -> str | None:
        """A chunk the robot executes, decided on its state at ``stamp`` (ns). None, or why it
        is not part of the episode."""
        if not self.running:
            return self._refuse("no_episode")
        if self.end is not None and self.first_step + sum(len(c.actions) for c in self.chunks) >= self.end[1]:
            return self._refuse("after_end")        # the episode's steps are all in the chunks before it
        actions = np.asarray(actions, dtype=np.float64)
        if actions.ndim != 2 or actions.shape[0] == 0 or actions.shape[1] != self.act_dim or \
                not np.isfinite(actions).all():
            return self._refuse("malformed")
        if stamp < self.start_stamp:
            return self._refuse("before_episode")
        if stamp <= self.last_stamp:
            return self._refuse("out_of_order")
        self._flush_commands(now)
        chunk = _Chunk(stamp, actions, now, self.states.get(stamp))
        previous = self.chunks[-1].obs if self.chunks else self.last_obs
        if chunk.obs is not None and previous is not None and np.array_equal(chunk.obs, previous):
            return self._refuse("repeated_state")
        if self.step_source == "chunk":
            self._count_whole_chunks(len(self.chunks), now)  # the chunks before this one were executed whole
        self.chunks.append(chunk)
        self.last_stamp = stamp
        self._advance()
        return None

    def add_command(self, stamp: int, action, now: float) -> str | None:
        """One control step a person commanded (an intervention), decided on the state at
        ``stamp``. None, or why it is not part of the episode."""
        if not self.running:
            return self._refuse("no_episode")
        if self.end is not None:
            return self._refuse("after_end")
        action = np.asarray(action, dtype=np.float64)
        if action.shape != (self.act_dim,) or not np.isfinite(action).all():
            return self._refuse("malformed")
        if stamp < self.start_stamp:
            return self._refuse("before_episode")
        if stamp <= self.last_stamp:
            return self._refuse("out_of_order")
        if self.step_source == "chunk" and not self.commands:
            self._count_whole_chunks(len(self.chunks), now)
        self.commands.append((stamp, action))
        self.last_stamp = stamp
        if len(self.commands) == self.chunk:
            self._flush_commands(now)
        return None

    def _flush_commands(self, now: float) -> None:
        """The person's commands so far as one chunk (``expert``; not ``whole`` when fewer than
        ``chunk``: executed steps, no transition)."""
        if not self.commands:
            return
        stamp = self.commands[0][0]
        self.chunks.append(_Chunk(stamp, np.stack([a for _, a in self.commands]), now, self.states.get(stamp),
                                  expert=True, whole=len(self.commands) == self.chunk))
        self.commands = []
        if self.step_source == "chunk" and not self.chunks[-1].whole:
            self._count_whole_chunks(len(self.chunks), now)
        self._advance()

    def add_reward(self, value: float, now: float) -> str | None:
        """One control step's reward (``step_source`` reward)."""
        if self.step_source != "reward":
            return None                      # steps are counted by chunks; success comes as a report
        if not self.running:
            return self._refuse("no_episode")
        if self.end is not None:
            return self._refuse("after_end")         # the robot went on until it was stopped
        if not np.isfinite(value):
            return self._refuse("malformed")
        self.rewards.append(float(value))
        if value >= self.success_reward:
            self._end("success", len(self.rewards), now)
        elif self.max_episode_steps and len(self.rewards) >= self.max_episode_steps:
            self._end("timeout", len(self.rewards), now)
        self._advance()
        return None

    def expire(self, now: float) -> None:
        """End the episode as lost when what its next transition needs has not come within
        ``wait_timeout`` s: a chunk's state, the rewards of a chunk the robot has moved on
        from, the state after the last chunk."""
        if not self.running:
            return
        waited = lambda since: since is not None and now - since > self.wait_timeout  # noqa: E731
        if any(c.obs is None and waited(c.received) for c in self.chunks):
            self._lose("no_state")
        elif len(self.chunks) > 1 and waited(self.chunks[1].received):
            self._lose("no_reward")
        elif self.end is not None and waited(self.ended_at):
            self._lose("no_final_state")

    # -- transitions ----------------------------------------------------------------------------
    def _count_whole_chunks(self, upto: int, now: float) -> None:
        """step_source chunk: the first ``upto`` chunks of the episode so far executed whole."""
        steps = self.first_step + sum(len(c.actions) for c in self.chunks[:upto])
        self.rewards.extend([0.0] * (steps - len(self.rewards)))
        if self.max_episode_steps and self.end is None and len(self.rewards) >= self.max_episode_steps:
            del self.rewards[self.max_episode_steps:]
            self._end("timeout", self.max_episode_steps, now)

    def _drop_repeated(self) -> None:
        previous = self.last_obs
        for chunk in list(self.chunks):
            if chunk.obs is None:
                return
            if previous is not None and np.array_equal(chunk.obs, previous):
                self.chunks.remove(chunk)
                self.refused["repeated_state"] += 1
                continue
            previous = chunk.obs

    def _advance(self) -> None:
        """Emit every transition that is complete, in order; close the episode after its last."""
        while self.running and self.chunks:
            chunk = self.chunks[0]
            if chunk.obs is None:
                return
            start, length = self.first_step, len(chunk.actions)
            end_steps = None if self.end is None else self.end[1]
            if end_steps is not None and start >= end_steps:
                self.refused["after_end"] += len(self.chunks)      # decided after the end: never executed
                self.chunks.clear()
                break
            steps = length if end_steps is None else min(length, end_steps - start)
            if len(self.rewards) < start + steps:
                return                                          # its rewards are on their way
            last = end_steps is not None and start + steps >= end_steps
            if last:
                next_obs = self._state_after(chunk)
            else:
                begun = len(self.rewards) > start + steps or self.step_source == "chunk"
                next_obs = self.chunks[1].obs if len(self.chunks) > 1 and begun else None
            if next_obs is None:
                return
            rewards = self.rewards[start:start + steps]
            reward = sum(self.gamma ** k * r for k, r in enumerate(rewards))
            terminal = last and self.end[0] in TERMINAL
            if chunk.whole:
                self.ready.append(Transition(chunk.obs, chunk.actions, reward, next_obs, terminal,
                                             last and not terminal, steps, self.sequence, self.episode, chunk.expert))
                self.sequence += 1
                self.emitted += 1
            else:
                self.refused["partial_intervention"] += 1
            self.return_ += sum(rewards)
            self.first_step += steps
            self.last_obs = chunk.obs
            self.chunks.pop(0)
            if last:
                self.refused["after_end"] += len(self.chunks)      # decided after the end: never executed
                self.chunks.clear()
        if self.running and self.end is not None and not self.chunks:
            self._close(self.end[0])

    def _state_after(self, chunk: _Chunk):
        """The robot's newest state stamped after ``chunk``'s that differs from it (not that
        state sent again), or None."""
        after = [s for s, obs in self.states.items() if s > chunk.stamp and not np.array_equal(obs, chunk.obs)]
        return self.states[max(after)] if after else None

    def _lose(self, reason: str) -> None:
        self.refused[reason] += 1
        if self.end is None:
            self._end("lost", len(self.rewards), None)
        self.chunks.clear()
        self._close("lost")

    def _close(self, outcome: str) -> None:
        steps = self.end[1] if self.end is not None else len(self.rewards)
        self.summaries.append({"episode": self.episode, "return": self.return_, "success": outcome == "success",
                               "length": steps, "truncated": outcome not in TERMINAL, "reason": outcome,
                               "transitions": self.emitted})
        self.running = False

    def _refuse(self, reason: str, message: str | None = None) -> str:
        self.refused[reason] += 1
        return message or reason

    def take(self) -> tuple[list, list]:
        """The transitions completed and the episodes closed since the last call."""
        ready, summaries = self.ready, self.summaries
        self.ready, self.summaries = [], []
        return ready, summaries
