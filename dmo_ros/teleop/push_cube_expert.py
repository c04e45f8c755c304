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


def _wrap(angle: float) -> float:
    return float((angle + np.pi) % (2 * np.pi) - np.pi)


def _body_command(robot: np.ndarray, world_velocity: np.ndarray, heading: float, geometry: PushCubeGeometry,
                  ) -> np.ndarray:
    """World-frame velocity and a desired heading → clamped body-frame [vx, vy, yaw rate]."""
    speed = float(np.linalg.norm(world_velocity))
    if speed > geometry.max_speed_m_s:
        world_velocity = world_velocity * (geometry.max_speed_m_s / speed)
    c, s = np.cos(robot[2]), np.sin(robot[2])
    vx = c * world_velocity[0] + s * world_velocity[1]
    vy = -s * world_velocity[0] + c * world_velocity[1]
    yaw_rate = np.clip(2.0 * _wrap(heading - robot[2]), -geometry.max_yaw_rate, geometry.max_yaw_rate)
    return np.array([vx, vy, yaw_rate])


def _walk_to(robot: np.ndarray, target: np.ndarray, cube: np.ndarray, geometry: PushCubeGeometry) -> np.ndarray:
    """World velocity toward target that goes around the cube rather than through it."""
    to_target = target - robot[:2]
    t = np.clip(np.dot(cube - robot[:2], to_target) / max(np.dot(to_target, to_target), 1e-9), 0.0, 1.0)
    if np.linalg.norm(robot[:2] + t * to_target - cube) >= geometry.collision_m:
        return 1.5 * to_target
    clearance = geometry.clearance_m
    radial = robot[:2] - cube
    distance = max(float(np.linalg.norm(radial)), 1e-6)
    outward = radial / distance
    tangent = np.array([-outward[1], outward[0]])
    if np.dot(tangent, to_target) < 0:
        tangent = -tangent
    return 0.5 * tangent + outward * (clearance + 0.1 - distance)


class PushCubeExpert:
    """Pushes the cube into the goal region (the demonstrations, intent on)."""

    def __init__(self, geometry: PushCubeGeometry | None = None) -> None:
        self.geometry = geometry or PushCubeGeometry()
        self._pushing = False

    def begin(self, observation: Observation | None, rng: np.random.Generator) -> None:
        self._pushing = False

    def act(self, observation: Observation) -> np.ndarray:
        g = self.geometry
        robot, cube, goal = observation.agent, observation.object[:2], observation.goal[:2]
        to_goal = goal - cube
        direction = to_goal / max(float(np.linalg.norm(to_goal)), 1e-6)
        heading = float(np.arctan2(direction[1], direction[0]))
        behind = cube - direction * g.standoff_m
        # Where the cube sits relative to the robot: ahead distance and sideways offset.
        c, s = np.cos(robot[2]), np.sin(robot[2])
        relative = cube - robot[:2]
        ahead, lateral = c * relative[0] + s * relative[1], -s * relative[0] + c * relative[1]
        aligned = abs(_wrap(heading - robot[2])) < 0.35 and abs(lateral) < 0.12 and 0.2 < ahead < g.standoff_m + 0.25
        if self._pushing and not aligned:
            self._pushing = False
        if not self._pushing:
            if np.linalg.norm(robot[:2] - behind) < 0.08 and abs(_wrap(heading - robot[2])) < 0.2:
                self._pushing = True
            else:
                return _body_command(robot, _walk_to(robot, behind, cube, g), heading, g)
        # Push: forward along the goal direction, slide sideways to keep the cube centred.
        push_speed = min(g.max_speed_m_s, 0.3 + 0.5 * float(np.linalg.norm(to_goal)))
        target_line = cube - direction * g.standoff_m  # where the robot should be
        correction = 1.5 * (target_line - robot[:2])
        correction -= np.dot(correction, direction) * direction  # sideways only
        return _body_command(robot, direction * push_speed + correction, heading, g)


class PushCubeExplorer:
    """Play: pushes toward random points on the cube from random sides, and wanders off."""

    def __init__(self, geometry: PushCubeGeometry | None = None) -> None:
        self.geometry = geometry or PushCubeGeometry()
        self.rng = np.random.default_rng(0)
        self._left = 0

    def begin(self, observation: Observation | None, rng: np.random.Generator) -> None:
        self.rng = rng
        self._left = 0

    def _new_primitive(self, observation: Observation) -> None:
        self._wander = bool(self.rng.random() < 0.25)
        self._angle = float(self.rng.uniform(-np.pi, np.pi))  # push direction (world) or wander heading
        self._offset = float(self.rng.uniform(-0.1, 0.1))  # hit point, sideways from the cube's centre
        self._left = int(self.rng.integers(8, 20))
        self._pushing = False

    def act(self, observation: Observation) -> np.ndarray:
        g = self.geometry
        if self._left <= 0:
            self._new_primitive(observation)
        self._left -= 1
        robot, cube = observation.agent, observation.object[:2]
        if self._wander:  # walk and turn freely: the cube drifts out of view
            return np.array([0.3 * np.cos(self._angle), 0.2 * np.sin(self._angle), 0.8 * np.sign(self._angle)])
        direction = np.array([np.cos(self._angle), np.sin(self._angle)])
        side = np.array([-direction[1], direction[0]])
        behind = cube - direction * g.standoff_m + side * self._offset
        if not self._pushing and np.linalg.norm(robot[:2] - behind) > 0.1:
            return _body_command(robot, _walk_to(robot, behind, cube, g), self._angle, g)
        self._pushing = True
        return _body_command(robot, direction * 0.35, self._angle, g)
