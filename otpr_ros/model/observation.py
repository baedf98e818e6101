"""The robomimic low-dim observation built from what a robot publishes.

A robot (or the simulation bridge) publishes its end-effector pose, its gripper joint
positions and the poses of the task's objects; the policy was trained on robomimic's
vector ``robot0_eef_pos, robot0_eef_quat, robot0_gripper_qpos, object``. ``object`` is
robosuite's ``object-state``, which also holds the object's pose relative to the end
effector, computed here exactly as robosuite computes it:

- Lift: cube position, cube quaternion, cube position minus eef position (10);
- Can, Square: the object's pose in the end-effector frame (position, quaternion with
  w >= 0, as robosuite makes it), then the object's position and quaternion (14).

(robosuite fills the relative part with zeros in the first observation after a reset, a
quirk of its observation cache; this module always computes it.)

Quaternions are (x, y, z, w), like robosuite and geometry_msgs.
"""

import numpy as np

OBJECT_LAYOUTS = {"lift": "world_offset", "can": "eef_frame", "square": "eef_frame"}


def quat_conjugate(q):
    return np.array([-q[0], -q[1], -q[2], q[3]])


def quat_multiply(a, b):
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return np.array([aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx,
                     aw * bz + ax * by - ay * bx + az * bw,
                     aw * bw - ax * bx - ay * by - az * bz])


def rotate(q, v):
    """v rotated by the unit quaternion q."""
    return quat_multiply(quat_multiply(q, np.append(v, 0.0)), quat_conjugate(q))[:3]


def unit_quaternion(q, name: str):
    q = np.asarray(q, dtype=np.float64)
    norm = np.linalg.norm(q)
    if q.shape != (4,) or not np.isfinite(q).all() or not 0.5 < norm < 1.5:
        raise ValueError(f"{name}: expected a unit quaternion (x, y, z, w), got {q}")
    return q / norm


def object_state(task: str, eef_pos, eef_quat, object_pos, object_quat) -> np.ndarray:
    if task not in OBJECT_LAYOUTS:
        raise ValueError(f"task: expected one of {sorted(OBJECT_LAYOUTS)}, got {task!r}")
    eef_pos, object_pos = np.asarray(eef_pos, np.float64), np.asarray(object_pos, np.float64)
    eef_quat, object_quat = unit_quaternion(eef_quat, "eef_quat"), unit_quaternion(object_quat, "object_quat")
    if OBJECT_LAYOUTS[task] == "world_offset":
        return np.concatenate([object_pos, object_quat, object_pos - eef_pos])
    inverse = quat_conjugate(eef_quat)
    relative_pos = rotate(inverse, object_pos - eef_pos)
    relative_quat = quat_multiply(inverse, object_quat)
    if relative_quat[3] < 0:
        relative_quat = -relative_quat
    return np.concatenate([relative_pos, relative_quat, object_pos, object_quat])


def robomimic_observation(task: str, eef_pos, eef_quat, gripper_qpos, object_pos, object_quat) -> np.ndarray:
    """The policy's observation vector, in robomimic's key order."""
    gripper_qpos = np.asarray(gripper_qpos, np.float64)
    if gripper_qpos.shape != (2,):
        raise ValueError(f"gripper_qpos: expected 2 finger positions, got shape {gripper_qpos.shape}")
    return np.concatenate([np.asarray(eef_pos, np.float64), unit_quaternion(eef_quat, "eef_quat"), gripper_qpos,
                           object_state(task, eef_pos, eef_quat, object_pos, object_quat)])
