"""The pip-only runner: process supervision, signal forwarding, exit codes, clear errors.

These graphs use small stand-in executables installed into a temporary prefix (found
through AMENT_PREFIX_PATH exactly as `ros2 run` would find them), so the runner's own
behaviour is tested in seconds; test/nodes runs it on real ROS 2 nodes.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import BIN, LiveRun, run_command

WAITER = """
import signal, sys, time
marker = sys.argv[sys.argv.index("--marker") + 1] if "--marker" in sys.argv else None
def stop(number, frame):
    print("got", signal.Signals(number).name, flush=True)
    if marker:
        open(marker, "a").write(signal.Signals(number).name + "\\n")
    sys.exit(0)
signal.signal(signal.SIGINT, stop)
signal.signal(signal.SIGTERM, stop)
print("ready", " ".join(sys.argv[1:]), flush=True)
time.sleep(60)
"""
CRASHER = """
import sys, time
print("working", flush=True)
time.sleep(0.5)
print("something broke", flush=True)
sys.exit(3)
"""
STUBBORN = """
import signal, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
print("ready", flush=True)
time.sleep(60)
"""


@pytest.fixture
def fake_prefix(tmp_path: Path) -> Path:
    """A prefix with lib/fakepkg/{waiter,crasher,stubborn}, like a colcon install."""
    lib = tmp_path / "prefix" / "lib" / "fakepkg"
    lib.mkdir(parents=True)
    for name, body in (("waiter", WAITER), ("crasher", CRASHER), ("stubborn", STUBBORN)):
        script = lib / name
        script.write_text(f"#!{sys.executable}\n{body}")
        script.chmod(0o755)
    return tmp_path / "prefix"


def write_graph(tmp_path: Path, nodes: list[dict]) -> Path:
    graph = {
        "description": "runner test",
        "arguments": {"marker": {"default": str(tmp_path / "marker"), "description": "signal log"}},
        "nodes": [{"package": "fakepkg", **node} for node in nodes],
    }
    path = tmp_path / "graph.yaml"
    path.write_text(yaml.safe_dump(graph))
    return path


def test_sigint_is_forwarded_once_and_the_graph_stops_cleanly(tmp_path, fake_prefix, ros_env):
    env = {**ros_env, "AMENT_PREFIX_PATH": str(fake_prefix)}
    graph = write_graph(tmp_path, [
        {"name": "first", "executable": "waiter", "parameters": {"rate": 2.5}},
        {"name": "second", "executable": "waiter", "remappings": {"camera/image": "/front/image"}},
    ])
    run = LiveRun([str(graph)], env)
    run.wait_for("ready", count=2)
    run.process.send_signal(signal.SIGINT)
    assert run.finish() == 0, run.output
    assert "[first] got SIGINT" in run.output and "[second] got SIGINT" in run.output
    assert "stopped cleanly (SIGINT received)" in run.output
    # Node name, parameters file and remappings reach the node as ros2 launch passes them.
    first = next(line for line in run.lines if line.startswith("[first] ready"))
    assert "--ros-args -r __node:=first --params-file" in first
    second = next(line for line in run.lines if line.startswith("[second] ready"))
    assert "-r camera/image:=/front/image" in second


SIGNAL_AT_EVERY_LINE = """
import signal, sys, time
from types import SimpleNamespace
from dmo_ros.graphs.runner import GraphRunner, _Running, install_stop_handlers

real_sleep = time.sleep
time.sleep = lambda seconds: real_sleep(0.001)  # the loop's 50 ms poll, shortened: the same lines, run faster

def stop_with_a_signal_at_line(target):
    runner = GraphRunner("g", [])
    install_stop_handlers(runner.request_stop)
    alive = _Running(SimpleNamespace(name="n", required=False), SimpleNamespace(poll=lambda: None), None)
    seen = 0
    def at_each_line(frame, event, arg):
        nonlocal seen
        if event == "line":
            seen += 1
            if seen == target:
                # The handler runs at the next bytecode boundary, with this line's locks still held.
                signal.raise_signal(signal.SIGINT)
        return at_each_line
    sys.settrace(at_each_line)
    try:
        runner._supervise([alive])
    finally:
        sys.settrace(None)
    assert runner._stop_reason == "SIGINT received", runner._stop_reason
    return seen

lines = range(1, 61)  # several rounds of the loop: every line of it and of what it calls, in turn
for line in lines:
    stop_with_a_signal_at_line(line)
print("stopped every time", len(lines), flush=True)
"""


def test_a_stop_signal_at_any_line_of_the_supervising_loop_stops_the_graph(ros_env):
    """The loop is run once per line it executes, with the SIGINT handler made to run at that line. A handler
    that sets a threading.Event deadlocked inside Event.wait's locked section: the runner never forwarded the
    SIGINT (nor SIGTERM: the handler could not run again) and needed SIGKILL."""
    result = subprocess.run([sys.executable, "-c", SIGNAL_AT_EVERY_LINE], env=ros_env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    assert result.returncode == 0, result.stdout
    assert "stopped every time 60" in result.stdout, result.stdout


def test_sigterm_is_forwarded_as_sigint(tmp_path, fake_prefix, ros_env):
    env = {**ros_env, "AMENT_PREFIX_PATH": str(fake_prefix)}
    run = LiveRun([str(write_graph(tmp_path, [{"name": "only", "executable": "waiter"}]))], env)
    run.wait_for("ready")
    run.process.send_signal(signal.SIGTERM)
    assert run.finish() == 0, run.output
    assert "[only] got SIGINT" in run.output


def test_a_crashed_required_node_stops_the_graph_with_a_non_zero_exit(tmp_path, fake_prefix, ros_env):
    env = {**ros_env, "AMENT_PREFIX_PATH": str(fake_prefix)}
    graph = write_graph(tmp_path, [
        {"name": "bystander", "executable": "waiter"},
        {"name": "worker", "executable": "crasher", "required": True},
    ])
    result = run_command([str(BIN / "dmo-launch"), str(graph)], env)
    assert result.returncode == 1, result.stdout
    assert "[worker] something broke" in result.stdout  # the node's last words come first
    assert "required node 'worker' failed (exit code 3); stopping the graph" in result.stdout
    assert "[bystander] got SIGINT" in result.stdout  # the others were stopped, not abandoned


def test_a_crashed_optional_node_is_reported_and_the_graph_goes_on(tmp_path, fake_prefix, ros_env):
    env = {**ros_env, "AMENT_PREFIX_PATH": str(fake_prefix)}
    graph = write_graph(tmp_path, [
        {"name": "keeper", "executable": "waiter"},
        {"name": "flaky", "executable": "crasher"},
    ])
    run = LiveRun([str(graph)], env)
    run.wait_for("node 'flaky' died (exit code 3); not required, the graph goes on")
    assert run.process.poll() is None
    run.process.send_signal(signal.SIGINT)
    assert run.finish() == 0, run.output


def test_a_node_that_ignores_sigint_is_escalated_and_reported(tmp_path, fake_prefix, ros_env):
    env = {**ros_env, "AMENT_PREFIX_PATH": str(fake_prefix)}
    graph = write_graph(tmp_path, [{"name": "mule", "executable": "stubborn"}])
    run = LiveRun([str(graph), "--stop-timeout", "0.5"], env)
    run.wait_for("ready")
    run.process.send_signal(signal.SIGINT)
    assert run.finish() == 1, run.output
    assert "'mule' did not stop; sending SIGTERM" in run.output
    assert "not cleanly" in run.output


def test_an_unknown_launch_argument_is_rejected_clearly(ros_env):
    result = run_command([str(BIN / "dmo-launch"), "smoke", "colour:=red"], ros_env)
    assert result.returncode == 2
    assert "unknown launch argument 'colour' for graph 'smoke'; it takes: duration, image_qos" in result.stdout


def test_a_missing_executable_is_named_before_anything_starts(tmp_path, ros_env):
    graph = {
        "description": "one installed node, one that is not",
        "nodes": [
            {"name": "pattern", "executable": "test_pattern"},
            {"name": "planner", "executable": "no_such_planner"},
        ],
    }
    path = tmp_path / "graph.yaml"
    path.write_text(yaml.safe_dump(graph))
    result = run_command([str(BIN / "dmo-launch"), str(path)], ros_env)
    assert result.returncode == 2
    assert ("node 'planner' needs executable 'no_such_planner' of package 'dmo_ros', which is not installed "
            "(installed dmo_ros executables: ") in result.stdout
    assert "node 'pattern'" not in result.stdout
    assert "started" not in result.stdout


def test_dry_run_and_show_args(ros_env):
    shown = run_command([str(BIN / "dmo-launch"), "collect", "--show-args"], ros_env)
    assert shown.returncode == 0 and "robot:=pusht (one of: pusht, go2)" in shown.stdout
    dry = run_command([str(BIN / "dmo-launch"), "collect", "robot:=go2", "duration:=10", "--dry-run"], ros_env)
    assert dry.returncode == 0, dry.stdout
    plan = yaml.safe_load(dry.stdout)
    assert [n["name"] for n in plan["nodes"]] == ["go2_standin", "teleop", "recorder"]
    assert plan["nodes"][2]["parameters"]["duration"] == 10.0


def test_a_killed_runners_parameter_folder_is_removed_by_the_next_run(tmp_path, fake_prefix, ros_env):
    """SIGKILL leaves the runner no chance to remove its nodes' parameter files; the next runner removes them."""
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    env = {**ros_env, "AMENT_PREFIX_PATH": str(fake_prefix), "TMPDIR": str(temporary)}
    graph = write_graph(tmp_path, [{"name": "only", "executable": "waiter", "parameters": {"rate": 5}}])
    killed = LiveRun([str(graph)], env)
    killed.wait_for("ready")
    killed.process.kill()
    killed.process.wait(timeout=10)
    (left,) = temporary.glob(f"dmo-launch-{killed.process.pid}-*")
    assert (left / "only.yaml").is_file()
    crashing = write_graph(tmp_path, [{"name": "worker", "executable": "crasher"}])
    result = run_command([str(BIN / "dmo-launch"), str(crashing)], env)
    assert "[worker] something broke" in result.stdout and not left.exists()
    assert not list(temporary.glob("dmo-launch-*"))  # the second run's own folder went at its end


def test_only_folders_of_runners_that_are_gone_are_removed(tmp_path):
    from dmo_ros.graphs.runner import remove_stale_parameter_folders

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        stale = tmp_path / f"dmo-launch-{gone.pid}-abc"
        live = tmp_path / f"dmo-launch-{alive.pid}-def"
        other = tmp_path / "dmo-launch-notapid"
        for folder in (stale, live, other):
            folder.mkdir()
        assert remove_stale_parameter_folders(tmp_path) == [stale]
        assert not stale.exists() and live.exists() and other.exists()
    finally:
        alive.kill()
        alive.wait()
