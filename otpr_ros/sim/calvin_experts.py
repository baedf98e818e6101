"""Scripted experts for CALVIN's articulated tasks (scene D), in calvin_env's relative actions.

Each task is a short list of waypoints for the tcp, placed from where the part's link is
when the task starts (read from PyBullet, so the slider's and the drawer's state and
the scene's own geometry place them), the gripper closed throughout (a pushing finger):

- ``move_slider_left`` / ``_right``: beside the sliding door's handle, then along the door;
- ``open_drawer``: the fingers down between the drawer's handle bar and its front, pull out;
  ``close_drawer``: in front of the bar, push in;
- ``turn_on_led`` / ``_off_led``: press the button down (it toggles the led);
- ``turn_on_lightbulb``: under the switch's lever, push it up along its slide.

In a chain, the hand first rises 10 cm from where the last task ended. Each step moves the
tcp's target (calvin_env accumulates it) towards the waypoint by at most one action unit
(2 cm) per axis; a waypoint is left when the target is within 5 mm of it or after its step
budget. ``turn_off_lightbulb`` has no script: the lever, switched on, sits at the edge of the
arm's reach with the hand pointing down (pressing it from above reached it in 1 of 12 tries
here).
"""

import numpy as np

from otpr_ros.sim.calvin_env import STEP_POSITION

CLOSED = -1.0
# the table's links in calvin_table_D.urdf (PyBullet link index)
BUTTON, SWITCH, SLIDE, DRAWER = 0, 1, 2, 3
SLIDE_HANDLE = np.array([0.28, -0.088, -0.013])      # the sliding door's handle from its link's origin (m)
SWITCH_SLIDE = np.array([0.0, 0.5, 0.866])            # the switch lever's direction of travel (on: +)
RETREAT = 0.10                                        # m up from where a task of a chain ended


def _waypoints(task: str, link) -> list:
    """(position, step budget) of each waypoint of ``task``; ``link(i)`` is the world position of
    the table's link i now."""
    if task in ("move_slider_left", "move_slider_right"):
        sign = 1.0 if task == "move_slider_left" else -1.0      # left: the door moves to -x, pushed from +x
        handle = link(SLIDE) + SLIDE_HANDLE
        at = handle + [0.05 * sign, 0.03, 0.0]                    # beside the handle, level with its front
        return [((at[0], -0.15, at[2] + 0.03), 60), (at, 60), (at - [0.22 * sign, 0.0, 0.0], 80)]
    if task == "open_drawer":
        gap = link(DRAWER) + [0.0, -0.13, 0.0]                    # between the handle bar and the front
        gap[2] = 0.36
        return [(gap + [0.0, 0.0, 0.10], 60), (gap, 40), (gap - [0.0, 0.20, 0.0], 80)]
    if task == "close_drawer":
        before = link(DRAWER) + [0.0, -0.22, 0.0]                 # in front of the handle bar
        before[2] = 0.36
        return [(before + [0.0, -0.05, 0.10], 60), (before, 40), (before + [0.0, 0.22, 0.0], 80)]
    if task in ("turn_on_led", "turn_off_led"):
        button = link(BUTTON)
        return [(button + [0.0, 0.0, 0.08], 60), (button + [0.0, 0.0, 0.0], 30), (button + [0.0, 0.0, 0.08], 30)]
    if task == "turn_on_lightbulb":
        under = link(SWITCH) + [0.0, -0.03, -0.06]
        return [(under + [0.0, -0.05, 0.0], 60), (under, 40), (under + 0.12 * SWITCH_SLIDE, 60)]
    raise ValueError(f"no scripted expert for CALVIN task {task!r}; there is one for {sorted(SCRIPTED)}")


SCRIPTED = ("move_slider_left", "move_slider_right", "open_drawer", "close_drawer", "turn_on_led", "turn_off_led",
            "turn_on_lightbulb")


class CalvinExpert:
    """The chain's tasks one after another (``env.chain``), each from where its part is when it begins."""

    def __init__(self, env, noise: float = 0.0, speed: float = 1.0, rng=None):
        missing = [t for t in env.chain.tasks if t not in SCRIPTED]
        if missing:
            raise ValueError(f"no scripted expert for CALVIN task(s) {missing}; there is one for {list(SCRIPTED)}")
        self.env, self.noise, self.speed = env, noise, speed
        self.rng = rng if rng is not None else np.random.default_rng()
        self.reset()

    def reset(self) -> None:
        self.task_index, self.waypoints, self.steps = -1, [], 0

    def _link(self, index: int) -> np.ndarray:
        sim = self.env.sim
        table = sim.scene.fixed_objects[0].uid
        return np.array(sim.p.getLinkState(table, index, physicsClientId=sim.cid)[0])

    def act(self) -> np.ndarray:
        action = self.policy()
        if self.noise:
            action[:6] = action[:6] + self.rng.normal(0.0, self.noise, size=6)
        return np.clip(action, -1.0, 1.0)

    def policy(self) -> np.ndarray:
        chain = self.env.chain
        if chain.done:
            return self.env.hold_action(CLOSED)
        if chain.completed != self.task_index:                   # a task begins: place its waypoints now
            # after a task, first straight up: a hand hooked behind the drawer's handle would close it again
            away = [(np.asarray(self.env.robot.target_pos) + [0.0, 0.0, RETREAT], 20)] if self.task_index >= 0 else []
            self.task_index, self.steps = chain.completed, 0
            self.waypoints = away + _waypoints(chain.current, self._link)
        if not self.waypoints:                                   # the script is spent: hold
            return self.env.hold_action(CLOSED)
        target, budget = self.waypoints[0]
        position = np.asarray(self.env.robot.target_pos)
        move = np.clip((np.asarray(target) - position) / STEP_POSITION, -self.speed, self.speed)
        self.steps += 1
        if np.linalg.norm(np.asarray(target) - position) < 0.005 or self.steps >= budget:
            self.waypoints, self.steps = self.waypoints[1:], 0
        return np.concatenate([move, np.zeros(3), [CLOSED]])
