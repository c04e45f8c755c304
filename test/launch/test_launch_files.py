"""Each launch file and the pip-only runner read the same graph definition.

`launch`/`launch_ros` are not on PyPI, so on pip-only machines the launch files run
against a recording double of the launch API (it records what the launch file builds);
where ROS 2 is installed, `test_launch_files_with_real_launch_ros` runs them for real.
"""

from __future__ import annotations

import importlib
import runpy
import shutil
import sys
import types
from pathlib import Path

import pytest
import yaml

from conftest import BIN, REPO, run_command
from dmo_ros.graphs.definition import available_graphs, load_graph, resolve_graph

LAUNCH_FILES = sorted((REPO / "launch").glob("*.launch.py"))


class Recorded:
    """Stands in for a launch action: keeps its constructor arguments."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


class RecordedConfiguration(Recorded):
    def perform(self, context: dict) -> str:
        return context[self.args[0]]


def recording_launch_api() -> dict[str, types.ModuleType]:
    modules = {name: types.ModuleType(name) for name in
               ("launch", "launch.actions", "launch.substitutions", "launch_ros", "launch_ros.actions")}
    modules["launch"].LaunchDescription = lambda actions: list(actions)
    modules["launch"].LaunchContext = dict
    for name in ("DeclareLaunchArgument", "OpaqueFunction", "Shutdown"):
        setattr(modules["launch.actions"], name, type(name, (Recorded,), {}))
    modules["launch.substitutions"].LaunchConfiguration = RecordedConfiguration
    modules["launch_ros.actions"].Node = type("Node", (Recorded,), {})
    return modules


def run_launch_file(path: Path, monkeypatch, overrides: dict[str, str] | None = None) -> tuple[dict, list[dict]]:
    """Run a launch file against the double: (declared argument defaults, Node kwargs)."""
    for name, module in recording_launch_api().items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.delitem(sys.modules, "dmo_ros.nodes.launch_actions", raising=False)
    importlib.import_module("dmo_ros.nodes.launch_actions")
    description = runpy.run_path(str(path))["generate_launch_description"]()
    declared = {
        a.args[0]: a.kwargs["default_value"] for a in description if type(a).__name__ == "DeclareLaunchArgument"
    }
    [opaque] = [a for a in description if type(a).__name__ == "OpaqueFunction"]
    context = {**declared, **(overrides or {})}  # what `ros2 launch ... name:=value` puts in the context
    nodes = [node.kwargs for node in opaque.kwargs["function"](context)]
    monkeypatch.delitem(sys.modules, "dmo_ros.nodes.launch_actions")
    return declared, nodes


def test_every_graph_has_a_launch_file():
    assert sorted(p.name.removesuffix(".launch.py") for p in LAUNCH_FILES) == available_graphs()


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_builds_the_nodes_the_runner_starts(path, monkeypatch):
    graph = load_graph(path.name.removesuffix(".launch.py"))
    declared, nodes = run_launch_file(path, monkeypatch)
    assert list(declared) == [a.name for a in graph.arguments]
    expected = resolve_graph(graph, {})
    assert [n["name"] for n in nodes] == [n.name for n in expected]
    for built, node in zip(nodes, expected, strict=True):
        assert built["executable"] == node.executable and built["package"] == node.package
        assert built["parameters"] == ([node.parameters] if node.parameters else [])
        assert built["remappings"] == list(node.remappings)
        assert (built["on_exit"] is not None) == node.required


def test_launch_arguments_reach_the_nodes_as_in_the_runner(monkeypatch, ros_env):
    path = REPO / "launch" / "collect.launch.py"
    _, nodes = run_launch_file(path, monkeypatch, {"robot": "go2", "duration": "12.5", "output": "/data/bags"})
    dry = run_command([str(BIN / "dmo-launch"), "collect", "robot:=go2", "duration:=12.5", "output:=/data/bags",
                       "--dry-run"], ros_env)
    assert dry.returncode == 0, dry.stdout
    runner_nodes = yaml.safe_load(dry.stdout)["nodes"]
    assert [n["name"] for n in nodes] == [n["name"] for n in runner_nodes] == ["go2_standin", "teleop", "recorder"]
    for built, planned in zip(nodes, runner_nodes, strict=True):
        assert (built["parameters"] or [{}])[0] == planned["parameters"]
        assert dict(built["remappings"]) == planned["remappings"]
    assert nodes[2]["parameters"][0]["duration"] == 12.5


def test_changing_the_definition_changes_both_launchers(tmp_path, monkeypatch, ros_env):
    config = tmp_path / "config"
    shutil.copytree(REPO / "config", config)
    smoke = yaml.safe_load((config / "graphs" / "smoke.yaml").read_text())
    smoke["arguments"]["duration"]["default"] = 7.25
    smoke["nodes"][1]["parameters"]["min_messages"] = 42
    (config / "graphs" / "smoke.yaml").write_text(yaml.safe_dump(smoke))
    monkeypatch.setenv("DMO_ROS_CONFIG_DIR", str(config))

    declared, nodes = run_launch_file(REPO / "launch" / "smoke.launch.py", monkeypatch)
    assert declared["duration"] == "7.25"
    assert nodes[1]["parameters"][0] == {"duration": 7.25, "min_messages": 42, "image_qos": "sensor_data"}

    dry = run_command([str(BIN / "dmo-launch"), "smoke", "--dry-run"], {**ros_env, "DMO_ROS_CONFIG_DIR": str(config)})
    assert dry.returncode == 0, dry.stdout
    monitor = yaml.safe_load(dry.stdout)["nodes"][1]
    assert monitor["parameters"] == {"duration": 7.25, "min_messages": 42, "image_qos": "sensor_data"}


def test_launch_files_with_real_launch_ros():
    launch_ros = pytest.importorskip(
        "launch_ros",
        reason="launch_ros is not installed here (pip-only machine: ROS 2 launch is not on PyPI); "
        "the launch files were run against the recording double of the launch API instead",
    )
    from launch.actions import DeclareLaunchArgument, OpaqueFunction

    from launch import LaunchContext

    for path in LAUNCH_FILES:
        graph = load_graph(path.name.removesuffix(".launch.py"))
        description = runpy.run_path(str(path))["generate_launch_description"]()
        context = LaunchContext()
        for action in description.entities:
            if isinstance(action, DeclareLaunchArgument):
                action.visit(context)
        [opaque] = [a for a in description.entities if isinstance(a, OpaqueFunction)]
        nodes = opaque.execute(context)
        assert all(isinstance(n, launch_ros.actions.Node) for n in nodes)
        assert [n.node_executable for n in nodes] == [n.executable for n in resolve_graph(graph, {})]
