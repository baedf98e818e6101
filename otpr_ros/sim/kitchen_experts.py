"""Scripted experts for Franka Kitchen's sub-tasks, closed-loop on MuJoCo's own kinematics.

The kitchen takes joint velocities; the experts think in the end effector's position. Each
step :class:`EndEffectorControl` turns a position target (and the start orientation, held)
into joint velocities by damped least squares on the ``end_effector`` site's Jacobian
(``mujoco.mj_jacSite``). A sub-task is a short script of moves relative to its handle's site:

- light switch, slide cabinet: put the closed fingers beside the handle and push it along
  its slide;
- microwave, hinge cabinet (its right door): close the fingers on the door's handle and pull
  it where the handle goes when the door opens (the handle site's Jacobian column of the
  door's hinge);
- bottom and top burner: close the fingers on the oven knob and roll the hand;
- kettle: turn the hand to point down, close the fingers across the bar of its lid, lift it,
  carry it to the back burner and set it down.

A :class:`KitchenExpert` works through its plan (the environment's targets, or other sub-tasks:
the demonstrations of ``kitchen_partial`` and ``kitchen_mixed``) in order; a move ends when
the end effector is within its tolerance or after its step budget; a sub-task ends when the
kitchen counts it done (then the fingers open and the arm backs away), or when its script is
spent. ``noise`` adds Gaussian noise to every action (before clipping), ``speed`` scales the
step size: together they make demonstrations of mixed quality. Every sub-task has a script;
the demonstrations' plans draw from ``IN_DEMONSTRATIONS`` (not yet the hinge cabinet).
"""

from dataclasses import dataclass

import mujoco
import numpy as np
from scipy.spatial.transform import Rotation

OPEN, CLOSED = 1.0, -1.0         # finger joint velocities: open, close
GRAVITY_SAG = np.array([0.0, 0.0, 0.016])   # the joint position servos' steady droop of the end effector, m


class EndEffectorControl:
    """Joint velocities (the kitchen's 9-dim action) that move the end effector towards a
    position target while holding the orientation it had at ``reset``."""

    damping = 1e-2
    gain = 3.0                  # on the position error: the servos lag (measured: within 1 cm in 23 steps, not 47)
    turn_gain = 0.5             # on the orientation error (rad; 1.0 swings the hand into the kettle in a chain)
    limit_margin = 0.3          # rad: a joint this close to a limit is pushed away from it in the Jacobian's null
    limit_gain = 0.3            # space (else the wrist joints drift to their limits over a chain and a knob
    #                             cannot be turned: measured 2026-12-01, joint 7 at 2.98 of 2.90)

    def __init__(self, env):
        self.model, self.data = env.model, env.data
        self.site = self.model.site("end_effector").id
        self.low, self.high = self.model.jnt_range[:7, 0], self.model.jnt_range[:7, 1]
        self.dt = 1.0 / env.control_hz
        self.reset()

    def reset(self) -> None:
        self.orientation = self.data.site_xmat[self.site].reshape(3, 3).copy()

    @property
    def position(self) -> np.ndarray:
        return self.data.site_xpos[self.site].copy()

    def rotation_error(self) -> np.ndarray:
        """The turn (axis x angle, rad, world frame) from the hand's orientation to the wanted one."""
        turn = self.orientation @ self.data.site_xmat[self.site].reshape(3, 3).T
        quat, rotation = np.zeros(4), np.zeros(3)
        mujoco.mju_mat2Quat(quat, turn.ravel())
        mujoco.mju_quat2Vel(rotation, quat, 1.0)
        return rotation

    def action(self, target, fingers: float, max_step: float = 0.08) -> np.ndarray:
        error = np.clip(self.gain * (np.asarray(target) + GRAVITY_SAG - self.position), -max_step, max_step)
        jacp, jacr = np.zeros((3, self.model.nv)), np.zeros((3, self.model.nv))
        mujoco.mj_jacSite(self.model, self.data, jacp, jacr, self.site)
        jacobian = np.vstack([jacp[:, :7], jacr[:, :7]])
        twist = np.concatenate([error, self.turn_gain * self.rotation_error()])
        inverse = jacobian.T @ np.linalg.inv(jacobian @ jacobian.T + self.damping * np.eye(6))
        q = self.data.qpos[:7]
        away = np.clip(self.low + self.limit_margin - q, 0.0, None) - np.clip(q - self.high + self.limit_margin, 0.0,
                                                                               None)
        joints = inverse @ twist + (np.eye(7) - inverse @ jacobian) @ (self.limit_gain * away)
        action = np.empty(9)
        action[:7] = joints / (2.0 * self.dt)          # the kitchen: velocity = 2 rad/s x action
        action[7:] = fingers
        return np.clip(action, -1.0, 1.0)


@dataclass(frozen=True)
class Move:
    offset: tuple                 # reach: from where the sub-task's site was when it began (world frame, m);
    #                               pull: how far ahead of the handle, along where it goes as its joint opens
    fingers: float = CLOSED
    tolerance: float = 0.015
    steps: int = 40
    kind: str = "reach"           # reach: a fixed point | pull: follow the handle as its joint opens
    roll: float = 0.0             # turn of the hand about the world's y axis (towards the wall), rad


# an oven knob: close the fingers on it and roll the hand
KNOB = (Move((0.0, -0.12, 0.0), OPEN, tolerance=0.03), Move((0.0, 0.0, 0.0), OPEN),
        Move((0.0, 0.0, 0.0), CLOSED, tolerance=0.0, steps=6), Move((0.0, 0.0, 0.0), CLOSED, tolerance=0.0, steps=40,
                                                                     roll=1.6))
DOWN = Rotation.from_euler("z", -90, degrees=True) * Rotation.from_euler("x", -90, degrees=True)  # of the start pose

# sub-task: (its handle's site, (joint, sign) it opens along (for pull moves), the turn from the
# start orientation (None: keep it), the moves)
SCRIPTS = {
    "light switch": ("light_site", None, None, (Move((0.08, -0.17, 0.0), tolerance=0.03), Move((0.08, -0.05, 0.0)),
                                          Move((-0.30, -0.05, 0.0), steps=60))),
    "slide cabinet": ("slide_site", None, None, (Move((-0.08, -0.17, 0.0), tolerance=0.03), Move((-0.08, -0.05, 0.0)),
                                           Move((0.40, -0.05, 0.0), steps=60))),
    "microwave": ("microhandle_site", ("microwave", -1.0), None, (
        Move((0.0, -0.12, 0.0), OPEN, tolerance=0.02), Move((0.0, 0.0, 0.0), OPEN, tolerance=0.01),
        Move((0.0, 0.0, 0.0), CLOSED, tolerance=0.0, steps=4), Move((0.10,), CLOSED, steps=100, kind="pull"))),
    # the microwave's script on the right door, pulled 0.04 m ahead of its handle: 0.06 slips off
    # the handle at once, 0.03 / 0.05 open it slower (seeds 1000-1019, noise 0.1: 20, 20, 19 of 20
    # at 0.03, 0.04, 0.05; mean length 133, 96, 134 steps)
    "hinge cabinet": ("hinge_site2", ("right_hinge_cabinet", 1.0), None, (
        Move((0.0, -0.12, 0.0), OPEN, tolerance=0.02), Move((0.0, 0.0, 0.0), OPEN, tolerance=0.01),
        Move((0.0, 0.0, 0.0), CLOSED, tolerance=0.0, steps=4), Move((0.04,), CLOSED, steps=150, kind="pull"))),
    # the handle is a bar along x on the lid: from above, fingers across it; lift, carry to the back burner
    "kettle": ("kettle_site", None, DOWN, (
        Move((-0.10, -0.15, 0.30), OPEN, tolerance=0.05, steps=25),     # turn the hand well clear of the kettle
        Move((0.0, 0.0, 0.15), OPEN, tolerance=0.03), Move((0.0, 0.0, 0.0), OPEN),
        Move((0.0, 0.0, 0.0), CLOSED, tolerance=0.0, steps=8), Move((0.0, 0.0, 0.10), CLOSED, tolerance=0.03),
        Move((0.04, 0.40, 0.10), CLOSED, tolerance=0.03, steps=50), Move((0.04, 0.40, 0.0), CLOSED, steps=30))),
    "bottom burner": ("knob2_site", None, None, KNOB),
    "top burner": ("knob4_site", None, None, KNOB),
}
# the order a demonstration does its sub-tasks in: along the kitchen, left to right (D4RL's datasets
# start most demonstrations at the microwave)
PLAN_ORDER = ("microwave", "kettle", "bottom burner", "top burner", "light switch", "slide cabinet", "hinge cabinet")
# the sub-tasks demonstrations do: the hinge cabinet's script came after every documented
# collection (docs/kitchen.md), and drawing plans from it too would change them all
IN_DEMONSTRATIONS = tuple(t for t in PLAN_ORDER if t != "hinge cabinet")
PARTIAL_FULL_SHARE = 0.25    # kitchen_partial: the share of demonstrations that do the four targets
BACK_AWAY = Move((0.0, -0.12, 0.12), OPEN, tolerance=0.03, steps=15)


class KitchenExpert:
    def __init__(self, env, noise: float = 0.0, speed: float = 1.0, rng=None, plan=None):
        """``plan``: the sub-tasks to do, in order (None: the environment's targets)."""
        self.plan = tuple(env.targets if plan is None else plan)
        missing = [t for t in self.plan if t not in SCRIPTS]
        if missing or not self.plan:
            raise ValueError(f"no scripted expert for {missing or 'an empty plan'}; there is one for "
                             f"{sorted(SCRIPTS)}")
        self.env, self.noise, self.speed = env, noise, speed
        self.rng = rng if rng is not None else np.random.default_rng()
        self.control = EndEffectorControl(env)
        self.reset()

    def reset(self) -> None:
        """After ``env.reset``: start with the first target."""
        self.control.reset()
        self.task_index, self.move_index, self.move_steps, self.backing_away = 0, 0, 0, None
        self.start_orientation, self.anchor = self.control.orientation.copy(), None

    @property
    def task(self) -> str | None:
        return self.plan[self.task_index] if self.task_index < len(self.plan) else None

    @property
    def finished(self) -> bool:
        """Every sub-task of the plan done (and backed away from)."""
        return self.task is None

    def act(self) -> np.ndarray:
        action = self.policy()
        if self.noise:
            action = action + self.rng.normal(0.0, self.noise, size=action.shape)
        return np.clip(action, -1.0, 1.0)

    def policy(self) -> np.ndarray:
        if self.backing_away is None and self.task in self.env.achieved:
            self.backing_away = self.control.position + BACK_AWAY.offset
            self.control.orientation = self._orientation(0.0)        # unroll the hand (a knob) on the way
            self.move_steps = 0
        if self.backing_away is not None:
            if np.linalg.norm(self.control.position - self.backing_away) < BACK_AWAY.tolerance or \
                    self.move_steps >= BACK_AWAY.steps:
                self.task_index, self.move_index, self.move_steps, self.backing_away = self.task_index + 1, 0, 0, None
            else:
                self.move_steps += 1
                return self.control.action(self.backing_away, BACK_AWAY.fingers, self._max_step())
        if self.task is None:                                    # the plan is done: hold still
            return self.control.action(self.control.position, OPEN)
        site, joint, _, moves = SCRIPTS[self.task]
        if self.move_index >= len(moves):                        # the script is spent: try it again
            self.move_index = 0
        if self.move_index == 0 and self.move_steps == 0:         # the sub-task begins here
            self.anchor = self.env.data.site(site).xpos.copy()
        move = moves[self.move_index]
        self.control.orientation = self._orientation(move.roll)
        target = self._target(site, joint, move)
        self.move_steps += 1
        if (move.kind == "reach" and np.linalg.norm(self.control.position - target) < move.tolerance) or \
                self.move_steps > move.steps:
            self.move_index, self.move_steps = self.move_index + 1, 0
        return self.control.action(target, move.fingers, self._max_step())

    def _orientation(self, roll: float) -> np.ndarray:
        """The hand's wanted orientation in the current sub-task: its turn, then ``roll``."""
        turn = SCRIPTS[self.task][2]
        return Rotation.from_euler("y", roll).as_matrix() @ (
            self.start_orientation if turn is None else turn.as_matrix() @ self.start_orientation)

    def _target(self, site: str, joint, move: Move) -> np.ndarray:
        if move.kind == "reach":
            return self.anchor + np.asarray(move.offset)
        handle = self.env.data.site(site).xpos.copy()
        name, sign = joint
        model = self.env.model
        jacp = np.zeros((3, model.nv))
        mujoco.mj_jacSite(model, self.env.data, jacp, None, model.site(site).id)
        along = sign * jacp[:, model.jnt_dofadr[model.joint(name).id]]     # where the handle goes as it opens
        return handle + move.offset[0] * along / np.linalg.norm(along)

    def _max_step(self) -> float:
        return 0.08 * self.speed


def demonstration_plans(task: str, episodes: int, rng) -> list:
    """Each demonstration's sub-tasks (four, in ``PLAN_ORDER``) as D4RL defines the task's dataset:

    - ``kitchen_complete``: every demonstration does the four targets;
    - ``kitchen_partial``: ``PARTIAL_FULL_SHARE`` of them (spread at random) do the four targets,
      the others four sub-tasks that are not exactly the targets;
    - ``kitchen_mixed``: none does all four targets; each does two or three of them and one or
      two other sub-tasks.

    The sub-tasks are those of ``IN_DEMONSTRATIONS`` (not yet the hinge cabinet)."""
    from otpr_ros.sim.kitchen_env import KITCHEN_TASKS
    if task not in KITCHEN_TASKS:
        raise ValueError(f"task: expected one of {sorted(KITCHEN_TASKS)}, got {task!r}")
    targets = KITCHEN_TASKS[task]
    others = [t for t in IN_DEMONSTRATIONS if t not in targets]

    def ordered(subtasks) -> tuple:
        return tuple(t for t in PLAN_ORDER if t in subtasks)

    def other_plan() -> tuple:
        while True:
            plan = ordered(rng.choice(IN_DEMONSTRATIONS, size=4, replace=False))
            if set(plan) != set(targets):
                return plan

    def mixed_plan() -> tuple:
        done = int(rng.integers(max(2, 4 - len(others)), 4))        # targets it does: 2 or 3
        return ordered(list(rng.choice(targets, size=done, replace=False)) +
                       list(rng.choice(others, size=4 - done, replace=False)))

    if task == "kitchen_complete":
        return [tuple(targets)] * episodes
    if task == "kitchen_mixed":
        return [mixed_plan() for _ in range(episodes)]
    full = set(rng.permutation(episodes)[:int(round(PARTIAL_FULL_SHARE * episodes))].tolist())
    return [tuple(targets) if i in full else other_plan() for i in range(episodes)]
