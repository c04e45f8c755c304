"""go2_standin as a real process over DDS: camera images, cmd_vel, the safety stop, resets."""

from __future__ import annotations

import json
import math
import re
import signal
import subprocess
import sys
import time

import pytest

from conftest import BIN, run_command

pytestmark = pytest.mark.ros

# A probe process: plays the operator/policy against the stand-in and reports what it saw.
PROBE = r"""
import json, sys, time
import rclpy
from rclpy.node import Node
from geometry_msgs.msg import Twist
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from dmo_msgs.msg import StandinState
from dmo_ros.nodes.template import qos_profile

rclpy.init()
node = Node("go2_probe")
images, states = [], []
node.create_subscription(Image, "/camera/image", lambda m: images.append(
    (time.monotonic(), m.width, m.height, m.encoding, m.step, len(m.data), m.header.frame_id,
     m.header.stamp.sec + m.header.stamp.nanosec * 1e-9, max(m.data) - min(m.data))), qos_profile("sensor_data"))
node.create_subscription(StandinState, "/standin_state", lambda m: states.append(
    (time.monotonic(), m.episode, m.step, list(m.agent), list(m.object), list(m.goal), m.object_in_view,
     list(m.command))),
    qos_profile("reliable"))
command = node.create_publisher(Twist, "/cmd_vel", qos_profile("reliable"))
reset = node.create_publisher(Header, "/reset", qos_profile("reliable"))

def spin(seconds, until=lambda: False):
    end = time.monotonic() + seconds
    while time.monotonic() < end and not until():
        rclpy.spin_once(node, timeout_sec=0.01)

def twist(vx, yaw_rate=0.0):
    message = Twist()
    message.linear.x, message.angular.z = vx, yaw_rate
    command.publish(message)

spin(30, until=lambda: images and states and command.get_subscription_count() and reset.get_subscription_count())
assert images and states, "no images or states from the stand-in"
report = {}

# 1. camera: rate, size, encoding over 2 s
images.clear()
spin(2.0)
report["images"] = list(images)

# 2. a steady forward command moves the robot along its heading
before = states[-1]
end = time.monotonic() + 1.6
while time.monotonic() < end:
    twist(0.4)
    spin(0.1)
spin(0.05)
report["drive"] = [before, states[-1]]

# 3. one command (reverse), then silence: the robot moves, then stops by itself (command timeout)
spin(1.0)  # let the previous command go stale
before = states[-1]
twist(-0.4)  # backwards, over the free ground it just drove across
sent = time.monotonic()
spin(2.2)
report["stale"] = {"sent": sent, "before": before, "after": [s for s in states if s[0] > sent]}

# 4. a reset message starts the next episode
before = states[-1]
header = Header()
header.stamp = node.get_clock().now().to_msg()
reset.publish(header)
spin(5.0, until=lambda: states[-1][1] != before[1])
report["reset"] = [before, states[-1]]
print("REPORT " + json.dumps(report), flush=True)
node.destroy_node()
rclpy.shutdown()
"""


def start_standin(parameters: dict, env: dict[str, str]) -> subprocess.Popen:
    args = [str(BIN / "go2_standin"), "--ros-args"]
    for name, value in parameters.items():
        args += ["-p", f"{name}:={value}"]
    return subprocess.Popen(args, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def test_camera_commands_safety_stop_and_reset_over_dds(ros_env):
    standin = start_standin({"seed": 5, "width": 64, "height": 48, "image_rate_hz": 10.0,
                             "frame_id": "go2_camera", "command_timeout": 0.5}, ros_env)
    try:
        probe = subprocess.run([sys.executable, "-c", PROBE], env=ros_env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    finally:
        standin.send_signal(signal.SIGINT)
        standin_output, _ = standin.communicate(timeout=30)
    assert probe.returncode == 0, probe.stdout + standin_output
    report = json.loads(probe.stdout.split("REPORT ", 1)[1])

    # Camera: ~10 Hz over 2 s, the configured size and encoding, stamped, not blank.
    images = report["images"]
    assert 14 <= len(images) <= 24, len(images)
    assert {tuple(i[1:7]) for i in images} == {(64, 48, "rgb8", 64 * 3, 64 * 48 * 3, "go2_camera")}
    stamps = [i[7] for i in images]
    assert stamps == sorted(stamps) and stamps[-1] - stamps[0] > 1.0
    assert all(i[8] > 30 for i in images)  # contrast: a rendered scene, not a constant image

    # cmd_vel: 1.6 s at 0.4 m/s forward moves the robot ~0.6 m along its own heading.
    (_, episode, _, start, *_), (_, episode_after, _, end, *_) = report["drive"]
    assert episode_after == episode
    dx, dy = end[0] - start[0], end[1] - start[1]
    along = dx * math.cos(start[2]) + dy * math.sin(start[2])
    assert 0.3 < along < 0.8 and abs(-dx * math.sin(start[2]) + dy * math.cos(start[2])) < 0.1, (start, end)

    # A single command is obeyed for at most command_timeout (+ one control period), then zero.
    stale = report["stale"]
    start, after = stale["before"][3], stale["after"]
    assert len(after) >= 8  # 5 Hz over 2.2 s
    moved = math.dist(after[-1][3][:2], start[:2])
    backwards = (after[-1][3][0] - start[0]) * math.cos(start[2]) + (after[-1][3][1] - start[1]) * math.sin(start[2])
    print(f"single 0.4 m/s reverse command moved the robot {moved:.3f} m ({backwards:.3f} m along its heading)")
    assert backwards < -0.09
    assert 0.1 < moved < 0.4 * (0.5 + 0.2 + 0.1), moved
    settled = [s for s in after if s[0] > stale["sent"] + 1.1]
    assert settled and math.dist(settled[0][3][:2], after[-1][3][:2]) < 0.005  # standing still
    # The states say what each step was taken under: [vx, vy, wz], then zero once stale.
    assert [-0.4, 0.0, 0.0] in [s[7] for s in after] and settled[-1][7] == [0.0, 0.0, 0.0], after

    # reset: the episode counter increments and the step count restarts.
    before, after_reset = report["reset"]
    assert after_reset[1] == before[1] + 1 and after_reset[2] == 0 and after_reset[7] == [0.0, 0.0, 0.0]
    assert after_reset[3] != before[3]  # a new placement

    assert standin.returncode == 0, standin_output  # SIGINT: a clean exit through the template
    assert re.search(r"reset \(reset message\): episode 1, robot \[", standin_output), standin_output
    assert re.search(r"sent \d+ images; episode 1", standin_output), standin_output


def test_auto_reset_after_max_episode_steps(ros_env):
    standin = start_standin({"max_episode_steps": 3, "control_rate_hz": 10.0}, ros_env)
    deadline = time.monotonic() + 20
    lines: list[str] = []
    for line in standin.stdout:  # read until the second automatic reset
        lines.append(line)
        if "reset (3 steps): episode 2" in line or time.monotonic() > deadline:
            break
    standin.send_signal(signal.SIGINT)
    rest, _ = standin.communicate(timeout=30)
    output = "".join(lines) + rest
    assert "reset (3 steps): episode 1" in output and "reset (3 steps): episode 2" in output, output
    assert "episode 0 ended after 3 steps" in output
    assert standin.returncode == 0, output


@pytest.mark.parametrize(
    ("parameter", "message"),
    [
        ("image_qos:=fancy", "unknown QoS profile 'fancy'"),
        ("control_rate_hz:=0.0", "image size and rates must be positive"),
        ("seed:=abc", "parameter 'seed'"),
    ],
)
def test_a_bad_parameter_is_a_clear_error(ros_env, parameter, message):
    result = run_command([str(BIN / "go2_standin"), "--ros-args", "-p", parameter], ros_env, timeout=30)
    assert result.returncode == 2, result.stdout
    assert message in result.stdout and "Traceback" not in result.stdout
