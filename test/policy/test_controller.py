"""The policy node's rules without ROS: staleness, enable/e-stop, limits, NaN, overrun, watchdog, streaming,
the recurrent state fed with the commands actually sent, and the latency statistics."""

from __future__ import annotations

import numpy as np
import pytest

from dmo_ros.policy.base import NonFiniteActionError, PolicyError
from dmo_ros.policy.controller import ControllerConfig, PolicyController

FRAME = np.zeros((8, 8, 3), np.uint8)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class ScriptedPolicy:
    """Returns ``action`` (or raises ``error``), takes ``inference_s`` of the fake clock, records what it was told."""

    image_size = (8, 8)
    action_limit = np.array([0.25, 0.25])

    def __init__(self, clock: Clock, action=(0.1, -0.1)) -> None:
        self.clock, self.action = clock, np.asarray(action, dtype=np.float64)
        self.inference_s = 0.002
        self.error: Exception | None = None
        self.resets, self.acts, self.observed = 0, 0, []

    def reset(self) -> None:
        self.resets += 1

    def act(self, frame: np.ndarray) -> np.ndarray:
        self.acts += 1
        self.clock.now += self.inference_s
        if self.error is not None:
            raise self.error
        return self.action.copy()

    def observe_action(self, action: np.ndarray) -> None:
        self.observed.append(np.asarray(action).copy())


def make(config: ControllerConfig | None = None, limits=None, action=(0.1, -0.1)):
    clock = Clock()
    policy = ScriptedPolicy(clock, action)
    config = config or ControllerConfig(start_enabled=True)
    return clock, policy, PolicyController(policy, config, None if limits is None else np.asarray(limits), clock)


def test_acts_on_a_fresh_frame_and_reports_the_sent_command_to_the_policy():
    clock, policy, controller = make()
    controller.on_frame(FRAME, clock.now, convert_s=0.001)
    clock.now += 0.05
    decision = controller.decide()
    assert decision.ok and decision.status == "ok"
    np.testing.assert_allclose(decision.command, [0.1, -0.1])
    assert policy.resets == 1  # the first action of an episode starts from a clean history
    np.testing.assert_allclose(policy.observed[-1], [0.1, -0.1])
    assert decision.inference_s == pytest.approx(0.002)


def test_commands_are_clamped_to_the_tighter_of_robot_and_policy_limits_and_the_policy_sees_the_clamped_one():
    clock, policy, controller = make(limits=[0.05, 1.0], action=(0.2, -0.9))
    np.testing.assert_allclose(controller.limits, [0.05, 0.25])  # robot 0.05, policy 0.25 -> the tighter
    controller.on_frame(FRAME, clock.now)
    decision = controller.decide()
    np.testing.assert_allclose(decision.proposed, [0.2, -0.9])
    np.testing.assert_allclose(decision.command, [0.05, -0.25])
    np.testing.assert_allclose(policy.observed[-1], [0.05, -0.25])  # the recurrent state follows what was sent
    with pytest.raises(PolicyError, match="components"):
        make(limits=[0.1, 0.1, 0.1])


def test_no_camera_and_stale_camera_give_zero_and_a_reset_before_the_next_action():
    clock, policy, controller = make()
    assert controller.decide().status == "no_camera" and policy.acts == 0
    controller.on_frame(FRAME, clock.now)
    assert controller.decide().ok
    clock.now += 0.49
    assert controller.decide().ok and controller.stop_reason() is None  # 0.49 s old: still fresh
    clock.now += 0.02
    stale = controller.decide()
    assert stale.status == "stale_camera" and not stale.command.any() and "0.51 s old" in stale.detail
    assert controller.stop_reason() == "stale_camera"  # the node's guard answers between decisions too
    assert not controller.stream_command().any()
    resets = policy.resets
    controller.on_frame(FRAME, clock.now)
    assert controller.decide().ok and policy.resets == resets + 1


def test_enable_input_starts_as_configured_and_disabling_zeroes_at_once():
    clock, policy, controller = make(ControllerConfig(start_enabled=False))
    controller.on_frame(FRAME, clock.now)
    assert controller.decide().status == "disabled" and policy.acts == 0
    assert controller.set_enabled(True) and not controller.set_enabled(True)
    assert controller.decide().ok
    assert controller.set_enabled(False)
    assert controller.stop_reason() == "disabled" and not controller.stream_command().any()
    assert controller.decide().status == "disabled"


def test_an_estop_during_the_inference_wins_over_its_action():
    """The enable input is off by the time the (slow) inference returns: the decision is a stop, and the stream does
    not pick the action up when commanding is enabled again."""
    clock, policy, controller = make()
    controller.on_frame(FRAME, clock.now)
    act = policy.act
    policy.act = lambda frame: (controller.set_enabled(False), act(frame))[1]  # the e-stop comes mid-inference
    decision = controller.decide()
    assert decision.status == "disabled" and not decision.command.any() and decision.proposed is not None
    policy.act = act
    assert controller.set_enabled(True)
    assert not controller.stream_command().any()
    controller.on_frame(FRAME, clock.now)
    assert controller.decide().ok and policy.resets == 2  # the next decision starts a fresh episode


def test_bad_image_zeroes_until_a_good_frame_arrives():
    clock, policy, controller = make()
    controller.on_frame(FRAME, clock.now)
    assert controller.decide().ok
    controller.on_image_error("unsupported image encoding 'yuv422'", clock.now)
    decision = controller.decide()
    assert decision.status == "bad_image" and "yuv422" in decision.detail and not decision.command.any()
    controller.on_frame(FRAME, clock.now)
    assert controller.decide().ok
    policy.error = PolicyError("a policy frame is (8, 8, 3) uint8 RGB, got (4, 4, 3)")  # the policy refuses it
    decision = controller.decide()
    assert decision.status == "bad_image" and not decision.command.any()


@pytest.mark.parametrize("how", ["raises", "returns"])
def test_non_finite_action_gives_zero_and_the_policy_is_told_zero_was_sent(how):
    clock, policy, controller = make()
    if how == "raises":
        policy.error = NonFiniteActionError("the policy produced a non-finite action [nan, 0.0]")
    else:
        policy.action = np.array([np.nan, np.inf])
    controller.on_frame(FRAME, clock.now)
    decision = controller.decide()
    assert decision.status == "non_finite" and "non-finite" in decision.detail
    assert np.array_equal(decision.command, [0.0, 0.0])
    assert np.array_equal(policy.observed[-1], [0.0, 0.0])


def test_inference_overrunning_its_budget_is_not_commanded():
    clock, policy, controller = make(ControllerConfig(start_enabled=True, inference_budget_s=0.05))
    controller.on_frame(FRAME, clock.now)
    policy.inference_s = 0.08
    decision = controller.decide()
    assert decision.status == "overrun" and not decision.command.any() and "80.0 ms" in decision.detail
    np.testing.assert_allclose(decision.proposed, [0.1, -0.1])
    policy.inference_s = 0.01
    controller.on_frame(FRAME, clock.now)
    assert controller.decide().ok


def test_streaming_repeats_a_velocity_splits_a_delta_and_the_watchdog_stops_it():
    config = ControllerConfig(start_enabled=True, control_rate_hz=5.0, stream_rate_hz=20.0)
    clock, policy, controller = make(config)
    controller.on_frame(FRAME, clock.now)
    decision = controller.decide()
    clock.now += 0.05
    np.testing.assert_allclose(controller.stream_command(), decision.command)  # a velocity is held: same value
    clock.now += config.watchdog_timeout_s  # no decision for 1.5 periods (a hung inference)
    controller.on_frame(FRAME, clock.now)  # even with a fresh camera
    assert not controller.stream_command().any() and controller.stop_reason() == "watchdog"

    delta = ControllerConfig(start_enabled=True, control_rate_hz=5.0, stream_rate_hz=20.0, command_kind="delta")
    clock, policy, controller = make(delta)
    controller.on_frame(FRAME, clock.now)
    decision = controller.decide()
    parts = [controller.stream_command(clock.now + 0.05 * i) for i in range(4)]
    np.testing.assert_allclose(np.sum(parts, axis=0), decision.command)  # four parts: the same motion per period


@pytest.mark.parametrize(("field", "value", "message"), [
    ("control_rate_hz", 0.0, "control_rate_hz must be positive"),
    ("stale_timeout_s", float("nan"), "stale_timeout_s must be positive"),
    ("stream_rate_hz", 2.0, "at least control_rate_hz"),
    ("command_kind", "position", "command_kind must be one of velocity, delta"),
    ("watchdog_s", -1.0, "watchdog_s must be >= 0"),
])
def test_config_mistakes_are_named(field, value, message):
    with pytest.raises(ValueError, match=message):
        ControllerConfig(**{field: value})


def test_statistics_give_percentiles_rates_and_stop_counts():
    clock, policy, controller = make()
    for i in range(50):
        controller.on_frame(FRAME, clock.now, convert_s=0.001)
        policy.inference_s = 0.002 if i < 49 else 0.02  # one slow inference: p99 sees it, p50 does not
        controller.decide()
        clock.now += 0.2 - policy.inference_s
    controller.set_enabled(False)
    controller.decide()
    stats = controller.statistics()
    assert stats.decisions == 51 and stats.acted == 50 and stats.statuses == {"ok": 50, "disabled": 1}
    assert stats.inference_ms[0] == pytest.approx(2.0) and stats.inference_ms[1] > 10.0
    assert stats.camera_to_command_ms[0] == pytest.approx(3.0)  # 1 ms conversion + 2 ms inference
    assert stats.decision_rate_hz == pytest.approx(51 / 10.0, rel=0.02)
    assert "inference p50 2.00 ms" in stats.summary() and "stops: disabled 1" in stats.summary()
