"""otpr-launch: start the package's nodes where there is no ``ros2`` command line (pip-only).

Starts the same executables with the same parameter files as ``finetune.launch.py`` and
``serve.launch.py`` (otpr_ros/launch_plan.py), each in its own process on DDS:

    otpr-launch finetune --task lift --num-envs 2        (ros2 launch otpr_ros finetune.launch.py ...)
    otpr-launch serve --task lift --backend onnx --namespace arm

Ctrl-C (or SIGTERM, SIGHUP) stops every node, the bridges and recorders first, and exits 0. When a node
exits by itself the others are stopped too: exit 0 if it finished its work (a bridge after
``--episodes``), 1 if it failed.
"""

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from otpr_ros.launch_plan import FINETUNE_ARGUMENTS, SERVE_ARGUMENTS, plan_from_arguments, prepare
from otpr_ros.package_files import node_configs

STOP_TIMEOUT = 15.0      # s a node gets to shut down after SIGINT before it is killed
FEEDERS = ("sim_bridge", "transition_recorder")     # stopped first: they wait for the learner's acknowledgements


def node_command(plan, configs: list, overrides: Path) -> list:
    """The node's process: its parameter files in order (a later value wins), then the plan's."""
    files = [arg for path in (*configs, overrides) for arg in ("--params-file", str(path))]
    command = [sys.executable, "-m", plan.module, "--ros-args", *files, "-r", f"__ns:={plan.namespace}",
               "-r", f"__node:={plan.name}"]
    for source, target in plan.remappings.items():
        command += ["-r", f"{source}:={target}"]
    return command + (["--enclave", plan.enclave] if plan.enclave else [])


def write_overrides(plan, directory: Path) -> Path:
    """The plan's parameters as a parameter file (typed exactly, unlike ``-p name:=value``)."""
    path = directory / f"{plan.full_name.strip('/').replace('/', '.')}.yaml"
    path.write_text(yaml.safe_dump({plan.full_name: {"ros__parameters": plan.parameters}}))
    return path


def stop(processes: dict, first=()) -> None:
    """SIGINT to the nodes named in ``first`` (bridges, recorders: they wait, up to their
    drain_timeout, for the learner to acknowledge their last transitions), then to the others."""
    bridges = {name: p for name, p in processes.items() if name in first}
    for group in (bridges, {name: p for name, p in processes.items() if name not in bridges}):
        for process in group.values():
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        deadline = time.monotonic() + STOP_TIMEOUT
        for name, process in group.items():
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                print(f"otpr-launch: {name} did not stop in {STOP_TIMEOUT:.0f} s; killed", file=sys.stderr)
                process.kill()
                process.wait()


def run(plan, task: str, keys: list) -> int:
    interrupted = []
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda number, frame: interrupted.append(number))
    configs = node_configs(task)
    print(f"otpr-launch: parameters from {', '.join(str(c) for c in configs)}, then the launch's arguments "
          "(a later value wins)", flush=True)
    print(f"otpr-launch: policy updates signed with {keys[0]}" if keys else
          "otpr-launch: policy updates UNSIGNED: anyone on the domain may swap the served policy", flush=True)
    with tempfile.TemporaryDirectory(prefix="otpr-launch-") as directory:
        processes = {}
        for node in plan:
            command = node_command(node, configs, write_overrides(node, Path(directory)))
            # a process group of its own: a terminal's Ctrl-C reaches only this launcher, which
            # stops the nodes in order (bridges and recorders first)
            processes[node.full_name] = subprocess.Popen(command, process_group=0,
                                                         env=dict(os.environ, **node.environment))
            print(f"otpr-launch: started {node.full_name} (pid {processes[node.full_name].pid})", flush=True)
        code = 0
        while not interrupted:
            ended = {name: p.returncode for name, p in processes.items() if p.poll() is not None}
            if ended:
                name, returncode = next(iter(ended.items()))
                code = 0 if returncode == 0 else 1
                print(f"otpr-launch: {name} exited with code {returncode}; stopping the others", file=sys.stderr)
                break
            time.sleep(0.2)
        stop(processes, first={node.full_name for node in plan if node.executable in FEEDERS})
    return code


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="otpr-launch", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    for kind, arguments, text in (("finetune", FINETUNE_ARGUMENTS, "as finetune.launch.py"),
                                  ("serve", SERVE_ARGUMENTS, "the policy server alone, as serve.launch.py")):
        command = commands.add_parser(kind, help=text)
        for name, (default, help_text) in arguments.items():       # the launch file's arguments
            command.add_argument(f"--{name.replace('_', '-')}", dest=name, default=default,
                                 help=f"{help_text} (default {default!r})")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    values = vars(args)
    try:
        plan = plan_from_arguments(args.command, values)
        keys = prepare(plan)
    except (ValueError, OSError) as error:
        print(f"otpr-launch: {error}", file=sys.stderr)
        return 2
    return run(plan, args.task, keys)


if __name__ == "__main__":
    sys.exit(main())
