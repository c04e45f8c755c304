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

from dataclasses import dataclass

import numpy as np
from geometry_msgs.msg import Twist

from dmo_ros.nodes.standin import StandinNode
from dmo_ros.nodes.template import QOS_PROFILES, param, qos_profile, run_node
from dmo_ros.sims.standin import StandinSimConfig, make_standin_sim


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


class Go2Standin(StandinNode):
    requested_reset_reason = "reset (reset message)"

    def __init__(self) -> None:
        super().__init__("go2_standin")
        self.parameters = p = self.declare(Go2StandinParameters)
        if p.width <= 0 or p.height <= 0 or p.image_rate_hz <= 0 or p.control_rate_hz <= 0:
            raise ValueError("image size and rates must be positive")
        if p.command_timeout < 0 or p.max_episode_steps < 0:
            raise ValueError("command_timeout and max_episode_steps must be >= 0")
        qos_profile(p.image_qos)  # an unknown profile is an error before the simulation starts
        self.standin = make_standin_sim(StandinSimConfig(
            robot="go2", seed=p.seed, width=p.width, height=p.height, control_rate_hz=p.control_rate_hz,
            max_episode_steps=p.max_episode_steps,
        ))
        self.sim = self.standin.sim
        self.resets = 0
        self.start(Twist, "cmd_vel", 3)
        self.get_logger().info(
            f"Push Cube stand-in (seed {p.seed}): {p.width}x{p.height} rgb8 at {p.image_rate_hz} Hz "
            f"({p.image_qos}), control at {p.control_rate_hz} Hz, command timeout {p.command_timeout} s"
        )
        self.log_reset("reset (start)")
        self.publish_state()

    def command_vector(self, message: Twist) -> np.ndarray:
        return np.array([message.linear.x, message.linear.y, message.angular.z], dtype=float)

    def episode_limit_reason(self) -> str:
        return f"reset ({self.parameters.max_episode_steps} steps)"

    def reset(self, reason: str) -> None:
        state = self.sim.state()
        self.sim.reset()
        self.forget_command()
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
            f"{reason}: episode {state.episode}, robot {np.round(state.robot, 2).tolist()}, "
            f"cube {np.round(state.cube, 2).tolist()}, goal {np.round(state.goal, 2).tolist()}"
        )

    def shutdown_summary(self) -> str:
        state = self.sim.state()
        return f"episode {state.episode} at step {state.step}, {self.resets} resets"


def main(args: list[str] | None = None) -> int:
    return run_node(Go2Standin, args)


if __name__ == "__main__":
    raise SystemExit(main())
