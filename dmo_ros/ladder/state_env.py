"""Rung 0's environment: B Push-T stand-ins seen through their true low-dimensional state.

Rung 0 of the ladder (DESIGN.md §8) asks what first-order RL can do here at all, with every
perception problem removed: the policy sees the simulator's state, the reward is a known
function of it, and SAPO's backward pass goes through a *learned* state model (the true
simulator has no gradient). It is an oracle for the rungs above it, so it reads the simulator's
ground truth on purpose; nothing on rungs 1 and 2 may.

Observation (8 numbers, arena units mapped to [-1, 1] by ``u / 256 - 1``): the agent [x, y], the
T's origin [x, y], cos and sin of the T's angle, and the task's target [x, y] (reach: the episode's
target; pushing tasks: the goal T's origin, a constant).

Rewards (per step, differentiable in the observation, so the state model carries their gradient):

- reach: ``-|agent - target|`` (normalised units: 1 = 256 arena units);
- push_region: ``-|c - c_goal| - approach * max(0, |agent - c| - 70 u)`` with ``c`` the T's centre;
- push_near, push_t: ``-e - approach * max(0, |agent - c| - 70 u)`` where ``e`` is the mean
  distance of the T's eight outline corners from the goal T's (normalised), the pose error the expert
  plans on; the small approach term (default 0.1) leads the agent to the T's outline, not onto it.

push_region's approach term may instead pull toward the pushing spot (``approach_target="behind"``, a shaped
reward as push_cube's): ``-|c - c_goal| - approach * |agent - (c + 70 u x unit(c - c_goal))|``, the spot 70 u
behind the T's centre on the line from the goal through it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from dmo_ros.sims.pusht import PushTConfig, PushTSim, PushTState
from dmo_ros.sims.pusht_tasks import GOAL_POSE, REACH_TASKS, T_CENTRE, TaskConfig, t_centre

OBSERVATION_SIZE = 8
ACTION_SIZE = 2
HALF = 256.0
"""Arena units per normalised unit (the arena spans [-1, 1])."""

_CORNERS = torch.tensor([[-60, 0], [60, 0], [60, 30], [15, 30], [15, 120], [-15, 120], [-15, 30], [-60, 30]],
                        dtype=torch.float32) / HALF
_CENTRE = torch.tensor(T_CENTRE, dtype=torch.float32) / HALF
"""The T's centre of gravity in its body frame (normalised)."""


def observe(state: PushTState) -> np.ndarray:
    """The (8,) observation of a stand-in state (see the module doc)."""
    target = state.target if state.target is not None else state.goal[:2]
    angle = float(state.block[2])
    raw = np.array([*state.agent, *state.block[:2], 0.0, 0.0, *target], dtype=np.float64) / HALF - 1.0
    raw[4:6] = math.cos(angle), math.sin(angle)
    return raw.astype(np.float32)


def _world(points: Tensor, origin: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Body-frame points (P, 2) placed at poses (..., origin 2, cos, sin) -> (..., P, 2)."""
    x, y = points[:, 0], points[:, 1]
    wx = origin[..., :1] + cos[..., None] * x - sin[..., None] * y
    wy = origin[..., 1:] + sin[..., None] * x + cos[..., None] * y
    return torch.stack([wx, wy], dim=-1)


_GOAL = torch.tensor([*(GOAL_POSE[:2] / HALF - 1.0), math.cos(GOAL_POSE[2]), math.sin(GOAL_POSE[2])],
                     dtype=torch.float32)


_GOAL_CENTRE = torch.tensor(t_centre(GOAL_POSE) / HALF - 1.0, dtype=torch.float32)
"""The goal T's centre (normalised units): push_region's target."""


def t_pose_error(observation: Tensor) -> Tensor:
    """(...) mean distance of the T's corners from the goal T's corners (normalised units), differentiable."""
    corners = _CORNERS.to(observation)
    here = _world(corners, observation[..., 2:4], observation[..., 4], observation[..., 5])
    goal = _GOAL.to(observation)
    there = _world(corners, goal[:2], goal[2:3], goal[3:4])
    return (here - there).norm(dim=-1).mean(-1)


APPROACH_RADIUS = 70.0
"""Arena units from the T's centre within which the approach term stops pulling (about its outline, where
pushing starts; pulling the agent onto the centre itself shoves the T about)."""


LURE_CORNER = (1.0, -1.0)
"""The arena's top-right corner (normalised x, y; y grows downward as in the camera frame): where ``agent_lure``
pulls the agent."""


APPROACH_TARGETS = ("t", "behind")
"""Where push_region's approach term pulls the agent: to the T's outline (``t``, every pushing task's), or to the
pushing spot behind the T on the line from the goal (``behind``; module doc)."""


def state_reward(observation: Tensor, task: str, approach: float = 0.1,
                 approach_radius: float = APPROACH_RADIUS, agent_lure: float = 0.0,
                 approach_target: str = "t") -> Tensor:
    """(...) the rung-0 reward of observations (..., 8) for ``task`` (see the module doc); ``approach_target`` one of
    :data:`APPROACH_TARGETS` (``behind``: push_region only; ValueError otherwise).

    ``agent_lure`` (pushing tasks; a diagnostic, 0 in every preset): minus this weight x the agent's distance
    (normalised units) from :data:`LURE_CORNER` is added, a made-up reward for where the agent waits that has nothing
    to do with the T, of the size the learned push_t reward pays for the agent's place (docs/ladder.md "A reward with
    slope far from the goal": 0.12-0.17 against a T gain of ~1.5; 0.02 here gives ~0.05 against the true reward's
    ~0.55)."""
    if approach_target not in APPROACH_TARGETS:
        raise ValueError(f"unknown approach target {approach_target!r}; choose one of {', '.join(APPROACH_TARGETS)}")
    if approach_target == "behind" and task != "push_region":
        raise ValueError(f"approach_target=behind is push_region's (the T's centre has one way to go); {task} has t")
    agent = observation[..., 0:2]
    if task in REACH_TASKS:
        return -(agent - observation[..., 6:8]).norm(dim=-1)
    centre = _world(_CENTRE.to(observation)[None], observation[..., 2:4], observation[..., 4],
                    observation[..., 5])[..., 0, :]
    if approach_target == "behind":
        away = centre - _GOAL_CENTRE.to(observation)
        away = away / away.norm(dim=-1, keepdim=True).clamp_min(1e-6)
        distance = (agent - (centre + away * (approach_radius / HALF))).norm(dim=-1)
    else:
        distance = ((agent - centre).norm(dim=-1) - approach_radius / HALF).clamp_min(0)
    if task == "push_region":
        error = (centre - _GOAL_CENTRE.to(observation)).norm(dim=-1)
    else:
        error = t_pose_error(observation)
    reward = -error - approach * distance
    if agent_lure:
        reward = reward - agent_lure * (agent - observation.new_tensor(LURE_CORNER)).norm(dim=-1)
    return reward


class SteppedStandins:
    """What every rung-0 batch of stand-ins shares: B simulations stepped together with actions in [-1, 1],
    ``samples`` counting the transitions, ``steps`` each episode's length so far, restarts. A subclass sets
    ``sims``, ``batch_size``, ``episode_steps``, ``samples`` and ``steps`` and says how a stand-in is observed
    (``_observe``) and commanded (``_command``)."""

    sims: list
    batch_size: int
    episode_steps: int
    samples: int
    steps: np.ndarray

    def _observe(self, sim: Any) -> np.ndarray:
        raise NotImplementedError

    def _command(self, sim: Any, action: np.ndarray) -> None:
        raise NotImplementedError

    def observations(self) -> np.ndarray:
        """(B, observation size) float32: each stand-in's current observation."""
        return np.stack([self._observe(sim) for sim in self.sims])

    def step(self, actions: np.ndarray) -> np.ndarray:
        """Apply actions (B, action size), clipped to [-1, 1]; the next observations."""
        actions = np.clip(np.asarray(actions, dtype=np.float64), -1.0, 1.0)
        for sim, action in zip(self.sims, actions, strict=True):
            self._command(sim, action)
        self.samples += self.batch_size
        self.steps += 1
        return self.observations()

    def restart_ended(self) -> int:
        """Start new episodes where ``episode_steps`` have run; returns how many restarted."""
        ended = np.flatnonzero(self.steps >= self.episode_steps)
        for index in ended:
            self.sims[index].reset()
            self.steps[index] = 0
        return len(ended)

    def restart_all(self) -> None:
        for sim in self.sims:
            sim.reset()
        self.steps[:] = 0

    def close(self) -> None:
        for sim in self.sims:
            sim.close()


class StateEnvs(SteppedStandins):
    """B stand-ins of one task stepped together; episodes restart (new seeded starts) on :meth:`restart_ended`.

    ``step`` takes actions in [-1, 1] (x the stand-in's speed limit = m/s) and returns the next observations;
    ``samples`` counts the transitions generated (the x-axis of every comparison)."""

    def __init__(self, task: str, batch: int, seed: int, episode_steps: int,
                 control_period_s: float = 0.2, task_config: TaskConfig | None = None) -> None:
        self.task, self.batch_size, self.episode_steps = task, batch, episode_steps
        self.sims = [PushTSim(PushTConfig(seed=seed * 1000 + index, task=task, control_period_s=control_period_s,
                                          task_config=task_config or TaskConfig()))
                     for index in range(batch)]
        self.max_speed = self.sims[0].config.max_speed_m_s
        self.period = control_period_s
        self.samples = 0
        self.steps = np.zeros(batch, dtype=np.int64)

    def _observe(self, sim: PushTSim) -> np.ndarray:
        return observe(sim.state())

    def _command(self, sim: PushTSim, action: np.ndarray) -> None:
        sim.step(action * self.max_speed * self.period)

    def reseed(self, offset: int) -> None:
        """New episodes from each stand-in's base seed + ``offset`` (a resumed run does not replay the first's)."""
        for sim in self.sims:
            sim.reset(seed=sim._base_seed + offset)
        self.steps[:] = 0



__all__ = ["ACTION_SIZE", "APPROACH_TARGETS", "OBSERVATION_SIZE", "StateEnvs",
           "SteppedStandins", "observe", "state_reward", "t_pose_error"]
