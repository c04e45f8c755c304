"""The skeleton every stand-in robot node shares.

A stand-in plays a real robot: it takes the robot's command topic, steps a simulation at
the control rate with the latest command — zero once the command is older than
``command_timeout`` (a real robot's safety stop) — publishes ``camera/image`` (rgb8, QoS
from ``image_qos``) at the camera rate, publishes ``standin_state`` (dmo_msgs/StandinState,
ground truth for evaluation and the scripted operator, never for training) after every
control step and reset, and resets on ``reset`` (std_msgs/Header: the operator's reset
event). A robot's node says how a command message becomes a command vector and builds its
simulation; the simulation is driven through ``dmo_ros.sims.standin`` (``self.standin``:
command → step, ground truth → StandinState), the adapter the in-process fast collection
(``dmo-collect-fast``) drives too, so both paths step and describe the scene alike.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from dmo_msgs.msg import StandinState
from dmo_ros.nodes.image_conversion import rgb8_image
from dmo_ros.nodes.template import DmoNode, qos_profile


class StandinNode(DmoNode):
    """Base class: publishers, subscriptions, timers, command staleness, image and state output."""

    state_frame_id = "world"
    """frame_id of the standin_state messages (the simulation's world frame)."""

    def start(self, command_type: type, command_topic: str, command_size: int) -> None:
        """Create the topics and timers; call once ``self.parameters`` and ``self.sim`` exist."""
        p = self.parameters
        self.command = np.zeros(command_size)
        self.command_time = -float("inf")  # monotonic time of the latest command
        self.applied_command = np.zeros(command_size)  # what the latest step was taken under (StandinState.command)
        self.frames_sent = 0
        reliable = qos_profile("reliable")
        self.image_publisher = self.create_publisher(Image, "camera/image", qos_profile(p.image_qos))
        self.state_publisher = self.create_publisher(StandinState, "standin_state", reliable)
        self.create_subscription(command_type, command_topic, self.on_command, reliable)
        self.create_subscription(Header, "reset", self.on_reset, reliable)
        self.create_timer(1.0 / p.control_rate_hz, self.control_step)
        self.create_timer(1.0 / p.image_rate_hz, self.publish_image)

    # -- what a robot's node provides ---------------------------------------------------------

    def command_vector(self, message: Any) -> np.ndarray:
        """The command message as the simulation's command vector."""
        raise NotImplementedError

    def step(self, command: np.ndarray) -> None:
        """One control step of the simulation under ``command`` (zero when stale)."""
        self.standin.step(command)

    def state_message(self) -> StandinState:
        """The simulation's ground truth (the header is filled in by ``publish_state``)."""
        o = self.standin.observation()
        return StandinState(
            episode=o.episode, step=o.step, agent=np.asarray(o.agent, dtype=float).tolist(),
            object=np.asarray(o.object, dtype=float).tolist(), goal=np.asarray(o.goal, dtype=float).tolist(),
            progress=o.progress, success=o.success, object_in_view=o.object_in_view,
            command=np.asarray(self.applied_command, dtype=float).tolist(),
        )

    def reset(self, reason: str) -> None:
        """Start the next episode (and log it in the robot's words)."""
        raise NotImplementedError

    def episode_over(self) -> bool:
        """Whether the simulation's episode step limit is reached."""
        return self.standin.done()

    def episode_limit_reason(self) -> str:
        """The reset reason logged when the step limit ends an episode."""
        raise NotImplementedError

    # -- shared behaviour ---------------------------------------------------------------------

    def on_command(self, message: Any) -> None:
        self.command = self.command_vector(message)
        self.command_time = time.monotonic()

    def on_reset(self, _message: Header) -> None:
        self.reset(self.requested_reset_reason)

    requested_reset_reason = "reset requested"
    """The reset reason logged for a message on ``reset``."""

    def forget_command(self) -> None:
        """A reset starts without a command (the old one belongs to the last episode)."""
        self.command = np.zeros_like(self.command)
        self.command_time = -float("inf")
        self.applied_command = np.zeros_like(self.command)

    def current_command(self) -> np.ndarray:
        """The latest command, or zero when it is older than ``command_timeout``."""
        if time.monotonic() - self.command_time > self.parameters.command_timeout:
            return np.zeros_like(self.command)
        return self.command

    def control_step(self) -> None:
        self.applied_command = self.current_command()
        self.step(self.applied_command)
        self.publish_state()
        if self.episode_over():
            self.reset(self.episode_limit_reason())

    def publish_state(self) -> None:
        message = self.state_message()
        message.header.stamp = self.get_clock().now().to_msg()
        message.header.frame_id = self.state_frame_id
        self.state_publisher.publish(message)

    def publish_image(self) -> None:
        stamp = self.get_clock().now().to_msg()
        self.image_publisher.publish(rgb8_image(self.sim.render(), stamp, self.parameters.frame_id))
        self.frames_sent += 1

    def on_shutdown(self) -> None:
        self.get_logger().info(f"sent {self.frames_sent} images; {self.shutdown_summary()}")
        self.sim.close()

    def shutdown_summary(self) -> str:
        return f"episode {self.sim.state().episode}"
