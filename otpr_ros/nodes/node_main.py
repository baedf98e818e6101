"""The common life of an otpr_ros executable: build the node, spin, shut down cleanly.

Exit codes: 0 after Ctrl-C / SIGTERM or when the node says it is finished, 2 when the node
cannot start (bad parameters or model: the message names the problem).

Stopping is the main thread's own work: rclpy's signal handlers are not installed (they shut
the context down from a thread of their own while a callback may still be running), the
signals are noted and the spin loop, which wakes at least every ``SPIN_PERIOD`` s, leaves;
then the node is destroyed and rclpy shut down, in that order, in the main thread. A node that
runs callbacks on several executor threads (the learner) makes its ``destroy_node`` wait for
the one still running: the loop leaves without waiting for them. A node with
a ``stop()`` method (the bridge: transitions still on their way to the learner) is asked to stop
on the first Ctrl-C / SIGTERM and ends when its ``finished`` Future is done; a second signal
stops it at once. Other nodes stop on the first signal.

``kill -USR1 <pid>`` prints every thread's stack to stderr (the process goes on): where a node
that does not stop is stuck.
"""

import faulthandler
import json
import signal
import sys

import numpy as np
import rclpy
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy._rclpy_pybind11 import RCLError
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.signals import SignalHandlerOptions
from std_msgs.msg import String

SPIN_PERIOD = 0.1       # s: the longest the spin loop waits before it looks at the stop signals


def run_node(name: str, make_node, args=None, startup_errors=(ValueError,), stops_gracefully=False) -> int:
    """``stops_gracefully``: the node has ``stop()`` and ``finished``, and the first signal
    asks it to stop instead of stopping it."""
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    signals, nodes = [], []

    def on_signal(number, frame):
        signals.append(number)
        if stops_gracefully and len(signals) == 1 and nodes:
            nodes[0].stop()
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, on_signal)
    try:
        node = make_node()
    except startup_errors as error:
        print(f"{name}: {error}", file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    nodes.append(node)
    if signals and stops_gracefully:            # a signal while it started: ask it now
        node.stop()
    finished = getattr(node, "finished", None)            # a Future set when the node's work is done
    # a node with callbacks that must run beside long ones (the learner's updates) says so
    threads = getattr(node, "executor_threads", 1)
    executor = MultiThreadedExecutor(num_threads=threads) if threads > 1 else SingleThreadedExecutor()
    executor.add_node(node)

    def running() -> bool:
        if finished is not None and finished.done():
            return False
        return rclpy.ok() and len(signals) < (2 if stops_gracefully else 1)
    try:
        while running():
            executor.spin_once(timeout_sec=SPIN_PERIOD)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except RCLError:
        if rclpy.ok():                  # not a shutdown racing the executor: a real failure
            raise
    finally:
        executor.remove_node(node)
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


def status_topic(node, period: float | None = 1.0):
    """``node``'s ``~/status``: ``node.status()`` as JSON, every ``period`` s (None: only when
    the node calls the function returned, which publishes it at once)."""
    publisher = node.create_publisher(String, "~/status", 10)

    def publish() -> None:
        publisher.publish(String(data=json.dumps(node.status())))

    if period:
        node.create_timer(period, publish)
    return publish


def percentiles(name: str, values) -> dict:
    """``{name_p50, name_p99}`` of the values (None while there are none), for status topics."""
    values = list(values)
    return {f"{name}_p{q}": float(np.percentile(values, q)) if values else None for q in (50, 99)}


ANY_TYPE = "any type"     # a table row's range for a parameter that takes a string or a number
# Parameter cpu_threads: torch's CPU threads in this process. Nodes that share a few cores run
# far faster with 1 each (no thread oversubscription).
CPU_THREADS = ("cpu_threads", 0, "torch CPU threads of this process; 0: torch's default (all cores)", (0, 256), True)


def apply_cpu_threads(node) -> None:
    """torch's CPU threads as the node's ``cpu_threads`` (a row of its table: ``CPU_THREADS``) says."""
    import torch
    if node.get_parameter("cpu_threads").value:
        torch.set_num_threads(node.get_parameter("cpu_threads").value)


def declare_parameters(node, table) -> None:
    """Declare a node's parameters from its table: (name, default, description, range, read-only)
    rows; ``range`` (low, high) bounds an int or float parameter (None: unbounded; ``ANY_TYPE``:
    a parameter whose type the value sets)."""
    for name, default, description, bounds, read_only in table:
        descriptor = ParameterDescriptor(description=description, read_only=read_only)
        if bounds == ANY_TYPE:
            descriptor.dynamic_typing = True
        elif bounds is not None and isinstance(default, float):
            descriptor.floating_point_range = [FloatingPointRange(from_value=float(bounds[0]),
                                                                  to_value=float(bounds[1]), step=0.0)]
        elif bounds is not None:
            descriptor.integer_range = [IntegerRange(from_value=bounds[0], to_value=bounds[1], step=1)]
        node.declare_parameter(name, default, descriptor)
