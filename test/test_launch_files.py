"""Launch files run only where ROS 2's launch is installed; here we check that every
executable they start is a console script of the package installed into lib/otpr_ros, and
every config they read ships in config/."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def console_scripts():
    text = (ROOT / "setup.py").read_text()
    return set(re.findall(r'"([\w-]+) = otpr_ros\.', text))


def launched(path):
    tree = ast.parse(path.read_text())
    executables = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "Node":
            for keyword in node.keywords:
                if keyword.arg == "executable":
                    executables.add(keyword.value.value)
    return executables


def test_launch_files_start_installed_executables_with_shipped_configs():
    launch_files = sorted((ROOT / "launch").glob("*.launch.py"))
    assert launch_files, "no launch files"
    scripts = console_scripts()
    for path in launch_files:
        names = launched(path)
        assert names and names <= scripts, f"{path.name} starts {names - scripts}, not installed"
        assert "FindPackageShare" in path.read_text()
    for task in ("lift", "can", "square"):              # the task argument picks config/<task>.yaml
        assert (ROOT / "config" / f"{task}.yaml").is_file()
    assert (ROOT / "setup.cfg").read_text().count("lib/otpr_ros") == 2   # scripts where ros2 run looks
