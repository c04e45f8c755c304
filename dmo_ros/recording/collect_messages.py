"""The collect graph's recorded messages, serialized to CDR without ROS (``rosbags``' typestore).

The live graph's nodes build these messages with rclpy's classes and the recorder copies
their CDR bytes into the bag; the in-process fast collection (``dmo-collect-fast``) builds
the same messages here. What both share lives here too (the action's components, the reset
event's frame_id), and ``test/recording/test_fast_collect.py`` checks that the nodes' builders
(``dmo_ros.nodes.image_conversion.rgb8_image``, ``dmo_ros.nodes.teleop.command_messages``)
serialize to what this module writes, byte for byte up to CDR alignment padding (rclpy's
Fast CDR leaves padding bytes uninitialised; this module writes zeros).

- camera: ``sensor_msgs/msg/Image``, rgb8, step = 3 x width (the stand-ins' ``camera/image``);
- action: ``geometry_msgs/msg/TwistStamped`` (Push-T, MoveIt Servo; ``twist.linear.x/y`` m/s)
  or ``geometry_msgs/msg/Twist`` (Go2 ``cmd_vel``; linear.x/y m/s, angular.z rad/s);
- intent: ``dmo_msgs/msg/Intent`` (active, milestone) with the action's stamp;
- reset: ``std_msgs/msg/Header`` with frame_id ``operator_reset`` and the action's stamp.
"""

from __future__ import annotations

import numpy as np

from dmo_ros.recording.bag_writer import TypeRegistry

IMAGE_TYPE = "sensor_msgs/msg/Image"
INTENT_TYPE = "dmo_msgs/msg/Intent"
RESET_TYPE = "std_msgs/msg/Header"
ACTION_TYPE = {"pusht": "geometry_msgs/msg/TwistStamped", "go2": "geometry_msgs/msg/Twist"}
"""Action message type per robot (the teleop node publishes it, the stand-in follows it)."""
RESET_FRAME_ID = "operator_reset"
"""frame_id of the teleop's reset events."""


def action_components(action: np.ndarray, action_size: int) -> tuple[float, float, float]:
    """The Twist components (linear.x, linear.y, angular.z) of an action; NaN/inf become finite, yaw 0 for 2-D."""
    values = np.nan_to_num(np.asarray(action, dtype=float))
    yaw = float(values[2]) if action_size == 3 else 0.0
    return float(values[0]), float(values[1]), yaw


class CollectMessages:
    """Builds the collect graph's messages as CDR bytes; stamps are integer nanoseconds."""

    def __init__(self, registry: TypeRegistry | None = None) -> None:
        self.registry = registry or TypeRegistry()
        self.registry.ensure(INTENT_TYPE)
        self.store = self.registry.typestore
        self.types = self.store.types

    def _stamp(self, stamp_ns: int):
        return self.types["builtin_interfaces/msg/Time"](sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9)

    def _header(self, stamp_ns: int, frame_id: str):
        return self.types[RESET_TYPE](stamp=self._stamp(stamp_ns), frame_id=frame_id)

    def image(self, pixels: np.ndarray, stamp_ns: int, frame_id: str) -> bytes:
        """An (H, W, 3) uint8 RGB array as a serialized rgb8 Image."""
        if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
            raise ValueError(f"rgb8 needs an (H, W, 3) uint8 array, got {pixels.shape} {pixels.dtype}")
        height, width, _ = pixels.shape
        message = self.types[IMAGE_TYPE](
            header=self._header(stamp_ns, frame_id), height=height, width=width, encoding="rgb8",
            is_bigendian=0, step=width * 3, data=np.ascontiguousarray(pixels).reshape(-1),
        )
        return bytes(self.store.serialize_cdr(message, IMAGE_TYPE))

    def action(self, robot: str, action: np.ndarray, stamp_ns: int, frame_id: str) -> bytes:
        """The robot's action message (TwistStamped with ``frame_id`` for Push-T, Twist for Go2)."""
        if robot not in ACTION_TYPE:
            raise ValueError(f"unknown robot '{robot}'; choose one of {', '.join(ACTION_TYPE)}")
        vector3 = self.types["geometry_msgs/msg/Vector3"]
        x, y, yaw = action_components(action, 3 if robot == "go2" else 2)
        twist = self.types["geometry_msgs/msg/Twist"](linear=vector3(x=x, y=y, z=0.0),
                                                      angular=vector3(x=0.0, y=0.0, z=yaw))
        msgtype = ACTION_TYPE[robot]
        message = twist if robot == "go2" else self.types[msgtype](header=self._header(stamp_ns, frame_id),
                                                                   twist=twist)
        return bytes(self.store.serialize_cdr(message, msgtype))

    def intent(self, active: bool, milestone: float, stamp_ns: int) -> bytes:
        message = self.types[INTENT_TYPE](header=self._header(stamp_ns, ""), active=bool(active),
                                          milestone=float(milestone))
        return bytes(self.store.serialize_cdr(message, INTENT_TYPE))

    def reset(self, stamp_ns: int) -> bytes:
        return bytes(self.store.serialize_cdr(self._header(stamp_ns, RESET_FRAME_ID), RESET_TYPE))
