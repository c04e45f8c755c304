"""The Push-T stand-in node (pusht_standin) as a real process over DDS, driven by a probe process.

The probe is a small rclpy process the test talks to over stdin/stdout: it publishes
TwistStamped commands and reset events, and reports the StandinState and images it received.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from probe_client import ProbeClient

from conftest import BIN, run_command

pytestmark = pytest.mark.ros

PROBE = """
import json, queue, sys, threading, time
import rclpy
from rclpy.node import Node
from geometry_msgs.msg import TwistStamped
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from dmo_msgs.msg import StandinState
from dmo_ros.nodes.template import qos_profile

rclpy.init()
node = Node("pusht_probe")
states, images = [], []
node.create_subscription(StandinState, "standin_state", states.append, qos_profile("reliable"))
node.create_subscription(
    Image, "camera/image",
    lambda m: images.append([time.monotonic(), m.width, m.height, m.encoding, m.header.frame_id,
                             len(m.data), m.step]),
    qos_profile(sys.argv[1]),
)
action = node.create_publisher(TwistStamped, "action", qos_profile("reliable"))
reset = node.create_publisher(Header, "reset", qos_profile("reliable"))
commands = queue.Queue()
threading.Thread(target=lambda: [commands.put(line.split()) for line in sys.stdin], daemon=True).start()
twist, twist_until, next_twist = (0.0, 0.0), 0.0, 0.0

def reply(value):
    print(json.dumps(value), flush=True)

print(json.dumps("started"), flush=True)
while True:
    rclpy.spin_once(node, timeout_sec=0.01)
    now = time.monotonic()
    if now < twist_until and now >= next_twist:
        message = TwistStamped()
        message.header.stamp = node.get_clock().now().to_msg()
        message.twist.linear.x, message.twist.linear.y = twist
        action.publish(message)
        next_twist = now + 0.1
    try:
        command = commands.get_nowait()
    except queue.Empty:
        continue
    if command[0] == "state":
        s = states[-1] if states else None
        reply(None if s is None else {"episode": s.episode, "step": s.step, "agent": list(s.agent),
              "object": list(s.object), "goal": list(s.goal), "progress": s.progress, "success": s.success,
              "in_view": s.object_in_view, "count": len(states), "episodes": sorted({m.episode for m in states}),
              "command": list(s.command), "commands": sorted({tuple(m.command) for m in states})})
    elif command[0] == "images":
        reply(images)
    elif command[0] == "twist":  # twist VX VY SECONDS: publish at 10 Hz for that long
        twist, twist_until, next_twist = (float(command[1]), float(command[2])), now + float(command[3]), now
        reply("ok")
    elif command[0] == "reset":
        message = Header()
        message.stamp = node.get_clock().now().to_msg()
        reset.publish(message)
        reply("ok")
    elif command[0] == "quit":
        break
node.destroy_node()
rclpy.shutdown()
"""


class Probe(ProbeClient):
    def __init__(self, env: dict[str, str], image_qos: str = "sensor_data") -> None:
        super().__init__([sys.executable, "-c", PROBE, image_qos], env)

    def wait_state(self, condition=lambda s: True, timeout: float = 20.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            state = self.ask("state")
            if state is not None and condition(state):
                return state
            assert time.monotonic() < deadline, f"no matching standin_state within {timeout} s (last: {state})"
            time.sleep(0.05)


def start_standin(env: dict[str, str], **parameters) -> subprocess.Popen:
    args = [str(BIN / "pusht_standin"), "--ros-args"]
    for name, value in parameters.items():
        args += ["-p", f"{name}:={value}"]
    return subprocess.Popen(args, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def stop(standin: subprocess.Popen) -> str:
    standin.send_signal(signal.SIGINT)
    output, _ = standin.communicate(timeout=20)
    assert standin.returncode == 0, output
    return output


@pytest.fixture
def session(ros_env):
    """Start a stand-in (parameters from the test) and a probe; stop both afterwards."""
    started: list = []

    def start(image_qos: str = "sensor_data", **parameters):
        standin = start_standin(ros_env, image_qos=image_qos, **parameters)
        probe = Probe(ros_env, image_qos)
        started.append((standin, probe))
        return standin, probe

    yield start
    for standin, probe in started:
        probe.close()
        if standin.poll() is None:
            standin.kill()
            standin.communicate(timeout=10)


def test_images_arrive_at_the_configured_rate_size_and_encoding(session):
    standin, probe = session(image_qos="reliable", width=80, height=60, image_rate_hz=10.0, frame_id="table_cam")
    probe.wait_state()
    deadline = time.monotonic() + 20
    while len(probe.ask("images")) < 2:
        assert time.monotonic() < deadline, "no images"
        time.sleep(0.1)
    time.sleep(2.5)
    images = probe.ask("images")[1:]  # the first may have arrived before discovery completed
    window = images[-1][0] - images[0][0]
    rate = (len(images) - 1) / window
    assert window > 2.0 and 8.0 <= rate <= 12.0, (len(images), window)
    assert {tuple(image[1:]) for image in images} == {(80, 60, "rgb8", "table_cam", 80 * 60 * 3, 80 * 3)}
    output = stop(standin)
    assert "sent" in output and "images" in output  # the shutdown hook ran


def test_a_command_moves_the_agent_a_stale_one_stops_it_and_reset_starts_a_new_episode(session):
    standin, probe = session(command_timeout=0.5, seed=3)
    start = probe.wait_state(lambda s: s["count"] >= 3)
    assert start["episode"] == 0 and start["in_view"] is True
    assert len(start["agent"]) == 2 and len(start["object"]) == 3 and len(start["goal"]) == 3
    x0, y0 = start["agent"]
    direction = 1.0 if x0 < 256 else -1.0  # toward the middle, away from the arena border
    assert probe.ask("twist", direction * 0.1, 0.0, 1.0) == "ok"  # 0.1 m/s for 1 s: 102 arena units
    time.sleep(1.3)
    moved = probe.ask("state")
    dx, dy = moved["agent"][0] - x0, moved["agent"][1] - y0
    assert direction * dx > 40 and abs(dy) < 5, (dx, dy)
    assert moved["step"] > start["step"]
    # The commands stopped: after command_timeout the arm holds still.
    time.sleep(0.8)
    held = probe.ask("state")
    time.sleep(1.0)
    later = probe.ask("state")
    assert later["step"] >= held["step"] + 3  # still stepping the sim
    assert abs(later["agent"][0] - held["agent"][0]) < 1.0 and abs(later["agent"][1] - held["agent"][1]) < 1.0
    # The states say what each step was taken under: the command (m/s), then zero once it was stale.
    assert start["command"] == [0.0, 0.0] and later["command"] == [0.0, 0.0]
    assert [direction * 0.1, 0.0] in [list(command) for command in later["commands"]], later["commands"]
    # The operator's reset event starts episode 1.
    assert probe.ask("reset") == "ok"
    reset = probe.wait_state(lambda s: s["episode"] == 1, timeout=10)
    assert reset["step"] <= 3 and reset["command"] == [0.0, 0.0]
    output = stop(standin)
    assert "reset requested: episode 1" in output


def test_the_episode_limit_resets_by_itself(session):
    standin, probe = session(max_episode_steps=4, control_rate_hz=10.0)
    state = probe.wait_state(lambda s: s["episode"] >= 2, timeout=20)
    assert 0 <= state["step"] <= 4
    output = stop(standin)
    assert "reached 4 steps: episode 1" in output


def test_a_bad_parameter_is_a_clear_error(ros_env):
    result = run_command([str(BIN / "pusht_standin"), "--ros-args", "-p", "control_rate_hz:=3.0"], ros_env)
    assert result.returncode == 2, result.stdout
    assert "multiple of gym-pusht's 0.1 s step" in result.stdout and "Traceback" not in result.stdout
