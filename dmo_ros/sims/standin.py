"""A stand-in robot's simulation as its node drives it: robot commands in, camera and ground truth out.

Plain Python (no ROS). The stand-in nodes (``dmo_ros.nodes.pusht_standin`` and
``go2_standin``) and the in-process fast collection (``dmo_ros.recording.fast_collect``)
drive a simulation through this one adapter, so both apply a command and describe the
scene the same way:

- ``step(command)``: one control step holding the robot's command vector in its own units —
  Push-T: end-effector velocity [vx, vy] in m/s (moved by velocity x control period);
  Go2: body velocity [vx, vy, yaw rate] in m/s, m/s, rad/s;
- ``observation()``: the ground truth the scripted operator sees, exactly as it reaches the
  teleop node through ``dmo_msgs/StandinState`` (``progress`` is a float32 field there, so
  it is rounded to float32 here too);
- ``render()``: the camera image, (height, width, 3) uint8 RGB;
- ``reset()``, ``done()`` (the episode step limit), ``close()``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dmo_ros.teleop.operator import Observation

ROBOTS = ("pusht", "go2")


@dataclass
class StandinSimConfig:
    """The simulation settings a stand-in node takes from its parameters."""

    robot: str = "pusht"
    """Which stand-in: pusht (gym-pusht table-top arm) or go2 (MuJoCo Push Cube quadruped)."""
    seed: int = 0
    """Base seed; episode e starts from a state derived from (seed, e)."""
    width: int = 96
    """Camera image width in pixels."""
    height: int = 96
    """Camera image height in pixels."""
    control_rate_hz: float = 5.0
    """Control steps per second: each ``step`` holds the command for 1 / control_rate_hz s."""
    max_episode_steps: int = 0
    """``done()`` after this many control steps since the reset; 0: never."""
    arena_size_m: float = 0.5
    """Push-T only: metres spanned by the 512-unit arena."""
    max_speed_m_s: float = 0.25
    """Push-T only: end-effector speed limit (m/s)."""
    task: str = "push_t"
    """Push-T only: the task whose resets and success rule the stand-in plays (:mod:`dmo_ros.sims.pusht_tasks`)."""

    def __post_init__(self) -> None:
        if self.robot not in ROBOTS:
            raise ValueError(f"unknown robot '{self.robot}'; choose one of {', '.join(ROBOTS)}")
        if self.control_rate_hz <= 0:
            raise ValueError(f"control_rate_hz must be positive, got {self.control_rate_hz}")
        if self.robot == "go2" and self.task != "push_t":
            raise ValueError(f"task {self.task!r} is a Push-T task; the go2 stand-in plays Push Cube only")

    @property
    def control_period_s(self) -> float:
        return 1.0 / self.control_rate_hz


class StandinSim:
    """Base adapter; ``make_standin_sim`` builds the robot's one."""

    sim: object
    """The wrapped simulation (``PushTSim`` or ``PushCubeSim``)."""

    def step(self, command: np.ndarray) -> None:
        raise NotImplementedError

    def observation(self) -> Observation:
        raise NotImplementedError

    def render(self) -> np.ndarray:
        return self.sim.render()

    def reset(self) -> None:
        self.sim.reset()

    def done(self) -> bool:
        raise NotImplementedError

    def close(self) -> None:
        self.sim.close()


def _as_float32(value: float) -> float:
    """A value as it arrives through a float32 message field."""
    return float(np.float32(value))


class PushTStandinSim(StandinSim):
    """gym-pusht behind the arm's command: end-effector velocity (m/s) held for one control period."""

    def __init__(self, config: StandinSimConfig) -> None:
        from dmo_ros.sims.pusht import PushTConfig, PushTSim

        self.control_period_s = config.control_period_s
        self.sim = PushTSim(PushTConfig(
            seed=config.seed, width=config.width, height=config.height, arena_size_m=config.arena_size_m,
            max_speed_m_s=config.max_speed_m_s, control_period_s=config.control_period_s,
            max_episode_steps=config.max_episode_steps, task=config.task,
        ))

    def step(self, command: np.ndarray) -> None:
        self.sim.step(np.asarray(command, dtype=np.float64) * self.control_period_s)  # m/s held one period → m

    def observation(self) -> Observation:
        s = self.sim.state()
        return Observation(episode=s.episode, step=s.step, agent=s.agent, object=s.block, goal=s.operator_goal,
                           progress=_as_float32(s.coverage), success=bool(s.success), object_in_view=True)

    def done(self) -> bool:
        return self.sim.done()


class PushCubeStandinSim(StandinSim):
    """The MuJoCo Push Cube scene behind the Go2's cmd_vel: body velocity held for one control period."""

    def __init__(self, config: StandinSimConfig) -> None:
        from dmo_ros.sims.push_cube import PushCubeConfig, PushCubeSim

        self.sim = PushCubeSim(PushCubeConfig(
            seed=config.seed, width=config.width, height=config.height,
            control_period=config.control_period_s, max_episode_steps=config.max_episode_steps,
        ))

    def step(self, command: np.ndarray) -> None:
        self.sim.step(np.asarray(command, dtype=float))

    def observation(self) -> Observation:
        s = self.sim.state()
        return Observation(episode=s.episode, step=s.step, agent=s.robot, object=s.cube, goal=s.goal,
                           progress=_as_float32(s.progress), success=bool(s.success),
                           object_in_view=bool(s.cube_in_view))

    def done(self) -> bool:
        return self.sim.episode_over


def make_standin_sim(config: StandinSimConfig) -> StandinSim:
    """The stand-in simulation of ``config.robot``."""
    return PushTStandinSim(config) if config.robot == "pusht" else PushCubeStandinSim(config)


__all__ = ["ROBOTS", "PushCubeStandinSim", "PushTStandinSim", "StandinSim", "StandinSimConfig", "make_standin_sim"]
