"""``run_node``'s shut-down: a node is destroyed only after its callbacks have ended.

A CI run lost a learner's replay chunk: the spin loop left (the node finished) while an update
slice still ran on the executor's second thread, and both it and ``destroy_node`` wrote the same
chunk's file. The node here is finished by a callback that then goes on for a while, on a
two-thread executor as the learner's; ``destroy_node`` reports how many callbacks are running."""

import os
import subprocess
import sys

from ros_fixtures import domain

NODE = """
import sys, time
import rclpy
from rclpy.node import Node
from otpr_ros.nodes.node_main import run_node

class Finishing(Node):
    executor_threads = 2

    def __init__(self):
        super().__init__("finishing")
        self.finished, self.running = rclpy.task.Future(), 0
        self.create_timer(0.01, self.tick)

    def tick(self):
        self.running += 1
        self.finished.set_result(True)      # the spin loop may leave now ...
        time.sleep(0.5)                      # ... while this callback goes on (a learner's update slice)
        self.running -= 1

    def destroy_node(self):
        print(f"callbacks running at destroy_node: {self.running}", flush=True)
        super().destroy_node()

sys.exit(run_node("finishing", Finishing))
"""


def test_a_node_is_destroyed_after_its_running_callbacks_end():
    result = subprocess.run([sys.executable, "-c", NODE], capture_output=True, text=True, timeout=120,
                            env=dict(os.environ, ROS_DOMAIN_ID=str(domain(61))))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "callbacks running at destroy_node: 0" in result.stdout, result.stdout + result.stderr
