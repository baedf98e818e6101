"""policy_server: robot state in, action chunk out (see ../shared/docs/ROS_INTERFACES.md).

Builds the model's observation from the configured sources, refuses what must not be acted
on (otpr_ros/model/observation_gate.py), decides with the model (torch, ONNX Runtime or OpenVINO),
and publishes the chunk as a JointTrajectory in robot units, every action finite and inside
the model's bounds, stamped with the stamp of the state it answers. A decision is made per
robot state: with ``state_sync: exact`` when eef_pose, gripper_state and object_poses carry
the same stamp (in whatever order they arrive), with ``latest`` per end-effector pose.
While a person commands the arm (``teleop_action``, an intervention) and for
``intervention_hold`` s after, it publishes nothing. Services ``~/enable`` (SetBool) and
``~/reload`` (Trigger); learner snapshots on
``policy_update`` (signed with ``update_key`` when one is configured, of the served learner
run and newer or of a new run, inside ``model_roots``, checksummed, same dimensions and
bounds, else refused with the reason counted: otpr_ros/model/update_auth.py); every model
loaded comes from inside ``model_roots``; counters and state on ``~/status``
(std_msgs/String, JSON, once a second).
"""

import secrets
import sys
import time
from collections import deque
from pathlib import Path

import numpy as np
import rclpy
from builtin_interfaces.msg import Duration
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from std_msgs.msg import Float32MultiArray, String
from std_srvs.srv import SetBool, Trigger
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from otpr_ros.model.directory import ModelError, load_model
from otpr_ros.model.observation_gate import ObservationGate
from otpr_ros.model.policy import ChunkPolicy, UnsafeOutput
from otpr_ros.model.update_auth import REASONS, UpdateGuard, UpdateRefused, load_key
from otpr_ros.nodes.bus_messages import ACTION_NAMES, LATCHED_READER, policy_update_fields
from otpr_ros.nodes.managed_node import ManagedNode
from otpr_ros.nodes.node_main import (ANY_TYPE, CPU_THREADS, apply_cpu_threads, declare_parameters, percentiles,
                                      run_node, status_topic)
from otpr_ros.nodes.robot_state import RobotStateSync
from otpr_ros.package_files import share_dir, shipped_model

SOURCES = ("robot_state", "observation")
SET_UP_ERRORS = (ModelError, ValueError, OSError)      # a bad model or parameter: refused at start, named


# the server's parameters: name, default, description, (low, high) or None, read-only (node_main.declare_parameters)
PARAMETERS = (
    ("task", "lift", "robomimic task of the model", None, True),
    ("model_dir", "", "model directory; empty: the shipped model of the task", None, False),
    ("backend", "torch", "torch | onnx (ONNX Runtime) | openvino (OpenVINO CPU: the fastest on a CPU)", None, True),
    ("candidates", "eval", "L candidates per decision: eval (as otpr-evaluate acts: 1 for the model's eval_mode "
     "single), train (the model's agent.num_candidates: acting for training) or a count (1..256)", ANY_TYPE, False),
    ("device", "auto", "torch device of the torch backend: auto (CUDA when present) | cpu | cuda[:i]", None, True),
    ("seed", 0, "seed of the denoising noise; a (re)loaded model starts from it, so decisions repeat",
     (0, 2**31 - 1), False),
    ("selection", "argmax", "argmax | sample", None, False),
    ("observation_source", "robot_state", "robot_state (eef_pose, gripper_state, object_poses) | observation (flat)",
     None, True),
    ("state_sync", "exact", "exact: decide when eef_pose, gripper_state and object_poses carry one stamp | "
     "latest: on every eef_pose, with the latest of the others", None, True),
    ("object_index", 0, "index of the task's object in object_poses", (0, 63), False),
    ("max_obs_age", 0.5, "s; older observations are refused", (0.01, 10.0), False),
    ("starved_after", 0.5, "s without an accepted observation before the server says it is starved (a robot: "
     "max_obs_age; a fast-mode simulation that waits for its learner: longer)", (0.01, 3600.0), False),
    ("max_normalised_obs", 20.0, "observations whose normalised components exceed this are refused (training data: "
     "[-1, 1])", (1.0, 1000.0), True),
    ("min_obs_margin", 0.0, "raw units; each component's plausible range is at least the training data's centre +- "
     "this (components the demonstrations held nearly constant, e.g. objects they never moved); 0: none",
     (0.0, 1000.0), True),
    ("max_decision_rate", 10.0, "Hz; at most this many chunks per second", (0.1, 1000.0), False),
    ("start_enabled", True, "publish from the start; false on hardware (enable with ~/enable)", None, True),
    ("intervention_hold", 0.5, "s after a teleop_action (a person has the arm) before the server acts again",
     (0.0, 60.0), False),
    ("update_key", "", "file holding the key policy_update announcements must be signed with (otpr-keygen; the "
     "learner's update_key); empty: any participant on the domain may swap the policy", None, True),
    ("model_roots", [""], "folders any model served must lie in (the initial one, a reload, a policy_update); "
     "empty: the shipped models and the folder of model_dir", None, True),
    ("joint_names", list(ACTION_NAMES),
     "names of the action dimensions in action_chunk", None, False),
) + (CPU_THREADS,)


class PolicyServer(Node):
    active = True               # a managed server (ManagedPolicyServer) acts only while active

    def __init__(self):
        super().__init__("policy_server")
        declare_parameters(self, PARAMETERS)
        self._set_up()

    def _set_up(self) -> None:
        """Load the model and make the server's topics, services and timers."""
        apply_cpu_threads(self)
        value = lambda name: self.get_parameter(name).value  # noqa: E731
        self.task, self.source, self.sync = value("task"), value("observation_source"), value("state_sync")
        if self.source not in SOURCES:
            raise ValueError(f"observation_source: expected one of {SOURCES}, got {self.source!r}")
        self.robot_state = RobotStateSync(self.task, self.sync)
        key_file = value("update_key")
        roots = [r for r in value("model_roots") if r] or [share_dir("models"), *(
            [Path(value("model_dir")).resolve().parent] if value("model_dir") else [])]
        self.guard = UpdateGuard(load_key(key_file) if key_file else None, roots)
        self.policy = self._load_policy()
        self.joint_names = list(value("joint_names"))
        if len(self.joint_names) != self.policy.model.info.act_dim:
            raise ValueError(f"joint_names: {len(self.joint_names)} names for {self.policy.model.info.act_dim} "
                             "action dimensions")
        limit = value("max_normalised_obs")       # as far outside the training data's range as is plausible
        low, high = self.policy.model.obs_normalizer.bounds(limit, value("min_obs_margin"))
        self.starved_after = value("starved_after")
        self.gate = ObservationGate(self.policy.obs_dim, value("max_obs_age"), low, high)
        self.enabled = bool(value("start_enabled"))
        self.instance = secrets.randbelow(2**31)      # on ~/status: a restarted (or reconfigured) server is a new one
        self.min_period = 1.0 / value("max_decision_rate")
        self.last_decision_time = -np.inf
        self.deferred = None          # a timer: a state arrived within the decision period
        self.published = 0
        self.decision_ms = deque(maxlen=100000)
        self.latest_observation = None          # observation source: (message, receive time)

        self.chunk_pub = self.create_publisher(JointTrajectory, "action_chunk",
                                               QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE))
        self._publish_status = status_topic(self)
        # created before the state's: a person's command and a state that arrive together are
        # taken in this order (the executor serves subscriptions in the order they were made)
        self.intervened_at = -np.inf          # the last teleop_action (node clock, s)
        self.create_subscription(JointTrajectory, "teleop_action", self._on_teleop,
                                 QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
        if self.source == "robot_state":
            self.robot_state.subscribe(self, self._on_source)
        else:
            self.create_subscription(Float32MultiArray, "observation",
                                     lambda msg: self._on_source("observation", msg), qos_profile_sensor_data)
        self.updates = {"applied": 0, "refused": 0, "refused_by": dict.fromkeys(REASONS, 0)}
        self.create_subscription(String, "policy_update", self._on_policy_update, LATCHED_READER)
        self.create_service(SetBool, "~/enable", self._on_enable)
        self.create_service(Trigger, "~/reload", self._on_reload)
        self.last_accepted_time, self.starved = None, False
        self.create_timer(0.1, self._watch_observations)
        self.get_logger().info(f"serving {self.policy.model.path} on {self.policy.backend.provider}, "
                               f"{'enabled' if self.enabled else 'disabled'}; models only from "
                               f"{[str(r) for r in self.guard.roots]}")
        if self.policy.execute_steps:
            self.get_logger().info(f"the model executes {self.policy.execute_steps} of each chunk of "
                                   f"{self.policy.model.info.chunk} (agent.execute_steps): the simulation bridge does; "
                                   "a robot's driver executes each published chunk whole")
        if self.guard.key is None:
            self.get_logger().warning("NO update_key: any participant on this DDS domain may swap the served policy "
                                      "with a policy_update; give this server and the learner an update_key")

    def _load_policy(self, model_dir: str | None = None) -> ChunkPolicy:
        model_dir = model_dir or self.get_parameter("model_dir").value or str(shipped_model(self.task))
        self.guard.check_path(model_dir)
        model = load_model(model_dir, self.get_parameter("device").value)
        if model.info.task != self.task:
            raise ModelError(f"{model_dir}: trained for {model.info.task!r}, the server is for {self.task!r}")
        return ChunkPolicy(model, self.get_parameter("backend").value, self.get_parameter("candidates").value,
                           self.get_parameter("selection").value, seed=self.get_parameter("seed").value)

    # -- observations -------------------------------------------------------------------------
    def _on_source(self, topic: str, msg) -> None:
        receive_time = self.get_clock().now().nanoseconds * 1e-9
        if topic == "observation":
            self.latest_observation = (msg, receive_time)
        elif not self.robot_state.add(topic, msg):
            return
        wait = self.last_decision_time + self.min_period - receive_time
        if wait > 0:            # too soon: decide on the newest state once the period is over
            if self.deferred is None:
                self.deferred = self.create_timer(wait, self._on_deferred)
            return
        self._decide_latest(receive_time)

    def _on_deferred(self) -> None:
        self.destroy_timer(self.deferred)
        self.deferred = None
        self._decide_latest(self.get_clock().now().nanoseconds * 1e-9)

    def _on_teleop(self, msg: JointTrajectory) -> None:
        """A person commands the arm (an intervention): nothing is published meanwhile."""
        self.intervened_at = self.get_clock().now().nanoseconds * 1e-9

    def _intervening(self, now: float) -> bool:
        return now - self.intervened_at < self.get_parameter("intervention_hold").value

    def _decide_latest(self, receive_time: float) -> None:
        if not self.active:
            self.gate.refuse("inactive")
            return
        if not self.enabled:
            self.gate.refuse("disabled")
            return
        if self._intervening(receive_time):
            self.gate.refuse("intervention")
            return
        assembled = self._assemble()
        if isinstance(assembled, str):
            self.gate.refuse(assembled)
            return
        obs, stamps, state_stamp = assembled
        refusal = self.gate.check(obs, stamps, receive_time)
        if refusal == "out_of_range":
            self.get_logger().warning(f"observation refused, the arm is not moved: {self.gate.out_of_range} (the "
                                      "limits: max_normalised_obs of the training data's range, at least its "
                                      "centre +- min_obs_margin)",
                                      throttle_duration_sec=10.0)
        if refusal is None:
            self.last_accepted_time = receive_time
            if self.starved:
                self.starved = False
                self.get_logger().info("observations resumed")
            self._decide(obs, receive_time, state_stamp)

    def _watch_observations(self) -> None:
        """Say once when acting stops because no fresh observation arrives (a chunk is only
        ever published for an accepted observation, so nothing is published meanwhile)."""
        now = self.get_clock().now().nanoseconds * 1e-9
        if not self.starved and self.enabled and self.last_accepted_time is not None and \
                now - self.last_accepted_time > self.starved_after:
            self.starved = True
            self.get_logger().warning(f"no fresh observation for {self.starved_after} s: not acting until "
                                      "one arrives")

    def _assemble(self):
        """(observation, the stamps of its messages in s, the state's stamp) from the newest
        whole state, or the refusal reason."""
        if self.source == "observation":
            msg, received = self.latest_observation
            stamp = rclpy.time.Time(nanoseconds=int(received * 1e9)).to_msg()
            return np.asarray(msg.data, dtype=np.float64), [received], stamp   # a flat array carries no stamp
        return self.robot_state.observation(self.get_parameter("object_index").value)

    # -- deciding -----------------------------------------------------------------------------
    def _decide(self, obs: np.ndarray, now: float, state_stamp) -> None:
        start = time.perf_counter()
        try:
            actions = self.policy.decide(obs)
        except UnsafeOutput as error:
            self.gate.refuse("unsafe_output")
            self.get_logger().error(str(error), throttle_duration_sec=5.0)
            return
        self.decision_ms.append(1e3 * (time.perf_counter() - start))
        self.last_decision_time = now
        period = 1.0 / self.policy.model.info.control_hz
        msg = JointTrajectory()
        msg.header.stamp = state_stamp        # the points are timed from the state they answer
        msg.joint_names = self.joint_names
        for i, action in enumerate(actions):
            t = (i + 1) * period
            msg.points.append(JointTrajectoryPoint(positions=[float(a) for a in action],
                                                   time_from_start=Duration(sec=int(t), nanosec=int(t % 1 * 1e9))))
        now = self.get_clock().now().nanoseconds * 1e-9
        if self.active and self.enabled and not self._intervening(now):   # again: may have changed meanwhile
            self.chunk_pub.publish(msg)
            self.published += 1

    # -- services, status -----------------------------------------------------------------------
    def _on_enable(self, request, response):
        changed = self.enabled != bool(request.data)
        self.enabled = bool(request.data)
        if changed and self.enabled:        # a state from before this moment is not of the episode now starting
            self.gate.not_before = self.get_clock().now().nanoseconds * 1e-9
        response.success, response.message = True, "enabled" if self.enabled else "disabled"
        if changed:
            self.get_logger().info(f"policy server {response.message}")
            self._publish_status()           # an operator waits for a disabled server before a reset
        return response

    def _on_reload(self, request, response):
        try:
            policy = self._load_policy()
        except (ModelError, ValueError, OSError) as error:         # UpdateRefused too: outside the roots
            response.success, response.message = False, f"kept the current model: {error}"
            self.get_logger().error(response.message)
            return response
        self.policy = policy             # swapped whole, between two decisions (one executor thread)
        response.success, response.message = True, f"loaded {policy.model.path}"
        return response

    def _on_policy_update(self, msg: String) -> None:
        """A learner's snapshot: swapped in whole between two decisions (one executor thread),
        or refused with the reason counted while the current model keeps serving."""
        try:
            try:
                update = policy_update_fields(msg)
            except ValueError as error:
                raise UpdateRefused("malformed", str(error)) from None
            self.guard.check(update)
            try:
                policy = self._load_policy(update["path"])
                if policy.model.weights_sha256 != update["weights_sha256"]:
                    raise ModelError(f"{update['path']}: weights differ from the announced sha256")
                current, new = self.policy.model.info, policy.model.info
                for name in ("obs_dim", "act_dim", "chunk", "action_low", "action_high"):
                    if getattr(new, name) != getattr(current, name):
                        raise ModelError(f"{update['path']}: {name} {getattr(new, name)} differs from the served "
                                         f"model's {getattr(current, name)}")
            except UpdateRefused:
                raise
            except (ModelError, ValueError, OSError) as error:
                raise UpdateRefused("bad_model", str(error)) from None
        except UpdateRefused as refusal:
            self.updates["refused"] += 1
            self.updates["refused_by"][refusal.reason] += 1
            self.get_logger().error(f"policy_update refused ({refusal.reason}), the current model keeps serving: "
                                    f"{refusal}")
            return
        self.policy = policy
        self.guard.accepted(update)
        self.updates["applied"] += 1
        self.get_logger().info(f"policy_update: serving version {update['version']} of run {update['run']} from "
                               f"{update['path']}")

    def status(self) -> dict:
        return {"instance": self.instance, "active": self.active, "enabled": self.enabled, "published": self.published,
                "intervening": self._intervening(self.get_clock().now().nanoseconds * 1e-9),
                "starved": self.starved, "accepted": self.gate.accepted,
                "last_accepted_stamp": self.gate.last_stamp if self.gate.accepted else None,
                "refused": dict(self.gate.refused), "last_out_of_range": self.gate.out_of_range,
                "model": str(self.policy.model.path),
                "weights_sha256": self.policy.model.weights_sha256, "backend": self.policy.backend.name,
                "provider": self.policy.backend.provider, "model_version": self.guard.version,
                "model_run": self.guard.run, "updates_signed": self.guard.key is not None,
                "num_candidates": self.policy.num_candidates, "selection": self.policy.selection,
                "updates": {**self.updates, "refused_by": dict(self.updates["refused_by"])},
                **percentiles("decision_ms", self.decision_ms)}


class ManagedPolicyServer(PolicyServer, ManagedNode):
    """The server as a managed (lifecycle) node, ``policy_server --managed``
    (otpr_ros/nodes/managed_node.py): configure loads the model and makes its topics (refused,
    and it stays unconfigured, when the model or a parameter is bad); activate starts acting;
    deactivate stops (no chunk is published: the arm holds still); cleanup lets the model go.
    A watchdog deactivates it when no fresh observation has come for ``starved_after`` s while
    active: acting resumes only when someone activates it again."""
    set_up_errors = SET_UP_ERRORS
    active = False

    def __init__(self):
        ManagedNode.__init__(self, "policy_server")
        declare_parameters(self, PARAMETERS)

    def on_activate(self, state) -> TransitionCallbackReturn:
        self.last_accepted_time, self.starved = None, False
        self.get_logger().info("active: acting on fresh observations")
        return super().on_activate(state)

    def on_deactivate(self, state) -> TransitionCallbackReturn:
        self.get_logger().info("inactive: no chunk is published (the arm holds still)")
        return super().on_deactivate(state)

    def on_cleanup(self, state) -> TransitionCallbackReturn:
        self.policy = None
        return super().on_cleanup(state)

    def _watch_observations(self) -> None:
        super()._watch_observations()
        if self.active and self.starved:
            self.get_logger().error(f"watchdog: no fresh observation for {self.starved_after} s: deactivating")
            self.trigger_deactivate()


def main(args=None) -> int:
    managed = "--managed" in (sys.argv if args is None else args)
    return run_node("policy_server", ManagedPolicyServer if managed else PolicyServer, args, SET_UP_ERRORS)


if __name__ == "__main__":
    sys.exit(main())
