"""learner: transitions in, fine-tuned policy out (otpr_ros/model/online_learning.py).

Subscribes ``transition`` (any number of bridges or recorders, one deep reliable queue),
stores them beside the expert demonstrations, and once ``warmup_transitions`` have arrived
runs OTPR updates at ``updates_per_transition`` updates per received transition. Every
``publish_every`` updates it writes the weights as a model directory
``<output_dir>/policy/v<version>`` (atomically) and announces it on ``policy_update``
(latched), where the policy servers swap it in. Updates run in short slices of the
executor's thread, so arriving transitions are taken between them. TensorBoard scalars go
to ``<output_dir>/tensorboard``; counters to ``~/status`` (String, JSON, 1 Hz).
"""

import json
import shutil
import sys
import time
from pathlib import Path

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import Float32MultiArray, String

from otpr_ros.data.robomimic_hdf5 import RobomimicDataset
from otpr_ros.model.directory import ModelError, load_model, sha256
from otpr_ros.model.online_learning import OnlineLearner
from otpr_ros.nodes.bus_messages import policy_update_message, transition_fields
from otpr_ros.nodes.node_main import run_node
from otpr_ros.package_files import shipped_model

SLICE_SECONDS = 0.2        # updates between two looks at the transition queue
KEEP_SNAPSHOTS = 3


class Learner(Node):
    def __init__(self):
        super().__init__("learner")
        self.declare_parameter("task", "lift", ParameterDescriptor(description="robomimic task", read_only=True))
        self.declare_parameter("model_dir", "", ParameterDescriptor(
            description="model to fine-tune; empty: the shipped model of the task", read_only=True))
        self.declare_parameter("datasets", [""], ParameterDescriptor(
            description="expert demonstrations (HDF5); empty: the model's pre-training datasets", read_only=True))
        self.declare_parameter("device", "auto", ParameterDescriptor(
            description="auto (CUDA when present) | cpu | cuda[:i]", read_only=True))
        self.declare_parameter("output_dir", "runs/finetune", ParameterDescriptor(
            description="published snapshots and TensorBoard logs", read_only=True))
        self.declare_parameter("updates_per_transition", 1.0, ParameterDescriptor(
            description="update-to-data ratio: OTPR updates per received transition",
            floating_point_range=[FloatingPointRange(from_value=0.0, to_value=64.0, step=0.0)]))
        self.declare_parameter("warmup_transitions", 64, ParameterDescriptor(
            description="online transitions before the first update",
            integer_range=[IntegerRange(from_value=0, to_value=10**7, step=1)]))
        self.declare_parameter("publish_every", 50, ParameterDescriptor(
            description="updates between two policy_update snapshots",
            integer_range=[IntegerRange(from_value=1, to_value=10**6, step=1)]))

        value = lambda name: self.get_parameter(name).value  # noqa: E731
        model_dir = value("model_dir") or str(shipped_model(value("task")))
        model = load_model(model_dir, value("device"))
        if model.info.task != value("task"):
            raise ModelError(f"{model_dir}: trained for {model.info.task!r}, the learner is for {value('task')!r}")
        datasets = [d for d in value("datasets") if d] or model.info.extra.get("datasets", [])
        missing = [d for d in datasets if not Path(d).is_file()]
        if not datasets or missing:
            commands = "; ".join(model.info.extra.get("dataset_commands", []))
            raise ValueError(f"datasets: expert demonstrations {missing or '(none)'} not found; make them with: "
                             f"{commands or 'collect-demos'}")
        dataset = RobomimicDataset(datasets, model.info.obs_keys, act_dim=model.info.act_dim, split="train")
        self.core = OnlineLearner(model, dataset)
        self.output = Path(value("output_dir"))
        self.utd, self.warmup = value("updates_per_transition"), value("warmup_transitions")
        self.publish_every = value("publish_every")
        self.version, self.updates, self.update_seconds = 0, 0, 0.0
        self.metrics = {}
        from torch.utils.tensorboard import SummaryWriter
        self.writer = SummaryWriter(str(self.output / "tensorboard"))

        # transient local: transitions published before this node was up are delivered too
        self.create_subscription(Float32MultiArray, "transition", self._on_transition, QoSProfile(
            depth=10000, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL))
        self.update_pub = self.create_publisher(String, "policy_update", QoSProfile(
            depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL))
        self.status_pub = self.create_publisher(String, "~/status", 10)
        self.create_timer(0.01, self._learn)
        self.create_timer(1.0, lambda: self.status_pub.publish(String(data=json.dumps(self.status()))))
        self.get_logger().info(f"fine-tuning {model_dir} on {self.core.agent.device} with {len(dataset)} demos "
                               f"(keypoints {'reused' if self.core.keypoints_reused else 'drawn anew'})")

    def _on_transition(self, msg: Float32MultiArray) -> None:
        try:
            fields = transition_fields(msg, self.core.model.info.obs_dim, self.core.action_size)
        except ValueError as error:
            self.core.counts.refused += 1
            self.get_logger().warning(f"transition refused: {error}", throttle_duration_sec=5.0)
            return
        try:
            self.core.add(fields)                       # counts its own refusals
        except ValueError as error:
            self.get_logger().warning(f"transition refused: {error}", throttle_duration_sec=5.0)

    def _learn(self) -> None:
        received = self.core.online_size
        if received < self.warmup:
            return
        end = time.perf_counter() + SLICE_SECONDS
        while self.updates < self.utd * received and time.perf_counter() < end:
            start = time.perf_counter()
            self.metrics = self.core.update()
            self.update_seconds += time.perf_counter() - start
            self.updates += 1
            if self.updates % 10 == 0:
                for tag, value in self.metrics.items():
                    self.writer.add_scalar(tag, value, self.updates)
            if self.updates % self.publish_every == 0:
                self._publish_snapshot()

    def _publish_snapshot(self) -> None:
        self.version += 1
        card = (f"# Fine-tuned by the otpr_ros learner\n\nFrom `{self.core.model.path}`, version {self.version}, "
                f"{self.updates} updates on {self.core.online_size} online transitions.\n")
        path = self.core.snapshot(self.output / "policy" / f"v{self.version:06d}", card)
        sha = sha256(path / "weights.pt")
        self.update_pub.publish(policy_update_message(self.version, str(path.resolve()), sha))
        self.writer.add_scalar("learner/version", self.version, self.updates)
        for old in sorted((self.output / "policy").glob("v*"))[:-KEEP_SNAPSHOTS]:
            shutil.rmtree(old, ignore_errors=True)      # servers have swapped the old ones out by now

    def status(self) -> dict:
        return {**self.core.counts.summary(), "online": self.core.online_size, "updates": self.updates,
                "version": self.version, "updates_per_s": self.updates / self.update_seconds if self.update_seconds
                else None, **{k: float(v) for k, v in self.metrics.items()}}


def main(args=None) -> int:
    return run_node("learner", Learner, args, (ModelError, ValueError, OSError))


if __name__ == "__main__":
    sys.exit(main())
