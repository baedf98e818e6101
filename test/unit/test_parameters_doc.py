"""The README and the reference pages say what the code does: the parameter reference is the
nodes' own tables, and every command the README shows parses with the tool it names."""

import argparse
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOLS = dict(re.findall(r'"(otpr-[\w-]+) = (otpr_ros\.[\w.]+):main"', (ROOT / "setup.py").read_text()))


def test_the_parameter_reference_is_the_nodes_tables():
    pytest.importorskip("rclpy")
    from otpr_ros.nodes.parameters_doc import render
    assert (ROOT / "docs" / "parameters.md").read_text() == render(), \
        "docs/parameters.md is out of date: python -m otpr_ros.nodes.parameters_doc > docs/parameters.md"


def test_nodes_declare_parameters_only_through_their_tables():
    for path in (ROOT / "otpr_ros" / "nodes").glob("*.py"):
        if path.name != "node_main.py":
            assert "declare_parameter(" not in path.read_text(), f"{path.name} declares a parameter off its table"


def readme_commands():
    """Every otpr-* command line in the README: code-block lines (continuations joined) and
    table cells."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "README.md").read_text())
    commands = re.findall(r"^(?:\.venv/bin/)?(otpr-[\w-]+[^#\n]*)", text, re.M)
    commands += re.findall(r"\| `(otpr-[\w-]+[^`]*)` \|", text)
    return sorted({c.strip() for c in commands})


class Parsed(Exception):
    pass


def parse_only(monkeypatch, command: str):
    """Run the tool's own argument parsing on the command and stop there."""
    name, *argv = shlex.split(command)
    assert name in TOOLS, f"README names {name}, which setup.py does not install"
    original = argparse.ArgumentParser.parse_args

    def parse_and_stop(self, args=None, namespace=None):
        raise Parsed(original(self, args, namespace))
    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_and_stop)
    main = __import__(TOOLS[name], fromlist=["main"]).main
    with pytest.raises(Parsed):
        main(argv)


def test_every_readme_command_parses_with_the_tool_it_names(monkeypatch):
    commands = readme_commands()
    assert len(commands) >= 8, commands
    for command in commands:
        with monkeypatch.context() as patch:
            parse_only(patch, command)


@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_every_tool_answers_help_with_usage_and_an_example(tool, capsys):
    main = __import__(TOOLS[tool], fromlist=["main"]).main
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0 and out.startswith(f"usage: {tool}")
    examples = [line for line in out.splitlines()[1:] if line.strip().startswith(tool + " ")]
    assert examples, f"{tool} --help shows no example command"


def test_every_relative_link_in_the_readme_and_docs_resolves():
    pages = [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "docs" / "experiments").glob("*.md")]
    for page in pages:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if not target.startswith(("http://", "https://")):
                assert (page.parent / target).exists(), f"{page.relative_to(ROOT)} links to missing {target}"
