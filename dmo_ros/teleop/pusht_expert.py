"""Scripted play and demonstrations for Push-T (the pusher is a disc, the object a T block).

Geometry follows gym-pusht: the arena is 512 px square; the T's body frame has the bar
over x ∈ [-60, 60], y ∈ [0, 30] and the stem over x ∈ [-15, 15], y ∈ [30, 120]; the pose
[x, y, angle] places that frame in the arena. Actions leave as end-effector velocities in
m/s (a delta per control step divided by the period) like a real arm's servo command.

The expert pushes where it helps most: for candidate contact points on the T's outline it
compares where the point is with where it would be at the goal pose, and pushes at the point
whose inward push direction best reduces that gap. It walks around the block to the contact
point, pushes for a few steps, and re-plans.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dmo_ros.teleop.operator import Observation

# Contact candidates on the T's outline, body frame: (point, outward normal).
_T_OUTLINE = [
    *(((x, 0.0), (0.0, -1.0)) for x in (-50.0, -25.0, 0.0, 25.0, 50.0)),  # bar, outer edge
    *(((x, 30.0), (0.0, 1.0)) for x in (-45.0, 45.0)),  # bar, inner edge beside the stem
    ((-60.0, 15.0), (-1.0, 0.0)),
    ((60.0, 15.0), (1.0, 0.0)),  # bar ends
    *(((side * 15.0, y), (side, 0.0)) for side in (-1.0, 1.0) for y in (55.0, 85.0, 110.0)),  # stem sides
    ((0.0, 120.0), (0.0, 1.0)),  # stem end
]
_T_CENTER = np.array([0.0, 45.0])  # centre of gravity, body frame
_CLEARANCE = 95.0  # px: the pusher keeps this far from the T's centre while walking around it


@dataclass(frozen=True)
class PushTUnits:
    """Conversion of arena pixels per control step to the arm's m/s command."""

    arena_size_m: float = 0.5
    """Side of the table area that the 512 px arena spans (the stand-in's arena_size_m)."""
    control_period_s: float = 0.2
    """Seconds per control step (5 Hz)."""
    arena_px: float = 512.0
    """Side of the gym-pusht arena in its own units."""
    max_step_px: float = 40.0
    """Largest pusher move per control step (arena px) the operator asks for."""
    reach_margin_px: float = 22.0
    """The pusher's centre cannot get closer than this to the arena border (the stand-in clips it)."""

    def reachable(self, point: np.ndarray) -> bool:
        return bool(np.all(point >= self.reach_margin_px) and np.all(point <= self.arena_px - self.reach_margin_px))

    def velocity(self, delta_px: np.ndarray) -> np.ndarray:
        norm = float(np.linalg.norm(delta_px))
        if norm > self.max_step_px:
            delta_px = delta_px * (self.max_step_px / norm)
        return delta_px * (self.arena_size_m / self.arena_px) / self.control_period_s


def _rotation(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s], [s, c]])


def to_world(pose: np.ndarray, point: np.ndarray) -> np.ndarray:
    return pose[:2] + _rotation(pose[2]) @ point


def _hits_block(start: np.ndarray, end: np.ndarray, block: np.ndarray, radius: float = 17.0) -> bool:
    """Whether the pusher (a disc of ``radius``) moving start → end would touch the T."""
    length = float(np.linalg.norm(end - start))
    samples = np.linspace(0.0, 1.0, max(2, int(length / 4.0) + 1))[:, None]
    points = start + samples * (end - start)
    local = (points - block[:2]) @ _rotation(block[2])  # world → body frame (rotate by -angle)
    x, y = local[:, 0], local[:, 1]
    bar = (np.abs(x) < 60 + radius) & (y > -radius) & (y < 30 + radius)
    stem = (np.abs(x) < 15 + radius) & (y > 30) & (y < 120 + radius)
    return bool(np.any(bar | stem))


def _move_toward(agent: np.ndarray, target: np.ndarray, block: np.ndarray, units: PushTUnits) -> np.ndarray:
    """A step toward target that walks around the T instead of through it, inside the arena."""
    if not _hits_block(agent, target, block):
        return target - agent
    # Go around: step along a circle about the T's centre, the way that stays inside the
    # arena and turns less away from the target.
    center = to_world(block, _T_CENTER)
    radial = agent - center
    distance = max(float(np.linalg.norm(radial)), 1e-6)
    outward = radial / distance
    steps = []
    for tangent in (np.array([-outward[1], outward[0]]), np.array([outward[1], -outward[0]])):
        step = tangent * 30.0 + outward * max(0.0, _CLEARANCE - distance)
        steps.append((not units.reachable(agent + step), -float(np.dot(tangent, target - agent)), tuple(step)))
    return np.array(min(steps)[2])


class PushTExpert:
    """Pushes the T toward its goal pose (the demonstrations, intent on)."""

    def __init__(
        self,
        units: PushTUnits | None = None,
        push_steps: int = 3,
        push_depth: float = 25.0,
        approach_patience: int = 6,
    ) -> None:
        self.units = units or PushTUnits()
        self.push_steps = push_steps
        self.push_depth = push_depth
        self.approach_patience = approach_patience
        self.begin(None, np.random.default_rng(0))

    def begin(self, observation: Observation | None, rng: np.random.Generator) -> None:
        self._contact: int | None = None  # index into _T_OUTLINE
        self._pushing = 0
        self._stalled = 0
        self._closest = np.inf
        self._gap = 0.0
        self._unreachable: set[int] = set()

    def _plan(self, block: np.ndarray, goal: np.ndarray) -> int | None:
        """The contact whose inward push best closes the gap to the goal pose (its gap in px kept)."""
        best, best_score = None, 1.5  # px: below this no push helps; hold still
        for index, (point, normal) in enumerate(_T_OUTLINE):
            if index in self._unreachable:
                continue
            gap = to_world(goal, np.asarray(point)) - to_world(block, np.asarray(point))
            inward = -(_rotation(block[2]) @ np.asarray(normal))
            if not self.units.reachable(to_world(block, np.asarray(point)) - inward * 30.0):
                continue
            score = float(np.dot(gap, inward))
            if score > best_score:
                best, best_score = index, score
        self._gap = best_score
        return best

    def act(self, observation: Observation) -> np.ndarray:
        agent, block, goal = observation.agent[:2], observation.object, observation.goal
        if self._contact is None or self._pushing >= self.push_steps:
            self._contact, self._pushing = self._plan(block, goal), 0
            self._stalled, self._closest = 0, np.inf
        if self._contact is None:
            self._unreachable.clear()
            return np.zeros(2)
        point, normal = (np.asarray(v) for v in _T_OUTLINE[self._contact])
        inward = -(_rotation(block[2]) @ normal)
        contact = to_world(block, point)
        approach = contact - inward * 30.0  # pusher radius 15 + margin
        distance = float(np.linalg.norm(agent - approach))
        if self._pushing == 0 and distance > 8.0:
            self._stalled = 0 if distance < self._closest - 1.0 else self._stalled + 1
            self._closest = min(self._closest, distance)
            if self._stalled > self.approach_patience:  # no progress (a wall, the block): try another point
                self._unreachable.add(self._contact)
                self._contact = None
            return self.units.velocity(_move_toward(agent, approach, block, self.units))
        self._pushing += 1
        self._unreachable.clear()
        # Push as deep as the gap (near the goal, small pushes; far, full ones).
        depth = float(np.clip(self._gap, 3.0, self.push_depth))
        if self._gap < 15.0:
            self._pushing = self.push_steps  # one short push, then look again
        return self.units.velocity(contact + inward * depth - agent)


class PushTExplorer:
    """Play: push primitives toward random points on the T from random directions."""

    def __init__(self, units: PushTUnits | None = None, push_steps: tuple[int, int] = (2, 6)) -> None:
        self.units = units or PushTUnits()
        self.push_steps = push_steps
        self.rng = np.random.default_rng(0)
        self._target: tuple[np.ndarray, np.ndarray] | None = None
        self._left = 0

    def begin(self, observation: Observation, rng: np.random.Generator) -> None:
        self.rng = rng
        self._target = None

    def _new_primitive(self) -> None:
        point, normal = _T_OUTLINE[self.rng.integers(len(_T_OUTLINE))]
        jitter = self.rng.normal(0.0, 0.3)
        inward = -np.asarray(normal)
        inward = _rotation(jitter) @ inward  # push roughly inward, not always square-on
        self._target = (np.asarray(point), inward)
        self._left = int(self.rng.integers(self.push_steps[0], self.push_steps[1] + 1))
        self._pushing = False
        self._approaching = 0

    def act(self, observation: Observation) -> np.ndarray:
        agent, block = observation.agent[:2], observation.object
        if self._target is None or self._left <= 0:
            self._new_primitive()
        point, inward_body = self._target
        inward = _rotation(block[2]) @ inward_body
        contact = to_world(block, point)
        approach = contact - inward * 30.0
        if not self._pushing and np.linalg.norm(agent - approach) > 10.0:
            self._approaching += 1
            if self._approaching > 20:  # unreachable (a wall): pick another primitive next step
                self._left = 0
            return self.units.velocity(_move_toward(agent, approach, block, self.units))
        self._pushing = True
        self._left -= 1
        return self.units.velocity(contact + inward * 30.0 - agent)
