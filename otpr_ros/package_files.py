"""Where the package's config/ and models/ are: the source checkout (editable installs, the
tests) or ``share/otpr_ros`` of an installed package (colcon, pip)."""

import sys
from pathlib import Path

SOURCE_ROOT = Path(__file__).resolve().parents[1]


def share_dir(name: str) -> Path:
    for candidate in (SOURCE_ROOT / name, Path(sys.prefix) / "share" / "otpr_ros" / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"otpr_ros: no {name}/ directory in the source tree or under {sys.prefix}/share/otpr_ros")


def task_config(task: str) -> Path:
    path = share_dir("config") / f"{task}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"otpr_ros: no config for task {task!r} ({path})")
    return path


def shipped_model(task: str) -> Path:
    return share_dir("models") / task
