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
from contextlib import contextmanager
from pathlib import Path

import launch_double
import pytest
import yaml
from launchers import every_graph_executable, make_ament_prefix

from conftest import BIN, REPO, run_command
from dmo_ros.graphs.definition import GraphError, available_graphs, load_graph, resolve_graph

LAUNCH_FILES = sorted((REPO / "launch").glob("*.launch.py"))


@pytest.fixture
def executables_prefix(tmp_path, monkeypatch) -> Path:
    """Graphs name executables not installed yet (policy, dream): stubs stand for them."""
    return every_graph_executable(tmp_path / "prefix", monkeypatch)


LAUNCH_ACTIONS = "dmo_ros.nodes.launch_actions"


@contextmanager
def launch_double_installed():
    """``launch``/``launch_ros`` replaced by the double while inside; every module entry
    (``dmo_ros.nodes.launch_actions`` built on the double included) restored exactly after,
    so a test that runs later with the real launch_ros never sees the double."""
    import dmo_ros.nodes

    names = (*launch_double.MODULE_NAMES, LAUNCH_ACTIONS)
    saved = {name: sys.modules.get(name) for name in names}
    saved_attribute = dmo_ros.nodes.__dict__.get("launch_actions")
    sys.modules.update(launch_double.modules())
    sys.modules.pop(LAUNCH_ACTIONS, None)
    try:
        yield importlib.import_module(LAUNCH_ACTIONS)
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
        if saved_attribute is None:
            dmo_ros.nodes.__dict__.pop("launch_actions", None)
        else:
            dmo_ros.nodes.launch_actions = saved_attribute


def run_launch_file(path: Path, overrides: dict[str, str] | None = None, argv: list[str] | None = None):
    """Run a launch file against the double: (declared argument defaults, Node kwargs)."""
    with launch_double_installed():
        description = runpy.run_path(str(path))["generate_launch_description"]()
        declared = {
            a.args[0]: a.kwargs["default_value"] for a in description if type(a).__name__ == "DeclareLaunchArgument"
        }
        [opaque] = [a for a in description if type(a).__name__ == "OpaqueFunction"]
        # What `ros2 launch ... name:=value` puts in the context: the tokens and the configurations.
        context = launch_double.LaunchContext(argv, {**declared, **(overrides or {})})
        nodes = [node.kwargs for node in opaque.kwargs["function"](context)]
    return declared, nodes


def test_every_graph_has_a_launch_file():
    assert sorted(p.name.removesuffix(".launch.py") for p in LAUNCH_FILES) == available_graphs()


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_builds_the_nodes_the_runner_starts(path, executables_prefix):
    graph = load_graph(path.name.removesuffix(".launch.py"))
    declared, nodes = run_launch_file(path)
    assert list(declared) == [a.name for a in graph.arguments]
    expected = resolve_graph(graph, {})
    assert [n["name"] for n in nodes] == [n.name for n in expected]
    for built, node in zip(nodes, expected, strict=True):
        assert built["executable"] == node.executable and built["package"] == node.package
        assert built["parameters"] == ([node.parameters] if node.parameters else [])
        assert built["remappings"] == list(node.remappings)
        assert callable(built["on_exit"])  # exit codes and required nodes: test_launch_parity.py


def test_launch_arguments_reach_the_nodes_as_in_the_runner(ros_env, executables_prefix):
    path = REPO / "launch" / "collect.launch.py"
    _, nodes = run_launch_file(path, {"robot": "go2", "duration": "12.5", "output": "/data/bags"})
    dry = run_command([str(BIN / "dmo-launch"), "collect", "robot:=go2", "duration:=12.5", "output:=/data/bags",
                       "--dry-run"], ros_env)
    assert dry.returncode == 0, dry.stdout
    runner_nodes = yaml.safe_load(dry.stdout)["nodes"]
    assert [n["name"] for n in nodes] == [n["name"] for n in runner_nodes] == ["go2_standin", "teleop", "recorder"]
    for built, planned in zip(nodes, runner_nodes, strict=True):
        assert (built["parameters"] or [{}])[0] == planned["parameters"]
        assert dict(built["remappings"]) == planned["remappings"]
    assert nodes[2]["parameters"][0]["duration"] == 12.5


def test_changing_the_definition_changes_both_launchers(tmp_path, monkeypatch, ros_env, executables_prefix):
    config = tmp_path / "config"
    shutil.copytree(REPO / "config", config)
    smoke = yaml.safe_load((config / "graphs" / "smoke.yaml").read_text())
    smoke["arguments"]["duration"]["default"] = 7.25
    smoke["nodes"][1]["parameters"]["min_messages"] = 42
    (config / "graphs" / "smoke.yaml").write_text(yaml.safe_dump(smoke))
    monkeypatch.setenv("DMO_ROS_CONFIG_DIR", str(config))

    declared, nodes = run_launch_file(REPO / "launch" / "smoke.launch.py")
    assert declared["duration"] == "7.25"
    assert nodes[1]["parameters"][0] == {"duration": 7.25, "min_messages": 42, "image_qos": "sensor_data"}

    dry = run_command([str(BIN / "dmo-launch"), "smoke", "--dry-run"], {**ros_env, "DMO_ROS_CONFIG_DIR": str(config)})
    assert dry.returncode == 0, dry.stdout
    monitor = yaml.safe_load(dry.stdout)["nodes"][1]
    assert monitor["parameters"] == {"duration": 7.25, "min_messages": 42, "image_qos": "sensor_data"}


def test_launch_files_with_real_launch_ros(executables_prefix):
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


def test_the_double_leaves_no_module_behind(executables_prefix):
    # A launch_actions built on the double and left in sys.modules broke the real-launch test
    # run after it ("'list' object has no attribute 'entities'") wherever launch_ros is installed.
    names = (*launch_double.MODULE_NAMES, LAUNCH_ACTIONS)
    before = {name: sys.modules.get(name) for name in names}
    run_launch_file(REPO / "launch" / "smoke.launch.py")
    assert {name: sys.modules.get(name) for name in names} == before
    import dmo_ros.nodes

    assert getattr(dmo_ros.nodes, "launch_actions", None) is before[LAUNCH_ACTIONS]


def test_an_undeclared_command_line_argument_is_rejected(executables_prefix):
    with pytest.raises(GraphError, match="unknown launch argument 'robt' for graph 'collect'; it takes: robot, "):
        run_launch_file(REPO / "launch" / "collect.launch.py", argv=["robt:=go2"])
    _, nodes = run_launch_file(REPO / "launch" / "collect.launch.py", {"robot": "go2"}, argv=["robot:=go2"])
    assert nodes[0]["name"] == "go2_standin"


def test_show_args_lists_the_values_of_an_auto_default(executables_prefix):
    with launch_double_installed():
        description = runpy.run_path(str(REPO / "launch" / "collect.launch.py"))["generate_launch_description"]()
    [action_topic] = [a for a in description if a.args[:1] == ("action_topic",)]
    assert action_topic.kwargs["default_value"] == "auto"
    assert action_topic.kwargs["description"].endswith(
        "(auto: robot pusht: /servo_node/delta_twist_cmds, robot go2: /cmd_vel)"
    )


def test_a_missing_executable_is_a_graph_error_before_any_node(tmp_path, monkeypatch):
    make_ament_prefix(tmp_path / "prefix", {"dmo_ros": ["teleop", "recorder"]})  # no stand-in, no joy
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(tmp_path / "prefix"))
    with pytest.raises(GraphError) as raised:
        run_launch_file(REPO / "launch" / "collect.launch.py", {"operator": "joy"})
    message = str(raised.value)
    assert message.startswith("graph 'collect' cannot start:\n")
    assert "node 'pusht_standin' needs executable 'pusht_standin' of package 'dmo_ros', launch_ros cannot find it: " \
           "executable 'pusht_standin' not found on the libexec directory" in message
    assert "node 'joy_node' needs executable 'joy_node' of package 'joy', launch_ros cannot find it: " \
           "package 'joy' not found" in message
    assert "node 'teleop'" not in message and "node 'recorder'" not in message


@pytest.mark.parametrize(
    ("required", "shutting_down", "code", "expected"),
    [
        (True, False, 0, "Shutdown"),
        (True, False, 3, "required node 'worker' failed (exit code 3); stopping the graph"),
        (True, False, -9, "required node 'worker' failed (exit code -9); stopping the graph"),
        (False, False, 3, None),  # launch reports it; the graph goes on, as with dmo-launch
        (False, False, 0, None),
        (True, True, 0, None),
        (False, True, -2, None),  # stopped by SIGINT or SIGTERM as asked
        (False, True, -15, None),
        (False, True, -9, "node 'worker' did not stop cleanly (exit code -9)"),  # had to be killed
        (True, True, 1, "node 'worker' did not stop cleanly (exit code 1)"),
    ],
)
def test_exit_handler_codes(required, shutting_down, code, expected):
    with launch_double_installed() as launch_actions:
        node = resolve_graph(load_graph("smoke"), {})[0]
        handler = launch_actions.exit_handler(type(node)(**{**node.__dict__, "name": "worker", "required": required}))
        context = launch_double.LaunchContext()
        context.is_shutdown = shutting_down
        event = launch_double.ProcessExited(code)
        if expected in ("Shutdown", None):
            actions = handler(event, context)
            assert [type(a).__name__ for a in actions or []] == ([expected] if expected else [])
        else:
            with pytest.raises(GraphError) as raised:
                handler(event, context)
            assert str(raised.value) == expected
