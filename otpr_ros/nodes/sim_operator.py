"""sim_operator: the person beside a simulated robot (the sim bridge's robot mode, docs/robot.md).

Does what an operator does on a real arm, through the same services: when the transition
recorder says an episode is over (its ``episode`` topic), resets the scene (the bridge's
``~/reset``) once the policy server says it is disabled (the arm holds still: the
recorder disables it at each end, and a server still acting would move the arm in the new
scene before the episode starts) and confirms the next start (the recorder's
``~/start_episode``), the first episode too; with ``teleop`` it then hands the arm to the
bridge's simulated teleoperator (``~/teleop``: an intervention, or a demonstration); with
``report_outcomes`` it also watches the simulation (the bridge's ``~/episode``, what a person
sees: the task done or the time up) and reports each end to the recorder (``~/report_success``
or ``~/stop_episode``), for robots without a success detector. Its ``~/status`` counts what it did.
"""

import json
import sys
import time

from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_msgs.msg import String
from std_srvs.srv import Trigger

from otpr_ros.nodes.bus_messages import refused_as_running
from otpr_ros.nodes.node_main import declare_parameters, run_node, status_topic

RELIABLE = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)

PARAMETERS = (
    ("bridge", "sim_bridge", "the simulated robot: its ~/reset and ~/episode", None, True),
    ("recorder", "transition_recorder", "the recorder: its ~/start_episode and reports", None, True),
    ("server", "policy_server", "the policy server: the scene is reset only while its ~/status says disabled (or "
     "none is heard)", None, True),
    ("report_outcomes", False, "report each episode's end from what the simulation shows (no success detector)",
     None, True),
    ("teleop", False, "after each start, hand the arm to the bridge's simulated teleoperator (its ~/teleop)", None,
     True),
    ("retry_every", 0.5, "s between two tries of a call that was refused or not yet answered", (0.01, 60.0), True),
    ("answer_timeout", 5.0, "s after which an unanswered call is sent again (a reply can be lost); a start sent again "
     "and refused as still running had taken", (0.1, 600.0), True),
)


class SimOperator(Node):
    def __init__(self):
        super().__init__("sim_operator")
        declare_parameters(self, PARAMETERS)
        value = lambda name: self.get_parameter(name).value  # noqa: E731
        bridge, recorder = value("bridge"), value("recorder")
        self.reset = self.create_client(Trigger, f"{bridge}/reset")
        self.teleop = self.create_client(Trigger, f"{bridge}/teleop") if value("teleop") else None
        self.start = self.create_client(Trigger, f"{recorder}/start_episode")
        self.reports = {outcome: self.create_client(Trigger, f"{recorder}/{service}")
                        for outcome, service in (("success", "report_success"), ("stopped", "stop_episode"))}
        self.create_subscription(String, "episode", self._on_recorded, RELIABLE)
        self.server_enabled = None      # as the server's last status says; None: none heard
        self.create_subscription(String, f"{value('server')}/status", self._on_server_status, 10)
        if value("report_outcomes"):
            self.create_subscription(String, f"{bridge}/episode", self._on_seen, RELIABLE)
        self.cycle = ["reset", "start", *(["teleop"] if self.teleop else [])]
        self.todo = list(self.cycle)    # what the operator does next, in order
        self.calling = None             # the call in flight: (future, what, client, sent at, sends)
        self.answer_timeout = value("answer_timeout")
        self.counts = {"resets": 0, "starts": 0, "teleops": 0, "reports": 0, "refused": 0, "resent": 0}
        self.create_timer(value("retry_every"), self._work)
        status_topic(self)

    def _on_recorded(self, msg: String) -> None:
        """The recorder closed an episode: reset the scene, then confirm the next start."""
        self.todo += self.cycle

    def _on_server_status(self, msg: String) -> None:
        self.server_enabled = bool(json.loads(msg.data).get("enabled"))

    def _on_seen(self, msg: String) -> None:
        episode = json.loads(msg.data)
        self.todo.append("success" if episode["success"] else "stopped")

    def _work(self) -> None:
        if self.calling is not None:
            future, what, client, sent, sends = self.calling
            if not future.done():
                if time.monotonic() - sent >= self.answer_timeout:     # its reply may be lost: ask again
                    client.remove_pending_request(future)
                    self.counts["resent"] += 1
                    self.calling = (client.call_async(Trigger.Request()), what, client, time.monotonic(), sends + 1)
                return
            self.calling = None
            result = future.result()
            done = result is not None and (result.success or (
                what == "start" and sends > 1 and refused_as_running(result)))   # the first start took
            if done or what not in ("reset", "start", "teleop"):  # a report is made once (refused: the end is known)
                self.todo.pop(0)
            if done:
                self.counts[{"reset": "resets", "start": "starts", "teleop": "teleops"}.get(what, "reports")] += 1
            else:
                self.counts["refused"] += 1
                self.get_logger().info(f"{what} refused: {result.message if result else 'no answer'}",
                                       throttle_duration_sec=10.0)
        if not self.todo:
            return
        what = self.todo[0]
        if what == "reset" and self.server_enabled:
            return                      # the server may still act on the old episode's states: wait for it
        client = {"reset": self.reset, "start": self.start, "teleop": self.teleop}.get(what) or self.reports[what]
        if client.service_is_ready():
            self.calling = (client.call_async(Trigger.Request()), what, client, time.monotonic(), 1)

    def status(self) -> dict:
        return dict(self.counts)


def main(args=None) -> int:
    return run_node("sim_operator", SimOperator, args)


if __name__ == "__main__":
    sys.exit(main())
