"""A probe process for the policy node and deploy graph tests: plays the camera and the operator, records the
commands. :class:`Probe` starts it and asks it one line at a time (this module imports no ROS itself: the probe's
ROS imports are inside :func:`main`, which runs in the probe process).

Usage: policy_probe.py COMMAND_TYPE COMMAND_TOPIC CAMERA_FORMAT   (TwistStamped|Twist, raw|compressed)

Reads one command per line on stdin and answers one JSON line on stdout:
  camera W H ENCODING HZ   publish W x H frames (rgb8, bgr8, mono8, yuv422; jpeg when compressed) on camera/image
  camera off               stop the camera
  commands                 every command received: [[receive time, x, y, yaw, frame_id], ...]
  frames                   monotonic times of the frames published so far
  enable_topic true|false  publish std_msgs/Bool on enable
  enable_service true|false call std_srvs/SetBool enable and answer its reply (the request is sent again every
                           3 s until one answer comes: Fast DDS may drop a response right after discovery,
                           ros2/rmw_fastrtps#390; setting enabled is idempotent)
  now                      monotonic time
  quit                     end (no answer)
"""

from __future__ import annotations

import json
import queue
import sys
import threading
import time
from pathlib import Path

from probe_client import ProbeClient

CHANNELS = {"rgb8": 3, "bgr8": 3, "mono8": 1, "yuv422": 2}
ARM_TOPIC = "/servo_node/delta_twist_cmds"
RESEND_AFTER = 3.0
"""Seconds after which an unanswered enable request is sent again."""


class Probe(ProbeClient):
    """The probe process, asked one line at a time."""

    def __init__(self, env: dict[str, str], command_type: str = "TwistStamped", topic: str = ARM_TOPIC,
                 camera_format: str = "raw") -> None:
        super().__init__([sys.executable, str(Path(__file__)), command_type, topic, camera_format], env, timeout=15.0)

    def commands_since(self, start: float) -> list[list]:
        return [c for c in self.ask("commands") if c[0] >= start]

    def wait_moving(self, since: float, timeout: float = 20.0) -> float:
        """The receive time of the first non-zero command after ``since``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            moving = [c for c in self.commands_since(since) if any(c[1:4])]
            if moving:
                return moving[0][0]
            time.sleep(0.1)
        raise AssertionError(f"no non-zero command within {timeout} s")

    def wait_commands(self, since: float, count: int, moving: bool = False, timeout: float = 20.0) -> list[list]:
        """The commands after ``since`` once ``count`` of them (non-zero ones when ``moving``) have arrived.

        Polls instead of sleeping a fixed time: on a loaded machine the 5 Hz node may fall behind, and a count
        taken after a fixed sleep would then fail a test whose behaviour is right.
        """
        deadline = time.monotonic() + timeout
        while True:
            commands = self.commands_since(since)
            if sum(not zero(c) if moving else 1 for c in commands) >= count:
                return commands
            if time.monotonic() > deadline:
                raise AssertionError(f"{count} {'non-zero ' if moving else ''}commands not received within "
                                     f"{timeout} s: {commands}")
            time.sleep(0.1)


def zero(command: list) -> bool:
    """Whether a recorded command [time, x, y, yaw, frame_id] is all zero."""
    return not any(command[1:4])


def main() -> None:
    import cv2
    import numpy as np
    import rclpy
    from geometry_msgs.msg import Twist, TwistStamped
    from rclpy.node import Node
    from sensor_msgs.msg import CompressedImage, Image
    from std_msgs.msg import Bool
    from std_srvs.srv import SetBool

    from dmo_ros.nodes.template import qos_profile

    command_type = {"TwistStamped": TwistStamped, "Twist": Twist}[sys.argv[1]]
    topic, camera_format = sys.argv[2], sys.argv[3]
    rclpy.init()
    node = Node("policy_probe")
    received: list[list] = []

    def on_command(message) -> None:
        twist = message.twist if command_type is TwistStamped else message
        frame_id = message.header.frame_id if command_type is TwistStamped else ""
        received.append([time.monotonic(), twist.linear.x, twist.linear.y, twist.angular.z, frame_id])

    node.create_subscription(command_type, topic, on_command, qos_profile("reliable"))
    image_type = CompressedImage if camera_format == "compressed" else Image
    camera = node.create_publisher(image_type, "camera/image", qos_profile("sensor_data"))
    enable = node.create_publisher(Bool, "enable", qos_profile("reliable"))
    client = node.create_client(SetBool, "enable")
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line.split()) for line in sys.stdin], daemon=True).start()
    rng = np.random.default_rng(0)
    spec: tuple | None = None
    next_frame, published = 0.0, []
    pending, request, sent_at = None, None, 0.0

    def reply(value) -> None:
        print(json.dumps(value), flush=True)

    reply("started")
    while True:
        rclpy.spin_once(node, timeout_sec=0.005)
        now = time.monotonic()
        if spec is not None and now >= next_frame:
            width, height, encoding, rate = spec
            if encoding == "jpeg":
                pixels = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
                message = CompressedImage(format="jpeg", data=cv2.imencode(".jpg", pixels)[1].tobytes())
            else:
                channels = CHANNELS[encoding]
                data = rng.integers(0, 255, height * width * channels, dtype=np.uint8)
                message = Image(height=height, width=width, encoding=encoding, step=width * channels,
                                data=data.tobytes())
            message.header.stamp = node.get_clock().now().to_msg()
            camera.publish(message)
            published.append(now)
            next_frame = now + 1.0 / rate
        if pending is not None and pending.done():
            result = pending.result()
            reply([result.success, result.message])
            pending = None
        elif pending is not None and now - sent_at >= RESEND_AFTER:
            client.remove_pending_request(pending)
            pending, sent_at = client.call_async(request), now
        try:
            command = lines.get_nowait()
        except queue.Empty:
            continue
        if command[0] == "camera":
            if command[1] == "off":
                spec = None
            else:
                spec = (int(command[1]), int(command[2]), command[3], float(command[4]))
                next_frame = now
            reply("ok")
        elif command[0] == "commands":
            reply(received)
        elif command[0] == "frames":
            reply(published)
        elif command[0] == "enable_topic":
            enable.publish(Bool(data=command[1] == "true"))
            reply("ok")
        elif command[0] == "enable_service":
            if not client.wait_for_service(timeout_sec=10.0):
                reply("no service")
                continue
            request = SetBool.Request(data=command[1] == "true")
            pending, sent_at = client.call_async(request), time.monotonic()
        elif command[0] == "now":
            reply(now)
        elif command[0] == "quit":
            break
    node.destroy_node()
    rclpy.shutdown()


if __name__ == "__main__":
    main()
