"""The learner node and ``otpr-finetune`` run one loop (otpr_ros/training/): for the same seeds
and settings they act the same, update the same and evaluate the same weights.

- Acting: a bridge and a policy server on DDS (frozen policy: no updates) give the transitions
  ``otpr-finetune --utd 0`` gives in process.
- Learning: the learner node, fed ``otpr-finetune``'s own transitions over the bus one at a
  time (each sent once the updates owed to the one before are done), ends with the same
  weights and the same learning-curve rows as ``otpr-finetune`` did.
"""

import csv
import json

import numpy as np
import pytest
import torch

rclpy = pytest.importorskip("rclpy", reason="rclpy is not installed (the ros extra)")
pytest.importorskip("robosuite", reason="the simulation extra is not installed")

from std_msgs.msg import Float32MultiArray, String  # noqa: E402

from model_fixtures import make_tiny_model  # noqa: E402
from otpr_ros.nodes.bus_messages import (LATCHED, TRANSITION_QOS, learner_progress_fields,  # noqa: E402
                                         transition_message)
from otpr_ros.sim.bridge_session import TRANSITION_FIELDS, Transition  # noqa: E402
from otpr_ros.tools.finetune import main as finetune  # noqa: E402
from otpr_ros.training.learner_store import ReplayLog  # noqa: E402
from ros_fixtures import PrivateNode, start_node, domain as ros_domain  # noqa: E402

ENV_STEPS = 40                  # 10 chunks of 4 in the first episode (a tiny policy never succeeds)
OVERRIDES = ["agent.actor_sampler=ddim", "agent.actor_ddim_steps=5"]
COMPARED = ("obs", "action", "reward", "next_obs", "terminal", "truncated", "steps", "sequence", "episode")


def replay(directory) -> dict:
    batches, report = ReplayLog(directory, TRANSITION_FIELDS).load()
    assert batches and not report["damaged"], report
    return {name: np.concatenate([b[name] for b in batches]) for name in TRANSITION_FIELDS}


def finetune_run(model_dir, output, utd: float, eval_every: int, *extra) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)                # as the learner node (cpu_threads 1): the same sums
    try:
        assert finetune(["--task", "lift", "--model", str(model_dir), "--output", str(output), "--device", "cpu",
                         "--env-steps", str(ENV_STEPS), "--utd", str(utd), "--warmup", "4",
                         "--eval-every", str(eval_every), "--eval-episodes", "1", "--processes", "1",
                         "--train-seed", "0", "--recipe", "model", *[a for o in OVERRIDES for a in ("--set", o)], *extra]) == 0
    finally:
        torch.set_num_threads(threads)


def learner_node(domain, namespace, model_dir, output, utd, eval_every):
    return start_node("otpr_ros.nodes.learner", domain, namespace, f"model_dir:={model_dir}",
                      f"output_dir:={output}", "device:=cpu", f"updates_per_transition:={utd}",
                      "warmup_transitions:=4", f"max_env_steps:={ENV_STEPS}", f"eval_every:={eval_every}",
                      "eval_episodes:=1", "replay_flush_every:=0.05", f"overrides:={json.dumps(OVERRIDES)}")


def stop(*processes) -> list:
    outputs = []
    for process in processes:
        if process.poll() is None:
            process.terminate()
        outputs.append(process.communicate(timeout=60)[0])
    return outputs


def test_a_bridge_and_server_act_as_finetune_does(tmp_path):
    model_dir = make_tiny_model(tmp_path, gamma=0.99)       # not the shipped models' 0.999
    finetune_run(model_dir, tmp_path / "finetune", 0.0, ENV_STEPS, "--no-offline-eval")
    expected = replay(tmp_path / "finetune" / "replay")

    domain, ns = ros_domain(71), "/t71"
    learner = learner_node(domain, ns, model_dir, tmp_path / "ros", 0.0, 0)
    server = start_node("otpr_ros.nodes.policy_server", domain, ns, f"model_dir:={model_dir}", "device:=cpu",
                        "candidates:=train", "selection:=sample", "seed:=0", "max_decision_rate:=1000.0",
                        "starved_after:=60.0")
    bridge = start_node("otpr_ros.nodes.sim_bridge", domain, ns, f"model_dir:={model_dir}", "first_seed:=0",
                        "chunk_timeout:=60.0")
    try:
        output = learner.communicate(timeout=300)[0]      # the budget spent, the learner finishes
    finally:
        bridge_output = stop(bridge, server)[0]
        output = output if learner.returncode is not None else stop(learner)[0]
    assert learner.returncode == 0, output[-3000:]
    assert "discounted by the model's gamma 0.99, each chunk executed whole\n" in bridge_output, \
        bridge_output[-3000:]
    got = replay(tmp_path / "ros" / "replay")
    count = len(expected["obs"])
    assert count == ENV_STEPS // 4 and len(got["obs"]) >= count
    for name in COMPARED:
        # the bus carries float32 actions, finetune executes float64: the same to float32 rounding
        np.testing.assert_allclose(got[name][:count], expected[name], rtol=1e-4, atol=1e-4, err_msg=name)


def test_the_learner_fed_finetunes_transitions_learns_and_evaluates_the_same(tmp_path):
    model_dir = make_tiny_model(tmp_path)
    finetune_run(model_dir, tmp_path / "finetune", 1.0, ENV_STEPS // 2)
    sent = replay(tmp_path / "finetune" / "replay")

    domain, ns = ros_domain(72), "/t72"
    learner = learner_node(domain, ns, model_dir, tmp_path / "ros", 1.0, ENV_STEPS // 2)
    feeder = PrivateNode(domain, "feeder", ns)
    progress, status = {}, {}
    feeder.node.create_subscription(String, "learner_progress",
                                    lambda m: progress.update(learner_progress_fields(m), raw=json.loads(m.data)),
                                    LATCHED)
    feeder.node.create_subscription(String, "learner/status", lambda m: status.update(json.loads(m.data)), 10)
    publisher = feeder.node.create_publisher(Float32MultiArray, "transition", TRANSITION_QOS)
    try:
        for i in range(len(sent["obs"])):
            t = {name: sent[name][i] for name in TRANSITION_FIELDS}
            publisher.publish(transition_message(Transition(
                t["obs"], t["action"], float(t["reward"]), t["next_obs"], bool(t["terminal"]), bool(t["truncated"]),
                int(t["steps"]), int(t["sequence"]), int(t["episode"])), source=0, stream=0))
            owed = i + 1 if i + 1 >= 4 else 0            # utd 1 after a warmup of 4
            assert feeder.wait_for(lambda: progress.get("received") == i + 1 and
                                   progress["raw"]["updates"] == owed, 120), (i, progress, status)
        output = learner.communicate(timeout=300)[0]
    finally:
        output = output if learner.returncode is not None else stop(learner)[0]
        feeder.close()
    assert learner.returncode == 0, output[-3000:]

    # the same weights at every evaluation, and after the last update
    for name in ("step_000000020", "final"):
        ours = torch.load(tmp_path / "ros" / "evaluated" / name / "weights.pt", weights_only=True)
        theirs = torch.load(tmp_path / "finetune" / "evaluated" / name / "weights.pt", weights_only=True)
        assert ours.keys() == theirs.keys()
        for key in ours:
            if torch.is_tensor(ours[key]):
                torch.testing.assert_close(ours[key], theirs[key], rtol=1e-5, atol=1e-6, msg=f"{name}: {key}")
    # the same curve: counters, critic diagnostic and held-out success, row by row
    ours, theirs = (list(csv.DictReader(open(tmp_path / run / "curve.csv"))) for run in ("ros", "finetune"))
    assert [r["env_steps"] for r in theirs] == ["0", "20", "40"]
    assert len(ours) == len(theirs)
    for mine, other in zip(ours, theirs):
        for key in set(mine) & set(other) - {"wall_s"}:
            try:
                assert float(mine[key]) == pytest.approx(float(other[key]), rel=1e-4, abs=1e-5), key
            except ValueError:
                assert mine[key] == other[key], key
