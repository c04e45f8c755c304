"""A probe process for the dream graph tests: subscribes to the dream node's outputs, calls its services.

Usage: dream_probe.py SECONDS RESTART_AT [live]   (RESTART_AT < 0: no restart call)

``live`` also plays the camera (96 x 96 rgb8 on /camera/image at 10 Hz) and a teleop operator (TwistStamped
vx 0.1, vy -0.05 on /action at 10 Hz), for a dream node started from the camera with teleop actions.

Runs until SECONDS after the first imagined step arrived (at most 60 s in all), calls ``dream/restart`` once
RESTART_AT seconds after the first imagined step arrived, then prints one JSON object: every imagined / real
image (stamp, width, height, encoding), every ImaginedStep (stamp, step, rollout, action, reward, value, spread,
off_data, image size), the marker namespaces, the restart reply with the receive index at which it came, and the
dream node's publishers (topic -> types).
"""

from __future__ import annotations

import json
import sys
import time


def main() -> None:
    import rclpy
    from rclpy.node import Node
    from sensor_msgs.msg import Image
    from std_srvs.srv import Trigger
    from visualization_msgs.msg import MarkerArray

    from dmo_msgs.msg import ImaginedStep
    from dmo_ros.nodes.template import qos_profile

    seconds, restart_at = float(sys.argv[1]), float(sys.argv[2])
    live = sys.argv[3:] == ["live"]
    rclpy.init()
    node = Node("dream_probe")
    if live:
        import numpy as np
        from geometry_msgs.msg import TwistStamped

        camera = node.create_publisher(Image, "/camera/image", qos_profile("sensor_data"))
        teleop = node.create_publisher(TwistStamped, "/action", qos_profile("reliable"))
        rng = np.random.default_rng(0)

        def play() -> None:
            image = Image(height=96, width=96, encoding="rgb8", step=96 * 3,
                          data=rng.integers(0, 255, 96 * 96 * 3, dtype=np.uint8).tobytes())
            image.header.stamp = node.get_clock().now().to_msg()
            camera.publish(image)
            action = TwistStamped()
            action.twist.linear.x, action.twist.linear.y = 0.1, -0.05
            teleop.publish(action)

        node.create_timer(0.1, play)
    out: dict = {"imagined": [], "real": [], "steps": [], "markers": [], "restart": None, "publishers": {}}

    def stamp(message) -> int:
        return message.header.stamp.sec * 1_000_000_000 + message.header.stamp.nanosec

    def on_image(name):
        return lambda m: out[name].append([stamp(m), m.width, m.height, m.encoding, len(m.data)])

    node.create_subscription(Image, "/dream/imagined", on_image("imagined"), qos_profile("sensor_data"))
    node.create_subscription(Image, "/dream/real", on_image("real"), qos_profile("sensor_data"))
    node.create_subscription(ImaginedStep, "/dream/step", lambda m: out["steps"].append(
        [stamp(m), m.step, m.rollout, list(m.action), m.reward, m.value, m.spread, m.off_data, m.image.width,
         m.image.height, m.image.encoding]), qos_profile("reliable"))
    node.create_subscription(MarkerArray, "/dream/markers", lambda m: out["markers"].append(
        sorted({marker.ns for marker in m.markers})), qos_profile("reliable"))
    client = node.create_client(Trigger, "/dream/restart")
    print(json.dumps("started"), flush=True)
    first, pending, end = None, None, time.monotonic() + 60.0
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.01)
        if first is None and out["steps"]:
            first = time.monotonic()
            end = first + seconds
        # Only to a service the client has matched: a request sent before that is lost (restart is not idempotent,
        # so it is never resent).
        if (restart_at >= 0 and first is not None and pending is None and out["restart"] is None
                and time.monotonic() - first >= restart_at and client.service_is_ready()):
            pending = client.call_async(Trigger.Request())
            out["restart_sent_at"] = len(out["steps"])
        if pending is not None and pending.done():
            result = pending.result()
            out["restart"] = [result.success, result.message, len(out["steps"])]
            pending = None
    for name, namespace in node.get_node_names_and_namespaces():
        if name == "dream":
            out["publishers"] = {topic: types for topic, types in
                                 node.get_publisher_names_and_types_by_node(name, namespace)}
    print(json.dumps(out), flush=True)
    node.destroy_node()
    rclpy.shutdown()


if __name__ == "__main__":
    main()
