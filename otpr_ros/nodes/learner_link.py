"""The contract of a node that feeds the learner (the sim bridge, the transition recorder).

- Its transitions go out on ``transition`` (reliable, transient local, the last
  ``TRANSITION_HISTORY`` kept), numbered from 0 under a ``stream`` id drawn for this run, so a
  learner tells a restarted publisher from duplicates and a learner that restarts gets the
  ones it missed.
- It reads ``learner_progress``: which of its transitions are on the learner's disk and how
  many the learner is ready for (its update-to-data ratio); ``not_ready`` says why it should
  wait (a fast-mode bridge between chunks, a recorder before an episode starts).
- Stopped (Ctrl-C / SIGTERM), it exits once the learner has acknowledged every transition of
  the run, the learner is gone, or ``drain_timeout`` s have passed (then it names how many
  were not acknowledged): the transient-local history dies with the process. A learner it has
  never heard counts as starting, not gone: it waits for it up to ``drain_timeout``.
"""

import json
import time

from rclpy.task import Future
from std_msgs.msg import Float32MultiArray, String

from otpr_ros.nodes.bus_messages import (LATCHED_READER, TRANSITION_HISTORY, TRANSITION_QOS,
                                         learner_progress_fields, new_stream_id, transition_message)


def link_parameters(what: str) -> tuple:
    """The parameter rows (node_main.declare_parameters) of a node that feeds the learner."""
    return (
        ("source_id", 0, "this node's number in its transitions (several feed one learner)", (0, 65535), True),
        ("pace_with_learner", True, f"{what} while the learner (learner_progress) is ready for no more transitions",
         None, True),
        ("max_unacknowledged", TRANSITION_HISTORY // 2, "a learner heard: wait while this many transitions are not "
         f"on its disk (below the transition history of {TRANSITION_HISTORY}, so a restarting learner gets them "
         "all)", (1, TRANSITION_HISTORY), True),
        ("drain_timeout", 10.0, "s a stopped node waits for the learner to acknowledge its last transitions",
         (0.0, 600.0), True),
    )


class LearnerLink:
    def __init__(self, node, topic: str = "transition", learner: bool = True, finished: Future | None = None):
        """``learner`` False: transitions for whoever listens on ``topic`` (the sim bridge's robot
        mode, for checking the recorder): no pacing, no acknowledgements, a stop at once.
        ``finished``: the Future to complete when stopped and drained (the node's own)."""
        value = lambda name: node.get_parameter(name).value  # noqa: E731
        self.node, self.source, self.stream = node, value("source_id"), new_stream_id()
        self.pace, self.max_unacknowledged = value("pace_with_learner"), value("max_unacknowledged")
        self.drain_timeout, self.stopping_since = value("drain_timeout"), None
        self.sent, self.refused_progress = 0, 0
        self.learner = None                 # the learner's last progress message, once heard
        self.finished = Future() if finished is None else finished
        self.publisher = node.create_publisher(Float32MultiArray, topic, TRANSITION_QOS)
        self.progress_sub = node.create_subscription(String, "learner_progress", self._on_progress,
                                                     LATCHED_READER) if learner else None
        node.create_timer(0.1, self._drain)

    @property
    def stopping(self) -> bool:
        return self.stopping_since is not None

    def publish(self, transition) -> None:
        self.publisher.publish(transition_message(transition, self.source, self.stream))
        self.sent += 1

    def _on_progress(self, msg: String) -> None:
        try:
            self.learner = learner_progress_fields(msg)
        except ValueError as error:
            self.refused_progress += 1
            self.node.get_logger().warning(str(error), throttle_duration_sec=10.0)

    def unacknowledged(self) -> int:
        """This run's transitions not yet on the learner's disk (0 while no learner is heard)."""
        if self.learner is None:
            return 0
        return self.sent - 1 - self.learner["acknowledged"].get((self.source, self.stream), -1)

    def not_ready(self) -> str | None:
        """Why the next transitions must wait for the learner (None: they need not, or no
        learner is heard, or pacing is off)."""
        if not self.pace or self.learner is None:
            return None
        unacknowledged = self.unacknowledged()
        if unacknowledged >= self.max_unacknowledged:
            return f"{unacknowledged} transitions not yet on its disk"
        wanted = self.learner["wanted"]         # this node's unacknowledged ones count as on their way
        if wanted is not None and self.learner["received"] + unacknowledged >= wanted:
            return f"it has {self.learner['received']} transitions (+{unacknowledged} on their way) and is ready " \
                   f"for {wanted}"
        return None

    def stop(self) -> None:
        """Ctrl-C / SIGTERM (from a signal handler: only marks; ``_drain`` does the rest)."""
        if self.stopping_since is None:
            self.stopping_since = time.monotonic()

    def _drain(self) -> None:
        if self.stopping_since is None or self.finished.done():
            return
        heard = self.learner is not None
        # a learner never heard may still be starting (a loaded machine discovers slowly): this
        # run's transitions are all unacknowledged, and only drain_timeout ends the wait for it
        left = self.unacknowledged() if heard or self.progress_sub is None else self.sent
        learner_gone = self.progress_sub is None or (heard and self.progress_sub.get_publisher_count() == 0)
        timed_out = time.monotonic() - self.stopping_since >= self.drain_timeout
        if left > 0 and not learner_gone and not timed_out:
            return
        if left > 0:
            why = ("the learner is gone" if learner_gone
                   else f"not acknowledged within drain_timeout {self.drain_timeout:g} s" if heard
                   else f"no learner heard within drain_timeout {self.drain_timeout:g} s")
            self.node.get_logger().warning(f"stopped with {left} transitions of stream {self.stream} not on the "
                                           f"learner's disk ({why})")
        self.node.get_logger().info(f"stopped: {json.dumps(self.node.status())}")
        self.finished.set_result(True)
