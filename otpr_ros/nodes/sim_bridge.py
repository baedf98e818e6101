"""sim_bridge: a simulated task (robomimic, Franka Kitchen, CALVIN) that behaves on the bus like a robot.

Publishes what a robot and its perception publish (``joint_states``, ``eef_pose``,
``gripper_state``, ``object_poses``, all of one instant with one stamp from the node's
clock) and the flat ``observation``; executes each received ``action_chunk`` one point per
control step, whole or its first ``agent.execute_steps`` (the model's: a receding horizon);
publishes ``reward`` per step, one ``transition`` per executed chunk and an ``episode``
summary per episode (otpr_ros/sim/bridge_session.py has the bookkeeping). ``~/reset``
(Trigger) closes the episode as truncated and starts the next.

A chunk is taken when the bridge is waiting for one and its ``header.stamp`` is not older
than the first state published since the last chunk ended; it was decided on the newest of
those states stamped at or before it (the policy server stamps a chunk with the stamp of the
state it decided on; a flat ``observation`` carries none, so the server uses its receive
time). So every transition holds the observation its chunk was decided on. Chunks for older
states are dropped and counted.

Modes (parameter ``mode``):
- ``realtime``: one control step per 1/control_hz of wall time, states published every
  step like a robot's drivers; without a chunk the arm holds still (zero end-effector
  motion, last gripper command) while time goes on.
- ``fast``: as fast as the simulation and the server allow (training); the simulated
  world waits for the chunk of each state, and the state is published again (new stamp)
  every ``chunk_timeout`` s until one comes. A server that has acted in this run and then
  refuses an episode's states (an observation outside the range it accepts) would stop the
  loop for good: after ``stall_timeout`` s without a chunk the episode ends as ``stalled``
  (a failure, truncated) and the next one starts. Paced by the learner (``learner_progress``):
  between two chunks the world also waits while the learner is ready for no more
  transitions (its update-to-data ratio) or while ``max_unacknowledged`` of this bridge's
  transitions are not yet on the learner's disk (a learner that crashed finds them in
  the bridge's transient-local history when it restarts). No learner heard: no pacing.
- ``robot``: stepped as ``fast``, but on the bus only what a robot shows (docs/robot.md):
  its state (no flat ``observation``), and ``reward`` per step as the robot's success
  detector; no ``transition`` or ``episode`` (the transition recorder makes them). An episode
  ends where the task says (success, horizon) and the arm then holds still, its state sent
  every ``chunk_timeout`` s, until an operator calls ``~/reset``. What the simulation knows
  goes to ``~/transition`` and ``~/episode``, for checking the recorder against. With
  ``teleop: expert`` a simulated teleoperator drives the arm instead of chunks: the scripted
  expert (as ``otpr-collect-demos`` runs it, seeded by the episode) one step per
  1/control_hz, each command published on ``teleop_action`` (a one-point JointTrajectory
  stamped with the state it answers) as a teleoperation device's would be: demonstrations
  recorded as bags (``otpr-record-bag``, ``otpr-bag-to-demos``), or an intervention with
  ``teleop_steps``: the person drives that many steps, then lets go and the policy's chunks
  are executed again. The teleoperator takes the arm when ``~/teleop`` is called.

Ctrl-C / SIGTERM: the bridge acts no more (no state, no chunk taken, no step) and exits
once the learner it hears has acknowledged every transition of this run, the learner is gone,
or ``drain_timeout`` s have passed (the transitions still unacknowledged are named in the log);
the transient-local history dies with the process, so stopping at once would lose them.
A second signal stops it at once.

Each run of the bridge publishes its transitions under a new ``stream`` id with sequence
numbers from 0, so a learner tells a restarted bridge from duplicates; the episode the
bridge was in when it stopped is closed there as truncated, and the new run starts with a
fresh episode.
"""

import json
import sys
import time
from collections import deque

import numpy as np
from geometry_msgs.msg import Pose, PoseArray, PoseStamped
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import JointState
from std_msgs.msg import Float32, Float32MultiArray, String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from otpr_ros.model.directory import read_config, read_info
from otpr_ros.nodes.bus_messages import ACTION_NAMES, EPISODE_QOS, episode_message
from otpr_ros.nodes.learner_link import LearnerLink, link_parameters
from otpr_ros.nodes.node_main import declare_parameters, percentiles, run_node, status_topic
from otpr_ros.package_files import shipped_model
from otpr_ros.sim.bridge_session import BridgeSession, make_environment
from otpr_ros.sim.robomimic_env import FINGER_NAMES, JOINT_NAMES

MODES = ("fast", "realtime", "robot")
RELIABLE = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)


# the bridge's parameters: name, default, description, (low, high) or None, read-only (node_main.declare_parameters)
PARAMETERS = (
    ("task", "lift", "lift | can | square (robomimic) | kitchen_complete | kitchen_partial | kitchen_mixed "
     "(Franka Kitchen) | calvin_<task> (where calvin_env is installed)", None, True),
    ("mode", "fast", "fast | realtime | robot (what a robot shows; an operator resets)", None, True),
    ("first_seed", 0, "seed of the first episode; episode i uses first_seed + i", (0, 2**31 - 1), True),
    ("episodes", 0, "exit after this many episodes; 0: run until stopped", (0, 10**9), True),
    ("horizon", 0, "control steps per episode; 0: the task's", (0, 100000), True),
    ("chunk_timeout", 1.0, "s without a chunk before the state is sent again (fast) or a warning (realtime)",
     (0.01, 60.0), False),
    ("stall_timeout", 60.0, "fast mode: s an episode's state may wait for a chunk, once the server has acted in "
     "this run, before the episode is ended as stalled (a failure, truncated) and the next begins; 0: wait "
     "forever", (0.0, 3600.0), False),
    ("frame_id", "world", "frame of the poses", None, True),
    ("model_dir", "", "the model being fine-tuned: its critic.gamma discounts the rewards inside a chunk and "
     "its agent.execute_steps is how much of each chunk is executed; empty: the shipped model of the task",
     None, True),
    ("teleop", "none", "robot mode: none | expert (the scripted expert drives the arm, its commands on "
     "teleop_action, as a teleoperator's)", None, True),
    ("teleop_noise", 0.1, "teleop expert: its action noise (otpr-collect-demos --quality expert: 0.1)", (0.0, 1.0),
     True),
    ("teleop_speed", 1.0, "teleop expert: its speed (1: full)", (0.05, 1.0), True),
    ("teleop_steps", 0, "teleop expert: control steps it drives from ~/teleop, then the policy's chunks (an "
     "intervention); 0: the whole episode", (0, 100000), True),
) + link_parameters("fast mode: wait between chunks")


def stamp_key(stamp) -> tuple:
    return stamp.sec, stamp.nanosec


def pose(position, quaternion) -> Pose:
    p = Pose()
    p.position.x, p.position.y, p.position.z = (float(v) for v in position)
    p.orientation.x, p.orientation.y, p.orientation.z, p.orientation.w = (float(v) for v in quaternion)
    return p


class SimBridge(Node):
    def __init__(self):
        super().__init__("sim_bridge")
        declare_parameters(self, PARAMETERS)

        value = lambda name: self.get_parameter(name).value  # noqa: E731
        self.task, self.mode = value("task"), value("mode")
        if self.mode not in MODES:
            raise ValueError(f"mode: expected one of {MODES}, got {self.mode!r}")
        model_dir = value("model_dir") or shipped_model(self.task)
        config, (info, _) = read_config(model_dir), read_info(model_dir)
        self.gamma, self.execute_steps = config.critic.gamma, config.agent.execute_steps
        env, observe = make_environment(self.task, value("horizon") or None, info.obs_keys)
        self.session = BridgeSession(env, observe, self.gamma, value("first_seed"))
        self.act_dim = env.action_space.shape[0]
        self.control_period = 1.0 / env.control_hz
        self.episodes, self.frame_id = value("episodes"), value("frame_id")
        self.chunk_timeout, self.stall_timeout = value("chunk_timeout"), value("stall_timeout")
        self.holding_since = None       # fast mode: waiting for the learner since (monotonic s)
        self.held_s = 0.0
        self.counts = {"chunks_executed": 0, "chunks_dropped": 0, "chunks_malformed": 0, "timeouts": 0,
                       "stalled": 0, "transitions": 0, "episodes": 0, "successes": 0}
        self.waiting_for = {}       # stamp -> (observation, publish time) of the states since the last chunk
        self.round_trip_ms = deque(maxlen=100000)     # state published -> its chunk received
        self.last_state_time = 0.0

        sensor = qos_profile_sensor_data
        self.robot = self.mode == "robot"       # no learner's topics; its own under ~/ for checking
        self.obs_pub = None if self.robot else self.create_publisher(Float32MultiArray, "observation", sensor)
        self.joint_pub = self.create_publisher(JointState, "joint_states", sensor)
        self.pose_pub = self.create_publisher(PoseStamped, "eef_pose", sensor)
        self.gripper_pub = self.create_publisher(JointState, "gripper_state", sensor)
        self.objects_pub = self.create_publisher(PoseArray, "object_poses", sensor)
        self.reward_pub = self.create_publisher(Float32, "reward", RELIABLE)
        self.episode_pub = self.create_publisher(String, "~/episode" if self.robot else "episode", EPISODE_QOS)
        status_topic(self)
        self.create_subscription(JointTrajectory, "action_chunk", self._on_chunk,
                                 QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE))
        self.create_service(Trigger, "~/reset", self._on_reset)
        self.link = LearnerLink(self, "~/transition", learner=False) if self.robot else LearnerLink(self)
        self.finished = self.link.finished

        self.teleop = value("teleop")
        if self.teleop not in ("none", "expert") or (self.teleop == "expert" and not self.robot):
            raise ValueError(f"teleop: expected none, or expert in robot mode; got {self.teleop!r} in {self.mode} mode")
        if self.teleop == "expert":
            self.teleop_pub = self.create_publisher(JointTrajectory, "teleop_action", RELIABLE)
            self.expert, self.teleop_settings = None, (value("teleop_noise"), value("teleop_speed"))
            self.teleop_go, self.teleop_steps = False, value("teleop_steps")   # from ~/teleop, for teleop_steps
            self.create_service(Trigger, "~/teleop", self._on_teleop)
            self.create_timer(self.control_period, self._teleop_step)
        self.session.reset()
        if self.mode == "realtime":
            self.create_timer(self.control_period, self._tick)
        else:
            self.create_timer(min(self.chunk_timeout, 0.1), self._request_again)
        self._publish_state()
        self.get_logger().info(f"{self.task} in {self.mode} mode, episode seeds from {self.session.first_seed}, "
                               f"transitions as source {self.link.source} stream {self.link.stream}, rewards inside a "
                               f"chunk discounted by the model's gamma {self.gamma}, "
                               + (f"the first {self.execute_steps} actions of each chunk executed"
                                  if self.execute_steps else "each chunk executed whole"))

    # -- the robot's state ---------------------------------------------------------------------
    def _publish_state(self, now=None):
        """The robot's state at ``now`` (default: the clock's); its stamp (None when stopped: no
        new decision is asked for)."""
        if self.link.stopping:
            return None
        now = now or self.get_clock().now()
        self.last_state_time = now.nanoseconds * 1e-9
        stamp = now.to_msg()
        obs = self.session.observation()
        if not self.session.executing:
            self.waiting_for[stamp_key(stamp)] = (obs, time.perf_counter())
        env = self.session.env
        if hasattr(env, "robot_state"):
            s = env.robot_state()
            joints = JointState(name=[*JOINT_NAMES, *FINGER_NAMES], position=[*s.joint_pos, *s.gripper_qpos],
                                velocity=[*s.joint_vel, 0.0, 0.0])
            gripper = JointState(name=list(FINGER_NAMES), position=list(s.gripper_qpos))
            eef = PoseStamped(pose=pose(s.eef_pos, s.eef_quat))
            objects = PoseArray(poses=[pose(s.object_pos, s.object_quat)])
            for msg in (joints, gripper, eef, objects):
                msg.header.stamp, msg.header.frame_id = stamp, self.frame_id
            self.joint_pub.publish(joints)
            self.gripper_pub.publish(gripper)
            self.objects_pub.publish(objects)
            self.pose_pub.publish(eef)
        if self.obs_pub is not None:
            self.obs_pub.publish(Float32MultiArray(data=obs.astype(np.float32).tolist()))
        return stamp

    # -- chunks ---------------------------------------------------------------------------------
    def _chunk_actions(self, msg: JointTrajectory):
        actions = np.array([list(p.positions) for p in msg.points], dtype=np.float64) if msg.points else None
        if actions is None or actions.ndim != 2 or actions.shape[1] != self.act_dim or \
                not np.isfinite(actions).all() or np.abs(actions).max() > 1.0:
            self.counts["chunks_malformed"] += 1
            self.get_logger().warning(f"action_chunk refused: expected finite points of {self.act_dim} values in "
                                   "[-1, 1]", throttle_duration_sec=5.0)
            return None
        return actions

    def _on_chunk(self, msg: JointTrajectory) -> None:
        actions = self._chunk_actions(msg)
        if actions is None or self.link.stopping:
            return
        if self.teleop != "none" and self.teleop_go:
            self.counts["chunks_dropped"] += 1      # the teleoperator has the arm
            return
        stamp = stamp_key(msg.header.stamp)
        earlier = [key for key in self.waiting_for if key <= stamp]
        if not earlier or self.session.executing or self.session.done:
            self.counts["chunks_dropped"] += 1      # decided on a state that is gone
            return
        decided_on, published_at = self.waiting_for[max(earlier)]
        self.round_trip_ms.append(1e3 * (time.perf_counter() - published_at))
        self.waiting_for.clear()
        self.session.start_chunk(actions, decided_on, self.execute_steps)
        self.counts["chunks_executed"] += 1
        if self.mode == "realtime":
            return                                  # the control timer executes it
        while self.session.executing:
            self._step()
        self._after_step()

    def _request_again(self) -> None:
        """fast mode: no chunk for the published state in time; send it again."""
        if self.holding_since is not None:
            self._next_state()
            return
        now = self.get_clock().now().nanoseconds * 1e-9
        if self._stalled():
            self.counts["stalled"] += 1
            self.get_logger().warning(f"no action_chunk for {self.stall_timeout} s (see the policy server's "
                                      f"refusals): episode {self.session.episode} ends as stalled")
            self._close_episode("stalled")
            if not self.link.stopping:
                self._next_state()
            return
        if not self.session.executing and now - self.last_state_time >= self.chunk_timeout:
            if not self.session.done:           # robot mode: an ended episode waits for its reset
                self.counts["timeouts"] += 1
                if not self.robot:              # a robot holds still between episodes: not news
                    self.get_logger().warning("no action_chunk in time; the simulation waits",
                                              throttle_duration_sec=10.0)
            self._publish_state()

    def _stalled(self) -> bool:
        """fast mode: the server acted in this run, yet this episode's state has waited
        ``stall_timeout`` s for a chunk (a server up and answering, refusing these states)."""
        return (self.mode == "fast" and self.stall_timeout > 0 and self.counts["chunks_executed"] > 0 and
                not self.session.executing and not self.session.done and bool(self.waiting_for) and
                time.perf_counter() - min(t for _, t in self.waiting_for.values()) > self.stall_timeout)

    def _teleop_step(self) -> None:
        """teleop expert: one control step commanded by the simulated teleoperator."""
        session = self.session
        if self.link.stopping or session.done or not self.teleop_go:
            return
        if self.teleop_steps and session.length >= self.teleop_steps:
            self.teleop_go = False          # the person lets go: the policy decides on the state from here
            self.waiting_for.clear()
            self._publish_state()
            return
        if self.expert is None or self.expert[0] != session.episode:
            from otpr_ros.sim.experts import make_expert
            noise, speed = self.teleop_settings
            self.expert = (session.episode, make_expert(session.env, noise, speed, np.random.default_rng(session.seed)))
        now = self.get_clock().now()
        action = np.asarray(self.expert[1].act(), dtype=np.float64)     # as collect-demos records it
        command = JointTrajectory(joint_names=list(ACTION_NAMES))
        command.header.stamp, command.header.frame_id = now.to_msg(), self.frame_id
        command.points.append(JointTrajectoryPoint(positions=[float(a) for a in action]))
        self.teleop_pub.publish(command)    # first: a server hears the person before the state they answer
        self._publish_state(now)
        session.start_chunk(action[None], session.observation())
        self._step()
        self.link.publish(session.finish_chunk())
        self.counts["transitions"] += 1
        if session.done:
            self._close_episode()
            self.teleop_go = False          # the next episode: when ~/teleop says so
            self._publish_state()           # where the arm holds still until ~/reset

    def _on_teleop(self, request, response):
        """teleop expert: the person takes the arm (for ``teleop_steps``, or the episode)."""
        if self.session.done or self.link.stopping:
            response.success, response.message = False, "no episode running: ~/reset first"
        else:
            self.teleop_go = True
            response.success, response.message = True, f"the teleoperator drives episode {self.session.episode}"
        return response

    def _tick(self) -> None:
        """realtime mode: one control step."""
        if self.link.stopping:
            return
        self._step()
        self._after_step()

    def _step(self) -> None:
        self.reward_pub.publish(Float32(data=self.session.step()))

    def _after_step(self) -> None:
        session = self.session
        if not session.executing and session.has_finished_chunk:
            self.link.publish(session.finish_chunk())
            self.counts["transitions"] += 1
        if session.done:
            self._close_episode()
            if self.link.stopping:
                return
        self._next_state()

    # -- pacing by the learner (fast mode), stopping ------------------------------------------
    def stop(self) -> None:
        """Ctrl-C / SIGTERM: act no more; exit once the learner has this run's transitions."""
        self.link.stop()

    def _next_state(self) -> None:
        """The state for the next decision, unless the learner asks to wait (then the
        request-again timer looks again)."""
        reason = self.link.not_ready() if self.mode == "fast" else None
        now = time.monotonic()
        if reason is not None:
            if self.holding_since is None:
                self.holding_since = now
            elif now - self.holding_since > 10.0:
                self.get_logger().info(f"waiting for the learner: {reason}", throttle_duration_sec=30.0)
            return
        if self.holding_since is not None:
            self.held_s += now - self.holding_since
            self.holding_since = None
        self._publish_state()

    # -- episodes -------------------------------------------------------------------------------
    def _close_episode(self, reason: str | None = None) -> None:
        summary, partial = self.session.end_episode(reason)
        if partial is not None:
            self.link.publish(partial)
            self.counts["transitions"] += 1
        self.counts["episodes"] += 1
        self.counts["successes"] += int(summary.success)
        self.episode_pub.publish(episode_message({**summary.to_dict(), "source": self.link.source}))
        self.get_logger().debug(f"episode {summary.episode} (seed {summary.seed}): "     # the learner logs progress
                               f"{'success' if summary.success else summary.reason} in {summary.length} steps")
        self.waiting_for.clear()
        if self.robot:
            return              # the arm holds still where the episode ended; an operator resets (~/reset)
        if self.episodes and self.counts["episodes"] >= self.episodes:
            self.get_logger().info(f"all {self.episodes} episodes done: {json.dumps(self.status())}")
            self.stop()                 # exits once the learner has the last transitions
            return
        self.session.reset()

    def _on_reset(self, request, response):
        if self.robot and self.episodes and self.counts["episodes"] >= self.episodes:
            self.stop()
        if self.link.stopping:
            response.success, response.message = False, "the bridge is stopping (all episodes done or stopped)"
            return response
        if self.robot and self.session.length == 0 and not self.session.done:
            pass                            # nothing happened yet: this episode, from its first step
        elif not self.session.done:
            self._close_episode("reset")
        if self.session.done:            # robot mode: closed, not yet reset
            self.session.reset()
        self._publish_state()
        response.success, response.message = True, f"episode {self.session.episode} started"
        return response

    def status(self) -> dict:
        held = self.held_s + (time.monotonic() - self.holding_since if self.holding_since is not None else 0.0)
        return {**self.counts, "episode": self.session.episode, "mode": self.mode, "stream": self.link.stream,
                "refused_progress": self.link.refused_progress,
                "waiting_for_learner": self.holding_since is not None, "waited_for_learner_s": round(held, 1),
                "stopping": self.link.stopping,
                **percentiles("round_trip_ms", self.round_trip_ms)}


def main(args=None) -> int:
    return run_node("sim_bridge", SimBridge, args, (ValueError, OSError, ModuleNotFoundError), stops_gracefully=True)


if __name__ == "__main__":
    sys.exit(main())
