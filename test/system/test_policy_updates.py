"""Who may change what the arm does, over DDS with the server in its own process: a policy
server with an update key takes only announcements signed with it, of the served learner
run and newer (or of a new run), of models inside its roots; every refusal is counted by
reason and leaves the served model as it was. The real learner's signed snapshots reaching
a keyed server through the finetune launch, beside a rogue announcement:
test/system/test_learner.py."""

import json
import shutil

import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy is not installed (the ros extra)")

from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from model_fixtures import make_tiny_model  # noqa: E402
from otpr_ros.model.directory import load_model  # noqa: E402
from otpr_ros.model.update_auth import create_key, load_key  # noqa: E402
from otpr_ros.nodes.bus_messages import policy_update_message  # noqa: E402
from ros_fixtures import PrivateNode, domain, start_node, stopped  # noqa: E402

DOMAIN = domain(73)


class Announcer:
    """Publishes policy_update as any participant on the domain could, and reads the server's status."""

    def __init__(self, namespace: str = "/arm"):
        self.ros = PrivateNode(DOMAIN, "announcer", namespace)
        self.publisher = self.ros.node.create_publisher(String, "policy_update", QoSProfile(
            depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL))
        self.status, self.statuses = {}, 0
        self.ros.node.create_subscription(String, "policy_server/status", self._on_status, 10)

    def _on_status(self, msg):
        self.status = json.loads(msg.data)
        self.statuses += 1

    def handled(self):
        return self.status["updates"]["applied"] + self.status["updates"]["refused"]

    def announce(self, msg: String) -> dict:
        """Publish, then the server's status once it has handled the announcement."""
        before = self.handled()
        self.publisher.publish(msg)
        assert self.ros.wait_for(lambda: self.handled() > before, 60), f"not handled: {msg.data}"
        seen = self.statuses
        assert self.ros.wait_for(lambda: self.statuses > seen, 30)
        return self.status


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory):
    base = tmp_path_factory.mktemp("updates")
    roots = base / "runs"
    model_dir = make_tiny_model(roots)                       # the served model, inside the roots
    key = create_key(base / "update.key")
    process = start_node("otpr_ros.nodes.policy_server", DOMAIN, "/arm", f"model_dir:={model_dir}",
                         f"update_key:={key}", f"model_roots:={json.dumps([str(roots)])}")
    announcer = Announcer()
    try:
        assert announcer.ros.wait_for(lambda: announcer.status, 90), "no status from the server"
        yield announcer, process, load_key(key), model_dir, base
    finally:
        announcer.ros.close()
        process.terminate()
        output = process.communicate(timeout=20)[0]
    assert process.returncode in (0, -15), output
    assert "NO update_key" not in output


def test_only_signed_newer_announcements_of_models_inside_the_roots_change_the_policy(keyed_server):
    announcer, process, key, model_dir, base = keyed_server
    served = announcer.status["model"]
    assert announcer.status["updates_signed"] and announcer.status["model_version"] == 0
    good = shutil.copytree(model_dir, model_dir.parent / "v1")                 # a valid model inside the roots
    newer = shutil.copytree(model_dir, model_dir.parent / "v2")
    outside = shutil.copytree(model_dir, base / "elsewhere")                  # valid, outside the roots
    sha = load_model(good, "cpu").weights_sha256
    wrong_key = bytes(32)

    def expect(msg, reason=None, version=0, model=served):
        status = announcer.announce(msg)
        refused = {k: v for k, v in status["updates"]["refused_by"].items() if v}
        assert status["model"] == str(model) and status["model_version"] == version, status
        return refused

    # the rogue of the issue: a huge version, a valid model on disk, unsigned
    assert expect(policy_update_message("rogue", 2**31 - 1, str(good), sha)) == {"unsigned": 1}
    assert expect(policy_update_message("rogue", 2**31 - 1, str(good), sha, wrong_key)) == \
        {"unsigned": 1, "bad_signature": 1}
    # the learner's snapshot is still taken, and its next version
    assert expect(policy_update_message("run-a", 1, str(good), sha, key), version=1, model=good) == \
        {"unsigned": 1, "bad_signature": 1}
    assert expect(policy_update_message("run-a", 1, str(good), sha, key), version=1, model=good) == \
        {"unsigned": 1, "bad_signature": 1, "not_newer": 1}                   # replayed
    assert expect(policy_update_message("run-a", 2, str(outside), sha, key), version=1, model=good) == \
        {"unsigned": 1, "bad_signature": 1, "not_newer": 1, "outside_roots": 1}
    assert expect(policy_update_message("run-a", 2, str(newer), "0" * 64, key), version=1, model=good) == \
        {"unsigned": 1, "bad_signature": 1, "not_newer": 1, "outside_roots": 1, "bad_model": 1}
    # a new learner run (versions start again), after which the old run is not taken back
    assert expect(policy_update_message("run-b", 1, str(newer), sha, key), version=1, model=newer)["bad_model"] == 1
    refused = expect(policy_update_message("run-a", 9, str(good), sha, key), version=1, model=newer)
    assert refused == {"unsigned": 1, "bad_signature": 1, "not_newer": 1, "outside_roots": 1, "bad_model": 1,
                       "old_run": 1}
    assert announcer.status["model_run"] == "run-b" and announcer.status["updates"]["applied"] == 2
    assert process.poll() is None


def test_a_server_with_a_key_others_can_read_refuses_to_start(tmp_path):
    key = create_key(tmp_path / "update.key")
    key.chmod(0o644)
    process = start_node("otpr_ros.nodes.policy_server", DOMAIN, "/refused", f"update_key:={key}")
    output = process.communicate(timeout=120)[0]
    assert process.returncode == 2 and "chmod 600" in output and "Traceback" not in output, output[-2000:]


def test_a_server_that_joins_late_handles_every_latched_announcement(tmp_path):
    """Two participants latched an announcement before the server existed (the finetune launch:
    a learner's signed snapshot, and here a rogue's unsigned one): the server gets both when it
    joins, not only whichever DDS delivered last, so a rogue cannot hide the learner's."""
    roots = tmp_path / "runs"
    model_dir = make_tiny_model(roots)
    good = shutil.copytree(model_dir, roots / "v1")
    sha = load_model(good, "cpu").weights_sha256
    key = create_key(tmp_path / "update.key")
    rogue, learner = Announcer("/late"), Announcer("/late")
    try:
        learner.publisher.publish(policy_update_message("run-a", 1, str(good), sha, load_key(key)))
        rogue.publisher.publish(policy_update_message("rogue", 2**31 - 1, str(good), sha))
        process = start_node("otpr_ros.nodes.policy_server", DOMAIN, "/late", f"model_dir:={model_dir}",
                             f"update_key:={key}", f"model_roots:={json.dumps([str(roots)])}")
        try:
            handled = rogue.ros.wait_for(lambda: rogue.status and rogue.handled() == 2, 90)
            assert handled, rogue.status
            assert rogue.status["model_version"] == 1 and rogue.status["model"] == str(good), rogue.status
            assert rogue.status["updates"]["refused_by"]["unsigned"] == 1, rogue.status
        finally:
            output = stopped(process)
        assert "Traceback" not in output, output[-2000:]
    finally:
        rogue.ros.close()
        learner.ros.close()
