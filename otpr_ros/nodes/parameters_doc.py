"""docs/parameters.md, made from the nodes' parameter tables (a test checks that it matches):

    python -m otpr_ros.nodes.parameters_doc > docs/parameters.md
"""

import importlib

from otpr_ros.nodes.node_main import ANY_TYPE

NODES = {"policy_server": "otpr_ros.nodes.policy_server", "sim_bridge": "otpr_ros.nodes.sim_bridge",
         "learner": "otpr_ros.nodes.learner", "transition_recorder": "otpr_ros.nodes.transition_recorder",
         "sim_operator": "otpr_ros.nodes.sim_operator"}


def node_parameters(node: str) -> tuple:
    """The node's table rows, as it declares them: (name, default, description, range, read-only)."""
    return importlib.import_module(NODES[node]).PARAMETERS


def cell(value) -> str:
    text = f"`{value!r}`" if not isinstance(value, str) else f"`{value}`" if value else "(empty)"
    return text.replace("|", "\\|")


def render() -> str:
    lines = ["# Node parameters", "",
             "Every parameter of the nodes, with its default, range and description, as the nodes",
             "declare them (`PARAMETERS` in each node's module). Made by `python -m otpr_ros.nodes.parameters_doc",
             "> docs/parameters.md`; `test/unit/test_parameters_doc.py` fails when it is out of date. Set them in",
             "`config/nodes.yaml` or `config/<task>.yaml` (README, Configuration); read-only ones are taken "
             "at start only.",
             "What the nodes do: [interface.md](interface.md)."]
    for node in NODES:
        lines += ["", f"## `{node}`", "", "| parameter | default | range | read-only | description |",
                  "| --- | --- | --- | --- | --- |"]
        for name, default, description, bounds, read_only in node_parameters(node):
            span = "any type" if bounds == ANY_TYPE else "" if bounds is None else f"{bounds[0]} .. {bounds[1]}"
            lines.append(f"| `{name}` | {cell(default)} | {span} | {'yes' if read_only else ''} | "
                         f"{description.replace('|', chr(92) + '|')} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render(), end="")
