import ast
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "otpr_ros" / "core"
ROS_MODULES = {"rclpy", "std_msgs", "sensor_msgs", "geometry_msgs", "trajectory_msgs", "std_srvs", "launch",
               "launch_ros", "ament_index_python"}


def test_core_imports_nothing_from_ros():
    offenders = []
    for path in sorted(CORE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in ROS_MODULES]
    assert len(list(CORE.glob("*.py"))) >= 8
    assert offenders == []


def test_core_has_no_hard_coded_cuda():
    for path in CORE.glob("*.py"):
        assert ".cuda()" not in path.read_text(), path.name
