"""test_pattern: a camera-and-operator stand-in for checking a ROS 2 setup.

Publishes a moving-bar rgb8 image on ``camera/image`` (QoS from ``image_qos``) and
``dmo_msgs/Intent`` labels on ``intent`` whose ``active`` flag toggles every
``toggle_every`` messages. Pair it with ``topic_monitor`` (the ``smoke`` graph).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sensor_msgs.msg import Image

from dmo_msgs.msg import Intent
from dmo_ros.nodes.image_conversion import rgb8_image
from dmo_ros.nodes.template import QOS_PROFILES, DmoNode, param, qos_profile, run_node


@dataclass
class TestPatternParameters:
    intent_rate_hz: float = param(5.0, "Intent messages per second (the control rate).")
    image_rate_hz: float = param(10.0, "Camera frames per second.")
    width: int = param(64, "Image width in pixels.")
    height: int = param(64, "Image height in pixels.")
    image_qos: str = param("sensor_data", f"QoS of the image topic: {', '.join(QOS_PROFILES)}.")
    frame_id: str = param("camera", "frame_id of the images.")
    toggle_every: int = param(5, "Intent 'active' flips every this many intent messages.")


class TestPattern(DmoNode):
    def __init__(self) -> None:
        super().__init__("test_pattern")
        self.parameters = p = self.declare(TestPatternParameters)
        if p.intent_rate_hz <= 0 or p.image_rate_hz <= 0 or p.width <= 0 or p.height <= 0 or p.toggle_every <= 0:
            raise ValueError("rates, image size and toggle_every must be positive")
        self.image_publisher = self.create_publisher(Image, "camera/image", qos_profile(p.image_qos))
        self.intent_publisher = self.create_publisher(Intent, "intent", qos_profile("reliable"))
        self.frames_sent = 0
        self.intents_sent = 0
        self.create_timer(1.0 / p.image_rate_hz, self.publish_image)
        self.create_timer(1.0 / p.intent_rate_hz, self.publish_intent)
        self.get_logger().info(
            f"publishing {p.width}x{p.height} rgb8 at {p.image_rate_hz} Hz ({p.image_qos}) "
            f"and intent at {p.intent_rate_hz} Hz"
        )

    def publish_image(self) -> None:
        p = self.parameters
        pixels = np.zeros((p.height, p.width, 3), np.uint8)
        column = self.frames_sent % p.width
        pixels[:, column] = (255, 255, 255)
        self.image_publisher.publish(rgb8_image(pixels, self.get_clock().now().to_msg(), p.frame_id))
        self.frames_sent += 1

    def publish_intent(self) -> None:
        message = Intent(active=(self.intents_sent // self.parameters.toggle_every) % 2 == 1, milestone=0.0)
        message.header.stamp = self.get_clock().now().to_msg()
        self.intent_publisher.publish(message)
        self.intents_sent += 1

    def on_shutdown(self) -> None:
        self.get_logger().info(f"sent {self.frames_sent} images and {self.intents_sent} intents")


def main(args: list[str] | None = None) -> int:
    return run_node(TestPattern, args)


if __name__ == "__main__":
    raise SystemExit(main())
