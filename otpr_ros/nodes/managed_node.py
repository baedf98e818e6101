"""The managed (lifecycle) form of a node (``--managed``), as ROS 2 policy runners have it.

A managed node starts unconfigured, with only its parameters. ``configure`` runs the node's
``_set_up`` (what its unmanaged form does at start: load the model, make topics, services
and timers); when that fails (``set_up_errors``) everything it made is destroyed again, the
error is logged and the node stays unconfigured and running. ``activate`` and ``deactivate``
set ``active`` (what that means is the node's: the policy server acts, the recorder starts
episodes); ``cleanup`` destroys what configure made. Drive it with ``ros2 lifecycle set
<node> configure`` / ``activate`` or a lifecycle manager (docs/robot.md).
"""

from rclpy.client import Client
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn
from rclpy.publisher import Publisher
from rclpy.service import Service
from rclpy.subscription import Subscription
from rclpy.timer import Timer


class ManagedNode(LifecycleNode):
    set_up_errors = (ValueError, OSError)
    active = False
    made = None                     # what configure made (cleanup destroys it)

    def __init__(self, name: str):
        super().__init__(name)
        # Ctrl-C / SIGTERM are handled between two callbacks: an unconfigured node has no timer
        # of its own, and without this one it was seen not to stop (1 of 3 SIGTERMs, the server)
        self.create_timer(0.2, lambda: None)

    def _set_up(self) -> None:
        raise NotImplementedError

    def on_configure(self, state) -> TransitionCallbackReturn:
        before = self._entities()
        try:
            self._set_up()
        except self.set_up_errors as error:
            self.get_logger().error(f"configure failed: {error}")
            self._destroy(self._entities() - before)
            return TransitionCallbackReturn.FAILURE
        self.made = self._entities() - before
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state) -> TransitionCallbackReturn:
        self.active = True
        return super().on_activate(state)

    def on_deactivate(self, state) -> TransitionCallbackReturn:
        self.active = False
        return super().on_deactivate(state)

    def on_cleanup(self, state) -> TransitionCallbackReturn:
        self._destroy(self.made or set())
        self.made = None
        return TransitionCallbackReturn.SUCCESS

    def _entities(self) -> set:
        return {*self.subscriptions, *self.publishers, *self.services, *self.timers, *self.clients}

    def _destroy(self, entities) -> None:
        by_kind = ((Subscription, self.destroy_subscription), (Publisher, self.destroy_publisher),
                   (Service, self.destroy_service), (Timer, self.destroy_timer), (Client, self.destroy_client))
        for entity in entities:
            next(destroy for kind, destroy in by_kind if isinstance(entity, kind))(entity)
