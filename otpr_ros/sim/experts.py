"""Scripted experts for Lift, Can and Square, closed-loop on absolute targets.

Each expert is a small phase machine (approach, descend, grasp, lift, carry or align, place,
release) that reads privileged simulator state (object poses, the grip-site orientation
``robot0_eef_quat_site``) and emits robosuite's delta-pose actions: position and rotation
errors through a saturated proportional law. A grasp that does not hold (the object stays
behind while the gripper rises) sends the expert back to approach: re-grasp on a miss.

``noise`` adds Gaussian noise to every action (before clipping), ``speed`` scales the
proportional gains: together they make demonstrations of mixed quality.
"""

import numpy as np
from scipy.spatial.transform import Rotation

ROT_SCALE = 0.5    # robosuite OSC: a rotation action of 1 turns 0.5 rad
JOINT7_LIMIT = 2.8973  # the Panda's last joint turns +-2.9 rad
OPEN, CLOSE = -1.0, 1.0


def yaw_of(rotation: Rotation) -> float:
    x_axis = rotation.apply([1.0, 0.0, 0.0])
    return float(np.arctan2(x_axis[1], x_axis[0]))


def nearest_equivalent(angle: float, reference: float, period: float) -> float:
    """The angle equal to ``angle`` modulo ``period`` closest to ``reference``."""
    return reference + (angle - reference + period / 2) % period - period / 2


class ScriptedExpert:
    """Base: proportional control of the grip site towards a target pose."""

    approach_height = 0.08
    grasp_steps = 8

    def __init__(self, env, noise: float = 0.0, speed: float = 1.0, rng=None):
        self.env, self.sim_env, self.noise, self.speed = env, env.sim_env, noise, speed
        self.rng = rng if rng is not None else np.random.default_rng()
        self.reset()

    def reset(self) -> None:
        self.phase, self.phase_steps, self.regrasps = "approach", 0, 0
        # yaws are measured from the home pose (pointing down, fingers closing along world y),
        # so an object at yaw 0 is grasped without turning the wrist
        self.down = Rotation.from_quat(self.env.raw_obs["robot0_eef_quat_site"])

    # -- state --------------------------------------------------------------------------------
    @property
    def eef(self) -> np.ndarray:
        return np.asarray(self.env.raw_obs["robot0_eef_pos"])

    @property
    def eef_rotation(self) -> Rotation:
        return Rotation.from_quat(self.env.raw_obs["robot0_eef_quat_site"])

    @property
    def wrist_yaw(self) -> float:
        """The grip site's yaw relative to the home pose."""
        return yaw_of(self.eef_rotation * self.down.inv())

    def goto(self, phase: str) -> None:
        self.phase, self.phase_steps = phase, 0

    # -- control ------------------------------------------------------------------------------
    def command(self, target_pos, target_yaw, gripper, gain=10.0, max_speed=1.0):
        position = np.clip(gain * self.speed * (np.asarray(target_pos) - self.eef), -max_speed, max_speed)
        goal = Rotation.from_euler("z", target_yaw) * self.down
        rotation = np.clip(self.speed * (goal * self.eef_rotation.inv()).as_rotvec() / ROT_SCALE, -1.0, 1.0)
        action = np.concatenate([position, rotation, [gripper]])
        if self.noise:
            action = action + self.rng.normal(0.0, self.noise, size=action.shape)
        return np.clip(action, -1.0, 1.0)

    def near(self, target, tolerance) -> bool:
        return float(np.linalg.norm(np.asarray(target) - self.eef)) < tolerance

    def yaw_error(self, target_yaw) -> float:
        return abs(nearest_equivalent(self.wrist_yaw, target_yaw, 2 * np.pi) - target_yaw)

    def act(self) -> np.ndarray:
        self.phase_steps += 1
        return self.policy()

    def policy(self) -> np.ndarray:
        raise NotImplementedError


class PickExpert(ScriptedExpert):
    """Approach, descend, grasp, lift; subclasses add what happens after the lift."""

    yaw_period = np.pi / 2
    lift_height = 0.15

    def object_pos(self) -> np.ndarray:
        raise NotImplementedError

    def object_yaw(self) -> float:
        raise NotImplementedError

    def grasp_point(self) -> np.ndarray:
        return self.object_pos()

    def grasp_yaw(self) -> float:
        return nearest_equivalent(self.object_yaw(), 0.0, self.yaw_period)

    def holding(self) -> bool:
        """Consulted while the object should be in hand (lift, carry, lower)."""
        return self.near(self.grasp_point(), 0.03) and self.gripper_closed_on_object()

    def gripper_closed_on_object(self) -> bool:
        # fingers stopped by the object: not fully closed
        return float(np.abs(self.env.raw_obs["robot0_gripper_qpos"]).sum()) > 0.005

    def policy(self):
        grasp, yaw = self.grasp_point(), self.grasp_yaw()
        above = grasp + [0.0, 0.0, self.approach_height]
        if self.phase == "approach":
            if self.near(above, 0.015) and self.yaw_error(yaw) < 0.08:
                self.goto("descend")
            return self.command(above, yaw, OPEN)
        if self.phase == "descend":
            if self.near(grasp, 0.008) or self.phase_steps > 60:
                self.goto("grasp")
            return self.command(grasp, yaw, OPEN, gain=8.0)
        if self.phase == "grasp":
            if self.phase_steps >= self.grasp_steps:
                self.lift_target = self.eef + [0.0, 0.0, self.lift_height]
                self.goto("lift")
            return self.command(grasp, yaw, CLOSE)
        if self.phase in ("lift", "carry", "lower") and not self.holding():
            self.regrasps += 1
            self.goto("retreat")
        if self.phase == "retreat":
            if self.phase_steps > 10:
                self.goto("approach")
            return self.command(self.eef + [0.0, 0.0, 0.05], yaw, OPEN)
        return self.after_grasp()

    def after_grasp(self):
        return self.command(self.lift_target, self.grasp_yaw(), CLOSE)


class LiftExpert(PickExpert):
    def object_pos(self):
        return np.asarray(self.env.raw_obs["cube_pos"])

    def object_yaw(self):
        return yaw_of(Rotation.from_quat(self.env.raw_obs["cube_quat"]))


class CanExpert(PickExpert):
    """Pick the can from bin 1 and place it in its quadrant of bin 2."""

    yaw_period = 2 * np.pi       # a cylinder: keep the home yaw
    carry_height = 0.19          # above bin 2's floor: clears its walls, stays within reach
    inset = np.array([-0.03, -0.08])  # the quadrant centre is beyond reach at carry height

    def object_pos(self):
        return np.asarray(self.env.raw_obs["Can_pos"])

    def object_yaw(self):
        return 0.0

    def place_xy(self):
        sim_env = self.sim_env
        return sim_env.target_bin_placements[sim_env.object_to_id["can"], :2] + self.inset

    def after_grasp(self):
        floor = self.sim_env.bin2_pos[2]
        if self.phase == "lift":
            up = np.append(self.eef[:2], max(self.lift_target[2], floor + self.carry_height))
            if self.eef[2] > floor + self.carry_height - 0.03:
                self.goto("carry")
            return self.command(up, 0.0, CLOSE)
        offset = self.eef - self.object_pos()      # where the can hangs below the fingers
        place = np.append(self.place_xy() + offset[:2], floor + self.carry_height)
        if self.phase == "carry":
            if self.near(place, 0.02):
                self.goto("lower")
            return self.command(place, 0.0, CLOSE)
        lowered = np.append(place[:2], floor + 0.06 + offset[2])
        if self.phase == "lower":
            if self.near(lowered, 0.015) or self.phase_steps > 40:
                self.goto("release")
            return self.command(lowered, 0.0, CLOSE)
        return self.command(lowered + [0.0, 0.0, 0.1 * (self.phase_steps > 5)], 0.0, OPEN)


class SquareExpert(PickExpert):
    """Grasp the square nut by its handle, align it over the square peg, lower it on."""

    yaw_period = np.pi           # the handle is symmetric about its axis
    carry_height = 0.19          # the peg's top is 13 cm above the table; higher is beyond reach over the far side of the peg

    def object_pos(self):
        return np.asarray(self.env.raw_obs["SquareNut_pos"])

    def object_yaw(self):
        return yaw_of(Rotation.from_quat(self.env.raw_obs["SquareNut_quat"]))

    def grasp_point(self):
        site = self.sim_env.sim.model.site_name2id(self.sim_env.nuts[0].important_sites["handle"])
        return np.array(self.sim_env.sim.data.site_xpos[site])

    def grasp_yaw(self):
        # the handle runs along the nut's x axis and the fingers close across it at yaw 0
        return nearest_equivalent(self.object_yaw(), 0.0, np.pi)

    def peg_xy(self):
        return np.array(self.sim_env.sim.data.body_xpos[self.sim_env.peg1_body_id][:2])

    def reset(self) -> None:
        super().reset()
        self.turn_goal = None     # the wrist yaw (unwrapped) that ends a half turn, if one is due

    def joint7(self) -> float:
        return float(self.sim_env.robots[0]._joint_positions[6])

    def plan_turn(self) -> None:
        """A handle on the far side of the nut puts the hand beyond reach over the peg: turn
        the held nut a quarter or half turn (the square hole still meets the peg) to bring the
        handle near, choosing the turn that joint 7 has room for."""
        self.unwrapped_yaw = self.wrist_yaw
        handle = (self.grasp_point() - self.object_pos())[:2]
        if handle[0] < 0.02:
            return
        best = None
        for turn in (np.pi, -np.pi, np.pi / 2, -np.pi / 2):
            # the wrist yaw grows as joint 7 falls, one for one near the home pose
            joint7_after = self.joint7() - turn
            if abs(joint7_after) > JOINT7_LIMIT - 0.35:
                continue
            handle_x = np.cos(turn) * handle[0] - np.sin(turn) * handle[1]
            if best is None or handle_x < best[0]:
                best = (handle_x, turn)
        if best is not None:
            self.turn_goal = self.wrist_yaw + best[1]

    def turning_yaw(self):
        """The next wrist yaw on the way through a half turn (steps < pi, so the direction holds)."""
        self.unwrapped_yaw = nearest_equivalent(self.wrist_yaw, self.unwrapped_yaw, 2 * np.pi)
        remaining = self.turn_goal - self.unwrapped_yaw
        if abs(remaining) < 0.15:
            self.turn_goal = None
        return self.unwrapped_yaw + np.clip(remaining, -0.3, 0.3)

    def after_grasp(self):
        table = self.sim_env.table_offset[2]
        # turn the held nut by at most an eighth of a turn to the nearest quarter turn, so
        # the square hole meets the square peg
        misalignment = nearest_equivalent(self.object_yaw(), 0.0, np.pi / 2)
        gripper_yaw = self.wrist_yaw - misalignment
        if self.phase == "lift":
            if self.phase_steps == 1:
                self.plan_turn()
            if self.turn_goal is not None and self.eef[2] > table + 0.1:   # clear of the table first
                gripper_yaw = self.turning_yaw()
            elif self.eef[2] > table + self.carry_height - 0.02 and self.turn_goal is None:
                self.goto("carry")
            # hold the grasp's xy: chasing the current xy lets the arm drift into its joint limits
            return self.command(np.append(self.lift_target[:2], table + self.carry_height), gripper_yaw, CLOSE)
        offset = self.eef - self.object_pos()
        above_peg = np.append(self.peg_xy() + offset[:2], table + self.carry_height)
        if self.phase == "carry":
            nut_xy_error = np.linalg.norm(self.object_pos()[:2] - self.peg_xy())
            if nut_xy_error < 0.008 and abs(misalignment) < 0.06:
                self.goto("lower")
            # half speed: a fast carry swings the nut out of the fingers
            return self.command(above_peg, gripper_yaw, CLOSE, max_speed=0.5)
        lowered = np.append(above_peg[:2], table + 0.02 + offset[2])
        if self.phase == "lower":
            if self.object_pos()[2] < table + 0.035 or self.phase_steps > 50:
                self.release_pose = (self.eef.copy(), self.wrist_yaw)
                self.goto("release")
            return self.command(lowered, gripper_yaw, CLOSE, gain=6.0)
        # open in place, then rise a little: the nut drops down the peg, the hand stays near it
        position, yaw = self.release_pose
        return self.command(position + [0.0, 0.0, 0.06 * (self.phase_steps > 6)], yaw, OPEN)


EXPERTS = {"lift": LiftExpert, "can": CanExpert, "square": SquareExpert}


def make_expert(env, noise: float = 0.0, speed: float = 1.0, rng=None) -> ScriptedExpert:
    return EXPERTS[env.task](env, noise, speed, rng)
