"""`ros2 launch` and `dmo-launch` behave the same: exit codes, shutdown and signals.

Every test runs the same assertions with three launchers: `dmo-launch`, the launch double
(`launch_double.py`: upstream launch's process, signal and exit-code behaviour, for machines
without ROS 2 launch) and the real `ros2 launch` where ros2launch is installed (skipped with
the reason elsewhere). The launchers start in their own session, like a terminal's
foreground job, so signalling the group reaches the launcher and, under `ros2 launch`,
every node.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from launchers import (
    LAUNCHERS,
    graph_processes,
    kill_leftovers,
    launcher_command,
    launcher_env,
    make_ament_prefix,
    wait_until_gone,
)
from rosbags.rosbag2 import Reader

from dmo_ros.graphs.runner import installed_executables
from dmo_ros.recording import read_manifest, read_session, session_splits
from dmo_ros.recording.bag_writer import PARTIAL

# Exit code when a launch cannot start: dmo-launch's usage error, the launch's caught exception.
CANNOT_START = {"dmo-launch": 2, "launch-double": 1, "ros2-launch": 1}
NODE_LOG = "FAKE_NODE_LOG"

# Fake nodes: each appends what happens to it to $FAKE_NODE_LOG (a file all of them share).
FAKE_NODES = {
    "waiter": """
import os, signal, sys, time
name = next(a.split(":=")[1] for a in sys.argv if a.startswith("__node:="))
def log(text):
    with open(os.environ["FAKE_NODE_LOG"], "a") as f:
        f.write(f"{name} {text}\\n")
def stop(number, frame):
    log("got " + signal.Signals(number).name)
    sys.exit(0)
signal.signal(signal.SIGINT, stop)
signal.signal(signal.SIGTERM, stop)
log("started")
print(name, "ready", flush=True)
time.sleep(60)
""",
    "crasher": """
import os, sys, time
with open(os.environ["FAKE_NODE_LOG"], "a") as f:
    f.write("worker started\\n")
time.sleep(0.5)
print("something broke", flush=True)
sys.exit(3)
""",
    "finisher": """
import os, sys, time
with open(os.environ["FAKE_NODE_LOG"], "a") as f:
    f.write("worker started\\n")
time.sleep(0.5)
sys.exit(0)
""",
}


@pytest.fixture(params=LAUNCHERS)
def launcher(request) -> str:
    return request.param


@pytest.fixture
def fake_env(tmp_path: Path, ros_env: dict[str, str]) -> dict[str, str]:
    """Environment with the fake nodes installed as package fakepkg and a fresh node log."""
    prefix = make_ament_prefix(tmp_path / "prefix", {"fakepkg": []})
    for name, body in FAKE_NODES.items():
        script = prefix / "lib" / "fakepkg" / name
        script.write_text(f"#!{sys.executable}\n{body}")
        script.chmod(0o755)
    return {**launcher_env(ros_env, prefix), NODE_LOG: str(tmp_path / "nodes.log")}


@pytest.fixture
def dmo_env(tmp_path: Path, ros_env: dict[str, str]) -> dict[str, str]:
    """Environment where every installed dmo_ros executable is in the ament index (as after colcon)."""
    prefix = make_ament_prefix(tmp_path / "dmo_prefix", {"dmo_ros": installed_executables("dmo_ros")})
    return launcher_env(ros_env, prefix)


def fake_graph(tmp_path: Path, nodes: list[dict]) -> Path:
    path = tmp_path / "graph.yaml"
    nodes = [{"package": "fakepkg", **node} for node in nodes]
    path.write_text(yaml.safe_dump({"description": "parity test", "nodes": nodes}))
    return path


def node_log(env: dict[str, str]) -> list[str]:
    path = Path(env[NODE_LOG])
    return path.read_text().splitlines() if path.exists() else []


def assert_nothing_started(output: str) -> None:
    assert "process started with pid" not in output and "[dmo-launch] started" not in output, output


class Launch:
    """A launcher process in its own session (a terminal's foreground job), output to a file."""

    def __init__(self, command: list[str], env: dict[str, str], log: Path) -> None:
        self.env, self.log = env, log
        with log.open("w") as out:
            self.process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                            stderr=subprocess.STDOUT, start_new_session=True)

    def wait(self, timeout: float = 60.0) -> int:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_leftovers(self.env)
            raise AssertionError(f"the launcher did not exit within {timeout} s:\n{self.output}") from None

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")


def run_to_end(command: list[str], env: dict[str, str], tmp_path: Path, timeout: float = 60.0) -> tuple[int, str]:
    launch = Launch(command, env, tmp_path / "launch.log")
    try:
        code = launch.wait(timeout)
        left = wait_until_gone(env, 2.0)
        assert not left, f"processes of the graph still running after the launcher exited: {left}\n{launch.output}"
    finally:
        kill_leftovers(env)
    return code, launch.output


# -- (2) a missing executable: nothing starts ------------------------------------------------


def test_a_missing_executable_fails_before_any_node_starts(launcher, tmp_path, fake_env):
    graph = fake_graph(tmp_path, [
        {"name": "first", "executable": "waiter"},
        {"name": "planner", "executable": "no_such_planner"},
    ])
    code, output = run_to_end(launcher_command(launcher, graph, []), fake_env, tmp_path)
    assert code == CANNOT_START[launcher], output
    assert "node 'planner' needs executable 'no_such_planner' of package 'fakepkg'" in output
    assert node_log(fake_env) == [], output  # 'first' never started (upstream left it running)
    assert_nothing_started(output)


def test_collect_without_the_joy_driver_starts_nothing(launcher, tmp_path, dmo_env):
    if any((Path(p) / "lib" / "joy" / "joy_node").exists() for p in dmo_env["AMENT_PREFIX_PATH"].split(os.pathsep)):
        pytest.skip("ROS's joy package is installed here: joy_node is not missing")
    output_dir = tmp_path / "bags"
    command = launcher_command(launcher, "collect", ["operator:=joy", f"output:={output_dir}"])
    code, output = run_to_end(command, dmo_env, tmp_path)
    assert code == CANNOT_START[launcher], output
    assert "node 'joy_node' needs executable 'joy_node' of package 'joy'" in output
    assert_nothing_started(output)
    assert not output_dir.exists(), output  # the recorder never started


def test_an_undeclared_argument_is_rejected_before_anything_starts(launcher, tmp_path, dmo_env):
    code, output = run_to_end(launcher_command(launcher, "smoke", ["duratoin:=2"]), dmo_env, tmp_path)
    assert code == CANNOT_START[launcher], output
    assert "unknown launch argument 'duratoin' for graph 'smoke'; it takes: duration, image_qos" in output
    assert_nothing_started(output)


# -- (3) exit codes of required nodes --------------------------------------------------------


def test_a_failed_required_node_exits_1_and_stops_the_others(launcher, tmp_path, fake_env):
    graph = fake_graph(tmp_path, [
        {"name": "bystander", "executable": "waiter"},
        {"name": "worker", "executable": "crasher", "required": True},
    ])
    code, output = run_to_end(launcher_command(launcher, graph, []), fake_env, tmp_path)
    assert code == 1, output
    assert "something broke" in output
    assert "required node 'worker' failed (exit code 3); stopping the graph" in output
    assert "bystander got SIGINT" in node_log(fake_env), output  # stopped, not abandoned


def test_a_required_node_that_finishes_exits_0(launcher, tmp_path, fake_env):
    graph = fake_graph(tmp_path, [
        {"name": "bystander", "executable": "waiter"},
        {"name": "worker", "executable": "finisher", "required": True},
    ])
    code, output = run_to_end(launcher_command(launcher, graph, []), fake_env, tmp_path)
    assert code == 0, output
    assert "bystander got SIGINT" in node_log(fake_env), output


@pytest.mark.ros
def test_smoke_that_receives_too_little_exits_1(launcher, tmp_path, dmo_env):
    # The reproduction: topic_monitor fails after 0.3 s; ros2 launch returned 0.
    code, output = run_to_end(launcher_command(launcher, "smoke", ["duration:=0.3"]), dmo_env, tmp_path)
    assert code == 1, output
    assert "FAILED: fewer than 3 messages" in output


# -- (5) no node outlives its launcher -------------------------------------------------------


def wait_for_splits(launch: Launch, output: Path, count: int, timeout: float = 45.0) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sessions = [p for p in output.iterdir() if p.is_dir()] if output.is_dir() else []
        if sessions and len(session_splits(sessions[0])) >= count:
            return sessions[0]
        assert launch.process.poll() is None, f"the launcher exited early:\n{launch.output}"
        time.sleep(0.05)
    raise AssertionError(f"fewer than {count} closed splits after {timeout} s:\n{launch.output}")


def assert_readable(session: Path) -> int:
    """Every split is a valid bag and the session is closed; the number of messages."""
    manifest = read_manifest(session)
    splits = session_splits(session)
    assert manifest["closed"] is True, manifest
    assert not (session / PARTIAL).exists()
    assert [s["path"] for s in manifest["splits"]] == [p.name for p in splits]
    for split, entry in zip(splits, manifest["splits"], strict=True):
        with Reader(split) as reader:
            assert reader.message_count == entry["messages"] > 0
    return sum(1 for _ in read_session(session))


@pytest.mark.ros
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_no_node_outlives_a_killed_launcher(launcher, sig, tmp_path, dmo_env):
    # The collect graph recording until stopped: stand-in, scripted teleop, recorder (0.5 s splits).
    command = launcher_command(launcher, "collect", ["duration:=0", f"output:={tmp_path / 'bags'}",
                                                     "split_duration:=0.5"])
    launch = Launch(command, dmo_env, tmp_path / "launch.log")
    try:
        session = wait_for_splits(launch, tmp_path / "bags", count=2)
        launch.process.send_signal(sig)
        killed = time.monotonic()
        left = wait_until_gone(dmo_env, 2.0)
        gone_after = time.monotonic() - killed
        launch.wait(10)
    finally:
        kill_leftovers(dmo_env)
    assert not left, f"still running 2 s after {sig.name} of the launcher: {left}\n{launch.output}"
    messages = assert_readable(session)  # the recorder closed its split: nothing beyond it is lost
    print(f"{launcher} {sig.name}: every node gone after {gone_after:.2f} s; {messages} messages readable")


# -- (4) two Ctrl-C presses while the recorder closes its split ------------------------------

RUNS = {"dmo-launch": 5, "launch-double": 20, "ros2-launch": 20}


@pytest.mark.ros
def test_two_ctrl_c_50_ms_apart_never_lose_a_split(launcher, tmp_path, dmo_env):
    """Like a terminal: SIGINT to every process of the graph, twice, 40-60 ms apart (20 runs
    under the ros2 launch launchers, 5 under dmo-launch, whose nodes a terminal does not reach)."""
    runs, failures, results = RUNS[launcher], [], []
    for run in range(runs):
        output = tmp_path / f"run{run}" / "bags"
        output.parent.mkdir()
        command = launcher_command(launcher, "collect", ["duration:=0", f"output:={output}", "split_duration:=0.3",
                                                         f"seed:={run}"])
        launch = Launch(command, dmo_env, output.parent / "launch.log")
        try:
            session = wait_for_splits(launch, output, count=1)
            gap = 0.04 + 0.02 * run / max(1, runs - 1)
            for _ in range(2):
                for pid in graph_processes(dmo_env):
                    os.kill(pid, signal.SIGINT)
                time.sleep(gap)
            code = launch.wait(30)
            left = wait_until_gone(dmo_env, 2.0)
        finally:
            kill_leftovers(dmo_env)
        try:
            assert code == 0, f"exit code {code}"
            assert not left, f"left running: {left}"
            messages = assert_readable(session)
            results.append(f"run {run}: closed, {len(session_splits(session))} splits, {messages} messages")
        except AssertionError as error:
            failures.append(f"run {run} (gap {gap * 1000:.0f} ms): {error}\n{launch.output[-3000:]}")
    print("\n".join(results))
    assert not failures, f"{len(failures)} of {runs} runs lost data:\n" + "\n".join(failures)
