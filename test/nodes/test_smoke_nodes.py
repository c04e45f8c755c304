"""The node template on two small real nodes (test_pattern, topic_monitor) over DDS.

Every test here starts real rclpy processes that talk through Fast DDS.
"""

from __future__ import annotations

import itertools
import re
import signal
import subprocess
import sys

import pytest

from conftest import BIN, LiveRun, run_command

pytestmark = pytest.mark.ros

INTENT_LISTENER = """
import sys
import rclpy
from rclpy.node import Node
from dmo_msgs.msg import Intent
from dmo_ros.nodes.template import qos_profile
rclpy.init()
node = Node("intent_listener")
received = []
node.create_subscription(Intent, "/intent", received.append, qos_profile("reliable"))
print("listening", flush=True)
while len(received) < 12:
    rclpy.spin_once(node, timeout_sec=1.0)
for message in received:
    stamp = message.header.stamp.sec + message.header.stamp.nanosec * 1e-9
    print(int(message.active), message.milestone, f"{stamp:.6f}", flush=True)
node.destroy_node()
rclpy.shutdown()
"""


def start_node(executable: str, parameters: dict, env: dict[str, str], remap: dict | None = None) -> subprocess.Popen:
    args = [str(BIN / executable), "--ros-args"]
    for name, value in parameters.items():
        args += ["-p", f"{name}:={value}"]
    for source, target in (remap or {}).items():
        args += ["-r", f"{source}:={target}"]
    return subprocess.Popen(args, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def test_intent_messages_cross_between_two_processes(ros_env):
    listener = subprocess.Popen(
        [sys.executable, "-c", INTENT_LISTENER], env=ros_env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    talker = start_node("test_pattern", {"intent_rate_hz": 20.0, "toggle_every": 3}, ros_env,
                        remap={"intent": "/intent"})
    try:
        output, _ = listener.communicate(timeout=60)
    finally:
        talker.send_signal(signal.SIGINT)
        talker_output, _ = talker.communicate(timeout=30)
    assert listener.returncode == 0, output
    rows = [line.split() for line in output.splitlines() if re.fullmatch(r"[01] \S+ \S+", line)]
    assert len(rows) == 12, output
    active = [int(r[0]) for r in rows]
    stamps = [float(r[2]) for r in rows]
    assert all(float(r[1]) == 0.0 for r in rows)
    assert stamps == sorted(stamps) and stamps[-1] > stamps[0]
    # The flag flips every 3 messages: after the first (possibly partial) run, runs are of 3.
    runs = [len(list(group)) for _, group in itertools.groupby(active)]
    assert len(runs) >= 3 and all(length == 3 for length in runs[1:-1]), active
    assert talker.returncode == 0, talker_output  # SIGINT: clean exit through the template
    assert "sent" in talker_output and "intents" in talker_output


def test_smoke_graph_exchanges_messages_and_stops_by_itself(ros_env):
    result = run_command([str(BIN / "dmo-launch"), "smoke", "duration:=3"], ros_env, timeout=60)
    assert result.returncode == 0, result.stdout
    summary = re.search(r"\[topic_monitor\] .*summary: images (\d+) .*intents (\d+) .*- ok", result.stdout)
    assert summary, result.stdout
    assert int(summary.group(1)) >= 10 and int(summary.group(2)) >= 5
    assert "required node 'topic_monitor' finished (exit code 0)" in result.stdout
    assert re.search(r"\[test_pattern\] .*sent \d+ images", result.stdout)  # its shutdown hook ran
    assert "stopped cleanly" in result.stdout


def test_smoke_graph_stops_cleanly_on_sigint(ros_env):
    run = LiveRun(["smoke", "duration:=0", "image_qos:=reliable"], ros_env)
    # Both nodes run and talk before the SIGINT: a progress line of topic_monitor counts images and intents (a
    # count of lines was not enough: under load, discovery can take longer than two progress periods).
    run.wait_for_match(r"\[topic_monitor\] .*: images [1-9]\d* .*intents [1-9]", timeout=60)
    run.process.send_signal(signal.SIGINT)
    assert run.finish() == 0, run.output
    assert re.search(r"\[test_pattern\] .*sent \d+ images", run.output)
    assert re.search(r"\[topic_monitor\] .*summary: images [1-9]\d* ", run.output), run.output
    assert "stopped cleanly (SIGINT received)" in run.output


SIGINT_DURING_IMPORTS = """
import os, signal, sys

class SignalOnFirstRclpyImport:  # a Ctrl-C (or a launcher stopping the graph) while the node still imports
    def find_spec(self, name, path=None, target=None):
        if name == "rclpy":
            sys.meta_path.remove(self)
            os.kill(os.getpid(), signal.SIGINT)
        return None

sys.meta_path.insert(0, SignalOnFirstRclpyImport())
from dmo_ros.nodes import executables  # what the installed test_pattern script runs
sys.exit(executables.test_pattern())
"""


def test_a_sigint_while_the_node_is_still_importing_is_a_clean_stop(ros_env):
    """The imports before run_node (rclpy, NumPy; PyTorch in policy and dream) take seconds on a loaded machine.
    A SIGINT there used to kill the node with a KeyboardInterrupt traceback, its on_shutdown never run (no "sent"
    line: the SIGINT smoke test failed); now the console script's stop handler keeps it for the node, which stops
    as soon as it exists."""
    result = run_command([sys.executable, "-c", SIGINT_DURING_IMPORTS, "--ros-args", "-r", "__node:=early"], ros_env)
    assert result.returncode == 0, result.stdout
    assert "Traceback" not in result.stdout and "KeyboardInterrupt" not in result.stdout
    assert re.search(r"\[early\]: sent 0 images and 0 intents", result.stdout), result.stdout


def test_image_qos_parameter_takes_effect(ros_env):
    """A reliable subscriber never matches a best-effort (sensor-data) publisher: no images."""
    talker = start_node("test_pattern", {"image_qos": "sensor_data"}, ros_env)
    try:
        monitor = run_command(
            [str(BIN / "topic_monitor"), "--ros-args", "-p", "duration:=2.0", "-p", "image_qos:=reliable"],
            ros_env,
        )
    finally:
        talker.send_signal(signal.SIGINT)
        talker.communicate(timeout=30)
    assert monitor.returncode == 1, monitor.stdout
    assert re.search(r"summary: images 0 .*intents [1-9]", monitor.stdout), monitor.stdout
    assert "FAILED" in monitor.stdout


@pytest.mark.parametrize(
    ("parameter", "message"),
    [
        ("image_qos:=fancy", "unknown QoS profile 'fancy'; choose one of sensor_data, reliable, reliable_latched"),
        ("width:=wide", "parameter 'width'"),
        ("image_rate_hz:=-1.0", "rates, image size and toggle_every must be positive"),
    ],
)
def test_a_bad_parameter_is_a_clear_error_not_a_traceback(ros_env, parameter, message):
    result = run_command([str(BIN / "test_pattern"), "--ros-args", "-p", parameter], ros_env)
    assert result.returncode == 2, result.stdout
    assert message in result.stdout
    assert "Traceback" not in result.stdout


def test_a_misspelled_parameter_is_refused_naming_the_closest_one(ros_env):
    """Without the check a node ignores a parameter it does not declare: ``duraton:=2.0`` would leave the default
    duration in force without a word. ROS's own use_sim_time is not ours to refuse."""
    result = run_command([str(BIN / "topic_monitor"), "--ros-args", "-p", "duraton:=2.0"], ros_env)
    assert result.returncode == 2, result.stdout
    assert "unknown parameter 'duraton' (did you mean 'duration'?) for node 'topic_monitor'" in result.stdout
    assert "Traceback" not in result.stdout
    result = run_command([str(BIN / "topic_monitor"), "--ros-args", "-p", "duration:=0.5", "-p",
                          "use_sim_time:=false"], ros_env)
    assert "unknown parameter" not in result.stdout and "summary:" in result.stdout, result.stdout
