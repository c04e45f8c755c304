"""The policy node's last command is zero: a decision in flight on the other executor thread when the node shuts
down (or when an e-stop arrives) must not publish a moving command after the zero one.

In-process and deterministic: the node is built around a stub policy whose inference blocks on an Event, so the
decision is held mid-way while ``on_shutdown`` / the e-stop runs from another thread, then let go. The node's
publisher is replaced by a list, so the test sees exactly the commands the robot would get, in order.
(The process-level shutdown over DDS: test_policy_node.py.)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest
import rclpy

from dmo_ros.nodes import policy as policy_module
from dmo_ros.policy.api import PolicyRun

MOVING = (0.1, -0.1)
WAIT_S = 10.0  # only a bound for a broken test: nothing here waits for time to pass


class HeldPolicy:
    """Returns ``MOVING``; once ``hold`` is set, each inference signals ``inside`` and waits for ``release``."""

    image_size = (8, 8)
    action_limit = np.array([0.25, 0.25])

    def __init__(self) -> None:
        self.hold = False
        self.inside, self.release = threading.Event(), threading.Event()

    def reset(self) -> None:
        pass

    def observe_action(self, action: np.ndarray) -> None:
        pass

    def act(self, frame: np.ndarray) -> np.ndarray:
        if self.hold:
            self.inside.set()
            assert self.release.wait(WAIT_S), "the test never released the inference"
        return np.array(MOVING)


class SentCommands:
    """Stands in for the node's publisher: the (vx, vy) of every command, in order; ``zero_sent`` once a zero."""

    def __init__(self) -> None:
        self.commands: list[tuple[float, float]] = []
        self.zero_sent = threading.Event()

    def publish(self, message) -> None:
        command = (message.twist.linear.x, message.twist.linear.y)
        self.commands.append(command)
        if command == (0.0, 0.0):
            self.zero_sent.set()


@pytest.fixture
def node(monkeypatch, tmp_path) -> Iterator[tuple[policy_module.PolicyNode, HeldPolicy, SentCommands]]:
    """An enabled Push-T policy node with a fresh camera frame, a held-able policy and a recording publisher."""
    monkeypatch.setenv("ROS_DOMAIN_ID", str(np.random.randint(101, 200)))
    monkeypatch.setenv("ROS_LOG_DIR", str(tmp_path / "ros_log"))
    monkeypatch.setenv("FASTDDS_BUILTIN_TRANSPORTS", "SHM")
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    policy = HeldPolicy()
    monkeypatch.setattr(policy_module, "load_policy_run", lambda *_args: PolicyRun(policy=policy, robot="pusht"))
    # A held inference takes as long as the test holds it: no overrun, no stale camera, no statistics timer.
    rclpy.init(args=["--ros-args", "-p", "checkpoint:=stub", "-p", "start_enabled:=true",
                     "-p", "inference_budget:=3600.0", "-p", "stale_timeout:=3600.0", "-p", "statistics_period:=0.0"])
    try:
        built = policy_module.PolicyNode()
        sent = SentCommands()
        built.publisher = sent
        built.controller.on_frame(np.zeros((8, 8, 3), np.uint8), time.monotonic())
        yield built, policy, sent
        built.destroy_node()
    finally:
        rclpy.try_shutdown()


def run_while_a_decision_is_held(node: policy_module.PolicyNode, policy: HeldPolicy, sent: SentCommands,
                                 stop: Callable[[], None]) -> None:
    """One decision held inside its inference; ``stop`` runs in another thread until it has sent its zero command;
    then the decision is let go and runs to its end."""
    node.on_control_tick()
    assert sent.commands == [MOVING]  # the robot is moving
    policy.hold = True
    decision = threading.Thread(target=node.on_control_tick)
    decision.start()
    assert policy.inside.wait(WAIT_S)
    stopping = threading.Thread(target=stop)
    stopping.start()
    # A stop that waited for the decision would send its zero only after the release: the join below covers that.
    sent.zero_sent.wait(WAIT_S)
    policy.release.set()
    decision.join(WAIT_S)
    stopping.join(WAIT_S)
    assert not decision.is_alive() and not stopping.is_alive()


def assert_zero_from_the_first_zero_on(commands: list[tuple[float, float]]) -> None:
    first_zero = commands.index((0.0, 0.0))
    assert all(c == (0.0, 0.0) for c in commands[first_zero:]), f"a moving command after the zero: {commands}"


def test_a_decision_in_flight_at_shutdown_publishes_nothing_after_the_zero_command(node):
    node, policy, sent = node
    run_while_a_decision_is_held(node, policy, sent, node.on_shutdown)
    assert sent.commands == [MOVING, (0.0, 0.0)]  # the held decision's command was dropped
    # Ticks that would still fire after the shutdown publish nothing either; its timers are cancelled.
    node.on_control_tick()
    node.on_stream_tick()
    node.set_enabled(True, "topic")
    node.on_control_tick()
    assert sent.commands == [MOVING, (0.0, 0.0)]
    assert all(timer.is_canceled() for timer in node.timers)


def test_an_estop_during_an_inference_wins_over_its_result(node):
    node, policy, sent = node
    run_while_a_decision_is_held(node, policy, sent, lambda: node.set_enabled(False, "topic"))
    assert sent.commands[-1] == (0.0, 0.0)
    assert_zero_from_the_first_zero_on(sent.commands)
    node.on_stream_tick()
    node.on_control_tick()
    assert_zero_from_the_first_zero_on(sent.commands)
    # Enabled again, it moves again (the e-stop is not a shutdown).
    node.set_enabled(True, "service")
    policy.hold = False
    node.on_control_tick()
    assert sent.commands[-1] == MOVING
