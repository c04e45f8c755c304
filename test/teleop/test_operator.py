"""The scripted operator's state machine: play → demonstration → reset, and its labels."""

from __future__ import annotations

import numpy as np
import pytest

from dmo_ros.teleop.operator import Observation, ScriptedOperator, ScriptedOperatorConfig


class Constant:
    """A policy that always returns the same action (tells play from demo in the output)."""

    def __init__(self, value: float) -> None:
        self.value, self.begun = value, 0

    def begin(self, observation, rng) -> None:
        self.begun += 1

    def act(self, observation) -> np.ndarray:
        return np.full(2, self.value)


def observation(episode: int, success: bool = False) -> Observation:
    return Observation(episode, 0, np.zeros(2), np.zeros(3), np.zeros(3), 0.0, success)


def make(demo_probability: float, press_milestone: bool = False, limit_action=None, **config) -> ScriptedOperator:
    settings = {"play_steps": (3, 3), "demo_probability": demo_probability, "demo_timeout_steps": 4, **config}
    return ScriptedOperator(Constant(-1.0), Constant(1.0), 2, ScriptedOperatorConfig(**settings),
                            press_milestone=press_milestone, limit_action=limit_action)


def test_play_then_demo_then_reset_with_intent_only_during_the_demo():
    operator = make(demo_probability=1.0)
    commands = [operator.act(observation(0)) for _ in range(9)]
    actions = [c.action[0] for c in commands]
    intents = [c.intent for c in commands]
    assert actions[:3] == [-1.0] * 3 and intents[:3] == [False] * 3  # play
    assert actions[3:7] == [1.0] * 4 and intents[3:7] == [True] * 4  # demo until the timeout
    assert commands[7].reset and not commands[7].intent  # timeout → reset
    assert not commands[8].reset  # waits for the stand-in; presses again only after reset_retry_steps
    assert operator.stats.demos == 1 and operator.stats.demo_successes == 0


def test_success_holds_still_presses_the_milestone_and_resets():
    operator = make(demo_probability=1.0, press_milestone=True, hold_after_success_steps=2)
    for _ in range(4):
        operator.act(observation(0))
    first = operator.act(observation(0, success=True))
    assert first.milestone == 1.0 and first.intent and not first.action.any()
    held = operator.act(observation(0, success=True))
    assert held.milestone == 0.0 and held.intent
    assert operator.act(observation(0, success=True)).reset
    assert operator.stats.demo_successes == 1 and operator.stats.milestones == 1


def test_no_milestone_key_unless_asked():
    operator = make(demo_probability=1.0)
    for _ in range(4):
        operator.act(observation(0))
    assert operator.act(observation(0, success=True)).milestone == 0.0


def test_a_new_episode_starts_when_the_stand_in_has_reset():
    operator = make(demo_probability=0.0, reset_retry_steps=3)
    commands = [operator.act(observation(0)) for _ in range(4)]
    assert commands[3].reset
    waiting = [operator.act(observation(0)) for _ in range(3)]
    assert [c.reset for c in waiting] == [False, False, True]  # pressed again: the stand-in did not reset
    after = operator.act(observation(1))
    assert not after.reset and after.action[0] == -1.0 and operator.stats.episodes == 2


def test_demo_probability_mixes_episodes_reproducibly():
    def demos(seed: int) -> list[bool]:
        operator = make(demo_probability=0.5, seed=seed, play_steps=(0, 0), demo_timeout_steps=1)
        flags = []
        for episode in range(40):
            first = operator.act(observation(episode))
            flags.append(first.intent)
            operator.act(observation(episode))
        return flags

    assert demos(3) == demos(3)
    assert 10 <= sum(demos(3)) <= 30


def test_play_action_noise_is_per_step_within_the_limits_and_spares_the_demonstrations():
    operator = make(demo_probability=1.0, play_steps=(400, 400), demo_timeout_steps=50, play_action_noise=0.3,
                    limit_action=lambda a: np.clip(a, -1.5, 1.5))
    commands = [operator.act(observation(0)) for _ in range(450)]
    play = np.stack([c.action for c in commands[:400]])
    noise = play - (-1.0)
    assert abs(noise.std() - 0.3) < 0.05 and abs(noise.mean()) < 0.05  # limits clip only > 1.7 std below
    assert play.min() >= -1.5
    # Independent from step to step: knowing one step's noise says nothing of the next one's.
    assert abs(np.corrcoef(noise[:-1, 0], noise[1:, 0])[0, 1]) < 0.15
    assert all(c.intent and (c.action == 1.0).all() for c in commands[400:450])  # demonstrations are clean


def test_without_play_action_noise_the_seeded_operator_acts_as_before():
    def run(**config) -> list:
        operator = make(demo_probability=0.5, seed=5, play_steps=(1, 6), demo_timeout_steps=2, **config)
        return [(tuple(c.action), c.intent, c.reset) for c in (operator.act(observation(e // 9)) for e in range(90))]

    assert run() == run(play_action_noise=0.0)
    assert run() != run(play_action_noise=0.1)


def test_held_commands_keep_one_direction_at_the_hold_speed_for_their_length_then_play_resumes():
    operator = make(demo_probability=1.0, play_steps=(600, 600), demo_timeout_steps=20, play_hold_probability=0.1,
                    play_hold_steps=(3, 5), play_hold_speed=0.2, limit_action=lambda a: np.clip(a, -0.15, 0.15))
    commands = [operator.act(observation(0)) for _ in range(620)]
    play = np.stack([c.action for c in commands[:600]])
    held = ~np.all(play == -1.0, axis=1)  # the explorer's play is a constant -1
    runs, length = [], 0
    for step in range(600):
        if held[step]:
            length += 1
            if step + 1 == 600 or not held[step + 1] or not np.array_equal(play[step + 1], play[step]):
                runs.append((step - length + 1, length))
                length = 0
    assert 20 <= len(runs) <= 90  # ~600 / (1 / 0.1 + 4) holds
    # Back-to-back holds are cut where the direction changes, so a run is one hold: 3-5 steps long.
    assert all(3 <= n <= 5 for _, n in runs[:-1])
    for start, n in runs:
        direction = play[start]
        assert (play[start : start + n] == direction).all()
        assert np.abs(direction).max() <= 0.15 + 1e-12  # the robot's limits
        assert np.linalg.norm(direction) == pytest.approx(0.2) or np.abs(direction).max() == pytest.approx(0.15)
    directions = np.stack([play[start] for start, _ in runs])
    assert (directions[:, 0] > 0).any() and (directions[:, 0] < 0).any() and (directions[:, 1] > 0).any()
    assert all(c.intent and (c.action == 1.0).all() for c in commands[600:620])  # demonstrations hold nothing


def test_slow_holds_stand_still_or_creep_below_the_slow_speed():
    operator = make(demo_probability=1.0, play_steps=(2000, 2000), demo_timeout_steps=20, play_slow_probability=0.1,
                    play_hold_steps=(3, 5), play_slow_speed=0.05)
    play = np.stack([operator.act(observation(0)).action for _ in range(2000)])
    held = play[~np.all(play == -1.0, axis=1)]  # the explorer's play is a constant -1
    speeds = np.linalg.norm(held, axis=1)
    assert 0.2 < len(held) / len(play) < 0.5  # ~0.1 x 4 steps per play step, holds back to back
    assert speeds.max() <= 0.05 + 1e-12
    still = speeds == 0.0
    assert 0.3 < still.mean() < 0.7  # half of the holds stand still
    assert np.ptp(speeds[~still]) > 0.02  # the others creep at speeds spread over [0, 0.05]


def test_without_held_commands_the_seeded_operator_acts_as_before():
    def run(**config) -> list:
        operator = make(demo_probability=0.5, seed=5, play_steps=(1, 6), demo_timeout_steps=2, **config)
        return [(tuple(c.action), c.intent, c.reset) for c in (operator.act(observation(e // 9)) for e in range(90))]

    assert run() == run(play_hold_probability=0.0)
    assert run() != run(play_hold_probability=0.3)
    assert run() == run(play_slow_probability=0.0) and run() != run(play_slow_probability=0.3)


@pytest.mark.parametrize("settings", [{"play_steps": (5, 2)}, {"demo_probability": 1.5}, {"demo_timeout_steps": 0},
                                      {"play_action_noise": -0.1}, {"play_action_noise": float("nan")},
                                      {"play_hold_probability": -0.1}, {"play_hold_probability": 1.5},
                                      {"play_hold_probability": float("nan")}, {"play_hold_steps": (0, 3)},
                                      {"play_hold_steps": (5, 3)}, {"play_hold_speed": 0.0},
                                      {"play_hold_speed": float("nan")}, {"play_slow_probability": -0.1},
                                      {"play_slow_probability": float("nan")}, {"play_slow_speed": 0.0}])
def test_bad_settings_are_rejected(settings):
    with pytest.raises(ValueError):
        ScriptedOperatorConfig(**settings)
