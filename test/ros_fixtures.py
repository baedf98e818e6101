"""For tests that drive the package's nodes over DDS: a node started as its own process the
way a launch starts it (task YAML, parameters, namespace, the test's ROS_DOMAIN_ID), and the
test's own rclpy node on a domain of its own.

Each test module has its own domain, ``domain(n)``: n shifted by the slot this suite holds,
so up to four copies of the suite can run on one machine at once (a shared CI machine)
without hearing each other's nodes. A slot is a lock file held while the suite runs;
``OTPR_TEST_DOMAIN_OFFSET`` sets the shift by hand."""

import fcntl
import os
import signal
import subprocess
import sys
import tempfile
import time

import yaml

import rclpy

from otpr_ros.package_files import node_configs

DOMAIN_SLOTS = (0, -50, -30, -15)     # the tests use domains 61-75: slots 61-75, 11-25, 31-45, 46-60
_slot = []                        # (offset, the held lock file) once claimed


def domain(n: int) -> int:
    """The ROS_DOMAIN_ID of a test module numbered ``n`` (61-75) in this copy of the suite."""
    if not _slot:
        if os.environ.get("OTPR_TEST_DOMAIN_OFFSET"):
            _slot.append((int(os.environ["OTPR_TEST_DOMAIN_OFFSET"]), None))
        for offset in DOMAIN_SLOTS if not _slot else ():
            lock = open(os.path.join(tempfile.gettempdir(), f"otpr-test-domains{offset:+d}.lock"), "w")
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock.close()
                continue
            _slot.append((offset, lock))           # held until this process exits
            break
        else:
            if not _slot:
                raise RuntimeError(f"{len(DOMAIN_SLOTS)} copies of the suite already run on this machine")
    return n + _slot[0][0]


def start_node(module: str, domain: int, namespace: str, *parameters: str, task: str = "lift", arguments=()):
    """``parameters``: ``name:=value`` strings; ``arguments``: the executable's own, before
    ``--ros-args``. Output (stdout and stderr) in ``.communicate()``.

    They go in a parameter file of their own under the node's full name, after the task's
    (``node_configs``), as the launchers write them: ``-p`` would lose to the YAML's
    ``/**/<node>`` sections."""
    values = dict(p.split(":=", 1) for p in parameters)
    node = f"{namespace.rstrip('/')}/{module.rsplit('.', 1)[-1]}"
    overrides = tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="node-", delete=False)
    yaml.safe_dump({node: {"ros__parameters": {k: yaml.safe_load(v) for k, v in values.items()}}}, overrides)
    overrides.close()
    files = [arg for path in (*node_configs(task), overrides.name) for arg in ("--params-file", str(path))]
    command = [sys.executable, "-m", module, *arguments, "--ros-args", *files, "-r", f"__ns:={namespace}"]
    return subprocess.Popen(command, env=dict(os.environ, ROS_DOMAIN_ID=str(domain)), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def stopped(process, timeout: float = 30.0) -> str:
    """The output of a node process after its stop: SIGTERM, then SIGKILL (exit -9, which no
    test accepts) when it has not ended within ``timeout`` s."""
    return stopped_all([process], timeout)[0]


def stopped_all(processes, timeout: float = 30.0) -> list[str]:
    """``stopped`` for several node processes, all sent SIGTERM first (the order of a launch's
    stop). One still running ``timeout`` s later is asked for its threads' stacks (SIGUSR1:
    ``node_main``'s faulthandler), which end its output, then killed."""
    for process in processes:
        process.terminate()
    outputs = []
    for process in processes:
        try:
            outputs.append(process.communicate(timeout=timeout)[0])
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGUSR1)
            try:
                output = process.communicate(timeout=5)[0]
            except subprocess.TimeoutExpired:
                process.kill()
                output = process.communicate()[0]
            outputs.append(f"{output}\n(killed: not stopped {timeout:g} s after SIGTERM; its stacks above)")
    return outputs


class PrivateNode:
    """An rclpy node in a context of its own on ``domain`` (several per test process)."""

    def __init__(self, domain: int, name: str, namespace: str):
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain)
        self.node = rclpy.create_node(name, namespace=namespace, context=self.context)
        self.executor = rclpy.executors.SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)

    def spin(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.01)

    def wait_for(self, condition, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end and not condition():
            self.executor.spin_once(timeout_sec=0.05)
        return condition()

    def close(self) -> None:
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


def call_service(client, request, spin_once, timeout: float = 120.0, resend_after: float | None = None):
    """``(answer, requests sent)``; ``spin_once()`` lets the client's node take the answer.
    ``resend_after``: s after which an unanswered request is sent again: a CI run on a loaded
    machine had a get_state unanswered for 30 s, the service up (a reply lost while the service
    had not yet matched the caller's reply reader, or a starved process: a resend covers the
    one, the timeout the other). A caller of a service that is not idempotent reads a resent
    request's answer knowing that the first may have taken effect."""
    assert client.wait_for_service(timeout_sec=60), f"{client.srv_name} never came up"
    future, sends = client.call_async(request), 1
    sent = time.monotonic()
    end = sent + timeout
    while time.monotonic() < end and not future.done():
        if resend_after is not None and time.monotonic() - sent > resend_after:
            client.remove_pending_request(future)
            future, sent, sends = client.call_async(request), time.monotonic(), sends + 1
        spin_once()
    assert future.done(), f"{client.srv_name} did not answer within {timeout} s"
    return future.result(), sends


class Lifecycle:
    """A managed node's lifecycle services (``<name>/get_state``, ``<name>/change_state``), called
    from ``node``; ``spin_once()`` lets that node take the answer."""

    def __init__(self, node, name: str, spin_once, timeout: float = 120.0):
        from lifecycle_msgs.srv import ChangeState, GetState
        self.get = node.create_client(GetState, f"{name}/get_state")
        self.set = node.create_client(ChangeState, f"{name}/change_state")
        self.spin_once, self.timeout = spin_once, timeout

    def _call(self, client, request, resend_after: float | None = None):
        return call_service(client, request, self.spin_once, self.timeout, resend_after)[0]

    def state(self) -> int:
        from lifecycle_msgs.srv import GetState
        return self._call(self.get, GetState.Request(), resend_after=10.0).current_state.id

    def change(self, transition: int) -> bool:
        from lifecycle_msgs.msg import Transition
        from lifecycle_msgs.srv import ChangeState
        return self._call(self.set, ChangeState.Request(transition=Transition(id=transition))).success
