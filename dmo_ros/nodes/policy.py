"""policy: a trained policy on the robot — camera in, a clamped command out at the control rate, safety first.

A thin node over :class:`dmo_ros.policy.controller.PolicyController` (the rules, streaming, watchdog and
latency statistics live there, tested without ROS):

- loads the policy run ``checkpoint`` (safetensors weights + JSON config: a pickle payload is refused before
  anything runs); the run's robot must be ``robot``;
- subscribes ``camera/image``: ``sensor_msgs/Image`` (``camera_format: raw``) or ``sensor_msgs/CompressedImage``
  (``compressed``, e.g. the Go2's JPEG front camera); each message is converted by
  :func:`dmo_ros.dataset.images.camera_frame`, the dataset converter's own function, with the run's aspect rule;
  a wrong encoding or a camera size other than the training recordings' zeroes the command with an error;
- decides every 1 / ``rate_hz`` s and publishes the command on the robot profile's action topic with its
  message type and field mapping (``config/robots/<robot>.yaml``): ``TwistStamped`` end-effector velocities on
  ``/servo_node/delta_twist_cmds`` (MoveIt Servo) for the arm, ``Twist`` on ``/cmd_vel`` for the Go2;
- ``stream_rate_hz`` > 0 re-publishes the current command between decisions (MoveIt Servo drops commands older
  than its ``incoming_command_timeout``, 0.1 s by default), and a watchdog zeroes the command when no decision
  came for ``watchdog`` s;
- ``enable`` (``std_srvs/SetBool`` service and ``std_msgs/Bool`` topic) switches commanding on and off (false =
  e-stop: zero at once); it starts as ``start_enabled``;
- ``reset`` (``std_msgs/Header``, the operator's or the evaluator's reset event) starts a new episode: the
  policy's recurrent state is cleared;
- logs the inference latency (p50/p99), camera-to-command latency and achieved rates every
  ``statistics_period`` s and on shutdown, where it also publishes a zero command: the last command the robot
  gets from this node (see :meth:`PolicyNode.publish`).
"""

from __future__ import annotations

import importlib
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Bool, Header
from std_srvs.srv import SetBool

from dmo_ros.dataset.images import ASPECTS, COMPRESSED_TYPE, IMAGE_TYPE, ImageError, camera_frame
from dmo_ros.dataset.robot_profile import ProfileError, load_robot_profile
from dmo_ros.nodes.template import QOS_PROFILES, DmoNode, param, qos_profile, run_node
from dmo_ros.policy.api import NonFiniteActionError, PolicyError, load_policy_run
from dmo_ros.policy.controller import COMMAND_KINDS, ControllerConfig, Decision, PolicyController

CAMERA_FORMATS = {"raw": (Image, IMAGE_TYPE), "compressed": (CompressedImage, COMPRESSED_TYPE)}


@dataclass
class PolicyNodeParameters:
    robot: str = param("pusht", "Robot profile (config/robots/ROBOT.yaml): action message, topic, field mapping, "
                                "limits; must match the policy run's robot.")
    checkpoint: str = param("", "Policy run folder of dmo-train-policy (safetensors + JSON; no code is loaded).")
    checkpoint_step: str = param("last", "Checkpoint of the run: last or step_NNNNNNNN.")
    device: str = param("cpu", "Torch device of the policy: cpu or cuda[:N].")
    torch_threads: int = param(1, "Torch intra-op threads (1: a 5 Hz policy gains nothing from more).")
    rate_hz: float = param(5.0, "Decisions per second (the training data's control rate).")
    stream_rate_hz: float = param(0.0, "Commands per second between decisions (e.g. 20-100 for MoveIt Servo); "
                                       "0: one command per decision.")
    stale_timeout: float = param(0.5, "Seconds without a camera frame after which the command is zero.")
    start_enabled: bool = param(False, "Start commanding without waiting for the enable service/topic.")
    inference_budget: float = param(0.0, "Longest inference (s) whose action is still sent; 0: one period.")
    watchdog: float = param(0.0, "Zero command when no decision came for this many seconds; 0: 1.5 periods.")
    command_kind: str = param("velocity", f"Command semantics for streaming: {', '.join(COMMAND_KINDS)}.")
    camera_format: str = param("raw", f"Camera message type: {', '.join(CAMERA_FORMATS)}.")
    image_qos: str = param("sensor_data", f"QoS of the camera subscription: {', '.join(QOS_PROFILES)}.")
    aspect: str = param("", f"Aspect rule for camera frames ({', '.join(ASPECTS)}); empty: the run's.")
    action_topic: str = param("", "Command topic; empty: the robot profile's action topic.")
    command_frame_id: str = param("", "header.frame_id of stamped commands (MoveIt Servo: empty = its "
                                      "robot_link_command_frame).")
    statistics_period: float = param(10.0, "Seconds between latency/rate log lines; 0: only on shutdown.")


def message_class(type_name: str) -> type:
    """``geometry_msgs/msg/Twist`` -> the message class (ValueError naming the type if it is not installed)."""
    try:
        package, kind, name = type_name.split("/")
        return getattr(importlib.import_module(f"{package}.{kind}"), name)
    except (ValueError, ImportError, AttributeError):
        raise ValueError(f"the robot profile's action message {type_name!r} is not an installed message type "
                         "(package/msg/Name)") from None


class PolicyNode(DmoNode):
    def __init__(self) -> None:
        super().__init__("policy")
        self.parameters = p = self.declare(PolicyNodeParameters)
        if p.camera_format not in CAMERA_FORMATS:
            raise ValueError(f"camera_format must be one of {', '.join(CAMERA_FORMATS)}, got {p.camera_format!r}")
        if p.aspect and p.aspect not in ASPECTS:
            raise ValueError(f"aspect must be one of {', '.join(ASPECTS)} (or empty), got {p.aspect!r}")
        if not p.checkpoint:
            raise ValueError("parameter 'checkpoint' is required: a policy run folder of dmo-train-policy")
        if p.torch_threads < 1:
            raise ValueError(f"torch_threads must be >= 1, got {p.torch_threads}")
        torch.set_num_threads(p.torch_threads)
        try:
            self.profile = load_robot_profile(p.robot)
            run = load_policy_run(Path(p.checkpoint), p.device, p.checkpoint_step)
        except (ProfileError, PolicyError) as error:
            raise ValueError(str(error)) from None
        except RuntimeError as error:  # e.g. a CUDA device asked for where there is none
            raise ValueError(f"cannot load the policy on {p.device!r}: {error}") from None
        if run.robot is not None and run.robot != self.profile.name:
            raise ValueError(f"the policy in {p.checkpoint} was trained on robot {run.robot!r}, this node drives "
                             f"{self.profile.name!r}")
        self.run = run
        self.action_spec = self.profile.action
        self.command_type = message_class(self.action_spec.message)
        self.stamped = hasattr(self.command_type(), "header")
        limits = None if self.action_spec.limits is None else np.asarray(self.action_spec.limits)
        config = ControllerConfig(control_rate_hz=p.rate_hz, stream_rate_hz=p.stream_rate_hz,
                                  stale_timeout_s=p.stale_timeout, start_enabled=p.start_enabled,
                                  inference_budget_s=p.inference_budget, watchdog_s=p.watchdog,
                                  command_kind=p.command_kind)
        try:
            self.controller = PolicyController(run.policy, config, limits)
        except PolicyError as error:
            raise ValueError(str(error)) from None
        self.aspect = p.aspect or run.aspect
        self.image_size = run.policy.image_size
        try:
            self.warm_up(run.policy)
        except NonFiniteActionError as error:  # not fatal: every such decision is a zero command, reported
            self.get_logger().error(f"warm-up on a blank frame: {error}; such decisions will command zero")
        self.camera_type, self.camera_msgtype = CAMERA_FORMATS[p.camera_format]
        self.last_publish = -float("inf")
        self.last_sent: np.ndarray = np.zeros_like(self.controller.limits)
        self.last_error_log: dict[str, float] = {}
        # The decision runs on one executor thread while e-stops, stream ticks and (from the main thread) the
        # shutdown publish from others: every command goes out under this lock (see publish). Re-entrant, so a
        # caller can hold it across a publish and what must happen with it (a disable, a timer reset).
        self.command_lock = threading.RLock()
        self.stopped = False

        # Two callback groups: the (slow) decision in one, everything else in the other, so the watchdog and the
        # stream keep running while an inference is in progress (run_node spins two threads).
        deciding, serving = MutuallyExclusiveCallbackGroup(), MutuallyExclusiveCallbackGroup()
        self.topic = p.action_topic or self.profile.topics["action"]
        self.publisher = self.create_publisher(self.command_type, self.topic, qos_profile("reliable"))
        self.create_subscription(self.camera_type, "camera/image", self.on_image, qos_profile(p.image_qos),
                                 callback_group=serving)
        self.create_subscription(Bool, "enable", self.on_enable_topic, qos_profile("reliable"),
                                 callback_group=serving)
        self.create_subscription(Header, "reset", self.on_reset, qos_profile("reliable"), callback_group=serving)
        self.create_service(SetBool, "enable", self.on_enable_service, callback_group=serving)
        self.create_timer(config.period_s, self.on_control_tick, callback_group=deciding)
        guard_rate = p.stream_rate_hz or 4.0 * p.rate_hz  # without streaming the timer only guards
        self.stream_timer = self.create_timer(1.0 / guard_rate, self.on_stream_tick, callback_group=serving)
        if p.statistics_period > 0:
            self.create_timer(p.statistics_period, self.log_statistics, callback_group=serving)
        state = "enabled" if self.controller.enabled else "disabled (enable with the 'enable' service or topic)"
        self.get_logger().info(
            f"policy {p.checkpoint} ({run.robot or 'robot not recorded'}, {self.image_size[1]}x{self.image_size[0]} "
            f"frames, aspect {self.aspect}) -> {self.action_spec.message} on {self.topic} at {p.rate_hz} Hz"
            f"{f', streamed at {p.stream_rate_hz} Hz' if p.stream_rate_hz else ''}; limits "
            f"{[round(float(v), 4) for v in self.controller.limits]}; {state}")

    @staticmethod
    def warm_up(policy: Any) -> None:
        """A few throw-away inferences before the first real one: PyTorch's first calls allocate and pick kernels
        (tens of ms), which would otherwise land on the robot's first decisions."""
        blank = np.zeros((*policy.image_size, 3), np.uint8)
        try:
            for _ in range(3):
                policy.act(blank)
        finally:
            policy.reset()

    # -- inputs --------------------------------------------------------------------------------------------

    def on_image(self, message: Any) -> None:
        received = time.monotonic()
        try:
            frame, source = camera_frame(message, self.camera_msgtype, *self.image_size, self.aspect)
        except ImageError as error:
            self.image_error(f"camera image refused: {error}", received)
            return
        expected = self.run.camera_size
        if expected is not None and source != expected:
            self.image_error(f"camera image is {source[1]}x{source[0]}, the policy was trained on "
                             f"{expected[1]}x{expected[0]} images (another camera or resolution?)", received)
            return
        self.controller.on_frame(frame, received, time.monotonic() - received)

    def image_error(self, text: str, received: float) -> None:
        self.controller.on_image_error(text, received)
        self.throttled("image", text, error=True)

    def on_enable_topic(self, message: Bool) -> None:
        self.set_enabled(bool(message.data), "topic")

    def on_enable_service(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        self.set_enabled(bool(request.data), "service")
        response.success = True
        response.message = "enabled" if request.data else "disabled: zero command"
        return response

    def set_enabled(self, enabled: bool, source: str) -> None:
        with self.command_lock:  # disabled and zero sent at once: a decision in flight then publishes zero
            changed = self.controller.set_enabled(enabled)
            if not enabled:
                self.publish(self.controller.zero)
        if changed:
            self.get_logger().warn(f"{'enabled' if enabled else 'DISABLED (zero command)'} by the enable {source}")

    def on_reset(self, _message: Header) -> None:
        self.controller.reset()

    # -- outputs -------------------------------------------------------------------------------------------

    def on_control_tick(self) -> None:
        decision = self.controller.decide()  # the inference: outside the lock, so an e-stop or shutdown never waits
        with self.command_lock:
            if self.publish(self.controller.share(decision.command)) and self.parameters.stream_rate_hz > 0:
                self.stream_timer.reset()  # the streamed copies follow this command a full stream period apart
        if not decision.ok:
            self.report_stop(decision)

    def on_stream_tick(self) -> None:
        now = time.monotonic()
        if self.parameters.stream_rate_hz > 0:
            # A decision publishes at once and restarts this timer; a tick that would land on a decision that is due
            # now (or just published) is left out, so the rate is stream_rate_hz and no gap exceeds 1.25 periods.
            stream_period, control_period = 1.0 / self.parameters.stream_rate_hz, 1.0 / self.parameters.rate_hz
            age = self.controller.last_decision_age(now)
            decision_due = control_period - 0.25 * stream_period <= age < control_period + 0.25 * stream_period
            if now - self.last_publish >= 0.75 * stream_period and not decision_due:
                self.publish(self.controller.stream_command(now))
            return
        # No streaming: only the guard. A stale camera or an overdue decision -> one zero command at once (not
        # repeated), instead of the robot holding a moving command until the next decision.
        reason = self.controller.stop_reason(now)
        if reason is not None and np.any(self.last_sent != 0):
            self.publish(self.controller.zero)
            if reason == "watchdog":
                age = self.controller.last_decision_age(now)
                self.throttled("watchdog", f"watchdog: no decision for {age:.2f} s; zero command", error=True)

    def publish(self, command: np.ndarray) -> bool:
        """Send ``command`` to the robot; returns whether it was sent. The one way a command leaves the node.

        Under ``command_lock``: nothing after the shutdown's zero command (a decision that was in flight on the other
        executor thread when the node stopped is dropped), and only zero while disabled (an e-stop that came during
        the inference wins over its result). Without this, the last command the robot saw could be a moving one."""
        with self.command_lock:
            if self.stopped:
                return False
            if not self.controller.enabled:
                command = self.controller.zero
            self._write(command)
            return True

    def _write(self, command: np.ndarray) -> None:
        message = self.action_spec.write(self.command_type(), command)
        if self.stamped:
            message.header.stamp = self.get_clock().now().to_msg()
            message.header.frame_id = self.parameters.command_frame_id
        self.publisher.publish(message)
        self.last_publish = time.monotonic()
        self.last_sent = np.asarray(command, dtype=np.float64)

    def report_stop(self, decision: Decision) -> None:
        if decision.status in ("non_finite", "overrun"):
            self.throttled(decision.status, f"{decision.status}: {decision.detail}; zero command", error=True)
        elif decision.status in ("stale_camera", "no_camera"):
            self.throttled("camera", f"{decision.detail}; zero command", error=False)

    def throttled(self, key: str, text: str, error: bool, period_s: float = 2.0) -> None:
        """Log ``text`` at most once per ``period_s`` per ``key`` (a 5 Hz stop would flood the log)."""
        now = time.monotonic()
        if now - self.last_error_log.get(key, -float("inf")) < period_s:
            return
        self.last_error_log[key] = now
        (self.get_logger().error if error else self.get_logger().warn)(text)

    def log_statistics(self) -> None:
        self.get_logger().info(f"statistics: {self.controller.statistics().summary()}")

    def on_shutdown(self) -> None:
        """Stop the robot with the node: the zero command sent here is the last command the node publishes.

        Runs in the main thread while a decision may still be running on an executor thread (run_node does not wait
        for it: a slow inference must not delay the stop); that decision's publish is dropped (see publish)."""
        for timer in self.timers:  # no new tick (none would run: the executor is no longer spun; belt and braces)
            timer.cancel()
        with self.command_lock:
            self.controller.set_enabled(False)
            self.publish(self.controller.zero)
            self.stopped = True
        self.get_logger().info(f"final statistics: {self.controller.statistics().summary()}; sent a zero command")


def main(args: list[str] | None = None) -> int:
    return run_node(PolicyNode, args, threads=2)


if __name__ == "__main__":
    raise SystemExit(main())
