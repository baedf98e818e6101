"""For tests that drive the package's nodes over DDS: a node started as its own process the
way a launch starts it (task YAML, parameters, namespace, the test's ROS_DOMAIN_ID), and the
test's own rclpy node on a domain of its own."""

import os
import subprocess
import sys
import tempfile
import time

import yaml

import rclpy

from otpr_ros.package_files import node_configs


def start_node(module: str, domain: int, namespace: str, *parameters: str, task: str = "lift"):
    """``parameters``: ``name:=value`` strings. Output (stdout and stderr) in ``.communicate()``.

    They go in a parameter file of their own under the node's full name, after the task's
    (``node_configs``), as the launchers write them: ``-p`` would lose to the YAML's
    ``/**/<node>`` sections."""
    values = dict(p.split(":=", 1) for p in parameters)
    node = f"{namespace.rstrip('/')}/{module.rsplit('.', 1)[-1]}"
    overrides = tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="node-", delete=False)
    yaml.safe_dump({node: {"ros__parameters": {k: yaml.safe_load(v) for k, v in values.items()}}}, overrides)
    overrides.close()
    files = [arg for path in (*node_configs(task), overrides.name) for arg in ("--params-file", str(path))]
    command = [sys.executable, "-m", module, "--ros-args", *files, "-r", f"__ns:={namespace}"]
    return subprocess.Popen(command, env=dict(os.environ, ROS_DOMAIN_ID=str(domain)), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


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
