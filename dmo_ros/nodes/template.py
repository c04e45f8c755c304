"""The node template every dmo_ros node follows.

- Parameters are a typed dataclass whose fields carry a description
  (``param(default, "what it does")``); ``DmoNode.declare`` declares each one with a
  ``ParameterDescriptor`` (so ``ros2 param describe`` explains it) and returns the filled
  dataclass, rejecting a value of the wrong type with a clear message.
- Image topics take their QoS from a parameter (``image_qos``), sensor-data by default.
- ``run_node`` owns the process: SIGINT/SIGTERM end the spin loop while the ROS context is
  still alive, so ``on_shutdown`` can still publish (a robot's zero command) and close files
  (a bag) before the node is destroyed. A node that completes its job calls ``finish(code)``;
  that code becomes the process exit code.

This module and the other modules of ``dmo_ros.nodes`` are the only ones that import rclpy.
"""

from __future__ import annotations

import dataclasses
import signal
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.exceptions import InvalidParameterTypeException
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import (
    QoSDurabilityPolicy,
    QoSHistoryPolicy,
    QoSProfile,
    QoSReliabilityPolicy,
    qos_profile_sensor_data,
)
from rclpy.signals import SignalHandlerOptions

ParametersT = TypeVar("ParametersT")

# Named QoS profiles a parameter can choose.
QOS_PROFILES: dict[str, QoSProfile] = {
    # Best effort, keep last 5: the ROS convention for cameras; late frames are dropped.
    "sensor_data": qos_profile_sensor_data,
    # Reliable, keep last 10: no drops while the subscriber keeps up (recording, labels).
    "reliable": QoSProfile(
        history=QoSHistoryPolicy.KEEP_LAST, depth=10, reliability=QoSReliabilityPolicy.RELIABLE
    ),
    # Reliable and latched: a late subscriber still gets the last message.
    "reliable_latched": QoSProfile(
        history=QoSHistoryPolicy.KEEP_LAST,
        depth=1,
        reliability=QoSReliabilityPolicy.RELIABLE,
        durability=QoSDurabilityPolicy.TRANSIENT_LOCAL,
    ),
}


def param(default: Any, description: str) -> Any:
    """A node parameter field: its default and the description shown by ``ros2 param describe``."""
    if isinstance(default, list):  # a fresh list per instance (dataclasses forbid shared mutable defaults)
        return dataclasses.field(default_factory=lambda: list(default), metadata={"description": description})
    return dataclasses.field(default=default, metadata={"description": description})


def qos_profile(name: str) -> QoSProfile:
    """The QoS profile named by a parameter, or a ValueError listing the names."""
    try:
        return QOS_PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown QoS profile '{name}'; choose one of {', '.join(QOS_PROFILES)}") from None


class DmoNode(Node):
    """Base class: typed parameters, a finish code, and a shutdown hook."""

    def __init__(self, name: str, **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        self.exit_code: int | None = None

    def declare(self, parameters_type: type[ParametersT]) -> ParametersT:
        """Declare every field of a parameters dataclass and return their values."""
        values = {}
        for field in dataclasses.fields(parameters_type):
            default = field.default_factory() if field.default is dataclasses.MISSING else field.default
            descriptor = ParameterDescriptor(description=field.metadata.get("description", ""))
            try:
                value = self.declare_parameter(field.name, default, descriptor).value
            except InvalidParameterTypeException as error:
                raise ValueError(f"parameter '{field.name}': {error}") from None
            if isinstance(default, float) and isinstance(value, int):
                value = float(value)
            if isinstance(default, list) and not isinstance(value, (str, bytes)):
                value = list(value)  # array parameters may arrive as array.array
            if type(value) is not type(default):
                raise ValueError(
                    f"parameter '{field.name}' must be {type(default).__name__}, "
                    f"got {value!r} ({type(value).__name__})"
                )
            values[field.name] = value
        return parameters_type(**values)

    def finish(self, code: int = 0) -> None:
        """End the node's spin loop; ``code`` becomes the process exit code."""
        if self.exit_code is None:
            self.exit_code = code

    def on_shutdown(self) -> None:
        """Release resources; the ROS context is still alive here (publishing works)."""


def run_node(make_node: Callable[[], DmoNode], args: list[str] | None = None, threads: int = 1) -> int:
    """Create the node, spin it until it finishes or a signal arrives, shut down cleanly.

    ``threads`` > 1 spins a MultiThreadedExecutor, so callbacks of different callback groups run at the
    same time (the policy node's watchdog keeps running while an inference is in progress)."""
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    try:
        node = make_node()
    except ValueError as error:  # a bad parameter: say so plainly, no traceback
        print(f"[ERROR] {error}", file=sys.stderr, flush=True)
        rclpy.try_shutdown()
        return 2

    def request_stop(_number: int, _frame: Any) -> None:
        node.finish(0)

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        executor = SingleThreadedExecutor() if threads <= 1 else MultiThreadedExecutor(num_threads=threads)
        executor.add_node(node)
        while node.exit_code is None and rclpy.ok():
            executor.spin_once(timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        # A second signal now acts at once, so a hung shutdown can still be interrupted.
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        try:
            node.on_shutdown()
        finally:
            node.destroy_node()
            rclpy.try_shutdown()
    return node.exit_code or 0
