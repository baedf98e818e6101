"""The reference pages say what the code does: the parameter reference is the nodes' own tables."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_the_parameter_reference_is_the_nodes_tables():
    pytest.importorskip("rclpy")
    from otpr_ros.nodes.parameters_doc import render
    assert (ROOT / "docs" / "parameters.md").read_text() == render(), \
        "docs/parameters.md is out of date: python -m otpr_ros.nodes.parameters_doc > docs/parameters.md"


def test_nodes_declare_parameters_only_through_their_tables():
    for path in (ROOT / "otpr_ros" / "nodes").glob("*.py"):
        if path.name != "node_main.py":
            assert "declare_parameter(" not in path.read_text(), f"{path.name} declares a parameter off its table"
