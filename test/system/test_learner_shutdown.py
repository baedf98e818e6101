"""The learner's shut-down: its ``destroy_node`` waits for the update slice still running.

A CI run lost a learner's replay chunk: the spin loop left (the node had finished) while an
update slice still ran on the executor's second thread, and both it and ``destroy_node`` wrote
the same chunk's file. Here a real learner (tiny model, real rclpy node) is finished by its
first slice, which then goes on for 0.5 s (the window widened: a slice of updates on a loaded
machine); the replay log's ``flush`` reports, on each call, whether a slice was running."""

import os
import subprocess
import sys

from model_fixtures import make_tiny_model
from ros_fixtures import domain

LEARNER = """
import sys, threading, time
from otpr_ros.nodes.learner import Learner
from otpr_ros.nodes.node_main import run_node

class SlowSlices(Learner):
    def __init__(self):
        super().__init__()
        self.slices, periodic, flush = 0, self._periodic, self.core.log.flush

        def slow_periodic():
            self.slices += 1
            periodic()
            if not self.finished.done():
                self.finished.set_result(True)     # the spin loop may leave now ...
            time.sleep(0.5)                        # ... while this slice goes on
            self.slices -= 1

        def reporting_flush():
            print(f"flush on {threading.current_thread().name}, slices running: {self.slices}", flush=True)
            return flush()
        self._periodic, self.core.log.flush = slow_periodic, reporting_flush

sys.exit(run_node("learner", SlowSlices, sys.argv))
"""


def test_the_learner_is_destroyed_after_its_running_slice_ends(tmp_path):
    model = make_tiny_model(tmp_path)
    result = subprocess.run([sys.executable, "-c", LEARNER, "--ros-args", "-p", f"model_dir:={model}",
                             "-p", f"output_dir:={tmp_path / 'run'}", "-p", "device:=cpu", "-p", "eval_every:=0"],
                            capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, ROS_DOMAIN_ID=str(domain(61))))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    destroying = [line for line in result.stdout.splitlines() if line.startswith("flush on MainThread")]
    assert destroying == ["flush on MainThread, slices running: 0"], output[-3000:]
    assert "Traceback" not in output and "never retrieved" not in output, output[-3000:]
