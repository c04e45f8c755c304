"""Tasks on the Push-T stand-in: a reset distribution, a goal picture and a success rule each.

The ladder (DESIGN.md §8, issue 13) climbs from easy to the paper's task on one stand-in:

- ``reach`` — move the agent (end effector) onto a target. Start: gym-pusht's own random reset
  (agent and T anywhere); target: a point drawn per episode where the agent's disc clears the T and
  at least ``reach_min_start_px`` from the agent's start. The goal picture is the start scene with the
  agent drawn on the target (the only place the target is shown: the live camera never shows it).
  Success: the agent within ``reach_success_px`` arena units of the target (loose: twice that).
- ``reach_fixed`` — reach with one target for every episode (``reach_fixed_target``), so that a policy that
  sees only the camera can learn it from one goal picture (reach's target changes per episode and the camera
  never shows it). Start: the T resting on its goal pose, the agent anywhere clear of it and at least
  ``reach_min_start_px`` from the target. Goal picture: the start scene with the agent on the target. Success
  as for reach.
- ``push_near`` — push the T the last bit onto its goal pose. Start: the T within
  ``near_offset_px`` (position) and ``near_angle_rad`` (angle) of gym-pusht's goal pose, at least
  ``near_min_error_px`` of pose error away from it, the agent anywhere clear of the T. Goal picture
  and success as for full Push-T.
- ``push_region`` — push the T into the goal region (the ladder's intermediate task). Start: the T at
  ``region_start_px`` (a range) from its goal position in a random direction, turned at most
  ``region_angle_rad`` from the goal angle, the agent ``region_agent_px`` behind it on the side away from
  the goal (clear of the T). Goal picture as for full Push-T. Success: the T's centre of gravity within
  ``region_success_px`` of the goal T's, whatever the angle (loose: twice that). One straight push can
  solve it; what it needs that reach does not is contact.
- ``push_t`` — gym-pusht's task as it is: its random reset, the T on the goal pose in the goal
  picture, success when the coverage of the goal T exceeds 0.95 (loose: 0.8).

Every task reports the same numbers per step (:class:`TaskStatus`), so one evaluation covers them
all: the coverage of the goal T, the T's pose error (mean distance of its corners from the goal
T's, arena units), the task's own distance (reach: agent to target; pushing: the pose error) and the
two success rules. Evaluation only: nothing in training may read these (the learned reward comes
from images).

Arena units: gym-pusht's 512 x 512 arena; at a 96 x 96 camera one pixel is 5.3 units, at 64 x 64 8 units.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ARENA_UNITS = 512.0

TASKS = ("reach", "reach_fixed", "push_region", "push_near", "push_t")
"""Task names, from easy to the paper's."""

REACH_TASKS = ("reach", "reach_fixed")
"""The tasks scored by the agent's distance to a target (the others by the T's pose)."""

SUCCESS_COVERAGE = 0.95
"""Pushing tasks succeed when the T covers more than this of the goal T (gym-pusht's threshold)."""

LOOSE_COVERAGE = 0.8
"""The looser pushing rule reported beside it (issue 13: coverage > 0.8)."""

_T_CORNERS = np.array([[-60, 0], [60, 0], [60, 30], [15, 30], [15, 120], [-15, 120], [-15, 30], [-60, 30]], float)
"""The T's outline corners in its body frame (gym-pusht's geometry)."""

GOAL_POSE = np.array([256.0, 256.0, np.pi / 4])
"""gym-pusht's goal pose of the T [x, y, angle] (fixed in PushT-v0)."""


@dataclass(frozen=True)
class TaskConfig:
    """The knobs of the tasks' start distributions and success rules (arena units, rad)."""

    reach_success_px: float = 20.0
    """reach: success when the agent's centre is within this of the target (3.75 px at 96 x 96)."""
    reach_min_start_px: float = 120.0
    """reach: the target is drawn at least this far from the agent's start."""
    reach_margin_px: float = 60.0
    """reach: the target is drawn this far inside the arena border at least."""
    reach_fixed_target: tuple[float, float] = (384.0, 128.0)
    """reach_fixed: the target [x, y] of every episode (arena units; clear of the T on its goal pose)."""
    near_offset_px: float = 40.0
    """push_near: the T's start position is within this of the goal position."""
    near_angle_rad: float = 0.5
    """push_near: the T's start angle is within this of the goal angle."""
    near_min_error_px: float = 15.0
    """push_near: the start's pose error is at least this (the episode does not start solved)."""
    region_start_px: tuple[float, float] = (60.0, 120.0)
    """push_region: the T's centre starts this far (a range) from the goal T's centre."""
    region_angle_rad: float = 0.3
    """push_region: the T's start angle is within this of the goal angle."""
    region_agent_px: float = 100.0
    """push_region: the agent starts about this far behind the T's centre, on the side away from the goal."""
    region_success_px: float = 30.0
    """push_region: success when the T's centre is within this of the goal T's centre (loose: twice that)."""
    region_agent_anywhere: float = 0.0
    """push_region: the fraction of starts whose agent is placed anywhere in the arena clear of the T instead of
    behind it (a training-start variant: the states after a missed first shove, the agent beside the T, become
    starts; 0 in every evaluation). Measured on rung 0 (docs/ladder.md, "Rung 0's own ceiling"): 0.2 and 0.5
    score below 0."""

    def __post_init__(self) -> None:
        for name in ("reach_success_px", "reach_min_start_px", "near_offset_px", "near_angle_rad"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not 20.0 <= self.reach_margin_px < ARENA_UNITS / 2:
            raise ValueError(f"reach_margin_px must be in [20, 256) (the agent's reach), got {self.reach_margin_px}")
        low, high = self.region_start_px
        if not 0 < low <= high or self.region_agent_px <= 0 or self.region_success_px <= 0 \
                or self.region_angle_rad < 0:
            raise ValueError("region_start_px must be 0 < low <= high; region_agent_px and region_success_px "
                             "positive; region_angle_rad >= 0")
        target = np.asarray(self.reach_fixed_target, dtype=np.float64)
        if target.shape != (2,) or not np.all((target >= 20.0) & (target <= ARENA_UNITS - 20.0)) \
                or not disc_clears_t(target, GOAL_POSE, radius=25.0):
            raise ValueError(f"reach_fixed_target must be [x, y] inside the arena (20-492 units) with the agent's disc "
                             f"clear of the T on its goal pose, got {self.reach_fixed_target}")
        if self.near_min_error_px < 0:
            raise ValueError(f"near_min_error_px must be >= 0, got {self.near_min_error_px}")
        if not 0.0 <= self.region_agent_anywhere <= 1.0:
            raise ValueError(f"region_agent_anywhere must be a fraction in [0, 1], got {self.region_agent_anywhere}")


@dataclass(frozen=True)
class TaskStatus:
    """How an episode of a task stands at one step (evaluation only)."""

    coverage: float
    """Fraction of the goal T covered by the T (gym-pusht's coverage; the pushing tasks' progress)."""
    pose_error: float
    """Mean distance of the T's corners from the goal T's corners (arena units)."""
    distance: float
    """The task's distance to done: reach, agent to target; pushing tasks, ``pose_error`` (arena units)."""
    success: bool
    """The task's success rule holds (reach: within ``reach_success_px``; pushing: coverage > 0.95)."""
    loose_success: bool
    """The looser rule (reach: within twice ``reach_success_px``; pushing: coverage > 0.8)."""


def _rotation(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s], [s, c]])


def corners(pose: np.ndarray) -> np.ndarray:
    """(8, 2) the T's outline corners in the arena at ``pose`` [x, y, angle]."""
    pose = np.asarray(pose, dtype=np.float64)
    return pose[:2] + _T_CORNERS @ _rotation(float(pose[2])).T


def pose_error(pose: np.ndarray, goal: np.ndarray) -> float:
    """Mean distance (arena units) of the T's corners at ``pose`` from the same corners at ``goal``."""
    return float(np.mean(np.linalg.norm(corners(pose) - corners(goal), axis=1)))


def disc_clears_t(point: np.ndarray, block: np.ndarray, radius: float = 17.0) -> bool:
    """Whether a disc of ``radius`` at ``point`` stays off the T at pose ``block``."""
    local = (np.asarray(point, dtype=np.float64) - block[:2]) @ _rotation(float(block[2]))
    x, y = local
    bar = abs(x) < 60 + radius and -radius < y < 30 + radius
    stem = abs(x) < 15 + radius and 30 < y < 120 + radius
    return not (bar or stem)


@dataclass(frozen=True)
class TaskStart:
    """Where a task's episode starts: None fields keep what gym-pusht's reset drew."""

    agent: np.ndarray | None = None
    """Agent [x, y] (arena units)."""
    block: np.ndarray | None = None
    """T pose [x, y, angle]."""
    target: np.ndarray | None = None
    """reach: the agent's target [x, y]."""


class PushTTask:
    """One task: ``start`` draws an episode's start, ``status`` scores a step. Build with :func:`make_task`."""

    name = ""
    description = ""

    def __init__(self, config: TaskConfig | None = None) -> None:
        self.config = config or TaskConfig()

    def start(self, agent: np.ndarray, block: np.ndarray, rng: np.random.Generator) -> TaskStart:
        """The episode's start given gym-pusht's own random draw (``agent``, ``block``) and an episode RNG."""
        return TaskStart()

    def status(self, agent: np.ndarray, block: np.ndarray, goal: np.ndarray, coverage: float,
               target: np.ndarray | None) -> TaskStatus:
        error = pose_error(block, goal)
        return TaskStatus(coverage=coverage, pose_error=error, distance=error, success=coverage > SUCCESS_COVERAGE,
                          loose_success=coverage > LOOSE_COVERAGE)

    @property
    def shows_target(self) -> bool:
        """The goal picture shows the agent on a target (reach) rather than the T on its goal pose."""
        return False


class PushT(PushTTask):
    name = "push_t"
    description = "gym-pusht's Push-T: random start, the T onto its goal pose (coverage > 0.95)"


class PushNear(PushTTask):
    name = "push_near"
    description = "the T starts near its goal pose; push it on (coverage > 0.95)"

    def start(self, agent: np.ndarray, block: np.ndarray, rng: np.random.Generator) -> TaskStart:
        c = self.config
        for _ in range(1000):
            radius = c.near_offset_px * np.sqrt(rng.uniform())
            direction = rng.uniform(-np.pi, np.pi)
            pose = GOAL_POSE + np.array([radius * np.cos(direction), radius * np.sin(direction),
                                         rng.uniform(-c.near_angle_rad, c.near_angle_rad)])
            if pose_error(pose, GOAL_POSE) >= c.near_min_error_px:
                break
        for _ in range(1000):
            start = rng.uniform(40.0, ARENA_UNITS - 40.0, size=2)
            if disc_clears_t(start, pose, radius=25.0):
                break
        return TaskStart(agent=start, block=pose)


T_CENTRE = np.array([0.0, 45.0])
"""The T's centre of gravity in its body frame (arena units; the bar and the stem weigh alike)."""


def t_centre(pose: np.ndarray) -> np.ndarray:
    """[x, y] of the T's centre of gravity at ``pose`` [x, y, angle] (arena units)."""
    pose = np.asarray(pose, dtype=np.float64)
    return pose[:2] + _rotation(float(pose[2])) @ T_CENTRE


class PushRegion(PushTTask):
    name = "push_region"
    description = "push the T's centre into the goal region (within 30 arena units of the goal T's), any angle"

    def start(self, agent: np.ndarray, block: np.ndarray, rng: np.random.Generator) -> TaskStart:
        c = self.config
        goal_centre = t_centre(GOAL_POSE)
        for _ in range(1000):
            direction = rng.uniform(-np.pi, np.pi)
            away = np.array([np.cos(direction), np.sin(direction)])
            angle = GOAL_POSE[2] + rng.uniform(-c.region_angle_rad, c.region_angle_rad)
            centre = goal_centre + rng.uniform(*c.region_start_px) * away
            origin = centre - _rotation(angle) @ T_CENTRE
            pose = np.array([*origin, angle])
            start = centre + c.region_agent_px * away + rng.normal(0.0, 10.0, size=2)
            inside = np.all((start > 40.0) & (start < ARENA_UNITS - 40.0))
            corners_inside = np.all((corners(pose) > 10.0) & (corners(pose) < ARENA_UNITS - 10.0))
            if c.region_agent_anywhere and rng.uniform() < c.region_agent_anywhere:
                start = rng.uniform(40.0, ARENA_UNITS - 40.0, size=2)  # anywhere, as far inside as "behind" keeps
            if inside and corners_inside and disc_clears_t(start, pose, radius=25.0):
                return TaskStart(agent=start, block=pose)
        raise RuntimeError("push_region: no start found in 1000 draws (region_start_px / region_agent_px too large)")

    def status(self, agent: np.ndarray, block: np.ndarray, goal: np.ndarray, coverage: float,
               target: np.ndarray | None) -> TaskStatus:
        distance = float(np.linalg.norm(t_centre(block) - t_centre(goal)))
        return TaskStatus(coverage=coverage, pose_error=pose_error(block, goal), distance=distance,
                          success=distance < self.config.region_success_px,
                          loose_success=distance < 2 * self.config.region_success_px)


class Reach(PushTTask):
    name = "reach"
    description = "move the agent onto the target shown in the goal picture (within 20 arena units)"

    def start(self, agent: np.ndarray, block: np.ndarray, rng: np.random.Generator) -> TaskStart:
        c = self.config
        for _ in range(1000):
            target = rng.uniform(c.reach_margin_px, ARENA_UNITS - c.reach_margin_px, size=2)
            if disc_clears_t(target, block) and np.linalg.norm(target - agent) >= c.reach_min_start_px:
                break
        return TaskStart(target=target)

    def status(self, agent: np.ndarray, block: np.ndarray, goal: np.ndarray, coverage: float,
               target: np.ndarray | None) -> TaskStatus:
        if target is None:
            raise ValueError("the reach task needs the episode's target")
        distance = float(np.linalg.norm(np.asarray(agent, dtype=np.float64) - target))
        return TaskStatus(coverage=coverage, pose_error=pose_error(block, goal), distance=distance,
                          success=distance < self.config.reach_success_px,
                          loose_success=distance < 2 * self.config.reach_success_px)

    @property
    def shows_target(self) -> bool:
        return True


class ReachFixed(Reach):
    name = "reach_fixed"
    description = "move the agent onto the one target of every episode, shown in the goal picture (within 20 units)"

    def start(self, agent: np.ndarray, block: np.ndarray, rng: np.random.Generator) -> TaskStart:
        c = self.config
        target = np.asarray(c.reach_fixed_target, dtype=np.float64)
        for _ in range(1000):
            start = rng.uniform(40.0, ARENA_UNITS - 40.0, size=2)
            if disc_clears_t(start, GOAL_POSE, radius=25.0) and np.linalg.norm(start - target) >= c.reach_min_start_px:
                return TaskStart(agent=start, block=GOAL_POSE.copy(), target=target)
        raise RuntimeError("reach_fixed: no start found in 1000 draws (reach_min_start_px too large)")


_TASK_CLASSES: dict[str, type[PushTTask]] = {"reach": Reach, "reach_fixed": ReachFixed, "push_region": PushRegion,
                                              "push_near": PushNear, "push_t": PushT}


def make_task(name: str, config: TaskConfig | None = None) -> PushTTask:
    """The task called ``name`` (one of :data:`TASKS`)."""
    if name not in _TASK_CLASSES:
        raise ValueError(f"unknown Push-T task {name!r}; choose one of {', '.join(TASKS)}")
    return _TASK_CLASSES[name](config)


__all__ = ["GOAL_POSE", "LOOSE_COVERAGE", "REACH_TASKS", "SUCCESS_COVERAGE", "TASKS", "T_CENTRE", "PushTTask",
           "TaskConfig", "TaskStart", "TaskStatus", "corners", "disc_clears_t", "make_task", "pose_error", "t_centre"]
