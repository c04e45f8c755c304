"""The nodes' console scripts: ``ros2 run dmo_ros NAME`` and the executables the graphs name.

Each one installs the node's stop handler (``stop_signals``) and only then imports the node's
module, so a SIGINT or SIGTERM that arrives while rclpy, NumPy or PyTorch are still being
imported (seconds on a loaded machine) is a clean stop (``on_shutdown`` runs) instead of a
KeyboardInterrupt traceback. Only the standard library is imported here.
"""

from __future__ import annotations

import importlib

from dmo_ros.nodes.stop_signals import stop_requests, watch_exit


def run(module: str) -> int:
    """Install the stop handler, then import ``dmo_ros.nodes.<module>`` and run its ``main()``; the interpreter's
    exit after it is bounded by the node's teardown deadline (``stop_signals.watch_exit``)."""
    stop_requests()
    code = importlib.import_module(f"dmo_ros.nodes.{module}").main()
    watch_exit(code)
    return code


def test_pattern() -> int:
    return run("test_pattern")


def topic_monitor() -> int:
    return run("topic_monitor")


def pusht_standin() -> int:
    return run("pusht_standin")


def go2_standin() -> int:
    return run("go2_standin")


def teleop() -> int:
    return run("teleop")


def recorder() -> int:
    return run("recorder")


def policy() -> int:
    return run("policy")


def dream() -> int:
    return run("dream")
