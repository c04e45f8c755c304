"""go2_standin: a simulated Unitree Go2 with a forward-looking camera (the Push Cube task).

A thin node around ``dmo_ros.sims.push_cube.PushCubeSim``. It speaks the real robot's
topics:

- subscribes ``cmd_vel`` (``geometry_msgs/Twist``: linear.x, linear.y, angular.z, body
  frame); a command older than ``command_timeout`` seconds counts as zero velocity (the
  real robot's safety stop);
- steps the simulation at ``control_rate_hz`` with the latest command;
- publishes ``camera/image`` (``sensor_msgs/Image`` rgb8) at ``image_rate_hz`` with the QoS
  of ``image_qos``;
- publishes the ground truth ``standin_state`` (``dmo_msgs/StandinState``: agent = robot
  [x, y, yaw], object = cube [x, y, yaw], goal = [x, y, radius]) after every control step
  and reset: evaluation and the scripted operator only, never training;
- resets on any message on ``reset`` (``std_msgs/Header``: the operator's reset event) and,
  when ``max_episode_steps`` > 0, after that many control steps.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from geometry_msgs.msg import Twist
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from dmo_msgs.msg import StandinState
from dmo_ros.nodes.image_conversion import rgb8_image
from dmo_ros.nodes.template import QOS_PROFILES, DmoNode, param, qos_profile, run_node
from dmo_ros.sims.push_cube import PushCubeConfig, PushCubeSim


@dataclass
class Go2StandinParameters:
    seed: int = param(0, "Seed of the scene: episode e's placements come from (seed, e).")
    width: int = param(96, "Camera image width in pixels.")
    height: int = param(96, "Camera image height in pixels.")
    image_rate_hz: float = param(10.0, "Camera frames per second.")
    control_rate_hz: float = param(5.0, "Simulation control steps per second (each holds the latest command).")
    image_qos: str = param("sensor_data", f"QoS of the image topic: {', '.join(QOS_PROFILES)}.")
    command_timeout: float = param(0.5, "Seconds after which the last cmd_vel counts as zero velocity.")
    frame_id: str = param("camera", "frame_id of the images.")
    max_episode_steps: int = param(0, "Reset after this many control steps; 0 never (only on 'reset').")


class Go2Standin(DmoNode):
    def __init__(self) -> None:
        super().__init__("go2_standin")
        self.parameters = p = self.declare(Go2StandinParameters)
        if p.width <= 0 or p.height <= 0 or p.image_rate_hz <= 0 or p.control_rate_hz <= 0:
            raise ValueError("image size and rates must be positive")
        if p.command_timeout < 0 or p.max_episode_steps < 0:
            raise ValueError("command_timeout and max_episode_steps must be >= 0")
        image_qos = qos_profile(p.image_qos)
        self.sim = PushCubeSim(
            PushCubeConfig(
                seed=p.seed, width=p.width, height=p.height,
                control_period=1.0 / p.control_rate_hz, max_episode_steps=p.max_episode_steps,
            )
        )
        self.command = np.zeros(3)
        self.command_time = -float("inf")  # monotonic time of the latest cmd_vel
        self.frames_sent = 0
        self.resets = 0
        self.image_publisher = self.create_publisher(Image, "camera/image", image_qos)
        self.state_publisher = self.create_publisher(StandinState, "standin_state", qos_profile("reliable"))
        self.create_subscription(Twist, "cmd_vel", self.on_command, qos_profile("reliable"))
        self.create_subscription(Header, "reset", self.on_reset, qos_profile("reliable"))
        self.create_timer(1.0 / p.control_rate_hz, self.control_step)
        self.create_timer(1.0 / p.image_rate_hz, self.publish_image)
        self.get_logger().info(
            f"Push Cube stand-in (seed {p.seed}): {p.width}x{p.height} rgb8 at {p.image_rate_hz} Hz "
            f"({p.image_qos}), control at {p.control_rate_hz} Hz, command timeout {p.command_timeout} s"
        )
        self.log_reset("start")
        self.publish_state()

    # -- inputs ------------------------------------------------------------------------------

    def on_command(self, message: Twist) -> None:
        self.command = np.array([message.linear.x, message.linear.y, message.angular.z], dtype=float)
        self.command_time = time.monotonic()

    def on_reset(self, _message: Header) -> None:
        self.reset("reset message")

    # -- control loop ------------------------------------------------------------------------

    def current_command(self) -> np.ndarray:
        """The latest command, or zero when it is older than ``command_timeout``."""
        if time.monotonic() - self.command_time > self.parameters.command_timeout:
            return np.zeros(3)
        return self.command

    def control_step(self) -> None:
        self.sim.step(self.current_command())
        self.publish_state()
        if self.sim.episode_over:
            self.reset(f"{self.parameters.max_episode_steps} steps")

    def reset(self, reason: str) -> None:
        state = self.sim.state()
        self.sim.reset()
        self.resets += 1
        self.get_logger().info(
            f"episode {state.episode} ended after {state.step} steps "
            f"(progress {state.progress:.2f}, success {state.success}): {reason}"
        )
        self.log_reset(reason)
        self.publish_state()

    def log_reset(self, reason: str) -> None:
        state = self.sim.state()
        self.get_logger().info(
            f"reset ({reason}): episode {state.episode}, robot {np.round(state.robot, 2).tolist()}, "
            f"cube {np.round(state.cube, 2).tolist()}, goal {np.round(state.goal, 2).tolist()}"
        )

    # -- outputs -----------------------------------------------------------------------------

    def publish_state(self) -> None:
        state = self.sim.state()
        message = StandinState(
            episode=state.episode,
            step=state.step,
            agent=state.robot.tolist(),
            object=state.cube.tolist(),
            goal=state.goal.tolist(),
            progress=float(state.progress),
            success=bool(state.success),
            object_in_view=bool(state.cube_in_view),
        )
        message.header.stamp = self.get_clock().now().to_msg()
        message.header.frame_id = "world"
        self.state_publisher.publish(message)

    def publish_image(self) -> None:
        p = self.parameters
        pixels = self.sim.render()
        self.image_publisher.publish(rgb8_image(pixels, self.get_clock().now().to_msg(), p.frame_id))
        self.frames_sent += 1

    def on_shutdown(self) -> None:
        state = self.sim.state()
        self.get_logger().info(
            f"sent {self.frames_sent} images; episode {state.episode} at step {state.step}, {self.resets} resets"
        )
        self.sim.close()


def main(args: list[str] | None = None) -> int:
    return run_node(Go2Standin, args)


if __name__ == "__main__":
    raise SystemExit(main())
