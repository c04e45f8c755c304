"""Gamepad mapping: sticks to actions with a deadzone, buttons on their press edge."""

from __future__ import annotations

import numpy as np
import pytest

from dmo_ros.teleop.joy import JoyMapping, JoyOperator

AXES = (0.5, -1.0, 0.0, 0.05)  # axis 1 = x, axis 0 = y, axis 3 = yaw


def buttons(*pressed: int) -> tuple[int, ...]:
    return tuple(int(i in pressed) for i in range(8))


def test_sticks_map_to_scaled_actions_with_a_deadzone():
    operator = JoyOperator(JoyMapping(), action_size=3)
    command = operator.update(AXES, buttons())
    np.testing.assert_allclose(command.action, [-0.1, 0.05, 0.0])  # yaw 0.05 is inside the deadzone


def test_intent_toggles_on_the_press_not_while_held():
    operator = JoyOperator(JoyMapping(), action_size=2)
    states = [operator.update(AXES, b).intent for b in (buttons(0), buttons(0), buttons(), buttons(0), buttons())]
    assert states == [True, True, True, False, False]


def test_milestone_and_reset_fire_once_per_press():
    operator = JoyOperator(JoyMapping(), action_size=2)
    presses = [operator.update(AXES, b) for b in (buttons(1, 7), buttons(1, 7), buttons(), buttons(1))]
    assert [c.milestone for c in presses] == [1.0, 0.0, 0.0, 1.0]
    assert [c.reset for c in presses] == [True, False, False, False]


def test_short_messages_and_bad_mappings():
    operator = JoyOperator(JoyMapping(), action_size=3)
    np.testing.assert_allclose(operator.update((0.9,), ()).action, [0.0, 0.09, 0.0])  # missing axes read as zero
    with pytest.raises(ValueError, match="same length"):
        JoyMapping(axes=(0, 1), scales=(1.0,))
    with pytest.raises(ValueError, match="only 2 axes"):
        JoyOperator(JoyMapping(axes=(0, 1), scales=(1.0, 1.0)), action_size=3)
