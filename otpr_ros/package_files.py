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


def config_names(task: str | None, directory: Path) -> list[str]:
    """The node parameter files of ``task`` in ``directory`` (a ``config/``), in the order they are
    read (a later value wins): ``nodes.yaml`` (every task), ``<family>.yaml`` where the task is named
    ``<family>_<name>`` and the file exists (``kitchen.yaml``: the three Kitchen variants' recipe;
    ``calvin.yaml``: every CALVIN task), then ``<task>.yaml`` where it exists (the task's own
    differences). Task None: ``nodes.yaml`` alone. FileNotFoundError when the task has neither file."""
    if task is None:
        return ["nodes.yaml"]
    family = task.split("_")[0]
    candidates = ([f"{family}.yaml"] if family != task else []) + [f"{task}.yaml"]
    own = [name for name in candidates if (Path(directory) / name).is_file()]
    if not own:
        raise FileNotFoundError(f"otpr_ros: no config for task {task!r} ({Path(directory) / f'{task}.yaml'})")
    return ["nodes.yaml", *own]


def node_configs(task: str | None) -> list[Path]:
    """The parameter files of a task's nodes in the package's ``config/`` (``config_names``)."""
    directory = share_dir("config")
    return [directory / name for name in config_names(task, directory)]


def node_parameters(task: str | None, node: str) -> dict:
    """The parameters ``node`` (e.g. ``learner``) of ``task`` gets from ``node_configs``: every
    file's ``/**`` and ``/**/<node>`` sections, in order, a later value winning (task None:
    ``config/nodes.yaml`` alone, what every task shares)."""
    import yaml
    values = {}
    for path in node_configs(task):
        sections = yaml.safe_load(path.read_text()) or {}
        for key in ("/**", f"/**/{node}"):
            values.update((sections.get(key) or {}).get("ros__parameters") or {})
    return values


def pretraining_config(task: str | None = None) -> Path:
    """The OTPR configuration ``otpr-pretrain`` starts a model of ``task`` from:
    ``config/otpr_kitchen.yaml`` for the Franka Kitchen tasks, else ``config/otpr.yaml``."""
    from otpr_ros.sim.tasks import is_kitchen
    return share_dir("config") / ("otpr_kitchen.yaml" if task and is_kitchen(task) else "otpr.yaml")


def shipped_model(task: str) -> Path:
    """``models/<task>``; FileNotFoundError naming what to give instead when there is none (CALVIN)."""
    models = share_dir("models")
    if not (models / task / "config.yaml").is_file():
        shipped = sorted(p.name for p in models.iterdir() if (p / "config.yaml").is_file())
        raise FileNotFoundError(f"no shipped model for task {task!r} (shipped: {', '.join(shipped)}): give a model "
                                f"directory (model_dir, --model), e.g. one otpr-pretrain made")
    return models / task
