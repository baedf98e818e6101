"""The package's data on standard messages (a custom interface package cannot be built where
only pip is available; ../shared/docs/ROS_INTERFACES.md).

- ``transition``: std_msgs/Float32MultiArray; each layout dimension is one named field
  (label, size, stride = offset), in the order of ``TRANSITION_FIELDS``. ``sequence`` counts
  transitions per bridge (``source``), so a learner drops duplicates and counts gaps;
  float32 holds integers exactly up to 2**24 (16.7 M transitions per bridge). ``stream`` is
  drawn anew each time a bridge starts: a restarted bridge's transitions are a new stream.
  ``expert`` is 1 for a chunk a person commanded (an intervention: the learner keeps it with
  the demonstrations), 0 for the policy's.
- ``episode``: std_msgs/String, JSON (return, success, length, ...).
- ``policy_update``: std_msgs/String, JSON ``{"run", "version", "path", "weights_sha256",
  "signature"}``: a model directory the learner wrote atomically on a filesystem the server
  reads; ``run`` the learner run's id (versions grow within a run); ``signature`` HMAC-SHA256
  with the run's key, or null (otpr_ros/model/update_auth.py).
- ``learner_progress``: std_msgs/String, JSON ``{"acknowledged": [[source, stream,
  sequence], ...], "received", "wanted", "updates", "version"}``: the last transition of
  each bridge run that is safely on disk, and how many transitions the learner is ready for
  at its update-to-data ratio (null: any number). Fast-mode bridges pace themselves by it.
"""

import json
import secrets

import numpy as np
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import Float32MultiArray, MultiArrayDimension, String

from otpr_ros.model.update_auth import sign
from otpr_ros.sim.bridge_session import TRANSITION_FIELDS, Transition

# names of the action dimensions in action_chunk and teleop_action (robosuite's delta pose and gripper)
ACTION_NAMES = ("dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper")
SCALARS = {"reward", "terminal", "truncated", "steps", "sequence", "episode", "source", "stream", "expert"}
STREAM_IDS = 2**24          # float32 holds them exactly

# transitions: a learner may fall behind, start later or restart; it gets the last 10 000 it missed
TRANSITION_HISTORY = 10000
TRANSITION_QOS = QoSProfile(depth=TRANSITION_HISTORY, reliability=ReliabilityPolicy.RELIABLE,
                            durability=DurabilityPolicy.TRANSIENT_LOCAL)
# episode summaries: a subscriber asking for TRANSIENT_LOCAL also gets the last 100 published
# before it matched (a fast bridge can end an episode before a new observer is discovered);
# volatile subscribers see only new ones, as before
EPISODE_QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
# policy_update, learner_progress: the last one reaches whoever joins later
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
# ... and their subscribers keep up to 10: a late joiner gets every publisher's last one at once,
# and with depth 1 the last to arrive would hide the others (a rogue's, the learner's)
LATCHED_READER = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                            durability=DurabilityPolicy.TRANSIENT_LOCAL)


STILL_RUNNING = "is still running: report its end first"


def still_running(episode: int) -> str:
    """The transition recorder's refusal of ``~/start_episode`` while an episode runs. A start is
    not idempotent: a start sent again after its reply was lost and refused this way had taken."""
    return f"episode {episode} {STILL_RUNNING}"


def refused_as_running(answer) -> bool:
    """``answer`` (a Trigger response) is ``still_running``'s refusal."""
    return not answer.success and STILL_RUNNING in answer.message


def new_stream_id() -> int:
    """A bridge's id for this run of it: a restarted bridge numbers its transitions from 0
    again, under a new stream, so a learner neither drops them as duplicates nor counts a gap."""
    return secrets.randbelow(STREAM_IDS - 1) + 1


def transition_message(t: Transition, source: int, stream: int = 0) -> Float32MultiArray:
    values = t.fields(source, stream)
    msg = Float32MultiArray()
    data, offset = [], 0
    for name in TRANSITION_FIELDS:
        part = np.atleast_1d(np.asarray(values[name], dtype=np.float32))
        msg.layout.dim.append(MultiArrayDimension(label=name, size=part.size, stride=offset))
        data.append(part)
        offset += part.size
    msg.data = np.concatenate(data).tolist()
    return msg


def transition_fields(msg: Float32MultiArray, obs_dim: int | None = None, action_size: int | None = None) -> dict:
    """The named fields of a transition message (numpy arrays, scalars as floats); a message
    that is not a well-formed transition raises ValueError naming the problem."""
    labels = [d.label for d in msg.layout.dim]
    if labels != list(TRANSITION_FIELDS):
        raise ValueError(f"transition: expected fields {list(TRANSITION_FIELDS)}, got {labels}")
    data = np.asarray(msg.data, dtype=np.float32)
    fields, offset = {}, 0
    for dim in msg.layout.dim:
        if dim.stride != offset or offset + dim.size > data.size:
            raise ValueError(f"transition: field {dim.label!r} at {dim.stride}+{dim.size} does not fit "
                             f"{data.size} values")
        part = data[offset:offset + dim.size]
        offset += dim.size
        if dim.label in SCALARS:
            if dim.size != 1:
                raise ValueError(f"transition: field {dim.label!r} must hold 1 value, holds {dim.size}")
            fields[dim.label] = float(part[0])
        else:
            fields[dim.label] = part.copy()
    if offset != data.size:
        raise ValueError(f"transition: {data.size - offset} values beyond the last field")
    expected = {"obs": obs_dim, "next_obs": obs_dim, "action": action_size}
    for name, size in expected.items():
        if size is not None and fields[name].size != size:
            raise ValueError(f"transition: {name} holds {fields[name].size} values, expected {size}")
    if not all(np.isfinite(fields[n]).all() for n in ("obs", "action", "next_obs")) or \
            not np.isfinite(fields["reward"]):
        raise ValueError("transition: NaN or Inf")
    return fields


def episode_message(summary: dict) -> String:
    return String(data=json.dumps(summary))


def policy_update_message(run: str, version: int, path: str, weights_sha256: str, key: bytes | None = None) -> String:
    """``key``: the run's update key (the announcement is signed), or None (unsigned)."""
    update = {"run": str(run), "version": int(version), "path": str(path), "weights_sha256": weights_sha256}
    update["signature"] = sign(key, update) if key is not None else None
    return String(data=json.dumps(update))


def policy_update_fields(msg: String) -> dict:
    try:
        fields = json.loads(msg.data)
    except json.JSONDecodeError as error:
        raise ValueError(f"policy_update: not JSON ({error})") from None
    expected = {"run": str, "version": int, "path": str, "weights_sha256": str}
    if not isinstance(fields, dict) or any(not isinstance(fields.get(k), t) for k, t in expected.items()) or \
            not isinstance(fields.get("signature"), (str, type(None))):
        raise ValueError(f"policy_update: expected {{run: str, version: int, path: str, weights_sha256: str, "
                         f"signature: str | null}}, got {msg.data[:300]!r}")
    return fields


def learner_progress_message(acknowledged: dict, received: int, wanted: int | None, updates: int,
                             version: int) -> String:
    """``acknowledged``: (source, stream) -> the last sequence number persisted."""
    return String(data=json.dumps({"acknowledged": [[int(s), int(r), int(q)] for (s, r), q in acknowledged.items()],
                                   "received": int(received), "wanted": None if wanted is None else int(wanted),
                                   "updates": int(updates), "version": int(version)}))


def learner_progress_fields(msg: String) -> dict:
    try:
        fields = json.loads(msg.data)
        acknowledged = {(int(s), int(r)): int(q) for s, r, q in fields["acknowledged"]}
        wanted = fields["wanted"]
        progress = {"acknowledged": acknowledged, "received": int(fields["received"]),
                    "wanted": None if wanted is None else int(wanted)}
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        raise ValueError(f"learner_progress: expected {{acknowledged: [[source, stream, sequence]], received, "
                         f"wanted}}, got {msg.data[:200]!r} ({error})") from None
    return progress
