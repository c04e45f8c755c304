"""teleop: the operator's side of data collection — actions at 5 Hz plus intent labels.

Publishes, every control tick:
- ``action``: geometry_msgs/TwistStamped (Push-T: end-effector velocity, linear.x/y in m/s,
  the MoveIt Servo convention) or geometry_msgs/Twist (Go2: linear.x/y m/s, angular.z rad/s);
- ``intent``: dmo_msgs/Intent (``active`` while the operator demonstrates the task;
  ``milestone`` 1.0 on the tick the milestone key is pressed);
- ``reset`` (std_msgs/Header, only when the operator asks for a reset of the scene).

Two operators: ``joy`` reads sensor_msgs/Joy on ``joy`` (a human with a gamepad: sticks →
action, a button toggles intent, one presses the milestone key, one asks for a reset);
``scripted`` reads the stand-in's ground truth on ``standin_state`` and plays the human who
can see the scene (play, demonstrations, resets; see dmo_ros.teleop.operator). With no
fresh input (no Joy message / no stand-in state within ``input_timeout``) it commands zero.
On shutdown it publishes a zero action.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Twist, TwistStamped
from sensor_msgs.msg import Joy
from std_msgs.msg import Header

from dmo_msgs.msg import Intent, StandinState
from dmo_ros.nodes.template import DmoNode, param, qos_profile, run_node
from dmo_ros.recording.collect_messages import RESET_FRAME_ID, action_components
from dmo_ros.teleop.joy import JoyMapping, JoyOperator
from dmo_ros.teleop.operator import Command, Observation, ScriptedOperatorConfig
from dmo_ros.teleop.scripted import ACTION_SIZE, DEMO_TIMEOUT_STEPS, ROBOTS, make_operator


@dataclass
class TeleopParameters:
    robot: str = param("pusht", f"Robot: {', '.join(ROBOTS)} (sets the action message and size).")
    operator: str = param("scripted", "scripted (plays the stand-in by itself) or joy (a gamepad on 'joy').")
    rate_hz: float = param(5.0, "Control rate: actions and intent labels per second.")
    frame_id: str = param("world", "frame_id of TwistStamped actions (Push-T).")
    input_timeout: float = param(0.5, "Seconds without Joy / stand-in state before the action is zero.")
    seed: int = param(0, "Seed of the scripted operator.")
    demo_probability: float = param(0.5, "Scripted: share of episodes whose play is followed by a demonstration.")
    play_steps_min: int = param(20, "Scripted: fewest play steps at the start of an episode.")
    play_steps_max: int = param(60, "Scripted: most play steps at the start of an episode.")
    demo_timeout_steps: int = param(
        0, "Scripted: steps before an unfinished demonstration is abandoned; 0: the robot's default."
    )
    play_action_noise: float = param(
        0.0, "Scripted: std (m/s, rad/s) of per-step Gaussian noise on play actions; 0: none."
    )
    play_hold_probability: float = param(
        0.0, "Scripted: per play step, probability of holding a random direction for 3-10 steps; 0: none."
    )
    play_slow_probability: float = param(
        0.0, "Scripted: per play step, probability of standing still or creeping for 3-10 steps; 0: none."
    )
    task: str = param("push_t", "Scripted Push-T: the task demonstrated (the stand-in's task): reach tasks walk to "
                                "the target the stand-in's state carries as its goal; the others push the T.")
    play_wander_probability: float = param(
        0.0, "Scripted: per play primitive, probability of walking to a point of the arena (Push Cube: half "
             "of them to the goal region) instead of pushing; 0: none."
    )
    lined_up_milestone: float = param(
        0.0, "Scripted Push Cube: the milestone key's value, in [0, 1), held whenever the robot has the cube "
             "straight ahead and the goal beyond it; 0: pressed at success only."
    )
    demo_settle_steps: int = param(
        0, "Scripted: steps a demonstration goes on pushing after the first success before the success key; 0: none."
    )
    demo_back_off_steps: int = param(
        0, "Scripted Push Cube: steps of backing away from the cube before the success key; 0: none."
    )
    arena_size_m: float = param(0.5, "Scripted Push-T: metres spanned by the stand-in's arena (its arena_size_m).")
    joy_axes: list[int] = param([1, 0, 3], "Joy axis index per action component (x, y, yaw).")
    joy_scales: list[float] = param([0.1, 0.1, 1.0], "Action at full stick per component (m/s, m/s, rad/s).")
    joy_deadzone: float = param(0.1, "Stick deflections below this read as zero.")
    intent_button: int = param(0, "Joy button that toggles intent.")
    milestone_button: int = param(1, "Joy button that presses the milestone key.")
    reset_button: int = param(7, "Joy button that asks for a reset.")


def command_messages(robot: str, command: Command, stamp: Time, frame_id: str,
                     ) -> tuple[Twist | TwistStamped, Intent, Header | None]:
    """One tick's messages: the action (TwistStamped for Push-T, Twist for Go2), the intent
    label and, when the operator asks for one, the reset event — all with one stamp.

    ``dmo_ros.recording.collect_messages`` builds the same messages without ROS (fast collection).
    """
    x, y, yaw = action_components(command.action, ACTION_SIZE[robot])
    twist = Twist()
    twist.linear.x, twist.linear.y, twist.angular.z = x, y, yaw
    action: Twist | TwistStamped = twist
    if robot == "pusht":
        action = TwistStamped(twist=twist)
        action.header.stamp = stamp
        action.header.frame_id = frame_id
    intent = Intent(active=bool(command.intent), milestone=float(command.milestone))
    intent.header.stamp = stamp
    reset = Header(stamp=stamp, frame_id=RESET_FRAME_ID) if command.reset else None
    return action, intent, reset


class Teleop(DmoNode):
    def __init__(self) -> None:
        super().__init__("teleop")
        self.parameters = p = self.declare(TeleopParameters)
        if p.robot not in ROBOTS:
            raise ValueError(f"unknown robot '{p.robot}'; choose one of {', '.join(ROBOTS)}")
        if p.operator not in ("scripted", "joy"):
            raise ValueError(f"unknown operator '{p.operator}'; choose scripted or joy")
        if p.rate_hz <= 0 or p.input_timeout <= 0:
            raise ValueError("rate_hz and input_timeout must be positive")
        self.action_size = ACTION_SIZE[p.robot]
        action_type = TwistStamped if p.robot == "pusht" else Twist
        reliable = qos_profile("reliable")
        self.action_publisher = self.create_publisher(action_type, "action", reliable)
        self.intent_publisher = self.create_publisher(Intent, "intent", reliable)
        self.reset_publisher = self.create_publisher(Header, "reset", reliable)
        self.last_input_time = None
        if p.operator == "scripted":
            config = ScriptedOperatorConfig(
                seed=p.seed,
                play_steps=(p.play_steps_min, p.play_steps_max),
                demo_probability=p.demo_probability,
                demo_timeout_steps=p.demo_timeout_steps or DEMO_TIMEOUT_STEPS[p.robot],
                play_action_noise=p.play_action_noise,
                play_hold_probability=p.play_hold_probability,
                play_slow_probability=p.play_slow_probability,
                play_wander_probability=p.play_wander_probability,
                lined_up_milestone=p.lined_up_milestone,
                demo_settle_steps=p.demo_settle_steps,
                demo_back_off_steps=p.demo_back_off_steps,
            )
            self.scripted = make_operator(p.robot, config, p.arena_size_m, task=p.task)
            self.observation: Observation | None = None
            self.create_subscription(StandinState, "standin_state", self.on_state, reliable)
        else:
            mapping = JoyMapping(tuple(p.joy_axes), tuple(p.joy_scales), p.joy_deadzone,
                                 p.intent_button, p.milestone_button, p.reset_button)
            self.joy = JoyOperator(mapping, self.action_size)
            self.joy_command = Command(np.zeros(self.action_size), intent=False)
            self.joy_pending_milestone = self.joy_pending_reset = False
            self.create_subscription(Joy, "joy", self.on_joy, reliable)
        self.ticks = self.intent_ticks = 0
        self.create_timer(1.0 / p.rate_hz, self.tick)
        self.create_timer(10.0, self.report)
        self.get_logger().info(f"{p.operator} operator for {p.robot} at {p.rate_hz} Hz")

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def on_state(self, message: StandinState) -> None:
        self.observation = Observation(
            episode=message.episode, step=message.step, agent=np.array(message.agent),
            object=np.array(message.object), goal=np.array(message.goal), progress=message.progress,
            success=message.success, object_in_view=message.object_in_view,
        )
        self.last_input_time = self._now()

    def on_joy(self, message: Joy) -> None:
        command = self.joy.update(tuple(message.axes), tuple(message.buttons))
        # Button presses between two ticks are kept until the next tick publishes them.
        self.joy_pending_milestone |= command.milestone > 0
        self.joy_pending_reset |= command.reset
        self.joy_command = command
        self.last_input_time = self._now()

    def next_command(self) -> Command:
        fresh = self.last_input_time is not None and self._now() - self.last_input_time < self.parameters.input_timeout
        if self.parameters.operator == "joy":
            command = Command(
                self.joy_command.action if fresh else np.zeros(self.action_size),
                intent=self.joy.intent,
                milestone=1.0 if self.joy_pending_milestone else 0.0,
                reset=self.joy_pending_reset,
            )
            self.joy_pending_milestone = self.joy_pending_reset = False
            return command
        if not fresh or self.observation is None:
            return Command(np.zeros(self.action_size), intent=False)
        return self.scripted.act(self.observation)

    def tick(self) -> None:
        command = self.next_command()
        self.publish(command)
        self.ticks += 1
        self.intent_ticks += int(command.intent)

    def publish(self, command: Command) -> None:
        stamp = self.get_clock().now().to_msg()
        action, intent, reset = command_messages(self.parameters.robot, command, stamp, self.parameters.frame_id)
        self.action_publisher.publish(action)
        self.intent_publisher.publish(intent)
        if reset is not None:
            self.reset_publisher.publish(reset)
            self.get_logger().info("reset requested")

    def report(self) -> None:
        line = f"{self.ticks} ticks, intent on {self.intent_ticks / max(self.ticks, 1):.0%}"
        if self.parameters.operator == "scripted":
            s = self.scripted.stats
            line += f"; {s.episodes} episodes, demonstrations {s.demo_successes}/{s.demos} succeeded"
        self.get_logger().info(line)

    def on_shutdown(self) -> None:
        self.publish(Command(np.zeros(self.action_size), intent=False))  # leave the robot still
        self.report()


def main(args: list[str] | None = None) -> int:
    return run_node(Teleop, args)


if __name__ == "__main__":
    raise SystemExit(main())
