"""pusht_standin: the Push-T stand-in for the table-top arm (gym-pusht behind the arm's topics).

Plays the real arm with its fixed camera over the table:

- subscribes ``action`` (geometry_msgs/TwistStamped, the MoveIt Servo convention):
  ``twist.linear.x/y`` in m/s in the table plane; each control step (``control_rate_hz``,
  5 Hz) moves the end effector by the latest twist x the control period. A command older
  than ``command_timeout`` s means zero motion: the arm holds still, as a real servo does.
  An out-of-range command is clamped to ``max_speed_m_s``, never an error.
- publishes ``camera/image`` (sensor_msgs/Image, rgb8) at ``image_rate_hz``, QoS from
  ``image_qos``;
- publishes ``standin_state`` (dmo_msgs/StandinState, ground truth for evaluation only)
  every control step;
- resets on ``reset`` (std_msgs/Header: the operator's reset event), and after
  ``max_episode_steps`` control steps when that is > 0.

The simulation itself is ``dmo_ros.sims.pusht`` (no ROS).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from geometry_msgs.msg import TwistStamped

from dmo_ros.nodes.standin import StandinNode
from dmo_ros.nodes.template import QOS_PROFILES, param, qos_profile, run_node
from dmo_ros.sims.standin import StandinSimConfig, make_standin_sim


@dataclass
class PushTStandinParameters:
    seed: int = param(0, "Base seed; episode e starts from a seed derived from (seed, e).")
    width: int = param(96, "Camera image width in pixels.")
    height: int = param(96, "Camera image height in pixels.")
    image_rate_hz: float = param(10.0, "Camera frames per second.")
    control_rate_hz: float = param(5.0, "Control steps per second (the period must be a multiple of 0.1 s).")
    image_qos: str = param("sensor_data", f"QoS of the image topic: {', '.join(QOS_PROFILES)}.")
    command_timeout: float = param(0.5, "Seconds after which the last action command is stale: zero motion.")
    arena_size_m: float = param(0.5, "Metres spanned by the 512-unit Push-T arena.")
    max_speed_m_s: float = param(0.25, "End-effector speed limit in m/s; faster commands are scaled down.")
    max_episode_steps: int = param(0, "Reset after this many control steps; 0: only on the reset topic.")
    frame_id: str = param("camera", "frame_id of the camera images.")
    task: str = param("push_t", "Push-T task played (resets and success): reach, reach_fixed, push_region, push_near, "
                               "push_t.")


class PushTStandin(StandinNode):
    state_frame_id = "arena"

    def __init__(self) -> None:
        super().__init__("pusht_standin")
        self.parameters = p = self.declare(PushTStandinParameters)
        if p.image_rate_hz <= 0 or p.control_rate_hz <= 0 or p.command_timeout <= 0:
            raise ValueError("image_rate_hz, control_rate_hz and command_timeout must be positive")
        qos_profile(p.image_qos)  # an unknown profile is an error before the simulation starts
        self.control_period = 1.0 / p.control_rate_hz
        self.standin = make_standin_sim(StandinSimConfig(
            robot="pusht", seed=p.seed, width=p.width, height=p.height, control_rate_hz=p.control_rate_hz,
            max_episode_steps=p.max_episode_steps, arena_size_m=p.arena_size_m, max_speed_m_s=p.max_speed_m_s,
            task=p.task,
        ))
        self.sim = self.standin.sim
        self.start(TwistStamped, "action", 2)
        self.publish_state()
        self.get_logger().info(
            f"Push-T stand-in: control at {p.control_rate_hz} Hz, {p.width}x{p.height} rgb8 images at "
            f"{p.image_rate_hz} Hz ({p.image_qos}); task {p.task}; episode 0 (seed {p.seed})"
        )

    def command_vector(self, message: TwistStamped) -> np.ndarray:
        return np.array([message.twist.linear.x, message.twist.linear.y], dtype=np.float64)

    def episode_limit_reason(self) -> str:
        return f"episode {self.sim.episode} reached {self.parameters.max_episode_steps} steps"

    def reset(self, reason: str) -> None:
        self.sim.reset()
        self.forget_command()
        self.get_logger().info(f"{reason}: episode {self.sim.episode}")
        self.publish_state()

    def shutdown_summary(self) -> str:
        return f"episode {self.sim.episode}, step {self.sim.step_count}"


def main(args: list[str] | None = None) -> int:
    return run_node(PushTStandin, args)


if __name__ == "__main__":
    raise SystemExit(main())
