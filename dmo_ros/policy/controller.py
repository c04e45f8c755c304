"""What the policy node does each control period, without ROS: frames in, one safe command out.

    controller = PolicyController(load_policy(run), ControllerConfig(control_rate_hz=5.0), limits)
    controller.on_frame(frame, received_s)      # a converted camera frame (H, W, 3) uint8, monotonic seconds
    decision = controller.decide(now_s)         # each control period: the command and why
    command = controller.stream_command(now_s)  # between decisions (streaming): the same command, or zero

Safety rules, in the order :meth:`PolicyController.decide` applies them (the first that holds gives a zero
command and says so in ``Decision.status``):

1. ``disabled`` — the enable input is off (e-stop); it starts as ``ControllerConfig.start_enabled``. An e-stop
   that comes while the policy is inferring wins over that inference's action too.
2. ``no_camera`` / ``stale_camera`` — no frame yet, or the newest is older than ``stale_timeout_s``.
3. ``bad_image`` — the newest camera message could not be converted (wrong encoding, size, truncated data).
4. ``non_finite`` — the policy's output is NaN/inf (:class:`~dmo_ros.policy.base.NonFiniteActionError`).
5. ``overrun`` — inference took longer than the watchdog budget: its result is too old to command.

Otherwise the policy's action, clamped to the limits, is the command (``ok``). Every command that is sent
is reported back to the policy (:meth:`~dmo_ros.policy.base.Policy.observe_action`), so a recurrent
policy's state follows what the robot actually did. After any stop the policy's history no longer matches
the motion: the policy is reset before it acts again.

Streaming (``stream_rate_hz`` > 0): a velocity held for one control period is re-published unchanged at the
stream rate (MoveIt Servo drops commands older than its ``incoming_command_timeout``); a per-message
position delta (``command_kind: delta``) is split into equal parts, so the motion per control period is the
same. The watchdog: :meth:`stream_command` returns zero once the last decision is older than
``watchdog_s`` — a hung or overrunning inference stops the robot instead of repeating an old command.

Latency: ``inference`` is the policy's ``act`` time; ``camera_to_command`` is the conversion of the frame
(reported by the caller) plus the time from the start of the decision to the command being handed out;
``frame_age`` is how old the frame was when the command was decided (includes the wait for the control
tick). :meth:`statistics` gives p50/p99 of each and the achieved decision and command rates.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from dmo_ros.policy.base import NonFiniteActionError, Policy, PolicyError

COMMAND_KINDS = ("velocity", "delta")
STATUSES = ("ok", "disabled", "no_camera", "stale_camera", "bad_image", "non_finite", "overrun")


@dataclass
class ControllerConfig:
    """Timing and safety of the policy node (its ROS parameters of the same names)."""

    control_rate_hz: float = 5.0
    """Decisions per second (the rate the policy was trained at: 5 Hz)."""

    stream_rate_hz: float = 0.0
    """Commands per second between decisions; 0: one command per decision. Must be >= control_rate_hz
    when set (e.g. 20-100 Hz for MoveIt Servo, whose incoming_command_timeout is 0.1 s by default)."""

    stale_timeout_s: float = 0.5
    """Seconds without a new camera frame after which the command is zero."""

    start_enabled: bool = False
    """Whether commanding starts enabled; False waits for the enable service or topic (safer on a robot)."""

    inference_budget_s: float = 0.0
    """Longest inference whose action may still be sent; 0: one control period."""

    watchdog_s: float = 0.0
    """Streamed commands fall to zero once the last decision is older than this; 0: 1.5 control periods."""

    command_kind: str = "velocity"
    """velocity: a command is held until the next one (stream copies it); delta: each message is a motion
    increment (stream splits the decision's delta into equal parts)."""

    statistics_window: int = 2000
    """Decisions kept for the latency percentiles."""

    def __post_init__(self) -> None:
        for name in ("control_rate_hz", "stale_timeout_s"):
            value = getattr(self, name)
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be positive, got {value}")
        for name in ("stream_rate_hz", "inference_budget_s", "watchdog_s"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        if 0 < self.stream_rate_hz < self.control_rate_hz:
            raise ValueError(f"stream_rate_hz ({self.stream_rate_hz}) must be 0 (off) or at least control_rate_hz "
                             f"({self.control_rate_hz})")
        if self.command_kind not in COMMAND_KINDS:
            raise ValueError(f"command_kind must be one of {', '.join(COMMAND_KINDS)}, got {self.command_kind!r}")
        if self.statistics_window < 1:
            raise ValueError(f"statistics_window must be >= 1, got {self.statistics_window}")

    @property
    def period_s(self) -> float:
        """Seconds per decision."""
        return 1.0 / self.control_rate_hz

    @property
    def budget_s(self) -> float:
        """The inference budget in seconds (``inference_budget_s``, or one control period)."""
        return self.inference_budget_s or self.period_s

    @property
    def watchdog_timeout_s(self) -> float:
        """Age of the last decision after which streamed commands are zero."""
        return self.watchdog_s or 1.5 * self.period_s


@dataclass
class Decision:
    """One control period's outcome."""

    command: np.ndarray
    """(A,) float64 the command in robot units (the action's units): zero unless ``status`` is ``ok``."""
    status: str
    """``ok`` or the safety rule that zeroed the command (see the module doc)."""
    detail: str = ""
    """What happened, for the log (empty when ``ok``)."""
    proposed: np.ndarray | None = None
    """(A,) the policy's action before clamping, when it acted."""
    inference_s: float | None = None
    """Seconds the policy's ``act`` took, when it acted."""
    time_s: float = 0.0
    """Monotonic seconds at which the decision was made."""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass
class LatencyStatistics:
    """Percentiles (milliseconds) and rates over the decisions so far."""

    decisions: int
    """Decisions made."""
    acted: int
    """Decisions in which the policy acted (not stopped by a safety rule before inference)."""
    commands: int
    """Commands handed out (decisions + streamed)."""
    inference_ms: tuple[float, float] = (math.nan, math.nan)
    """(p50, p99) of the policy's inference time."""
    camera_to_command_ms: tuple[float, float] = (math.nan, math.nan)
    """(p50, p99) of frame conversion + decision until the command is handed out."""
    frame_age_ms: tuple[float, float] = (math.nan, math.nan)
    """(p50, p99) of the frame's age when it was decided on (includes the wait for the control tick)."""
    decision_rate_hz: float = 0.0
    """Achieved decisions per second."""
    command_rate_hz: float = 0.0
    """Achieved commands per second (decisions and streamed commands)."""
    statuses: dict[str, int] = field(default_factory=dict)
    """Decisions per status."""

    def summary(self) -> str:
        """One log line with every number."""
        stops = ", ".join(f"{k} {v}" for k, v in sorted(self.statuses.items()) if k != "ok") or "none"
        return (f"{self.decisions} decisions ({self.decision_rate_hz:.2f} Hz), {self.commands} commands "
                f"({self.command_rate_hz:.2f} Hz); inference p50 {self.inference_ms[0]:.2f} ms, p99 "
                f"{self.inference_ms[1]:.2f} ms; camera-to-command p50 {self.camera_to_command_ms[0]:.2f} ms, p99 "
                f"{self.camera_to_command_ms[1]:.2f} ms; frame age p50 {self.frame_age_ms[0]:.1f} ms, p99 "
                f"{self.frame_age_ms[1]:.1f} ms; stops: {stops}")


def _percentiles(values: deque[float]) -> tuple[float, float]:
    if not values:
        return (math.nan, math.nan)
    p50, p99 = np.percentile(np.asarray(values) * 1e3, [50, 99])
    return (float(p50), float(p99))


class PolicyController:
    """The policy node's logic (see the module doc); thread-safe between one deciding thread and one streaming
    thread (the decision's inference runs outside the lock, so a stream tick never waits for it)."""

    def __init__(self, policy: Policy, config: ControllerConfig | None = None, limits: np.ndarray | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """``limits`` (A,): the robot's command limits (the profile's); the clamp uses the tighter of these and
        the policy's ``action_limit``."""
        self.policy = policy
        self.config = config or ControllerConfig()
        self.clock = clock
        policy_limit = np.asarray(policy.action_limit, dtype=np.float64)
        if limits is not None and np.shape(limits) != policy_limit.shape:
            raise PolicyError(f"the robot's limits have {np.size(limits)} components, the policy's actions "
                              f"{policy_limit.size}: is this policy for this robot?")
        self.limits = policy_limit if limits is None else np.minimum(policy_limit, np.asarray(limits, np.float64))
        self.zero = np.zeros_like(self.limits)
        self.enabled = bool(self.config.start_enabled)
        self._lock = threading.Lock()
        self._frame: np.ndarray | None = None
        self._frame_received = -math.inf
        self._frame_convert_s = 0.0
        self._frame_used = True
        self._image_error: str | None = None
        self._needs_reset = True
        self._last = Decision(self.zero.copy(), "no_camera", "no decision yet", time_s=-math.inf)
        self._started = clock()
        window = self.config.statistics_window
        self._inference: deque[float] = deque(maxlen=window)
        self._camera_to_command: deque[float] = deque(maxlen=window)
        self._frame_age: deque[float] = deque(maxlen=window)
        self._statuses: dict[str, int] = {}
        self._decisions = self._acted = self._commands = 0

    # -- inputs ------------------------------------------------------------------------------------------

    def on_frame(self, frame: np.ndarray, received_s: float, convert_s: float = 0.0) -> None:
        """A converted camera frame (the policy's image size), received at ``received_s`` (monotonic seconds),
        whose conversion took ``convert_s``. A good frame clears an earlier image error."""
        with self._lock:
            self._frame, self._frame_received, self._frame_convert_s = frame, received_s, convert_s
            self._frame_used = False
            self._image_error = None

    def on_image_error(self, error: str, received_s: float) -> None:
        """A camera message that could not be converted: commands are zero until a good frame arrives."""
        with self._lock:
            self._image_error = error
            self._frame_received = received_s

    def set_enabled(self, enabled: bool) -> bool:
        """The enable / e-stop input; returns whether the state changed. Disabling zeroes the command at once."""
        with self._lock:
            changed = self.enabled != bool(enabled)
            self.enabled = bool(enabled)
            if not enabled:
                self._last = Decision(self.zero.copy(), "disabled", "disabled by the enable input", time_s=self.clock())
                self._needs_reset = True
            return changed

    def reset(self) -> None:
        """A new episode (the robot was reset): the policy forgets its history before its next action."""
        with self._lock:
            self._needs_reset = True

    # -- outputs -----------------------------------------------------------------------------------------

    def decide(self, now_s: float | None = None) -> Decision:
        """The command for this control period (see the module doc for the rules)."""
        start = self.clock() if now_s is None else now_s
        with self._lock:
            frame, received, convert_s = self._frame, self._frame_received, self._frame_convert_s
            stop = self._stop_reason(start)
            if stop is None:
                self._frame_used = True
                needs_reset, self._needs_reset = self._needs_reset, False
        if stop is not None:
            return self._finish(Decision(self.zero.copy(), *stop, time_s=start))
        if needs_reset:
            self.policy.reset()
        began = self.clock()
        try:
            proposed = np.asarray(self.policy.act(frame), dtype=np.float64)
        except NonFiniteActionError as error:
            return self._stopped_after_acting(Decision(self.zero.copy(), "non_finite", str(error), time_s=start), began)
        except PolicyError as error:  # a frame of the wrong size or type for this policy
            return self._stopped_after_acting(Decision(self.zero.copy(), "bad_image", str(error), time_s=start), began)
        inference = self.clock() - began
        if not np.isfinite(proposed).all():
            return self._stopped_after_acting(Decision(self.zero.copy(), "non_finite", "the policy produced a "
                                                       f"non-finite action {proposed.tolist()}", time_s=start), began)
        if inference > self.config.budget_s:
            decision = Decision(self.zero.copy(), "overrun", f"inference took {inference * 1e3:.1f} ms, more than "
                                f"the {self.config.budget_s * 1e3:.0f} ms budget", proposed, inference, start)
            return self._stopped_after_acting(decision, began)
        command = np.clip(proposed, -self.limits, self.limits)
        self.policy.observe_action(command)
        decision = Decision(command, "ok", "", proposed, inference, start)
        with self._lock:
            self._acted += 1
            self._inference.append(inference)
            self._camera_to_command.append(convert_s + self.clock() - start)
            self._frame_age.append(start - received)
        return self._finish(decision)

    def stream_command(self, now_s: float | None = None) -> np.ndarray:
        """The command for a stream tick between decisions: the last decision's command (a velocity), its share
        (a delta: command x control rate / stream rate), or zero once the decision is older than the watchdog
        timeout, the camera went stale or bad, or the controller is disabled."""
        now = self.clock() if now_s is None else now_s
        with self._lock:
            last = self._last
            self._commands += 1
            if (not last.ok or now - last.time_s > self.config.watchdog_timeout_s
                    or self._stop_reason(now) is not None):
                return self.zero.copy()
            return self.share(last.command)

    def stop_reason(self, now_s: float | None = None) -> str | None:
        """Why the command must be zero right now (disabled, camera stale or bad, decision overdue), else None.

        Checked between decisions as well, so a camera that stops is answered within ``stale_timeout_s`` plus one
        guard tick, not at the next decision."""
        now = self.clock() if now_s is None else now_s
        with self._lock:
            stop = self._stop_reason(now)
            if stop is not None:
                return stop[0]
            if now - self._last.time_s > self.config.watchdog_timeout_s:
                return "watchdog"
            return None

    def share(self, command: np.ndarray) -> np.ndarray:
        """What one published message carries of a decision's command (see :meth:`stream_command`)."""
        if self.config.command_kind == "delta" and self.config.stream_rate_hz > 0:
            return command * (self.config.control_rate_hz / self.config.stream_rate_hz)
        return command.copy()

    def last_decision_age(self, now_s: float | None = None) -> float:
        """Seconds since the last decision (``inf`` before the first)."""
        now = self.clock() if now_s is None else now_s
        with self._lock:
            return now - self._last.time_s

    def statistics(self, now_s: float | None = None) -> LatencyStatistics:
        """Latency percentiles and achieved rates since the controller started."""
        now = self.clock() if now_s is None else now_s
        with self._lock:
            elapsed = max(now - self._started, 1e-9)
            return LatencyStatistics(
                decisions=self._decisions, acted=self._acted, commands=self._commands,
                inference_ms=_percentiles(self._inference),
                camera_to_command_ms=_percentiles(self._camera_to_command),
                frame_age_ms=_percentiles(self._frame_age),
                decision_rate_hz=self._decisions / elapsed, command_rate_hz=self._commands / elapsed,
                statuses=dict(self._statuses))

    # -- internals ---------------------------------------------------------------------------------------

    def _stop_reason(self, now: float) -> tuple[str, str] | None:
        if not self.enabled:
            return ("disabled", "disabled by the enable input")
        if self._image_error is not None:
            return ("bad_image", self._image_error)
        if self._frame is None:
            return ("no_camera", "no camera frame received yet")
        age = now - self._frame_received
        if age > self.config.stale_timeout_s:
            return ("stale_camera", f"the newest camera frame is {age:.2f} s old (timeout "
                                    f"{self.config.stale_timeout_s} s)")
        return None

    def _stopped_after_acting(self, decision: Decision, began: float) -> Decision:
        if decision.inference_s is None:
            decision.inference_s = self.clock() - began
        self.policy.observe_action(decision.command)
        return self._finish(decision)

    def _finish(self, decision: Decision) -> Decision:
        with self._lock:
            if decision.ok and not self.enabled:  # disabled (e-stop) during the inference: the stop wins over it
                decision = Decision(self.zero.copy(), "disabled", "disabled during the inference", decision.proposed,
                                    decision.inference_s, decision.time_s)
            if not decision.ok:
                self._needs_reset = True
            self._last = decision
            self._decisions += 1
            self._commands += 1
            self._statuses[decision.status] = self._statuses.get(decision.status, 0) + 1
        return decision


__all__ = ["COMMAND_KINDS", "STATUSES", "ControllerConfig", "Decision", "LatencyStatistics", "PolicyController"]
