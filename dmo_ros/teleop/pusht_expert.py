"""Scripted play and demonstrations for Push-T (the pusher is a disc, the object a T block).

Geometry follows gym-pusht: the arena is 512 px square; the T's body frame has the bar
over x ∈ [-60, 60], y ∈ [0, 30] and the stem over x ∈ [-15, 15], y ∈ [30, 120]; the pose
[x, y, angle] places that frame in the arena. Actions leave as end-effector velocities in
m/s (a delta per control step divided by the period) like a real arm's servo command.

The expert plans on the scene it observes, like a person who sees the table (the recording
never contains its plan): it rebuilds the T's pose in a private copy of gym-pusht's physics,
simulates candidate pushes (a contact point on the T's outline, a direction, a depth, then
backing out) and takes the one that brings the T's corners closest to the goal's fastest per
control step, walk to its start included. It walks around the T over a graph of waypoints,
pushes, and plans again. ``Observation`` alone is enough: gym-pusht damps all motion within a
physics step, so between pushes the T is at rest and its pose is its whole state.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pymunk
from gym_pusht.envs.pusht import PushTEnv
from pymunk import Vec2d

from dmo_ros.teleop.operator import Observation

ARENA_UNITS = 512.0  # gym-pusht's arena side (its units)
_DT = 0.01  # s: gym-pusht's physics step
_PUSHER_RADIUS = 15.0  # px: gym-pusht's agent disc
_K_P, _K_V = 100.0, 20.0  # gym-pusht's PD gains pulling the agent to its target

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
_T_CORNERS = np.array([[-60, 0], [60, 0], [60, 30], [15, 30], [15, 120], [-15, 120], [-15, 30], [-60, 30]], float)
"""The T's outline corners, body frame (px): the pose error compares them with the goal's."""
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

    def clamp(self, velocity: np.ndarray) -> np.ndarray:
        """A velocity command (m/s) scaled down to the operator's largest move, ``max_step_px`` per control step
        (0.195 m/s with the defaults, inside the stand-in's 0.25 m/s limit)."""
        limit = self.max_step_px * (self.arena_size_m / self.arena_px) / self.control_period_s
        norm = float(np.linalg.norm(velocity))
        return velocity * (limit / norm) if norm > limit else velocity

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


def pose_error(pose: np.ndarray, goal: np.ndarray) -> float:
    """Mean distance (arena px) of the T's corners at ``pose`` from the same corners at ``goal``."""
    return float(np.mean(np.linalg.norm(_world_points(pose, _T_CORNERS) - _world_points(goal, _T_CORNERS), axis=1)))


def _world_points(pose: np.ndarray, points: np.ndarray) -> np.ndarray:
    return pose[:2] + points @ _rotation(pose[2]).T


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


def _segments_clear(starts: np.ndarray, ends: np.ndarray, block: np.ndarray, radius: float = 17.0) -> np.ndarray:
    """(N,) bool: whether the pusher (a disc of ``radius``) moving starts[i] → ends[i] (N, 2) misses the T."""
    samples = np.linspace(0.0, 1.0, 24)[None, :, None]
    points = starts[:, None, :] + samples * (ends - starts)[:, None, :]  # (N, 24, 2)
    local = (points - block[:2]) @ _rotation(block[2])  # world → body frame
    x, y = local[..., 0], local[..., 1]
    bar = (np.abs(x) < 60 + radius) & (y > -radius) & (y < 30 + radius)
    stem = (np.abs(x) < 15 + radius) & (y > 30) & (y < 120 + radius)
    return ~np.any(bar | stem, axis=1)


_RING_RADIUS = 105.0  # px from the T's centre: clears its farthest corner (76 px) by the pusher's radius
_RING_NODES = 16
_OUTLINE_NODES = np.array(
    [[-78, -18], [78, -18], [-78, 48], [78, 48], [-33, 48], [33, 48], [-33, 138], [33, 138],  # off the corners
     [0, -24], [-40, -24], [40, -24], [-84, 15], [84, 15], [-39, 85], [39, 85], [0, 144]], float)  # off the edges
"""Waypoints hugging the T, body frame (px): off its corners and edges by more than the pusher's radius."""


def _walk_path(agent: np.ndarray, target: np.ndarray, block: np.ndarray, units: PushTUnits) -> list[np.ndarray]:
    """Waypoints (arena px) from agent to target that keep the pusher off the T and inside the arena.

    Straight if that is clear; otherwise the shortest way over a visibility graph of waypoints
    close around the T and on a ring about its centre (waypoints outside the pusher's reach are
    left out, so near a wall it goes round the other side). Empty when no way is found.
    """
    if not _hits_block(agent, target, block):
        return [target]
    angles = np.linspace(0.0, 2 * np.pi, _RING_NODES, endpoint=False)
    ring = to_world(block, _T_CENTER) + _RING_RADIUS * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    waypoints = np.concatenate([_world_points(block, _OUTLINE_NODES), ring])
    waypoints = waypoints[[units.reachable(p) for p in waypoints]]
    nodes = np.concatenate([agent[None], waypoints, target[None]])  # 0: agent, last: target
    n = len(nodes)
    i, j = np.triu_indices(n, k=1)
    clear = _segments_clear(nodes[i], nodes[j], block)
    length = np.full((n, n), np.inf)
    length[i[clear], j[clear]] = length[j[clear], i[clear]] = np.linalg.norm(nodes[i[clear]] - nodes[j[clear]], axis=1)
    # Dijkstra from the agent (a few dozen nodes: dense arrays are simplest).
    distance, previous, done = np.full(n, np.inf), np.full(n, -1), np.zeros(n, bool)
    distance[0] = 0.0
    while True:
        candidates = np.where(~done & np.isfinite(distance))[0]
        if len(candidates) == 0:
            break
        k = candidates[np.argmin(distance[candidates])]
        done[k] = True
        through = distance[k] + length[k]
        better = through < distance
        distance[better], previous[better] = through[better], k
    if not np.isfinite(distance[-1]):
        return []
    path, k = [], n - 1
    while k > 0:
        path.insert(0, nodes[k])
        k = previous[k]
    return path


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


class _PushModel:
    """A private copy of gym-pusht's physics that predicts where one push leaves the T.

    Same bodies, walls, friction and PD gains as gym-pusht (the stand-in's physics); built
    from an ``Observation`` only (agent position, block pose): the floor damps all motion
    within a physics step (gym-pusht's space damping 0), so between pushes the block is at
    rest and its pose is the whole state.
    """

    def __init__(self, arena_margin: float = 20.0, control_period_s: float = 0.2) -> None:
        self.arena_margin = arena_margin
        self.physics_steps = round(control_period_s / _DT)  # per control step (the stand-in's env steps x 10)
        self.space = pymunk.Space()
        self.space.gravity = 0, 0
        self.space.damping = 0.0
        corners = [(5, 506), (5, 5), (506, 5), (506, 506)]
        walls = zip(corners, corners[1:] + corners[:1], strict=True)
        self.space.add(*(PushTEnv.add_segment(self.space, a, b, 2) for a, b in walls))
        self.agent = PushTEnv.add_circle(self.space, (256, 400), 15)
        self.block, _ = PushTEnv.add_tee(self.space, (256, 300), 0)

    def push(self, block: np.ndarray, agent: np.ndarray, targets: list[np.ndarray], max_step_px: float) -> np.ndarray:
        """The block pose [x, y, angle] after one control step toward each of ``targets`` in turn.

        Each control step asks for ``agent + clip(target - agent, max_step_px)`` (clipped to the
        arena minus its margin) and runs the stand-in's PD-controlled physics steps of 0.01 s (20 at 5 Hz).
        """
        # Angle first: setting it turns the body about its centre of gravity; the position
        # is the body's origin, the pose's [x, y].
        self.block.angle = float(block[2])
        self.block.position = (float(block[0]), float(block[1]))
        self.block.velocity, self.block.angular_velocity = (0.0, 0.0), 0.0
        self.agent.position = (float(agent[0]), float(agent[1]))
        self.agent.velocity = (0.0, 0.0)
        low, high = self.arena_margin, ARENA_UNITS - self.arena_margin
        for target in targets:
            delta = Vec2d(float(target[0]), float(target[1])) - self.agent.position
            if delta.length > max_step_px:
                delta = delta.scale_to_length(max_step_px)
            aim = self.agent.position + delta
            aim = Vec2d(min(max(aim.x, low), high), min(max(aim.y, low), high))
            for _ in range(self.physics_steps):
                self.agent.velocity += (_K_P * (aim - self.agent.position) - _K_V * self.agent.velocity) * _DT
                self.space.step(_DT)
        return np.array([self.block.position.x, self.block.position.y, self.block.angle])


@dataclass(frozen=True, eq=False)  # eq=False: hashed by identity (a key of the planner's gain cache)
class _Push:
    """A push in the T's body frame: contact point (px), unit direction, depth past the contact (px)."""

    point: np.ndarray
    direction: np.ndarray
    depth: float
    key: tuple[int, int]
    """(contact index in ``_T_OUTLINE``, direction index in ``angle_offsets_rad``): the push's line."""


@dataclass(frozen=True)
class PushTExpertConfig:
    """How the planning expert searches for its next push."""

    push_depths_px: tuple[float, ...] = (1.0, 3.0, 8.0, 20.0, 45.0)
    """How far past the contact point (arena px) a push aims the pusher's rim: short ones for the fine end."""
    angle_offsets_rad: tuple[float, ...] = (-0.4, 0.0, 0.4)
    """Push directions tried at every contact: the inward normal turned by these angles."""
    standoff_px: float = 24.0
    """Distance of the pusher's centre from the contact point where a push starts (radius 15 + a gap)."""
    refine_directions: int = 4
    """Best (contact, direction) pairs at the middle depth whose other depths are simulated too."""
    checked_walks: int = 6
    """Pushes (the best first) whose walk is planned for real (a way around the T, its length) before one is chosen."""
    walk_px_per_step: float = 25.0
    """Rough pusher travel per control step while walking to a push (40 px asked, ~0.63 tracked)."""
    approach_patience: int = 6
    """Walking steps without getting closer before the push is dropped (a wall or the block in the way)."""
    done_error_px: float = 1.0
    """Pose error (``pose_error``, px) below which the expert holds still."""


class PushTExpert:
    """Pushes the T toward its goal pose (the demonstrations, intent on), planning on a model of the table.

    Like a person who sees the table, it plans on the scene it observes: it rebuilds the T's
    pose in a private copy of gym-pusht's physics (``_PushModel``), simulates candidate pushes
    (a contact point on the T's outline, a direction, a depth, then backing out), and picks
    the one that lowers the pose error (``pose_error``: mean distance of the T's corners to
    the goal's, arena px) fastest per control step, counting the steps to walk there. It walks
    around the block to the push's start, pushes, and plans again. About 5-10 ms per control
    step on one core.
    """

    def __init__(self, units: PushTUnits | None = None, config: PushTExpertConfig | None = None) -> None:
        self.units = units or PushTUnits()
        self.config = config or PushTExpertConfig()
        # The stand-in clips the pusher's target 20 px inside the arena (reach_margin_px keeps 2 px more).
        self.model = _PushModel(self.units.reach_margin_px - 2.0, self.units.control_period_s)
        self.begin(None, np.random.default_rng(0))

    def begin(self, observation: Observation | None, rng: np.random.Generator) -> None:
        self.rng = rng
        self._push: _Push | None = None
        self._stalled = 0
        self._closest = np.inf
        self._targets_left: list[np.ndarray] | None = None
        self._path: list[np.ndarray] = []  # waypoints of the walk to the push's start
        self._path_block = np.zeros(3)  # the block pose the path was planned around
        self._failed: set[tuple[int, int]] = set()  # push lines whose start could not be reached

    def _steps_for(self, depth: float) -> int:
        """Control steps a push of ``depth`` lasts: the pusher covers about 0.63 of each asked step."""
        travel = self.config.standoff_px - _PUSHER_RADIUS + depth
        return 1 + int(np.ceil(travel / (0.63 * self.units.max_step_px)))

    def _targets(self, start: np.ndarray, contact: np.ndarray, direction: np.ndarray, depth: float) -> list[np.ndarray]:
        """Pusher targets of a push, one per control step: in to ``depth`` past the contact, then back out.

        The last step backs straight out to the start, so that walking to the next push does
        not drag the block along (pusher and block have friction 1).
        """
        aim = contact + direction * (depth - _PUSHER_RADIUS)
        return [aim] * self._steps_for(depth) + [start]

    def _start(self, block: np.ndarray, push: _Push) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """World frame: where the push starts, its contact point and its direction."""
        contact = to_world(block, push.point)
        direction = _rotation(block[2]) @ push.direction
        return contact - direction * self.config.standoff_px, contact, direction

    def _plan(self, agent: np.ndarray, block: np.ndarray, goal: np.ndarray) -> _Push | None:
        """The simulated push that lowers the pose error most per control step (None: none helps)."""
        config = self.config
        error = pose_error(block, goal)

        gains: dict[_Push, float] = {}

        def rate(push: _Push, walk: float | None = None) -> float:
            """Pose error drop per control step (px/step); ``walk``: the walk's length if known."""
            start, contact, direction = self._start(block, push)
            targets = self._targets(start, contact, direction, push.depth)
            if push not in gains:
                gains[push] = error - pose_error(self.model.push(block, start, targets, self.units.max_step_px), goal)
            if walk is None:  # a guess: straight, or around the T
                walk = float(np.linalg.norm(start - agent))
                if _hits_block(agent, start, block):
                    walk = walk * 1.5 + 40.0
            return gains[push] / (walk / config.walk_px_per_step + len(targets))

        middle = config.push_depths_px[len(config.push_depths_px) // 2]
        lines = []
        for index, (point, normal) in enumerate(_T_OUTLINE):
            for turn, offset in enumerate(config.angle_offsets_rad):
                push = _Push(np.asarray(point), _rotation(offset) @ -np.asarray(normal), middle, (index, turn))
                start = self._start(block, push)[0]
                clear = self.units.reachable(start) and not _hits_block(start, start, block)
                if clear and push.key not in self._failed:
                    lines.append(push)
        scored = sorted(((rate(push), push) for push in lines), key=lambda item: -item[0])
        for _, push in scored[: config.refine_directions]:
            for depth in config.push_depths_px:
                if depth != middle:
                    candidate = dataclasses.replace(push, depth=depth)
                    scored.append((rate(candidate), candidate))
        scored.sort(key=lambda item: -item[0])
        # Plan the walks of the best few: drop those with no way there, rate the rest by their real length.
        best, best_rate, walks, self._path = None, 0.0, 0, []
        for guess, push in scored:
            if guess <= 0.0 or walks == config.checked_walks:
                break
            path = _walk_path(agent, self._start(block, push)[0], block, self.units)
            if not path:
                continue
            walks += 1
            walk = float(np.sum(np.linalg.norm(np.diff(np.stack([agent, *path]), axis=0), axis=1)))
            real = rate(push, walk)
            if real > best_rate:
                best, best_rate, self._path = push, real, path
        self._path_block = block.copy()
        return best

    def act(self, observation: Observation) -> np.ndarray:
        agent, block, goal = observation.agent[:2], observation.object, observation.goal
        if observation.success or pose_error(block, goal) < self.config.done_error_px:
            return np.zeros(2)
        if self._push is None:
            self._push = self._plan(agent, block, goal)
            self._stalled, self._closest, self._targets_left = 0, np.inf, None
            if self._push is None:  # no simulated push helps: a random nudge to get out of the dead end
                return self.units.velocity(self.rng.normal(0.0, 20.0, size=2))
        push = self._push
        if self._targets_left is None:
            start, contact, direction = self._start(block, push)
            distance = float(np.linalg.norm(agent - start))
            if distance > 8.0:
                self._stalled = 0 if distance < self._closest - 1.0 else self._stalled + 1
                self._closest = min(self._closest, distance)
                if self._stalled > self.config.approach_patience:
                    self._failed.add(push.key)
                    self._push = None
                return self.units.velocity(self._walk(agent, start, block))
            # The targets stay fixed in the world while pushing, as simulated.
            self._targets_left = self._targets(start, contact, direction, push.depth)
        target = self._targets_left.pop(0)
        if not self._targets_left:
            self._push = None
            self._failed.clear()  # the T moved: other starts may be in reach now
        return self.units.velocity(target - agent)

    def _walk(self, agent: np.ndarray, start: np.ndarray, block: np.ndarray) -> np.ndarray:
        """The next step (arena px) of the walk to ``start``, along the planned path while the T stays put."""
        moved = self._path_block - block
        turned = abs((moved[2] + np.pi) % (2 * np.pi) - np.pi)
        if not self._path or np.hypot(*moved[:2]) > 1.0 or turned > 0.02:
            self._path, self._path_block = _walk_path(agent, start, block, self.units), block.copy()
            if not self._path:  # e.g. the pusher is against the T, where no waypoint is in sight: edge around it
                return _move_toward(agent, start, block, self.units)
        while len(self._path) > 1 and np.linalg.norm(self._path[0] - agent) < 12.0:  # near enough: on to the next
            self._path.pop(0)
        return self._path[0] - agent


class ReachExpert:
    """The reach task's expert: walks the pusher to the target (``Observation.goal[:2]``), around the T.

    Each step asks for the next waypoint of the shortest way that keeps the pusher off the T (``_walk_path``),
    at most ``max_step_px`` away; within ``done_px`` of the target it holds still."""

    def __init__(self, units: PushTUnits | None = None, done_px: float = 3.0) -> None:
        self.units = units or PushTUnits()
        self.done_px = done_px

    def begin(self, observation: Observation | None, rng: np.random.Generator) -> None:
        pass

    def act(self, observation: Observation) -> np.ndarray:
        agent, target, block = observation.agent[:2], np.asarray(observation.goal[:2], float), observation.object
        if np.linalg.norm(target - agent) < self.done_px:
            return np.zeros(2)
        path = _walk_path(agent, target, block, self.units)
        step = (path[0] - agent) if path else _move_toward(agent, target, block, self.units)
        return self.units.velocity(step)


class PushTExplorer:
    """Play: push primitives toward random points on the T from random directions; with probability
    ``wander_probability`` a primitive is instead a walk (around the T) to a uniformly random reachable point of
    the arena, so the recording also shows the agent away from the T, e.g. where a reach target lies."""

    def __init__(self, units: PushTUnits | None = None, push_steps: tuple[int, int] = (2, 6),
                 wander_probability: float = 0.0) -> None:
        if not 0.0 <= wander_probability <= 1.0:
            raise ValueError(f"wander_probability must be in [0, 1], got {wander_probability}")
        self.units = units or PushTUnits()
        self.push_steps = push_steps
        self.wander_probability = wander_probability
        self._wander_to: np.ndarray | None = None
        self.rng = np.random.default_rng(0)
        self._target: tuple[np.ndarray, np.ndarray] | None = None
        self._left = 0

    def begin(self, observation: Observation, rng: np.random.Generator) -> None:
        self.rng = rng
        self._target = self._wander_to = None

    def _new_primitive(self) -> None:
        # No draw without wandering: seeded recordings stay as they were.
        if self.wander_probability and self.rng.random() < self.wander_probability:
            margin = self.units.reach_margin_px
            self._wander_to = self.rng.uniform(margin, self.units.arena_px - margin, 2)
            self._left = 40  # steps to get there (the walk around the T included)
            return
        self._wander_to = None
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
        if (self._target is None and self._wander_to is None) or self._left <= 0:
            self._new_primitive()
        if self._wander_to is not None:
            self._left -= 1
            if np.linalg.norm(agent - self._wander_to) < 10.0:
                self._left = 0  # arrived: the next step starts a new primitive
            return self.units.velocity(_move_toward(agent, self._wander_to, block, self.units))
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
