"""Build the scripted operator for a robot, and measure its play statistics.

``dmo-play-stats`` runs the scripted operator against a stand-in's simulation in-process
(no ROS, faster than real time) and prints what a dataset recorded with it will hold: the
fraction of steps in which the robot touches the object during play, the intent fraction,
and the expert's demonstration success rate.

    dmo-play-stats --robot go2 --episodes 40
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass

import numpy as np

from dmo_ros.teleop.operator import Observation, ScriptedOperator, ScriptedOperatorConfig
from dmo_ros.teleop.push_cube_expert import PushCubeExpert, PushCubeExplorer
from dmo_ros.teleop.pusht_expert import PushTExpert, PushTExplorer, PushTUnits

ROBOTS = ("pusht", "go2")
ACTION_SIZE = {"pusht": 2, "go2": 3}
DEMO_TIMEOUT_STEPS = {"pusht": 300, "go2": 150}
"""Default demonstration timeouts: the Push-T expert is slower (fine rotation at the end)."""


def make_operator(robot: str, config: ScriptedOperatorConfig | None = None, arena_size_m: float = 0.5,
                  ) -> ScriptedOperator:
    """The scripted operator of a robot (Push Cube's presses the milestone key on success)."""
    if robot not in ROBOTS:
        raise ValueError(f"unknown robot '{robot}'; choose one of {', '.join(ROBOTS)}")
    config = config or ScriptedOperatorConfig(demo_timeout_steps=DEMO_TIMEOUT_STEPS[robot])
    if robot == "pusht":
        units = PushTUnits(arena_size_m=arena_size_m)
        return ScriptedOperator(PushTExplorer(units), PushTExpert(units), ACTION_SIZE[robot], config)
    return ScriptedOperator(PushCubeExplorer(), PushCubeExpert(), ACTION_SIZE[robot], config, press_milestone=True)


@dataclass
class PlayStatistics:
    robot: str
    episodes: int
    steps: int
    play_steps: int
    play_contact_fraction: float
    intent_fraction: float
    demos: int
    demo_successes: int
    demo_success_rate: float
    demo_mean_best_progress: float
    milestones: int
    seconds: float


def _pusht_run(operator: ScriptedOperator, episodes: int, seed: int):
    from dmo_ros.sims.pusht import PushTConfig, PushTSim

    sim = PushTSim(PushTConfig(seed=seed))
    try:
        while operator.stats.episodes <= episodes:
            s = sim.state()
            command = operator.act(Observation(s.episode, s.step, s.agent, s.block, s.goal, s.coverage, s.success))
            if command.reset:
                if operator.stats.episodes == episodes:
                    return
                sim.reset()
                continue
            sim.step(command.action * sim.config.control_period_s)  # m/s → metres per control step
            yield command, sim.env.n_contact_points > 0
    finally:
        sim.close()


def _go2_run(operator: ScriptedOperator, episodes: int, seed: int):
    import mujoco

    from dmo_ros.sims.push_cube import PushCubeConfig, PushCubeSim

    sim = PushCubeSim(PushCubeConfig(seed=seed))
    robot_geom = mujoco.mj_name2id(sim.model, mujoco.mjtObj.mjOBJ_GEOM, "robot")
    cube_geom = mujoco.mj_name2id(sim.model, mujoco.mjtObj.mjOBJ_GEOM, "cube")
    try:
        while True:
            s = sim.state()
            command = operator.act(Observation(s.episode, s.step, s.robot, s.cube, s.goal, s.progress, s.success,
                                               s.cube_in_view))
            if command.reset:
                if operator.stats.episodes == episodes:
                    return
                sim.reset()
                continue
            sim.step(command.action)
            contacts = sim.data.contact[: sim.data.ncon]
            touching = any({int(c.geom1), int(c.geom2)} == {robot_geom, cube_geom} for c in contacts)
            yield command, touching
    finally:
        sim.close()


def play_statistics(robot: str, episodes: int, seed: int = 0, demo_probability: float = 0.5) -> PlayStatistics:
    """Run the scripted operator for ``episodes`` episodes against the robot's stand-in simulation."""
    config = ScriptedOperatorConfig(seed=seed, demo_probability=demo_probability,
                                    demo_timeout_steps=DEMO_TIMEOUT_STEPS[robot])
    operator = make_operator(robot, config)
    run = _pusht_run if robot == "pusht" else _go2_run
    started = time.monotonic()
    play_steps = play_contacts = 0
    for command, touching in run(operator, episodes, seed):
        if not command.intent:
            play_steps += 1
            play_contacts += int(touching)
    stats = operator.stats
    return PlayStatistics(
        robot=robot,
        episodes=stats.episodes,
        steps=stats.steps,
        play_steps=play_steps,
        play_contact_fraction=play_contacts / max(play_steps, 1),
        intent_fraction=stats.intent_fraction,
        demos=stats.demos,
        demo_successes=stats.demo_successes,
        demo_success_rate=stats.demo_success_rate,
        demo_mean_best_progress=float(np.mean(stats.demo_best_progress)) if stats.demos else 0.0,
        milestones=stats.milestones,
        seconds=time.monotonic() - started,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dmo-play-stats", description=__doc__.split("\n\n")[1])
    parser.add_argument("--robot", choices=ROBOTS, action="append", help="robot(s) to measure (default: both)")
    parser.add_argument("--episodes", type=int, default=20, help="episodes per robot (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the stand-in and the operator")
    parser.add_argument("--demo-probability", type=float, default=0.5, help="share of episodes with a demo")
    parser.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    options = parser.parse_args(argv)
    if options.episodes <= 0:
        parser.error("--episodes must be positive")
    for robot in options.robot or ROBOTS:
        s = play_statistics(robot, options.episodes, options.seed, options.demo_probability)
        if options.json:
            print(json.dumps(s.__dict__))
            continue
        print(f"{robot}: {s.episodes} episodes, {s.steps} steps ({s.seconds:.1f} s)\n"
              f"  play: {s.play_steps} steps, in contact with the object {s.play_contact_fraction:.1%}\n"
              f"  intent on: {s.intent_fraction:.1%} of steps\n"
              f"  demonstrations: {s.demo_successes}/{s.demos} succeeded ({s.demo_success_rate:.1%}), "
              f"mean best progress {s.demo_mean_best_progress:.2f}, milestone presses {s.milestones}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
