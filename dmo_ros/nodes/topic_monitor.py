"""topic_monitor: listens to a camera and an intent topic and reports what arrives.

Counts images (size, encoding, rate) on ``camera/image`` (QoS from ``image_qos``) and
``dmo_msgs/Intent`` messages (rate, toggles of ``active``) on ``intent``. After
``duration`` seconds (0: until stopped) it logs a summary and exits: code 0 when each
topic delivered at least ``min_messages``, code 1 otherwise. Remap the topics to check a
real robot's camera before recording.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sensor_msgs.msg import Image

from dmo_msgs.msg import Intent
from dmo_ros.nodes.template import QOS_PROFILES, DmoNode, param, qos_profile, run_node


@dataclass
class TopicMonitorParameters:
    duration: float = param(5.0, "Seconds to listen before reporting and exiting; 0 listens until stopped.")
    min_messages: int = param(1, "Exit code 1 unless each topic delivered at least this many messages.")
    image_qos: str = param("sensor_data", f"QoS of the image subscription: {', '.join(QOS_PROFILES)}.")
    report_period: float = param(1.0, "Seconds between progress lines; 0 for none.")


class TopicMonitor(DmoNode):
    def __init__(self) -> None:
        super().__init__("topic_monitor")
        self.parameters = p = self.declare(TopicMonitorParameters)
        if p.duration < 0 or p.report_period < 0:
            raise ValueError("duration and report_period must be >= 0")
        self.images = 0
        self.intents = 0
        self.intent_toggles = 0
        self.last_active: bool | None = None
        self.image_formats: set[str] = set()
        self.started = time.monotonic()
        self.create_subscription(Image, "camera/image", self.on_image, qos_profile(p.image_qos))
        self.create_subscription(Intent, "intent", self.on_intent, qos_profile("reliable"))
        if p.duration > 0:
            self.create_timer(p.duration, self.complete)
        if p.report_period > 0:
            self.create_timer(p.report_period, self.report)
        self.get_logger().info(f"listening for {p.duration or 'ever'} s")

    def on_image(self, message: Image) -> None:
        self.images += 1
        self.image_formats.add(f"{message.width}x{message.height} {message.encoding}")

    def on_intent(self, message: Intent) -> None:
        self.intents += 1
        if self.last_active is not None and message.active != self.last_active:
            self.intent_toggles += 1
        self.last_active = message.active

    def summary(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        formats = ", ".join(sorted(self.image_formats)) or "none"
        return (
            f"images {self.images} ({self.images / elapsed:.1f} Hz, {formats}); "
            f"intents {self.intents} ({self.intents / elapsed:.1f} Hz, {self.intent_toggles} toggles)"
        )

    def report(self) -> None:
        self.get_logger().info(self.summary())

    def complete(self) -> None:
        enough = min(self.images, self.intents) >= self.parameters.min_messages
        self.finish(0 if enough else 1)

    def on_shutdown(self) -> None:
        verdict = "ok" if self.exit_code in (0, None) else f"FAILED: fewer than {self.parameters.min_messages} messages"
        self.get_logger().info(f"summary: {self.summary()} - {verdict}")


def main(args: list[str] | None = None) -> int:
    return run_node(TopicMonitor, args)


if __name__ == "__main__":
    raise SystemExit(main())
