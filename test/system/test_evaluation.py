import json

import pytest

from otpr_ros.sim.evaluation import chain_cells, instruction_cells, success_cell, summarise, wilson_interval

pytest.importorskip("robosuite", reason="the simulation extra is not installed")

from otpr_ros.package_files import shipped_model  # noqa: E402
from otpr_ros.tools.evaluate import main as evaluate_main  # noqa: E402


def test_wilson_interval():
    low, high = wilson_interval(25, 50)
    assert low == pytest.approx(0.3664, abs=1e-3) and high == pytest.approx(0.6336, abs=1e-3)
    assert wilson_interval(50, 50)[1] == 1.0 and wilson_interval(0, 50)[0] == 0.0
    summary = summarise([{"seed": 1, "success": True, "length": 10}, {"seed": 2, "success": False, "length": 30}])
    assert summary.success_rate == 0.5 and summary.mean_length == 20.0 and summary.seeds == [1, 2]


def test_a_benchmark_record_and_its_table_cell():
    summary = summarise([{"seed": s, "success": s % 4 != 0, "length": 100 + s} for s in range(50)])
    record = summary.record()
    assert record == {"episodes": 50, "success_rate": 0.74, "ci95": [0.604, 0.841], "mean_length": 124.5}
    assert success_cell(record["success_rate"], record["ci95"]) == "74% (60%-84%)"


def test_calvins_cells_count_instructions_done_in_a_row():
    records = [{"tasks": ["open_drawer", "turn_on_led"], "tasks_completed": 2},
               {"tasks": ["open_drawer", "move_slider_left"], "tasks_completed": 0},
               {"tasks": ["turn_on_led", "open_drawer"], "tasks_completed": 1},
               {"tasks": ["close_drawer", "turn_on_led"], "tasks_completed": 1}]
    assert chain_cells(records, 2) == "1: 75% 2: 25%, average 1.00 of 2"
    assert instruction_cells(records) == "close_drawer 1/1, open_drawer 1/2, turn_on_led 1/1"


@pytest.mark.parametrize("backend", ["torch", "onnx", "openvino"])
def test_evaluate_runs_the_shipped_lift_model(tmp_path, backend):
    output = tmp_path / "eval.json"
    code = evaluate_main(["--task", "lift", "--episodes", "2", "--horizon", "24", "--seed", "7",
                          "--backend", backend, "--output", str(output)])
    assert code == 0
    result = json.loads(output.read_text())
    assert result["episodes"] == 2 and result["seeds"] == [7, 8] and result["backend"] == backend
    assert result["num_candidates"] == 1          # the shipped config evaluates as the paper: L = 1
    assert 0 < result["mean_length"] <= 24 and 0.0 <= result["ci95"][0] <= result["ci95"][1] <= 1.0
    assert [r["seed"] for r in result["episodes_detail"]] == [7, 8]
    expected = {"torch": ("cpu", "cuda"), "onnx": ("CPUExecutionProvider", "CUDAExecutionProvider",
                                                   "TensorrtExecutionProvider"), "openvino": ("OpenVINO CPU",)}[backend]
    assert len(result["providers"]) == 1 and result["providers"][0].split(":")[0] in expected


def test_evaluate_refuses_a_model_of_another_task(capsys):
    assert evaluate_main(["--model", str(shipped_model("lift")), "--task", "can", "--episodes", "1"]) == 2
    assert "trained for 'lift', not 'can'" in capsys.readouterr().err
    assert evaluate_main(["--task", "lift", "--episodes", "1", "--chain", "3"]) == 2
    assert "only a calvin_multi model follows chains of instructions, not 'lift'" in capsys.readouterr().err


def test_evaluate_acts_with_changed_settings_and_refuses_bad_ones(tmp_path, capsys):
    from otpr_ros.sim.evaluation import EvalSettings, acting_model
    lift = str(shipped_model("lift"))
    assert acting_model(EvalSettings("lift", lift)) == lift
    changed = acting_model(EvalSettings("lift", lift, overrides=("transport.beta=0.25",)))
    assert changed.agent.cost.beta == 0.25 and changed.config.transport.beta == 0.25

    output = tmp_path / "eval.json"
    assert evaluate_main(["--task", "lift", "--episodes", "1", "--horizon", "8", "--num-candidates", "4",
                          "--set", "transport.beta=0", "--output", str(output)]) == 0
    assert json.loads(output.read_text())["overrides"] == ["transport.beta=0"]
    assert evaluate_main(["--task", "lift", "--episodes", "1", "--set", "transport.size=3"]) == 2
    assert "transport.size=3" in capsys.readouterr().err
    assert evaluate_main(["--task", "lift", "--episodes", "1", "--backend", "onnx", "--set", "transport.beta=0"]) == 2
    assert "only the torch backend" in capsys.readouterr().err


def test_an_episode_decides_again_after_the_models_execute_steps():
    """The evaluation's episodes execute agent.execute_steps of each chunk (Lift's chunks of 4):
    1 of each, 8 decisions in 8 steps; the whole chunk, 2."""
    from otpr_ros.sim import evaluation
    lift = str(shipped_model("lift"))
    for overrides, decisions in ((("agent.execute_steps=1",), 8), ((), 2)):
        evaluation._init_worker(evaluation.EvalSettings("lift", lift, num_candidates=1, horizon=8,
                                                        overrides=overrides))
        policy, calls = evaluation._worker["policy"], []
        decide = policy.decide
        policy.decide = lambda obs: calls.append(obs) or decide(obs)
        record = evaluation.run_policy_episode(100)
        assert (record["length"], len(calls)) == (8, decisions), overrides


def test_seed_overlap_names_the_first_range_the_validation_seeds_share():
    from otpr_ros.sim.evaluation import seed_overlap
    others = {"held-out": range(100_000, 100_050), "training": range(0, 8_000)}
    assert seed_overlap(300_000, 50, others) is None
    assert seed_overlap(100_049, 50, others) == "held-out"
    assert seed_overlap(99_951, 50, others) == "held-out" and seed_overlap(99_950, 50, others) is None
    assert seed_overlap(0, 50, others) == "training" and seed_overlap(7_999, 1, others) == "training"


@pytest.mark.parametrize("signum", ["SIGTERM", "SIGKILL"])
def test_episode_workers_end_with_a_killed_evaluation(signum):
    """otpr-evaluate (or collect-demos, pretrain) killed without shutting its pool down: its
    workers must not wait for work for ever (before 2026-12-04 they did, under init)."""
    import signal
    import subprocess
    import sys
    import time

    from process_fixtures import children, wait_until_gone

    def workers(pid):         # the pool's spawned workers, not multiprocessing's resource tracker
        found = set()
        for child in children(pid):
            try:
                if b"spawn_main" in open(f"/proc/{child}/cmdline", "rb").read():
                    found.add(child)
            except OSError:
                pass
        return found

    process = subprocess.Popen([sys.executable, "-m", "otpr_ros.tools.evaluate", "--task", "lift",
                                "--episodes", "5000", "--processes", "2"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        started, deadline = set(), time.monotonic() + 300
        while len(started) < 2 and time.monotonic() < deadline:
            started = workers(process.pid)
            time.sleep(0.2)
        assert len(started) == 2 and process.poll() is None, started
        process.send_signal(getattr(signal, signum))
        process.wait(timeout=60)
        assert not wait_until_gone(started, 30)
    finally:
        if process.poll() is None:
            process.kill()
