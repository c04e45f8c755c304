"""Scripted play and demonstrations for the Go2 Push Cube task (body-velocity commands).

The robot is holonomic at the command level: [vx, vy, yaw rate] in its body frame (m/s,
rad/s), as the Go2's sport mode takes them on ``cmd_vel``. The expert walks to a point
behind the cube on the line from the goal through the cube, faces the goal, and pushes,
steering so the cube stays on its centre line. Play pushes the cube from random directions
and wanders, so the cube also leaves the camera's view.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dmo_ros.teleop.operator import Observation


@dataclass(frozen=True)
class PushCubeGeometry:
    """Sizes and speeds the scripted operator plans with."""

    standoff_m: float = 0.55
    """Distance from the cube's centre to the robot's centre when pushing (half robot + half cube + margin)."""
    clearance_m: float = 0.6
    """The robot walks around the cube at least this far from it while getting behind it."""
    collision_m: float = 0.45
    """A straight path passing closer than this to the cube would bump it: walk around instead."""
    max_speed_m_s: float = 0.5
    """Largest linear speed the operator commands."""
    max_yaw_rate: float = 1.0
    """Largest yaw rate the operator commands (rad/s)."""
    arena_half_m: float = 2.0
    """Half the side of the walled arena (the stand-in's arena_size / 2)."""
    wall_margin_m: float = 0.6
    """Play does not push the cube to within this distance of a wall (it could not be pushed back)."""


def _wrap(angle: float) -> float:
    return float((angle + np.pi) % (2 * np.pi) - np.pi)


def body_command(robot: np.ndarray, world_velocity: np.ndarray, heading: float, geometry: PushCubeGeometry,
                 ) -> np.ndarray:
    """The Go2's body-frame command, shape (3,): [vx, vy] in m/s and the yaw rate in rad/s, that walks ``robot``
    ([x, y, yaw] in m and rad, the arena's frame) at ``world_velocity`` ([vx, vy], m/s, the arena's frame; clamped to
    the robot's top speed) while turning toward ``heading`` (rad; the turn rate clamped too)."""
    speed = float(np.linalg.norm(world_velocity))
    if speed > geometry.max_speed_m_s:
        world_velocity = world_velocity * (geometry.max_speed_m_s / speed)
    c, s = np.cos(robot[2]), np.sin(robot[2])
    vx = c * world_velocity[0] + s * world_velocity[1]
    vy = -s * world_velocity[0] + c * world_velocity[1]
    yaw_rate = np.clip(2.0 * _wrap(heading - robot[2]), -geometry.max_yaw_rate, geometry.max_yaw_rate)
    return np.array([vx, vy, yaw_rate])


def reachable(point: np.ndarray, geometry: PushCubeGeometry) -> np.ndarray:
    """The nearest point to ``point`` ([x, y], m, the arena's frame) the robot's centre can reach: its body keeps
    clear of the walls (shape (2,), m)."""
    limit = geometry.arena_half_m - 0.35
    return np.clip(point, -limit, limit)


class Walker:
    """Walks the robot to a point, around the cube rather than through it.

    The side it goes around on is kept until the straight path is clear, so it does not
    flip between the two ways around from one step to the next.
    """

    def __init__(self, geometry: PushCubeGeometry) -> None:
        self.geometry = geometry
        self.side = 0  # +1 / -1 while going around the cube, 0 on a straight path

    def velocity(self, robot: np.ndarray, target: np.ndarray, cube: np.ndarray) -> np.ndarray:
        """World velocity toward ``target``."""
        g = self.geometry
        to_target = target - robot[:2]
        t = np.clip(np.dot(cube - robot[:2], to_target) / max(np.dot(to_target, to_target), 1e-9), 0.0, 1.0)
        if np.linalg.norm(robot[:2] + t * to_target - cube) >= g.collision_m:
            self.side = 0
            return 1.5 * to_target
        radial = robot[:2] - cube
        distance = max(float(np.linalg.norm(radial)), 1e-6)
        outward = radial / distance
        left = np.array([-outward[1], outward[0]])
        if self.side == 0:  # choose: clear of the walls first, then the shorter way round
            options = []
            for side in (1, -1):
                ahead = robot[:2] + 0.5 * side * left
                blocked = float(np.linalg.norm(reachable(ahead, g) - ahead)) > 1e-9
                options.append((blocked, -float(np.dot(side * left, to_target)), side))
            self.side = min(options)[2]
        return 0.5 * self.side * left + outward * (g.clearance_m + 0.1 - distance)


LINED_UP_RAD = 0.35
"""Tolerance of :func:`lined_up` (rad, ~20 deg): the expert's own when it decides it is aligned to push."""


def lined_up(observation: Observation, tolerance_rad: float = LINED_UP_RAD) -> bool:
    """Whether the cube lies straight ahead of the robot and the goal straight beyond it: the robot is lined up to push
    the cube home, at any distance — what the camera shows as the cube in the middle of the picture with the goal disc
    behind it. The scripted operator holds its milestone key whenever the robot is lined up
    (:attr:`~dmo_ros.teleop.operator.ScriptedOperatorConfig.lined_up_milestone`).

    ``tolerance_rad``: the largest bearing of the cube off the robot's heading, and of the goal off the robot-to-cube
    line seen from the cube (rad)."""
    robot, cube, goal = observation.agent, observation.object[:2], observation.goal[:2]
    to_cube, beyond = cube - robot[:2], goal - cube
    if np.linalg.norm(to_cube) < 1e-6 or np.linalg.norm(beyond) < 1e-6:
        return False
    cube_bearing = float(np.arctan2(to_cube[1], to_cube[0]))
    goal_bearing = float(np.arctan2(beyond[1], beyond[0]))
    ahead = abs(_wrap(cube_bearing - robot[2])) < tolerance_rad
    return ahead and abs(_wrap(goal_bearing - cube_bearing)) < tolerance_rad


class PushCubeExpert:
    """Pushes the cube into the goal region (the demonstrations, intent on)."""

    def __init__(self, geometry: PushCubeGeometry | None = None) -> None:
        self.geometry = geometry or PushCubeGeometry()
        self.walker = Walker(self.geometry)
        self._pushing = False

    def begin(self, observation: Observation | None, rng: np.random.Generator) -> None:
        self._pushing = False
        self.walker.side = 0

    def act(self, observation: Observation) -> np.ndarray:
        g = self.geometry
        robot, cube, goal = observation.agent, observation.object[:2], observation.goal[:2]
        to_goal = goal - cube
        direction = to_goal / max(float(np.linalg.norm(to_goal)), 1e-6)
        heading = float(np.arctan2(direction[1], direction[0]))
        behind = reachable(cube - direction * g.standoff_m, g)
        # Where the cube sits relative to the robot: ahead distance and sideways offset.
        c, s = np.cos(robot[2]), np.sin(robot[2])
        relative = cube - robot[:2]
        ahead, lateral = c * relative[0] + s * relative[1], -s * relative[0] + c * relative[1]
        aligned = abs(_wrap(heading - robot[2])) < 0.35 and abs(lateral) < 0.12 and 0.2 < ahead < g.standoff_m + 0.25
        if self._pushing and not aligned:
            self._pushing = False
        if not self._pushing:
            at_behind = np.linalg.norm(robot[:2] - behind) < 0.08 and abs(_wrap(heading - robot[2])) < 0.2
            if at_behind or aligned:
                self._pushing = True
            else:
                return body_command(robot, self.walker.velocity(robot, behind, cube), heading, g)
        # Push: forward along the goal direction, slide sideways to keep the cube centred.
        push_speed = min(g.max_speed_m_s, 0.3 + 0.5 * float(np.linalg.norm(to_goal)))
        target_line = cube - direction * g.standoff_m  # where the robot should be
        correction = 1.5 * (target_line - robot[:2])
        correction -= np.dot(correction, direction) * direction  # sideways only
        return body_command(robot, direction * push_speed + correction, heading, g)

    def back_off(self, observation: Observation) -> np.ndarray:
        """The body command (3,) that walks the robot straight back at 60 % of its top speed (m/s), facing as it is:
        after a push, the cube in the goal region comes into view with the disc around it."""
        return np.array([-0.6 * self.geometry.max_speed_m_s, 0.0, 0.0])


class PushCubeExplorer:
    """Play: pushes toward random points on the cube from random sides, and wanders off; with ``visit_probability``
    > 0 a primitive may instead walk to a point of the arena — half of them in the goal region — and look around
    there, as a person playing in the room also walks over the goal without the cube. Without those visits the
    goal region seen up close appears only at the ends of demonstrations, and a reward learned from the intent
    labels pays a policy for standing on the goal disc (docs/push_cube.md "Progress, goal visits and the gradient
    check")."""

    def __init__(self, geometry: PushCubeGeometry | None = None, visit_probability: float = 0.0) -> None:
        if not 0.0 <= visit_probability <= 1.0:
            raise ValueError(f"visit_probability must be in [0, 1], got {visit_probability}")
        self.geometry = geometry or PushCubeGeometry()
        self.visit_probability = visit_probability
        self.walker = Walker(self.geometry)
        self.rng = np.random.default_rng(0)
        self._left = self._approach_left = 0
        self._visit: np.ndarray | None = None

    def begin(self, observation: Observation | None, rng: np.random.Generator) -> None:
        self.rng = rng
        self._left = 0

    def _new_primitive(self, observation: Observation) -> None:
        self._visit = None
        # No draw without visits: seeded recordings stay as they were.
        if self.visit_probability and self.rng.random() < self.visit_probability:
            g = self.geometry
            if self.rng.random() < 0.5:
                target = observation.goal[:2] + self.rng.normal(0.0, 0.15, 2)
            else:
                target = self.rng.uniform(-g.arena_half_m, g.arena_half_m, 2)
            self._visit = reachable(target, g)
            self._angle = float(self.rng.uniform(-np.pi, np.pi))  # the heading to look in once there
            self._left = int(self.rng.integers(5, 12))  # steps of turning to look once there
            self._approach_left = 40  # give up on a target it cannot reach
            return
        self._wander = bool(self.rng.random() < 0.2)
        self._angle = self._push_angle(observation.object[:2])  # push direction (world) or wander heading
        self._offset = float(self.rng.uniform(-0.1, 0.1))  # hit point, sideways from the cube's centre
        self._left = int(self.rng.integers(5, 12))  # wander steps, or push steps once in contact
        self._approach_left = 30  # give up on a push primitive that cannot get behind the cube
        self._pushing = False

    def _push_angle(self, cube: np.ndarray) -> float:
        """A random push direction that does not drive the cube into a wall."""
        g = self.geometry
        limit = g.arena_half_m - g.wall_margin_m
        for _ in range(20):
            angle = float(self.rng.uniform(-np.pi, np.pi))
            if np.all(np.abs(cube + 0.6 * np.array([np.cos(angle), np.sin(angle)])) < limit):
                break
        else:  # cornered: push toward the middle of the arena
            angle = float(np.arctan2(-cube[1], -cube[0]))
        return angle

    def act(self, observation: Observation) -> np.ndarray:
        g = self.geometry
        if self._left <= 0 or self._approach_left <= 0:
            self._new_primitive(observation)
        robot, cube = observation.agent, observation.object[:2]
        if self._visit is not None:
            to_target = self._visit - robot[:2]
            if self._approach_left > 0 and np.linalg.norm(to_target) > 0.1:
                self._approach_left -= 1
                heading = float(np.arctan2(to_target[1], to_target[0]))  # face the way it walks
                return body_command(robot, self.walker.velocity(robot, self._visit, cube), heading, g)
            self._approach_left = 1  # arrived (or gave up): look around for the rest of the primitive
            self._left -= 1
            return body_command(robot, np.zeros(2), self._angle, g)
        if self._wander:  # walk and turn freely: the cube drifts out of view
            self._left -= 1
            return np.array([0.3 * np.cos(self._angle), 0.2 * np.sin(self._angle), 0.8 * np.sign(self._angle)])
        direction = np.array([np.cos(self._angle), np.sin(self._angle)])
        side = np.array([-direction[1], direction[0]])
        behind = reachable(cube - direction * g.standoff_m + side * self._offset, g)
        if not self._pushing and np.linalg.norm(robot[:2] - behind) > 0.1:
            self._approach_left -= 1
            return body_command(robot, self.walker.velocity(robot, behind, cube), self._angle, g)
        self._pushing = True
        self._left -= 1
        return body_command(robot, direction * 0.35, self._angle, g)
