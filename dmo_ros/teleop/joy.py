"""A human operator's gamepad (sensor_msgs/Joy) → actions, intent and milestone.

Axes map to the action with a scale and a deadzone; one button toggles intent (on its
press, not while held), one presses the milestone key, one asks for a reset. Defaults
follow a common Xbox-style layout: left stick = x/y, right stick horizontal = yaw.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dmo_ros.teleop.operator import Command


@dataclass(frozen=True)
class JoyMapping:
    """Which gamepad axes and buttons do what."""

    axes: tuple[int, ...] = (1, 0, 3)
    """Joy axis index for each action component (Push-T uses the first two)."""
    scales: tuple[float, ...] = (0.1, 0.1, 1.0)
    """Action value at full stick deflection, per component (m/s, m/s, rad/s)."""
    deadzone: float = 0.1
    """Stick deflections below this read as zero."""
    intent_button: int = 0
    """Button that toggles intent (A)."""
    milestone_button: int = 1
    """Button that presses the milestone key (B)."""
    reset_button: int = 7
    """Button that asks for a reset (Start)."""

    def __post_init__(self) -> None:
        if len(self.axes) != len(self.scales):
            raise ValueError(f"joy axes {self.axes} and scales {self.scales} must have the same length")


class JoyOperator:
    """Turns each Joy message into a Command; remembers the intent toggle."""

    def __init__(self, mapping: JoyMapping, action_size: int) -> None:
        if action_size > len(mapping.axes):
            raise ValueError(f"the action has {action_size} components but only {len(mapping.axes)} axes are mapped")
        self.mapping = mapping
        self.action_size = action_size
        self.intent = False
        self._previous_buttons: tuple[int, ...] = ()

    def _pressed(self, buttons: tuple[int, ...], index: int) -> bool:
        now = index < len(buttons) and buttons[index] == 1
        before = index < len(self._previous_buttons) and self._previous_buttons[index] == 1
        return now and not before

    def update(self, axes: tuple[float, ...], buttons: tuple[int, ...]) -> Command:
        m = self.mapping
        action = np.zeros(self.action_size)
        for i in range(self.action_size):
            value = axes[m.axes[i]] if m.axes[i] < len(axes) else 0.0
            action[i] = 0.0 if abs(value) < m.deadzone else float(np.clip(value, -1.0, 1.0)) * m.scales[i]
        if self._pressed(buttons, m.intent_button):
            self.intent = not self.intent
        milestone = 1.0 if self._pressed(buttons, m.milestone_button) else 0.0
        reset = self._pressed(buttons, m.reset_button)
        self._previous_buttons = tuple(buttons)
        return Command(action, intent=self.intent, milestone=milestone, reset=reset)
