"""Launch files run only where ROS 2's launch is installed. Here: every node they start is an
executable the package installs into lib/otpr_ros (checked in a real colcon build), and
every file they read is installed under share/otpr_ros."""

import ast
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from otpr_ros.launch_description import ARGUMENTS
from otpr_ros.launch_plan import TASKS, plan_from_arguments
from otpr_ros.package_files import config_names
from otpr_ros.sim.tasks import SIM_TASKS

ROOT = Path(__file__).resolve().parents[2]
NOT_SOURCES = (".venv", ".git", "data", "runs", "build", "install", "log", "__pycache__", "*.egg-info",
               ".pytest_cache", ".hypothesis")


def console_scripts():
    return set(re.findall(r'"([\w-]+) = otpr_ros\.', (ROOT / "setup.py").read_text()))


def launch_kinds():
    kinds = {}
    for path in sorted((ROOT / "launch").glob("*.launch.py")):
        calls = [n for n in ast.walk(ast.parse(path.read_text()))
                 if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "launch_description"]
        assert len(calls) == 1, f"{path.name}: expected one launch_description(kind) call"
        kinds[path.name] = calls[0].args[0].value
    return kinds


def every_plan():
    for kind in ARGUMENTS:
        for task in TASKS:
            values = {name: default for name, (default, _) in ARGUMENTS[kind].items()}
            variants = [{}] if kind == "serve" else [{}, {"num_envs": "2"}, {"use_sim": "false"}, {"mode": "robot"}]
            for variant in variants:
                yield from plan_from_arguments(kind, {**values, "task": task, **variant})


def test_launch_files_start_the_packages_executables():
    kinds = launch_kinds()
    assert set(kinds) == {"finetune.launch.py", "serve.launch.py"} and set(kinds.values()) <= set(ARGUMENTS)
    for node in every_plan():
        assert f"from {node.module} import main" in ros_executable(ROOT / "ros_executables", node.executable)
        assert importlib.util.find_spec(node.module), node.module
    assert (ROOT / "config" / "otpr.yaml").is_file()
    for task in SIM_TASKS:       # the files the launch files give each task's nodes (calvin_<task>: calvin.yaml)
        assert all((ROOT / "config" / name).is_file() for name in config_names(task, ROOT / "config")), task
    assert (ROOT / "setup.cfg").read_text().count("lib/otpr_ros") == 2   # scripts where ros2 run looks


def ros_executable(folder: Path, name: str) -> str:
    """The text of an executable file ``folder/name`` (what ``ros2 run`` can start)."""
    path = folder / name
    assert path.is_file() and os.access(path, os.X_OK), f"{path} is not an executable file"
    return path.read_text()


def test_only_prefixed_tools_land_on_path_and_nodes_keep_their_names():
    """On PATH in any environment that installs the package: the tools, as otpr-*. The nodes
    keep the names ``ros2 run otpr_ros <node>`` and the launch files use, installed into
    lib/otpr_ros only (a pip install puts no ``learner`` on PATH)."""
    nodes = {node.executable for node in every_plan()}
    assert nodes == {"policy_server", "sim_bridge", "learner", "transition_recorder", "sim_operator"}
    assert {path.name for path in (ROOT / "ros_executables").iterdir()} == nodes
    tools = console_scripts()
    assert tools and all(name.startswith("otpr-") for name in tools), sorted(tools)


def test_bad_launch_arguments_are_refused_by_name():
    values = {name: default for name, (default, _) in ARGUMENTS["finetune"].items()}
    for name, bad in (("task", "stack"), ("num_envs", "0"), ("num_envs", "two"), ("use_sim", "maybe"),
                      ("device", "tpu"), ("namespace", "1bad"), ("mode", "slow"), ("discovery", "wide"),
                      ("enclaves", "relative")):
        with pytest.raises(ValueError, match=name):
            plan_from_arguments("finetune", {**values, name: bad})


def test_colcon_build_installs_what_the_launch_files_name(tmp_path):
    beside_python = Path(sys.executable).parent / "colcon"      # the venv's, also when it is not on PATH
    colcon = str(beside_python) if beside_python.is_file() else shutil.which("colcon")
    assert colcon, "colcon is part of the test extra (pip install -e '.[test]')"
    source = tmp_path / "src" / "otpr_ros"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*NOT_SOURCES))
    result = subprocess.run([colcon, "build", "--base-paths", "src"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    prefix = tmp_path / "install" / "otpr_ros"
    for node in every_plan():
        assert f"from {node.module} import main" in ros_executable(prefix / "lib" / "otpr_ros", node.executable)
    share = prefix / "share" / "otpr_ros"
    assert (share / "package.xml").is_file()
    for name in launch_kinds():
        assert (share / "launch" / name).is_file(), name
    assert (share / "config" / "otpr.yaml").is_file()
    for task in SIM_TASKS:
        assert all((share / "config" / name).is_file() for name in config_names(task, share / "config")), task
    for task in TASKS:
        manifest = json.loads((share / "models" / task / "model.json").read_text())
        for name in manifest["files"]:
            assert (share / "models" / task / name).is_file(), f"models/{task}/{name} not installed"
