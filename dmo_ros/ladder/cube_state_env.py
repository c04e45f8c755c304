"""Rung 0 on the Go2: B Push Cube stand-ins seen through their true low-dimensional state.

The Push Cube counterpart of :mod:`.state_env` (the ladder's rung 0, DESIGN.md §8): every perception problem
removed — no camera, the cube never out of view — so what is left is whether first-order RL through a learned
state model (or PPO) pushes the cube home at this budget. An oracle: it reads the MuJoCo scene's ground truth on
purpose; nothing on rungs 1 and 2 may.

Observation (8 numbers, ego-centric as the robot's camera is; lengths in units of :data:`HALF_M`, half the arena):
the cube's [x, y] and the goal's [x, y] in the robot's body frame (x forward, y left), the robot's [x, y] in the
arena (for the walls), and cos and sin of its heading. ``observation="in_view"`` (:func:`observe_in_view`, a
diagnostic between rungs 0 and 1) gives the cube's and the goal's only while they are in the camera's view (else
zeros) and two flags saying which are: what a policy without memory could read off the current frame.
``observation="memory"`` (:class:`LastSeen`) gives instead where each was last seen, carried into the current body
frame by the robot's odometry, and two more flags saying whether each has been seen yet this episode: what a policy
that remembers could know.

Reward (per step, differentiable in the observation so the state model carries its gradient):
``-|goal - cube| - approach * max(0, |cube| - approach_radius)`` — the cube's distance from the goal's centre, and a
small pull of the robot toward the cube that stops within :data:`APPROACH_RADIUS_M` of it (where pushing starts),
as push_region's reward on the Push-T stand-in. With ``target="behind"`` (a shaped reward) the pull is toward the
pushing spot instead: the point touching the cube's far side on the line from the goal through the cube
(:data:`CONTACT_M` behind its centre), so a robot that walks there and straight on pushes the cube home at no cost.
With the plain pull SAPO and PPO push the cube away (0/50 each at 150 k samples); with the pushing spot, weight 1 and
an averaged actor SAPO pushes it home 47/50 (docs/push_cube.md, "Rung 0 on the Go2"). Success is the evaluation's:
the cube's centre inside the goal disc.

Actions: [vx, vy, yaw rate] in [-1, 1], times the stand-in's limits (m/s, m/s, rad/s).
"""

from __future__ import annotations

import math
import weakref

import numpy as np
from torch import Tensor

from dmo_ros.ladder.state_env import SteppedStandins
from dmo_ros.sims.push_cube import CUBE_HALF, ROBOT_HALF_SIZE, PushCubeConfig, PushCubeSim, PushCubeState

TASK = "push_cube"
OBSERVATION_SIZE = 8
ACTION_SIZE = 3
HALF_M = 2.0
"""Metres per observation unit: half the default 4 m arena."""

APPROACH_RADIUS_M = 0.55
"""Metres from the cube's centre within which the approach term stops pulling: the scripted expert's pushing
stand-off (half the robot + half the cube + a margin; :class:`~dmo_ros.teleop.push_cube_expert.PushCubeGeometry`)."""


def _body(vector: np.ndarray, yaw: float) -> np.ndarray:
    """A world-frame [x, y] vector in the body frame of a robot heading ``yaw``."""
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([c * vector[0] + s * vector[1], -s * vector[0] + c * vector[1]])


def observe(state: PushCubeState) -> np.ndarray:
    """The (8,) observation of a stand-in state (see the module doc)."""
    robot, yaw = state.robot[:2], float(state.robot[2])
    cube = _body(state.cube[:2] - robot, yaw)
    goal = _body(state.goal[:2] - robot, yaw)
    return np.array([*cube, *goal, *robot, HALF_M * math.cos(yaw), HALF_M * math.sin(yaw)],
                    dtype=np.float64).astype(np.float32) / HALF_M


OBSERVATIONS = ("full", "in_view", "memory")
"""How the rung-0 actor sees the cube and the goal: always (``full``, :func:`observe`), only while each is in the
camera's view (``in_view``, :func:`observe_in_view`), or where each was last seen (``memory``, :class:`LastSeen`)."""

_EXTRA_SIZE = {"full": 0, "in_view": 2, "memory": 4}


def observation_size(observation: str = "full") -> int:
    """The observation's length for an entry of :data:`OBSERVATIONS` (8, 10 or 12). Raises ValueError for another."""
    if observation not in OBSERVATIONS:
        raise ValueError(f"unknown observation {observation!r}; choose one of {', '.join(OBSERVATIONS)}")
    return OBSERVATION_SIZE + _EXTRA_SIZE[observation]


def goal_in_view(sim: PushCubeSim, rim_points: int = 8) -> bool:
    """Whether the goal disc's centre or one of ``rim_points`` points of its rim projects into the camera's view
    (occlusion not modelled, as for the cube)."""
    goal = sim.goal
    angles = np.linspace(0.0, 2 * math.pi, rim_points, endpoint=False)
    points = [goal[:2], *(goal[:2] + goal[2] * np.c_[np.cos(angles), np.sin(angles)])]
    return any(sim.point_in_view(np.r_[point, 0.0]) for point in points)


def observe_in_view(state: PushCubeState, goal_visible: bool) -> np.ndarray:
    """The (10,) observation a camera allows: :func:`observe`'s with the cube's [x, y] zeroed while it is out of view
    (``state.cube_in_view``) and the goal's while ``goal_visible`` is false (:func:`goal_in_view`), then the two
    flags [cube in view, goal in view] (0 or 1)."""
    full = observe(state)
    cube, goal = float(state.cube_in_view), float(goal_visible)
    return np.r_[full[0:2] * cube, full[2:4] * goal, full[4:8], cube, goal].astype(np.float32)


class LastSeen:
    """A robot's memory of the cube and the goal between sightings, for one stand-in (``observation="memory"``).

    :meth:`observe` gives the (12,) observation: the world [x, y] where the camera last saw the cube and the goal
    (:func:`observe_in_view`'s sightings), carried into the current body frame by the robot's pose (zeros before the
    first sighting), the robot's own four numbers, the two in-view flags, then two flags [cube seen yet, goal seen
    yet] (0 or 1). The pose is the stand-in's true one, so this is odometry without drift (an upper bound for a real
    robot), and a cube pushed while out of view stays where it was last seen. The memory clears when the stand-in
    starts another episode (a new (seed, episode) or its step count going back). Calling :meth:`observe` twice on
    one state gives the same answer."""

    def __init__(self) -> None:
        self._episode: tuple[int, int, int] | None = None
        self.cube: np.ndarray | None = None
        """World [x, y] (m) where the cube was last in view this episode; None before."""
        self.goal: np.ndarray | None = None
        """World [x, y] (m) where the goal disc was last in view this episode; None before."""

    def observe(self, sim: PushCubeSim) -> np.ndarray:
        """(12,) float32 observation of the stand-in's current state (see the class doc), updating the memory."""
        episode = (sim.seed, sim.episode, sim.steps)
        if self._episode is None or episode[:2] != self._episode[:2] or episode[2] < self._episode[2]:
            self.cube = self.goal = None
        self._episode = episode
        state, goal_visible = sim.state(), goal_in_view(sim)
        if state.cube_in_view:
            self.cube = state.cube[:2].copy()
        if goal_visible:
            self.goal = state.goal[:2].copy()
        robot, yaw = state.robot[:2], float(state.robot[2])

        def carried(point: np.ndarray | None) -> np.ndarray:
            return np.zeros(2) if point is None else _body(point - robot, yaw) / HALF_M

        in_view = observe_in_view(state, goal_visible)
        return np.r_[carried(self.cube), carried(self.goal), in_view[4:10],
                     float(self.cube is not None), float(self.goal is not None)].astype(np.float32)


class Memories:
    """Each stand-in's :class:`LastSeen`, made on first use and keyed by the stand-in object itself (held weakly, so
    a new stand-in never inherits a finished one's memory as an ``id()`` key could)."""

    def __init__(self) -> None:
        self._by_sim: weakref.WeakKeyDictionary[PushCubeSim, LastSeen] = weakref.WeakKeyDictionary()

    def of(self, sim: PushCubeSim) -> LastSeen:
        """The stand-in's memory (a fresh one the first time it is asked for)."""
        memory = self._by_sim.get(sim)
        if memory is None:
            memory = self._by_sim[sim] = LastSeen()
        return memory

    def forget(self, sim: PushCubeSim) -> None:
        """Drop the stand-in's memory (its next :meth:`of` starts a fresh one)."""
        self._by_sim.pop(sim, None)


def both_in_view(observation: Tensor) -> Tensor:
    """(...) bool: whether an ``in_view`` or ``memory`` observation (..., 10 or 12) has the cube and the goal both in
    the camera's view (its flags at 8 and 9)."""
    return (observation[..., 8:10] > 0).all(-1)


def cube_goal_distance(observation: Tensor) -> Tensor:
    """(...) the cube's distance from the goal's centre (observation units; x :data:`HALF_M` for metres)."""
    return (observation[..., 2:4] - observation[..., 0:2]).norm(dim=-1)


CONTACT_M = ROBOT_HALF_SIZE[0] + CUBE_HALF
"""Metres between the robot's and the cube's centres when the robot's front touches the cube's back (0.4 m)."""

APPROACH_TARGETS = ("cube", "behind")
"""Where the approach term pulls the robot: to the cube (within :data:`APPROACH_RADIUS_M`), or to the pushing spot
behind it — touching it (:data:`CONTACT_M` from its centre) on its far side from the goal, on the line from the goal
through the cube (a shaped reward: it tells the robot which side of the cube to push from, and costs nothing while
it pushes the cube straight at the goal)."""


def cube_state_reward(observation: Tensor, approach: float = 0.1, approach_radius_m: float = APPROACH_RADIUS_M,
                      target: str = "cube") -> Tensor:
    """(...) the rung-0 Push Cube reward of observations (..., 8) (see the module doc); ``target`` one of
    :data:`APPROACH_TARGETS`."""
    if target not in APPROACH_TARGETS:
        raise ValueError(f"unknown approach target {target!r}; choose one of {', '.join(APPROACH_TARGETS)}")
    cube, goal = observation[..., 0:2], observation[..., 2:4]
    if target == "behind":
        away = (cube - goal) / (goal - cube).norm(dim=-1, keepdim=True).clamp_min(1e-6)
        robot_to_target = (cube + away * (CONTACT_M / HALF_M)).norm(dim=-1)
    else:
        robot_to_target = (cube.norm(dim=-1) - approach_radius_m / HALF_M).clamp_min(0)
    return -cube_goal_distance(observation) - approach * robot_to_target


def observe_sim(sim: PushCubeSim, observation: str = "full", memory: LastSeen | None = None) -> np.ndarray:
    """A stand-in's current observation of the kind ``observation`` (:data:`OBSERVATIONS`); ``memory`` is the
    stand-in's :class:`LastSeen` (needed for ``memory``, raises ValueError without it)."""
    if observation == "memory":
        if memory is None:
            raise ValueError("observation=memory needs the stand-in's LastSeen memory")
        return memory.observe(sim)
    if observation == "in_view":
        return observe_in_view(sim.state(), goal_in_view(sim))
    return observe(sim.state())


class CubeStateEnvs(SteppedStandins):
    """B Push Cube stand-ins stepped together; the interface of :class:`~dmo_ros.ladder.state_env.StateEnvs`.

    ``step`` takes actions (B, 3) in [-1, 1] (x the stand-in's limits) and returns the next observations;
    ``samples`` counts the transitions generated. Nothing is rendered unless a learned reward asks for the frames."""

    def __init__(self, batch: int, seed: int, episode_steps: int, control_period_s: float = 0.2,
                 observation: str = "full") -> None:
        observation_size(observation)  # refuses an unknown one before the stand-ins start
        self.task, self.batch_size, self.episode_steps = TASK, batch, episode_steps
        self.observation = observation
        """An entry of :data:`OBSERVATIONS`: how ``_observe`` sees each stand-in."""
        self.base_seeds = [seed * 1000 + index for index in range(batch)]
        # The camera of the recorded datasets (96 x 96), rendered only when a learned reward scores the frames.
        self.sims = [PushCubeSim(PushCubeConfig(seed=base, control_period=control_period_s))
                     for base in self.base_seeds]
        self.memories = Memories()
        """Each stand-in's :class:`LastSeen` (read only with ``observation="memory"``)."""
        self.period = control_period_s
        self.samples = 0
        self.steps = np.zeros(batch, dtype=np.int64)

    def _observe(self, sim: PushCubeSim) -> np.ndarray:
        return observe_sim(sim, self.observation, self.memories.of(sim))

    def _command(self, sim: PushCubeSim, action: np.ndarray) -> None:
        sim.step(action * sim.limits)

    def reseed(self, offset: int) -> None:
        """New episodes from each stand-in's base seed + ``offset`` (a resumed run does not replay the first's)."""
        for sim, base in zip(self.sims, self.base_seeds, strict=True):
            sim.reset(seed=base + offset)
        self.steps[:] = 0


__all__ = ["ACTION_SIZE", "APPROACH_RADIUS_M", "APPROACH_TARGETS", "CONTACT_M", "CubeStateEnvs", "HALF_M",
           "LastSeen", "Memories", "OBSERVATIONS", "OBSERVATION_SIZE", "TASK", "both_in_view", "cube_goal_distance",
           "cube_state_reward", "goal_in_view", "observation_size", "observe", "observe_in_view", "observe_sim"]
