"""``--help`` of the node executables: usage and parameters, exit 0, and nothing started (no rclpy.init, no files).

Before, ``recorder --help`` started recording (an empty ``bags/<ts>/session.yaml``) and the other nodes ignored
``--help`` and ran until killed."""

from __future__ import annotations

import dataclasses
import importlib
import re
import subprocess
from pathlib import Path

import pytest

from conftest import BIN, REPO
from dmo_ros.nodes import node_help, stop_signals
from dmo_ros.nodes.node_help import help_requested
from dmo_ros.nodes.stop_signals import STOP_SIGNALS

# Every node executable setup.py installs (NODE_EXECUTABLES), so a new node is checked too.
NODE_EXECUTABLES = re.findall(r'"(\w+)"', re.search(r"for name in \(([^)]*)\)", (REPO / "setup.py").read_text())[1])


def test_setup_py_lists_the_node_executables() -> None:
    assert {"test_pattern", "topic_monitor", "pusht_standin", "go2_standin", "teleop", "recorder", "policy",
            "dream"} <= set(NODE_EXECUTABLES)


@pytest.mark.parametrize(("argv", "wanted"), [
    (["--help"], True),
    (["-h"], True),
    (["--help", "--ros-args", "-p", "duration:=1.0"], True),
    (["--ros-args", "-p", "duration:=1.0", "--", "-h"], True),  # `--` ends the ROS arguments
    ([], False),
    (["--ros-args", "-p", "duration:=1.0", "-r", "camera/image:=/cam"], False),
    (["--ros-args", "--help"], False),  # inside --ros-args: rclpy's, passed on unchanged
    (["--helpful"], False),
])
def test_help_is_asked_outside_the_ros_arguments_only(argv: list[str], wanted: bool) -> None:
    assert help_requested(argv) is wanted


@pytest.fixture
def no_ros(monkeypatch):
    """rclpy.init fails the test: a help request must return before it. Signal handlers are left as they were."""
    from dmo_ros.nodes import template

    def init(*_args, **_kwargs):
        raise AssertionError("--help started rclpy")

    monkeypatch.setattr(template.rclpy, "init", init)
    monkeypatch.setattr(stop_signals, "ask_for_signal_on_parent_death", lambda: None)
    saved = {sig: stop_signals.signal.getsignal(sig) for sig in STOP_SIGNALS}
    yield
    for sig, handler in saved.items():
        stop_signals.signal.signal(sig, handler)


@pytest.mark.parametrize("flag", ["--help", "-h"])
@pytest.mark.parametrize("name", NODE_EXECUTABLES)
def test_every_node_prints_its_help_and_exits_0_without_starting_ros(name: str, flag: str, no_ros, capsys) -> None:
    module = importlib.import_module(f"dmo_ros.nodes.{name}")
    assert module.main([flag]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: ros2 run dmo_ros {name} ")
    assert "--ros-args -p NAME:=VALUE" in out and f"ros2 run dmo_ros {name} --ros-args -p " in out
    assert module.__doc__.splitlines()[0].replace("``", "") in out  # what the node does, its topics
    parameters = node_help.parameter_types(module)
    assert parameters, f"{name} defines no parameter dataclass"
    for field in (f for kind in parameters for f in dataclasses.fields(kind)):
        assert f"\n  {field.name} (" in out, f"{name} --help does not name the parameter {field.name}"
    assert "``" not in out and ":class:`" not in out  # docstrings written for Sphinx, shown as plain text


def test_ros_arguments_still_reach_rclpy_unchanged(no_ros, monkeypatch) -> None:
    from dmo_ros.nodes import recorder, template

    given: list[list[str] | None] = []
    monkeypatch.setattr(template, "_run", lambda _make, args, _stop, _threads: given.append(args) or 0)
    ros_args = ["--ros-args", "-p", "duration:=1.0", "-r", "/camera/image:=/cam", "--help"]
    assert recorder.main(ros_args) == 0
    assert given == [ros_args]


def test_recorder_help_creates_no_session_folder(tmp_path: Path) -> None:
    """The installed console script, as `ros2 run dmo_ros recorder --help` runs it, in an empty folder."""
    result = subprocess.run([str(BIN / "recorder"), "--help"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: ros2 run dmo_ros recorder ") and "output (str, default 'bags')" in (
        result.stdout)
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []  # no bags/<timestamp>/session.yaml


# -- arguments no node reads: refused before rclpy.init ------------------------------------------------------------

@pytest.mark.parametrize(("argv", "unexpected"), [
    (["--duration", "5"], ["--duration", "5"]),  # an option, as other tools take it
    (["5"], ["5"]),  # a stray positional
    (["--ros-args", "-p", "duration:=5", "--", "--duration", "5"], ["--duration", "5"]),  # after the block closes
    (["duration:=5", "--ros-args", "-p", "output:=b"], ["duration:=5"]),  # a parameter outside the block
    (["--ros-args", "-p", "duration:=5", "-r", "__node:=x", "--params-file", "f.yaml", "--log-level", "debug"], []),
    (["--ros-args", "-r", "__node:=x", "--", "--ros-args", "-p", "duration:=5"], []),  # two blocks
    (["--help", "--ros-args", "-p", "duration:=5"], []),  # help is answered, not refused
    ([], []),
])
def test_arguments_outside_the_ros_arguments_are_unexpected(argv: list[str], unexpected: list[str]) -> None:
    assert node_help.unexpected_arguments(argv) == unexpected


@pytest.mark.parametrize(("argv", "fix"), [
    (["--duration", "5"], "use --ros-args -p duration:=5;"),
    (["--duration=5"], "use --ros-args -p duration:=5;"),
    (["--split-duration", "60"], "use --ros-args -p split_duration:=60;"),
    (["--durration", "5"], "use --ros-args -p duration:=5;"),  # the closest parameter
    (["duration:=5"], "use --ros-args -p duration:=5;"),
    (["__node:=rec"], "use --ros-args -r __node:=rec;"),  # a remapping, as rcl once read it outside --ros-args
    (["5"], "use --ros-args -p NAME:=VALUE;"),
    (["--ros-args", "-p", "output:=b", "--", "--fsync"], "use --ros-args -p fsync:=VALUE;"),
])
def test_recorder_refuses_an_argument_it_does_not_read_with_the_fix(argv: list[str], fix: str, no_ros,
                                                                   capsys) -> None:
    from dmo_ros.nodes import recorder

    assert recorder.main(argv) == 2  # no_ros: rclpy.init was never reached
    captured = capsys.readouterr()
    assert captured.out == ""
    line = captured.err.strip()
    assert "\n" not in line, line
    unexpected = node_help.unexpected_arguments(argv)
    plural = "s" if len(unexpected) > 1 else ""
    assert line.startswith(f"[ERROR] recorder: unexpected argument{plural} '{' '.join(unexpected)}'"), line
    assert fix in line and "its parameters: topics, output, storage, duration," in line


@pytest.mark.parametrize("name", NODE_EXECUTABLES)
def test_every_node_refuses_an_unexpected_argument_before_starting_ros(name: str, no_ros, capsys) -> None:
    module = importlib.import_module(f"dmo_ros.nodes.{name}")
    assert module.main(["--ros-args", "-r", "__node:=x", "--", "--unknown-flag"]) == 2
    assert f"{name}: unexpected argument '--unknown-flag'" in capsys.readouterr().err


def test_the_launchers_node_command_lines_are_accepted(no_ros, monkeypatch, tmp_path: Path) -> None:
    """Every node of every graph, with dmo-launch's command line (``GraphRunner._command``) and launch_ros's
    (``Node`` without ``arguments=``: the executable, then one ``--ros-args`` block), reaches rclpy unchanged."""
    from dmo_ros.graphs import runner
    from dmo_ros.graphs.definition import available_graphs, load_graph, resolve_graph
    from dmo_ros.nodes import template

    given: list[list[str] | None] = []
    monkeypatch.setattr(template, "_run", lambda _make, args, _stop, _threads: given.append(args) or 0)
    monkeypatch.setattr(runner, "find_executable", lambda _package, executable: tmp_path / executable)
    checked = 0
    for graph in available_graphs():
        nodes = resolve_graph(load_graph(graph), {})
        for node in nodes:
            dmo_launch = runner.GraphRunner(graph, nodes)._command(node, tmp_path)[1:]
            launch_ros = ["--ros-args", "-r", f"__node:={node.name}", "--params-file", "/tmp/launch_params_x",
                          *[token for source, target in node.remappings for token in ("-r", f"{source}:={target}")]]
            module = importlib.import_module(f"dmo_ros.nodes.{node.executable}")
            for argv in (dmo_launch, launch_ros):
                given.clear()
                assert module.main(argv) == 0, (graph, node.name, argv)
                assert given == [argv]
                checked += 1
    assert checked >= 2 * len(available_graphs())


def test_recorder_with_an_option_records_nothing(tmp_path: Path) -> None:
    """The installed console script, as `ros2 run dmo_ros recorder --duration 5` runs it, in an empty folder."""
    result = subprocess.run([str(BIN / "recorder"), "--duration", "5"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "use --ros-args -p duration:=5;" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []  # no bags/<timestamp>/session.yaml
