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
- A stop signal is a clean stop from the process's first moments: the console scripts
  (``executables``) install the handler (``stop_signals``) before the node's module and rclpy
  are imported, and a signal that arrives before the node exists is kept for it.
- Repeated signals never interrupt a shutdown: under ``ros2 launch`` every Ctrl-C of the
  terminal reaches every node, and a second one 50 ms after the first used to abort the
  recorder while it closed its split. Later SIGINT/SIGTERM are noted and ignored; a hung
  ``on_shutdown`` is ended by the launcher's SIGKILL (both launchers escalate to it). What follows
  ``on_shutdown`` (destroying the node, rclpy's shutdown, the interpreter's exit) has nothing left
  to save and is bounded: past ``stop_signals.TEARDOWN_LIMIT_S`` the process exits with its code.
- A node never outlives the process that started it (``ros2 launch``, ``dmo-launch``,
  ``ros2 run``): ``ros2 launch`` exits on SIGTERM without stopping its nodes (upstream
  launch: "using SIGTERM can result in orphaned processes"), and nothing stops a node whose
  launcher was killed. On Linux the node asks the kernel for SIGTERM when its parent dies
  (``PR_SET_PDEATHSIG``), and the spin loop also compares ``os.getppid()`` with the parent
  it started under, so the node stops as after Ctrl-C, within one spin period (0.1 s).

This module and the other modules of ``dmo_ros.nodes`` are the only ones that import rclpy.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import threading
import time
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

from dmo_ros.nodes.node_help import (
    help_requested,
    node_help,
    parameter_types,
    unexpected_arguments,
    unexpected_arguments_message,
)
from dmo_ros.nodes.stop_signals import StopRequests, TeardownWatchdog, ignore_stop_signals, stop_requests

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
        self._refuse_unknown_parameters(values)
        return parameters_type(**values)

    def _refuse_unknown_parameters(self, declared: dict[str, Any]) -> None:
        """A parameter given to this node (``-p``, a params file, a graph's ``parameters:``) that it does not declare
        would be ignored without a word — a misspelled ``duraton`` leaves the default in force — so it is refused,
        naming the closest declared one. ``use_sim_time`` and rclpy's ``qos_overrides.*`` are ROS's own."""
        import difflib

        given = getattr(self, "_parameter_overrides", {})  # rclpy's overrides of this node, by name
        unknown = sorted(name for name in given if name not in declared and name != "use_sim_time"
                         and not name.startswith("qos_overrides."))
        if unknown:
            hints = []
            for name in unknown:
                close = difflib.get_close_matches(name, declared, n=1)
                hints.append(f"'{name}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
            raise ValueError(f"unknown parameter{'s' if len(unknown) > 1 else ''} {', '.join(hints)} for node "
                             f"'{self.get_name()}'; its parameters: {', '.join(declared)}")

    def finish(self, code: int = 0) -> None:
        """End the node's spin loop; ``code`` becomes the process exit code."""
        if self.exit_code is None:
            self.exit_code = code

    def on_shutdown(self) -> None:
        """Release resources; the ROS context is still alive here (publishing works)."""


_SPIN_PERIOD = 0.1
MULTI_THREADED_YIELD_S = 0.001
"""Seconds the spinning thread sleeps after each turn of a MultiThreadedExecutor. Its ``spin_once`` returns at once
while a callback it handed to a worker is still ready (rclpy#1223), so without a pause this loop holds the GIL and
starves the workers: measured on the 2-core box, the policy node spun a core at 100 % and its 5 Hz decisions fell to
1.3-2 Hz with 1-2.5 s stalls. A millisecond's sleep releases the GIL and adds at most that to a callback's start."""
CALLBACK_DRAIN_S = 2.0
"""Seconds a stopping node waits for callbacks still running on executor threads before it is destroyed (within
``stop_signals.TEARDOWN_LIMIT_S``, which bounds the whole teardown)."""


def _drain_callbacks(executor: SingleThreadedExecutor | MultiThreadedExecutor | None, node: DmoNode) -> None:
    """Stop ``executor`` and wait up to ``CALLBACK_DRAIN_S`` for its running callbacks, so that none of them
    touches the node after ``destroy_node``. A callback that does not return in time is reported and left
    behind (its thread is a daemon's for the rest of the process's short life)."""
    if executor is None:
        return
    # MultiThreadedExecutor.shutdown joins its worker threads without a time limit: join it with one.
    stopper = threading.Thread(target=executor.shutdown, name="executor-shutdown", daemon=True)
    stopper.start()
    stopper.join(CALLBACK_DRAIN_S)
    if stopper.is_alive():
        node.get_logger().warning(
            f"a callback is still running {CALLBACK_DRAIN_S:g} s after the stop; destroying the node anyway"
        )


def run_node(make_node: Callable[[], DmoNode], args: list[str] | None = None, threads: int = 1) -> int:
    """Create the node, spin it until it finishes, a signal arrives or its parent process is
    gone, then shut it down cleanly (see the module doc). Returns the process exit code:
    ``finish(code)``'s code, 0 after a signal or the parent's exit, 2 for a bad parameter.

    ``threads`` > 1 spins a MultiThreadedExecutor, so callbacks of different callback groups run at the
    same time (the policy node's watchdog keeps running while an inference is in progress). Then
    ``on_shutdown`` also runs while a callback may still be running on an executor thread, so that a stop
    is not held up by a slow one: a node whose callbacks publish commands must keep them from publishing
    after its shutdown's zero command (the policy node's ``publish`` does). The node is destroyed only
    after the callbacks still running have returned (up to ``CALLBACK_DRAIN_S``; a warning names a hung
    one). With one thread, callbacks run in this thread, so none is running when ``on_shutdown`` is
    called.

    ``-h`` / ``--help`` outside ``--ros-args`` prints the node's help (its module docstring and parameters) and
    returns 0 before anything starts; any other argument there is refused (exit 2): no node reads one, and
    ``recorder --duration 5`` used to record with the default duration."""
    argv = sys.argv[1:] if args is None else args
    module = sys.modules[make_node.__module__]
    name = module.__name__.rsplit(".", 1)[-1]
    # Checked before rclpy.init: `recorder --help` used to start recording (an empty session folder).
    if help_requested(argv):
        print(node_help(name, module.__doc__, parameter_types(module)), flush=True)
        return 0
    unexpected = unexpected_arguments(argv)
    if unexpected:
        print(f"[ERROR] {unexpected_arguments_message(name, unexpected, parameter_types(module))}", file=sys.stderr,
              flush=True)
        return 2
    # Installed before the node exists (by the console script: before rclpy is even imported), so
    # a Ctrl-C during a slow start (a simulator loading) is a clean stop too, and kept through the
    # shutdown (run_node owns the process).
    stop = stop_requests()
    code = _run(make_node, args, stop, threads)
    ignore_stop_signals()
    return code


def _run(make_node: Callable[[], DmoNode], args: list[str] | None, stop: StopRequests, threads: int) -> int:
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    try:
        node = make_node()
    except ValueError as error:  # a bad parameter: say so plainly, no traceback
        print(f"[ERROR] {error}", file=sys.stderr, flush=True)
        rclpy.try_shutdown()
        return 2
    stop.node = node
    if stop.requested:
        node.finish(0)
    executor = None
    try:
        executor = SingleThreadedExecutor() if threads <= 1 else MultiThreadedExecutor(num_threads=threads)
        executor.add_node(node)
        while node.exit_code is None and rclpy.ok():
            executor.spin_once(timeout_sec=_SPIN_PERIOD)
            if threads > 1:
                time.sleep(MULTI_THREADED_YIELD_S)
            if os.getppid() != stop.parent:
                node.get_logger().warning(
                    f"the process that started this node (pid {stop.parent}) is gone; stopping"
                )
                node.finish(0)
    except ExternalShutdownException:
        pass
    finally:
        stop.shutting_down = True
        try:
            node.on_shutdown()
        finally:
            # Nothing is left to save: a teardown that hangs (seen under load: a node that had logged its
            # shutdown was SIGKILLed 10 s later) ends the process with its code instead (stop_signals).
            watchdog = TeardownWatchdog(node.get_name(), node.exit_code or 0, "stopping the executor")
            stop.teardown = watchdog
            _drain_callbacks(executor, node)
            watchdog.phase = "destroying the node"
            node.destroy_node()
            watchdog.phase = "shutting rclpy down"
            rclpy.try_shutdown()
            watchdog.disarm()
    return node.exit_code or 0
