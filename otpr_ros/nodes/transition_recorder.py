"""transition_recorder: the learner's transitions from a robot's own topics (docs/robot.md).

Reads what the policy server reads (``eef_pose``, ``gripper_state``, ``object_poses``), the
chunks it publishes (``action_chunk``: the robot executes each whole), a person's commands
while they have the arm (``teleop_action``: an intervention; its chunks are marked
``expert``, which the learner keeps with the demonstrations), the robot's success
detector (``reward``: one std_msgs/Float32 per control step; or ``success``: std_msgs/Bool)
and an operator (services), and publishes what the sim bridge publishes for the learner:
``transition`` (same layout, sequence numbers, stream, acknowledgements and pacing by
``learner_progress``: otpr_ros/nodes/learner_link.py) and ``episode``. The bookkeeping is
otpr_ros/robot/transition_assembly.py.

Episodes: an operator confirms each start after a reset (``~/start_episode``); the episode
starts once the learner is ready for more transitions, and only then is the policy server
enabled (its ``~/enable``): between episodes the arm holds still. It ends on a reward of at
least ``success_reward``, a ``success`` message, an operator's ``~/report_success``,
``~/report_failure`` (terminal) or ``~/stop_episode`` (truncated), after
``max_episode_steps`` control steps or ``episode_timeout`` s, or as ``lost`` when a state,
rewards or the state after the last chunk do not come within ``wait_timeout`` s (its
incomplete transitions are dropped, never filled in). Every refusal is counted on
``~/status``.
"""

import json
import sys
import time
from collections import Counter

from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.task import Future
from std_msgs.msg import Bool, Float32, String
from std_srvs.srv import SetBool, Trigger
from trajectory_msgs.msg import JointTrajectory

from otpr_ros.model.directory import read_config, read_info
from otpr_ros.nodes.bus_messages import EPISODE_QOS, episode_message, still_running
from otpr_ros.nodes.learner_link import LearnerLink, link_parameters
from otpr_ros.nodes.managed_node import ManagedNode
from otpr_ros.nodes.node_main import declare_parameters, run_node, status_topic
from otpr_ros.nodes.robot_state import RobotStateSync, stamp_nanoseconds
from otpr_ros.package_files import shipped_model
from otpr_ros.robot.transition_assembly import STEP_SOURCES, TransitionAssembler

RELIABLE = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)

# the recorder's parameters: name, default, description, (low, high) or None, read-only (node_main.declare_parameters)
PARAMETERS = (
    ("task", "lift", "robomimic task of the model", None, True),
    ("model_dir", "", "the model being fine-tuned: its gamma discounts the rewards inside a chunk; empty: the "
     "shipped model of the task", None, True),
    ("step_source", "reward", "reward: the success detector publishes one reward per control step (steps and "
     "rewards exact) | chunk: each chunk counts as executed whole, success only from reports", None, True),
    ("success_reward", 1.0, "a reward of at least this ends the episode as a success", (-1e9, 1e9), True),
    ("max_episode_steps", 0, "control steps after which an episode ends, truncated; 0: no limit", (0, 10**7), True),
    ("episode_timeout", 0.0, "s after its start when an episode ends, truncated; 0: no limit", (0.0, 86400.0), True),
    ("wait_timeout", 5.0, "s to wait for a chunk's state, its rewards or the state after the last chunk before the "
     "episode is lost", (0.1, 600.0), True),
    ("state_sync", "exact", "as the policy server's: exact | latest", None, True),
    ("object_index", 0, "index of the task's object in object_poses", (0, 63), True),
    ("policy_server", "policy_server", "the server whose ~/enable the recorder switches (on while an episode "
     "runs); empty: none", None, True),
    ("enable_timeout", 2.0, "s after which an unanswered ~/enable request is sent again (a reply can be lost)",
     (0.1, 600.0), True),
) + link_parameters("an episode starts only")


class TransitionRecorder(Node):
    active = True               # a managed recorder (ManagedTransitionRecorder) starts episodes only while active
    link = None

    def __init__(self):
        super().__init__("transition_recorder")
        declare_parameters(self, PARAMETERS)
        self.finished = Future()
        self._set_up()

    def _set_up(self) -> None:
        """Read the model and make the recorder's topics, services and timers."""
        value = lambda name: self.get_parameter(name).value  # noqa: E731
        model_dir = value("model_dir") or shipped_model(value("task"))
        info, _ = read_info(model_dir)
        if info.task != value("task"):
            raise ValueError(f"model_dir: {model_dir} is a {info.task} model, the recorder is for {value('task')}")
        if value("step_source") not in STEP_SOURCES:
            raise ValueError(f"step_source: expected one of {STEP_SOURCES}, got {value('step_source')!r}")
        self.assembler = TransitionAssembler(read_config(model_dir).critic.gamma, info.obs_dim, info.act_dim,
                                             value("step_source"), value("success_reward"),
                                             value("max_episode_steps"), value("wait_timeout"), info.chunk)
        self.robot_state = RobotStateSync(info.task, value("state_sync"))
        self.object_index, self.episode_timeout = value("object_index"), value("episode_timeout")
        self.counts = Counter(states=0, chunks=0, commands=0, rewards=0, transitions=0, episodes=0, successes=0,
                              server_restarts=0, enable_resent=0)
        self.pending_start = None       # an operator's confirmed start, waiting for the learner (monotonic s)

        self.link = LearnerLink(self, finished=self.finished)
        self.episode_pub = self.create_publisher(String, "episode", EPISODE_QOS)
        self.robot_state.subscribe(self, self._on_state)
        self.create_subscription(JointTrajectory, "action_chunk", self._on_chunk, RELIABLE)
        self.create_subscription(Float32, "reward", self._on_reward, RELIABLE)
        self.create_subscription(JointTrajectory, "teleop_action", self._on_command, RELIABLE)
        self.create_subscription(Bool, "success", lambda msg: msg.data and self._end("success"), RELIABLE)
        for name, handler in (("start_episode", self._on_start), ("report_success", self._report("success")),
                              ("report_failure", self._report("failure")), ("stop_episode", self._report("stopped"))):
            self.create_service(Trigger, f"~/{name}", handler)
        server = value("policy_server")
        self.enable_client = self.create_client(SetBool, f"{server}/enable") if server else None
        self.server_wanted, self.server_is, self.enabling = False, None, None   # enabled? as asked, as answered
        self.enable_timeout = value("enable_timeout")
        self.server_instance = None             # the server's, from its ~/status: a new one has restarted
        if server:
            self.create_subscription(String, f"{server}/status", self._on_server_status, 10)
        self.create_timer(0.1, self._tick)
        status_topic(self)
        self.get_logger().info(f"recording {info.task} transitions as source {self.link.source} stream "
                               f"{self.link.stream}, steps from {value('step_source')}; an operator starts each "
                               "episode with ~/start_episode")

    # -- what the robot shows -------------------------------------------------------------------
    def _on_state(self, topic: str, msg) -> None:
        if not self.robot_state.add(topic, msg):
            return
        assembled = self.robot_state.observation(self.object_index)
        if isinstance(assembled, str):
            self.assembler.refused["malformed"] += 1
            return
        obs, _, stamp = assembled
        self.counts["states"] += 1
        self.assembler.add_state(stamp_nanoseconds(stamp), obs)
        self._publish_ready()

    def _on_chunk(self, msg: JointTrajectory) -> None:
        self.counts["chunks"] += 1
        actions = [list(p.positions) for p in msg.points]
        self.assembler.add_chunk(stamp_nanoseconds(msg.header.stamp), actions, time.monotonic())
        self._publish_ready()

    def _on_command(self, msg: JointTrajectory) -> None:
        """A person's command (an intervention): one point, stamped with the state it answers."""
        self.counts["commands"] += 1
        if len(msg.points) != 1:
            self.assembler.refused["malformed"] += 1
            return
        self.assembler.add_command(stamp_nanoseconds(msg.header.stamp), list(msg.points[0].positions),
                                   time.monotonic())
        self._publish_ready()

    def _on_reward(self, msg: Float32) -> None:
        self.counts["rewards"] += 1
        self.assembler.add_reward(msg.data, time.monotonic())
        self._publish_ready()

    # -- episodes -------------------------------------------------------------------------------
    def _on_start(self, request, response):
        if self.link.stopping:
            response.success, response.message = False, "the recorder is stopping"
        elif not self.active:
            response.success, response.message = False, "the recorder is inactive (activate it first)"
        elif self.assembler.running or self.pending_start is not None:
            response.success, response.message = False, still_running(self.assembler.episode)
        else:
            self.pending_start = time.monotonic()
            self._start_when_ready()
            response.success = True
            response.message = f"episode {self.assembler.episode} started" if self.assembler.running else \
                f"episode {self.assembler.episode + 1} starts once the learner is ready ({self.link.not_ready()})"
        return response

    def _start_when_ready(self) -> None:
        if self.pending_start is None or self.link.not_ready() is not None:
            return
        self.pending_start = None
        self.assembler.start(self.get_clock().now().nanoseconds, time.monotonic())
        self._enable_server(True)

    def _report(self, outcome: str):
        def handler(request, response):
            refusal = self._end(outcome)
            response.success = refusal is None
            response.message = refusal or f"episode {self.assembler.episode}: {outcome}"
            return response
        return handler

    def _end(self, outcome: str) -> str | None:
        refusal = self.assembler.report(outcome, time.monotonic())
        if refusal is not None:
            self.get_logger().warning(f"{outcome} refused: {refusal}", throttle_duration_sec=5.0)
        self._publish_ready()
        return refusal

    def _tick(self) -> None:
        now = time.monotonic()
        if self.assembler.running and self.assembler.end is None and self.episode_timeout and \
                now - self.assembler.started_at > self.episode_timeout:
            self.assembler.report("timeout", now)
        self.assembler.expire(now)
        self._publish_ready()
        self._start_when_ready()
        self._switch_server()

    def _publish_ready(self) -> None:
        transitions, episodes = self.assembler.take()
        for transition in transitions:
            self.link.publish(transition)
            self.counts["transitions"] += 1
        for summary in episodes:
            self._enable_server(False)             # the arm holds still until the next start
            self.counts["episodes"] += 1
            self.counts["successes"] += int(summary["success"])
            self.episode_pub.publish(episode_message({**summary, "source": self.link.source}))
            if summary["reason"] == "lost":
                self.get_logger().error(f"episode {summary['episode']} lost: {self.assembler.refused}")

    def _enable_server(self, enabled: bool) -> None:
        self.server_wanted = enabled
        self._switch_server()

    def _switch_server(self) -> None:
        """Ask the server to be as ``server_wanted`` until it answers that it is (a server that
        is not yet up is asked again every tick). A request unanswered for ``enable_timeout`` s
        is dropped and sent again: DDS can lose a service's reply (one sent before the service
        matched this client's reply reader), and a recorder waiting for it would never switch
        the server again, not even off at an episode's end. Asking twice is harmless; after a
        dropped request the server's state is unknown, so what is wanted then is asked for even
        if it is what the server last answered."""
        if self.enable_client is None:
            return
        if self.enabling is not None:
            future, asked, sent = self.enabling
            if not future.done():
                if time.monotonic() - sent < self.enable_timeout:
                    return
                self.enable_client.remove_pending_request(future)
                self.server_is = None           # the request may have taken: ask for what is wanted now
                self.counts["enable_resent"] += 1
                self.get_logger().warning(f"{self.enable_client.srv_name} did not answer within "
                                          f"{self.enable_timeout} s: asking again", throttle_duration_sec=10.0)
            elif future.result() is not None and future.result().success:
                self.server_is = asked
            self.enabling = None
        if self.server_is == self.server_wanted:
            return
        if not self.enable_client.service_is_ready():
            self.get_logger().warning(f"{self.enable_client.srv_name} is not available: the policy server is not yet "
                                      f"{'enabled' if self.server_wanted else 'disabled'}", throttle_duration_sec=10.0)
            return
        self.enabling = (self.enable_client.call_async(SetBool.Request(data=self.server_wanted)), self.server_wanted,
                         time.monotonic())

    def _on_server_status(self, msg: String) -> None:
        """A restarted server comes up disabled and has not acted in this episode: the episode
        ends as stopped (what it recorded stands) and the arm holds still until the next start."""
        try:
            instance = json.loads(msg.data)["instance"]
        except (ValueError, KeyError, TypeError):
            return
        if self.server_instance not in (None, instance):
            self.server_is = None                   # ask the new server again for the state wanted
            self.counts["server_restarts"] += 1
            if self.assembler.running and self.assembler.end is None:
                self.get_logger().error(f"the policy server restarted during episode {self.assembler.episode}: "
                                        "it ends as stopped; start the next one after a reset")
                self._end("stopped")
        self.server_instance = instance

    def stop(self) -> None:
        if self.link is None:                  # a managed recorder not configured: nothing to drain
            if not self.finished.done():
                self.finished.set_result(True)
            return
        self.link.stop()
        self._enable_server(False)

    def status(self) -> dict:
        a = self.assembler
        return {**self.counts, "active": self.active, "episode": a.episode, "running": a.running,
                "waiting_for_learner": self.pending_start is not None, "stream": self.link.stream,
                "refused": dict(a.refused), "refused_progress": self.link.refused_progress,
                "stopping": self.link.stopping}


class ManagedTransitionRecorder(TransitionRecorder, ManagedNode):
    """The recorder as a managed (lifecycle) node, ``transition_recorder --managed``
    (otpr_ros/nodes/managed_node.py): configure reads the model and makes its topics and
    services (refused, and it stays unconfigured, when the model or a parameter is bad);
    only while active does an operator's ``~/start_episode`` start an episode; deactivate ends
    a running one as stopped (truncated: what it recorded still reaches the learner) and
    disables the server; cleanup is refused while an episode is still being finished or
    transitions are not yet on the learner's disk (they would be lost)."""
    active = False

    def __init__(self):
        ManagedNode.__init__(self, "transition_recorder")
        declare_parameters(self, PARAMETERS)
        self.finished = Future()

    def on_deactivate(self, state) -> TransitionCallbackReturn:
        self.pending_start = None
        if self.assembler.running and self.assembler.end is None:
            self._end("stopped")
        self._enable_server(False)
        self.get_logger().info("inactive: no episode starts; the policy server is disabled")
        return super().on_deactivate(state)

    def on_cleanup(self, state) -> TransitionCallbackReturn:
        unacknowledged = self.link.unacknowledged()
        if self.assembler.running or unacknowledged:
            self.get_logger().error(f"cleanup refused: episode {self.assembler.episode} is still being finished"
                                    if self.assembler.running else f"cleanup refused: {unacknowledged} transitions "
                                    "are not yet on the learner's disk")
            return TransitionCallbackReturn.FAILURE
        self.link = None
        return super().on_cleanup(state)


def main(args=None) -> int:
    managed = "--managed" in (sys.argv if args is None else args)
    return run_node("transition_recorder", ManagedTransitionRecorder if managed else TransitionRecorder, args,
                    (ValueError, OSError), stops_gracefully=True)


if __name__ == "__main__":
    sys.exit(main())
