"""docs/interface.md's table of topics and services against what the nodes announce on DDS."""

import re
import signal
from pathlib import Path

import pytest

pytest.importorskip("rclpy", reason="rclpy is not installed (the ros extra)")
pytest.importorskip("robosuite", reason="the simulation extra is not installed")

from model_fixtures import make_tiny_model  # noqa: E402
from ros_fixtures import PrivateNode, domain, start_node  # noqa: E402

DOMAIN = domain(70)
NAMESPACE = "/t70"
DOC = Path(__file__).resolve().parents[2] / "docs" / "interface.md"
ROW = re.compile(r"^\| (\w+) \| (publishes|subscribes|service) \| `([\w/]+)` \| `([\w/]+)` \| ([a-z ,]*?) ?\|$")
ROS_OWN = ("/rosout", "/parameter_events", "/describe_parameters", "/get_parameter_types", "/get_parameters",
           "/get_type_description", "/list_parameters", "/set_parameters", "/set_parameters_atomically")


def documented() -> dict:
    """{node: {(endpoint, name relative to the namespace, type, qos)}} from the doc's table."""
    table = {}
    for line in DOC.read_text().splitlines():
        match = ROW.match(line)
        if match:
            node, endpoint, name, kind, qos = match.groups()
            table.setdefault(node, set()).add((endpoint, name, kind, qos))
    return table


def announced(graph, node: str) -> set:
    """What ``node`` in NAMESPACE announces, as the doc's rows."""
    rows = set()
    if (node, NAMESPACE) not in graph.get_node_names_and_namespaces():
        return rows
    for endpoint, names, infos in (
            ("publishes", graph.get_publisher_names_and_types_by_node, graph.get_publishers_info_by_topic),
            ("subscribes", graph.get_subscriber_names_and_types_by_node, graph.get_subscriptions_info_by_topic),
            ("service", graph.get_service_names_and_types_by_node, None)):
        for topic, kinds in names(node, NAMESPACE):
            if topic.endswith(ROS_OWN):
                continue
            qos = ""
            for info in infos(topic) if infos else ():
                if (info.node_name, info.node_namespace) == (node, NAMESPACE):
                    profile = info.qos_profile
                    qos = (f"{profile.reliability.name.lower().replace('_', ' ')}, "
                           f"{profile.durability.name.lower().replace('_', ' ')}")
            rows.update((endpoint, topic.removeprefix(NAMESPACE + "/"), kind, qos) for kind in kinds)
    return rows


def test_the_interface_table_is_what_the_nodes_announce(tmp_path):
    table = documented()
    assert set(table) == {"policy_server", "sim_bridge", "learner", "transition_recorder", "sim_operator"} and \
        sum(map(len, table.values())) >= 35, table
    model = make_tiny_model(tmp_path)
    processes = [start_node("otpr_ros.nodes.learner", DOMAIN, NAMESPACE, f"model_dir:={model}",
                            f"output_dir:={tmp_path / 'run'}", "device:=cpu"),
                 start_node("otpr_ros.nodes.policy_server", DOMAIN, NAMESPACE, f"model_dir:={model}", "device:=cpu"),
                 start_node("otpr_ros.nodes.sim_bridge", DOMAIN, NAMESPACE, f"model_dir:={model}"),
                 start_node("otpr_ros.nodes.transition_recorder", DOMAIN, NAMESPACE, f"model_dir:={model}"),
                 start_node("otpr_ros.nodes.sim_operator", DOMAIN, NAMESPACE)]
    watcher = PrivateNode(DOMAIN, "watcher", NAMESPACE)
    try:
        # every documented row seen (DDS discovery is gradual), then nothing more nor different
        watcher.wait_for(lambda: all(rows <= announced(watcher.node, node) for node, rows in table.items()), 240)
        for node, rows in table.items():
            seen = announced(watcher.node, node)
            assert seen == rows, f"{node}: announced, not in docs/interface.md: {sorted(seen - rows)}; " \
                                 f"in the doc, not announced: {sorted(rows - seen)}"
    finally:
        for process in processes:
            process.send_signal(signal.SIGINT)
        outputs = [process.communicate(timeout=60)[0] for process in processes]
        watcher.close()
    failed = {process.args[2]: (process.returncode, output[-1500:])
              for process, output in zip(processes, outputs) if process.returncode != 0}
    assert not failed, f"exit codes after SIGINT (module: code, the end of its output): {failed}"
