"""The scripted operator: plays with the robot, sometimes demonstrates the task, resets.

It plays the human at the stand-in's controls, who can see the scene: it reads the
stand-in's ground truth (``Observation``) and emits what a human operator's teleop emits
(``Command``): an action, the intent label, the milestone key and reset presses.

Each episode: *play* for a random number of steps (intent off; push primitives toward
random points on the object from the robot's ``Explorer``), then with probability
``demo_probability`` a *demonstration* (intent on; the robot's ``Expert``) until success or
``demo_timeout_steps``, then a reset. So the recordings hold play and demonstrations, with
intent toggling inside episodes and demos starting from varied states.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class Observation:
    """What the operator sees of the scene (from the stand-in's evaluation topic)."""

    episode: int
    """Episode counter of the stand-in; it changes when a reset took effect."""
    step: int
    """Control steps since the last reset."""
    agent: np.ndarray
    """Robot pose: Push-T [x, y] (arena px); Go2 [x, y, yaw] (m, rad)."""
    object: np.ndarray
    """Object pose: Push-T block [x, y, angle]; Go2 cube [x, y, yaw]."""
    goal: np.ndarray
    """Goal: Push-T [x, y, angle]; Go2 [x, y, radius]."""
    progress: float
    """Task progress in [0, 1]."""
    success: bool
    """The task is achieved at this step."""
    object_in_view: bool = True
    """The object is in the robot camera's field of view."""


@dataclass(frozen=True)
class Command:
    """What the operator's teleop publishes at one control tick."""

    action: np.ndarray
    """Robot action in its units: Push-T [vx, vy] m/s; Go2 [vx, vy, yaw rate] m/s, rad/s."""
    intent: bool
    """The operator intends the task (a demonstration)."""
    milestone: float = 0.0
    """The extra reward key (1.0 on the tick it is pressed)."""
    reset: bool = False
    """Ask for a reset of the scene."""


class Policy(Protocol):
    """An expert or explorer: an action for the current observation."""

    def begin(self, observation: Observation, rng: np.random.Generator) -> None: ...

    def act(self, observation: Observation) -> np.ndarray: ...


class Mode(enum.Enum):
    PLAY = "play"
    DEMO = "demo"
    RESET = "reset"


@dataclass
class ScriptedOperatorConfig:
    """How the scripted operator mixes play and demonstrations."""

    seed: int = 0
    """Seed of every random choice (segment lengths, demo or not, play targets)."""
    play_steps: tuple[int, int] = (20, 60)
    """Range of play steps at the start of each episode (control steps, inclusive)."""
    demo_probability: float = 0.5
    """Probability that an episode's play is followed by a demonstration."""
    demo_timeout_steps: int = 150
    """A demonstration that has not succeeded after this many steps is abandoned."""
    hold_after_success_steps: int = 2
    """Steps of zero action (intent still on) after success before the reset."""
    reset_retry_steps: int = 10
    """Reset is pressed again if the stand-in has not reset after this many steps."""
    play_action_noise: float = 0.0
    """Standard deviation (the robot's action units: m/s, rad/s) of independent Gaussian noise added to every
    component of every play action; 0: none. A scripted operator's actions are smooth, so the action at t is
    nearly predictable from the motion before it and a model of the recording can ignore it; per-step noise
    makes each action carry information of its own (the behaviour noise of DART, Laskey et al. 2017).
    Demonstrations stay noise-free. Noisy actions are clamped to the robot's limits
    (:attr:`ScriptedOperator.limit_action`), so the recorded action is the one carried out."""
    play_hold_probability: float = 0.0
    """Per play step, the probability of starting a *held command*: a random direction at ``play_hold_speed``
    kept for ``play_hold_steps`` steps whatever is in the way — walls and the object included. Play otherwise
    walks around the object and rarely presses into a border, so a model of the recording never sees the
    agent stopped there, while a policy (and the world-model gate) holds commands into walls. 0: none."""
    play_hold_steps: tuple[int, int] = (3, 10)
    """Range of a held command's length (control steps, inclusive)."""
    play_hold_speed: float = 0.2
    """Norm of a held command in the robot's action units (m/s, rad/s), clamped by the robot's limits."""
    play_slow_probability: float = 0.0
    """Per play step, the probability of starting a *slow hold* for ``play_hold_steps`` steps: standing still (half
    of them) or a random direction at a speed drawn uniformly from [0, ``play_slow_speed``]. Play otherwise moves
    at the operator's pace (1-2 % of its steps command under 5 % of the action limit), so a world model of the
    recording never sees the agent still or creeping, which is what a policy does where it stops. Measured on Push-T
    (docs/ladder.md "Rung 2 reach: ... cannot hold the agent still"): added to the cpu world model's data at 0.15, it
    did not make the imagined agent stand still under a zero command (it drifted more); 0: none."""
    play_slow_speed: float = 0.05
    """Fastest slow hold in the robot's action units (m/s, rad/s): a quarter of the operator's 0.2."""
    play_wander_probability: float = 0.0
    """Per play primitive, the probability of walking to a point of the arena instead of pushing: Push-T, a random
    point (:class:`~dmo_ros.teleop.pusht_expert.PushTExplorer`), so play covers the workspace (a reach task's target
    and the walls); Push Cube, a random point or (half of them) the goal region, looking around there
    (:class:`~dmo_ros.teleop.push_cube_expert.PushCubeExplorer`), so play shows the goal without the cube; 0: none."""
    lined_up_milestone: float = 0.0
    """The milestone key's value held whenever the robot is lined up to push, in play and in demonstrations (the
    milestone is a fact of the scene, not of the intent): the object straight ahead, the goal straight beyond it (an
    intermediate milestone; the paper: "a key with a higher reward value whenever a milestone is met"), below the
    success press's 1.0; only for a task with such a milestone (:attr:`ScriptedOperator.milestone_met`: Push Cube's).
    0: the key is pressed at success only. An intent reward trained on it pays for getting behind the cube, which
    P(intent | frame) alone does not (docs/push_cube.md "A milestone key behind the cube")."""

    demo_settle_steps: int = 0
    """Steps the demonstration goes on after the stand-in first reports success, the expert still pushing, before the
    success key: a careful operator pushes the object well in instead of stopping on the goal region's edge. 0: the
    key at the first success. Measured on Push Cube (docs/push_cube.md "Where the intent reward peaks"): with the key
    at the first success the intent reward has no slope across the disc's edge and falls further in; with 2 steps
    (or 3 and a back-off) its peak moves onto the disc, but its climb along the push flattens and rung 0 SAPO on it
    scored 0/100 where the key at the first success gives 63/100 — an option to measure with, not a default."""
    demo_back_off_steps: int = 0
    """Then steps of backing away from the object (the robot's :attr:`ScriptedOperator.back_off`, intent on) before
    the success key, so the demonstration's last frames show the object in the goal region from a distance (up close,
    the Go2's camera sees the cube but not the disc beneath it). Only for a robot with a back-off (Push Cube's); 0:
    none."""

    def __post_init__(self) -> None:
        low, high = self.play_steps
        if not 0 <= low <= high:
            raise ValueError(f"play_steps must be (low, high) with 0 <= low <= high, got {self.play_steps}")
        if not 0.0 <= self.demo_probability <= 1.0:
            raise ValueError(f"demo_probability must be in [0, 1], got {self.demo_probability}")
        if self.demo_timeout_steps <= 0:
            raise ValueError("demo_timeout_steps must be positive")
        if not self.play_action_noise >= 0:  # also rejects NaN
            raise ValueError(f"play_action_noise must be >= 0, got {self.play_action_noise}")
        if not 0.0 <= self.play_hold_probability <= 1.0:
            raise ValueError(f"play_hold_probability must be in [0, 1], got {self.play_hold_probability}")
        low, high = self.play_hold_steps
        if not 1 <= low <= high:
            raise ValueError(f"play_hold_steps must be (low, high) with 1 <= low <= high, got {self.play_hold_steps}")
        if not 0.0 <= self.play_wander_probability <= 1.0:
            raise ValueError(f"play_wander_probability must be in [0, 1], got {self.play_wander_probability}")
        if not 0.0 <= self.play_slow_probability <= 1.0:
            raise ValueError(f"play_slow_probability must be in [0, 1], got {self.play_slow_probability}")
        if not 0.0 <= self.lined_up_milestone < 1.0:  # also rejects NaN; below the success press
            raise ValueError(f"lined_up_milestone must be in [0, 1), got {self.lined_up_milestone}")
        if not self.play_slow_speed > 0:
            raise ValueError(f"play_slow_speed must be > 0, got {self.play_slow_speed}")
        if not self.play_hold_speed > 0:
            raise ValueError(f"play_hold_speed must be > 0, got {self.play_hold_speed}")
        if self.demo_settle_steps < 0 or self.demo_back_off_steps < 0:
            raise ValueError(f"demo_settle_steps and demo_back_off_steps must be >= 0, got {self.demo_settle_steps} "
                             f"and {self.demo_back_off_steps}")


@dataclass
class OperatorStats:
    """Counters over a session, for the play-statistics report."""

    steps: int = 0
    intent_steps: int = 0
    episodes: int = 0
    demos: int = 0
    demo_successes: int = 0
    milestones: int = 0
    demo_best_progress: list[float] = field(default_factory=list)
    """Best task progress reached in each demonstration (Push-T: coverage)."""

    @property
    def intent_fraction(self) -> float:
        return self.intent_steps / self.steps if self.steps else 0.0

    @property
    def demo_success_rate(self) -> float:
        return self.demo_successes / self.demos if self.demos else 0.0


@dataclass
class ScriptedOperator:
    """State machine over play → (demonstration) → reset, one tick per control step."""

    explorer: Policy
    expert: Policy
    action_size: int
    config: ScriptedOperatorConfig = field(default_factory=ScriptedOperatorConfig)
    press_milestone: bool = False
    """Press the milestone key when a demonstration first succeeds (Push Cube)."""
    milestone_met: Callable[[Observation], bool] | None = None
    """Whether an observation (in play or a demonstration) meets the task's intermediate milestone (Push Cube:
    :func:`~dmo_ros.teleop.push_cube_expert.lined_up`); the key then holds
    :attr:`ScriptedOperatorConfig.lined_up_milestone`. None: no such milestone."""
    back_off: Callable[[Observation], np.ndarray] | None = None
    """The robot's command that backs it away from the object (Push Cube:
    :meth:`~dmo_ros.teleop.push_cube_expert.PushCubeExpert.back_off`), for ``demo_back_off_steps``; None: none."""
    limit_action: Callable[[np.ndarray], np.ndarray] | None = None
    """The robot's command limits, applied to noisy play actions (``play_action_noise``) and held commands so that the
    recorded action is the one the robot carries out; None: no limit."""

    def __post_init__(self) -> None:
        if self.config.lined_up_milestone and self.milestone_met is None:
            raise ValueError("lined_up_milestone: this robot's expert has no intermediate milestone (Push Cube's has)")
        if self.config.demo_back_off_steps and self.back_off is None:
            raise ValueError("demo_back_off_steps: this robot's operator has no back-off command (Push Cube's has)")
        self.rng = np.random.default_rng(self.config.seed)
        self.stats = OperatorStats()
        self.mode = Mode.RESET
        self.episode: int | None = None
        self.steps_in_mode = 0
        self.play_budget = 0
        self.will_demo = False
        self.succeeded_steps = 0
        self.held: np.ndarray | None = None
        self.held_steps_left = 0

    def zero(self) -> np.ndarray:
        return np.zeros(self.action_size)

    def act(self, observation: Observation) -> Command:
        if observation.episode != self.episode:  # a new episode has started (a reset took effect)
            self._start_episode(observation)
        command = self._tick(observation)
        self.steps_in_mode += 1
        self.stats.steps += 1
        self.stats.intent_steps += int(command.intent)
        self.stats.milestones += int(command.milestone > 0)
        return command

    def _start_episode(self, observation: Observation) -> None:
        self.episode = observation.episode
        self.stats.episodes += 1
        low, high = self.config.play_steps
        self.play_budget = int(self.rng.integers(low, high + 1))
        self.will_demo = bool(self.rng.random() < self.config.demo_probability)
        self._enter(Mode.PLAY, observation)

    def _enter(self, mode: Mode, observation: Observation) -> None:
        self.mode = mode
        self.steps_in_mode = 0
        if mode is Mode.PLAY:
            self.held_steps_left = 0
            self.explorer.begin(observation, self.rng)
        elif mode is Mode.DEMO:
            self.stats.demos += 1
            self.stats.demo_best_progress.append(observation.progress)
            self.succeeded_steps = 0
            self.expert.begin(observation, self.rng)

    def _tick(self, observation: Observation) -> Command:
        if self.mode is Mode.PLAY:
            if self.steps_in_mode < self.play_budget:
                action = self._play_action(observation)
                return Command(action, intent=False, milestone=self._milestone_held(observation))
            if self.will_demo and not observation.success:
                self._enter(Mode.DEMO, observation)
            else:
                return self._reset()
        if self.mode is Mode.DEMO:
            if observation.success or self.succeeded_steps:  # once succeeded, the demonstration finishes
                self.stats.demo_best_progress[-1] = max(self.stats.demo_best_progress[-1], observation.progress)
                self.succeeded_steps += 1
                if self.succeeded_steps == 1:
                    self.stats.demo_successes += 1
                settle, back_off = self.config.demo_settle_steps, self.config.demo_back_off_steps
                finishing = self.succeeded_steps - settle - back_off  # 1 at the success key
                if self.succeeded_steps <= settle:
                    action = self.expert.act(observation)
                    return Command(action, intent=True, milestone=self._milestone_held(observation))
                if finishing <= 0:
                    return Command(self.back_off(observation), intent=True)
                if finishing == 1:
                    milestone = 1.0 if self.press_milestone else 0.0
                    return Command(self.zero(), intent=True, milestone=milestone)
                if finishing <= self.config.hold_after_success_steps:
                    return Command(self.zero(), intent=True)
                return self._reset()
            if self.steps_in_mode >= self.config.demo_timeout_steps:
                return self._reset()
            self.stats.demo_best_progress[-1] = max(self.stats.demo_best_progress[-1], observation.progress)
            action = self.expert.act(observation)
            return Command(action, intent=True, milestone=self._milestone_held(observation))
        # RESET: wait for the stand-in's episode counter to change; press again if it does not.
        press = self.steps_in_mode % self.config.reset_retry_steps == 0
        return Command(self.zero(), intent=False, reset=press)

    def _milestone_held(self, observation: Observation) -> float:
        """The milestone key while playing or demonstrating: held at ``lined_up_milestone`` whenever the milestone is
        met — in play too, as the milestone is a fact of the scene, not of the intent."""
        met = self.config.lined_up_milestone and self.milestone_met(observation)
        return self.config.lined_up_milestone if met else 0.0

    def _held_command(self) -> np.ndarray | None:
        """The held play command for this step, starting one with ``play_hold_probability`` (or a slow one with
        ``play_slow_probability``); None: play on."""
        if self.held_steps_left <= 0:
            speed = self._hold_speed()
            if speed is None:
                return None
            direction = self.rng.normal(size=self.action_size)
            held = direction / max(float(np.linalg.norm(direction)), 1e-12) * speed
            self.held = self.limit_action(held) if self.limit_action is not None else held
            low, high = self.config.play_hold_steps
            self.held_steps_left = int(self.rng.integers(low, high + 1))
        self.held_steps_left -= 1
        return self.held.copy()

    def _hold_speed(self) -> float | None:
        """The speed of a hold starting at this step, or None: no hold. No draw for a probability of 0, so seeded
        recordings without holds stay as they were."""
        config = self.config
        if config.play_hold_probability and self.rng.random() < config.play_hold_probability:
            return config.play_hold_speed
        if config.play_slow_probability and self.rng.random() < config.play_slow_probability:
            return 0.0 if self.rng.random() < 0.5 else float(self.rng.uniform(0.0, config.play_slow_speed))
        return None

    def _play_action(self, observation: Observation) -> np.ndarray:
        held = self._held_command()
        if held is not None:
            return held
        action = np.asarray(self.explorer.act(observation), dtype=np.float64)
        if self.config.play_action_noise > 0:  # no draw without noise: seeded recordings stay as they were
            action = action + self.rng.normal(0.0, self.config.play_action_noise, action.shape)
            if self.limit_action is not None:
                action = self.limit_action(action)
        return action

    def _reset(self) -> Command:
        self.mode = Mode.RESET
        self.steps_in_mode = 0
        return Command(self.zero(), intent=False, reset=True)
