"""Build the scripted operator for a robot, and measure its play statistics.

``dmo-play-stats`` runs the scripted operator against a stand-in's simulation in-process
(no ROS, faster than real time) and prints what a dataset recorded with it will hold: the
fraction of steps in which the robot touches the object during play, the intent fraction,
and the expert's demonstration success rate. ``--expert-only`` runs the expert alone from
each reset for ``--episode-steps`` control steps and reports its success rate, coverage
(progress), steps to success and its own compute time per control step.

    dmo-play-stats --robot go2 --episodes 40
    dmo-play-stats --robot pusht --expert-only --episodes 50 --episode-steps 150
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass

import numpy as np

from dmo_ros.help_text import plain_text
from dmo_ros.interrupt import stop_on_interrupt
from dmo_ros.sims.pusht_tasks import REACH_TASKS, TASKS
from dmo_ros.teleop.operator import Observation, ScriptedOperator, ScriptedOperatorConfig
from dmo_ros.teleop.push_cube_expert import PushCubeExpert, PushCubeExplorer, lined_up
from dmo_ros.teleop.pusht_expert import PushTExpert, PushTExplorer, PushTUnits, ReachExpert

ROBOTS = ("pusht", "go2")
ACTION_SIZE = {"pusht": 2, "go2": 3}
DEMO_TIMEOUT_STEPS = {"pusht": 150, "go2": 150}
"""Default demonstration timeouts (control steps: 30 s at 5 Hz)."""


def pusht_observation(state) -> Observation:
    """What the operator sees of a Push-T stand-in state (:meth:`dmo_ros.sims.pusht.PushTSim.state`)."""
    return Observation(state.episode, state.step, state.agent, state.block, state.operator_goal, state.coverage,
                       state.success)


def push_cube_observation(state) -> Observation:
    """The scripted Go2 operator's view of a :class:`~dmo_ros.sims.push_cube.PushCubeState`."""
    return Observation(state.episode, state.step, state.robot, state.cube, state.goal, state.progress, state.success,
                       state.cube_in_view)


def make_operator(robot: str, config: ScriptedOperatorConfig | None = None, arena_size_m: float = 0.5,
                  task: str = "push_t") -> ScriptedOperator:
    """The scripted operator of a robot (Push Cube's presses the milestone key on success, and holds it at
    ``config.lined_up_milestone`` whenever the cube is straight ahead and the goal beyond it). Push-T's demonstrates
    ``task``: the reach tasks with :class:`ReachExpert` (to the target its observations carry as the goal), the
    pushing tasks with :class:`PushTExpert`.

    Raises:
        ValueError: an unknown robot or task, a task other than push_t for the go2 (it plays Push Cube only), or a
            ``lined_up_milestone`` or ``demo_back_off_steps`` for the pusht (its experts have no intermediate
            milestone and no back-off).
    """
    if robot not in ROBOTS:
        raise ValueError(f"unknown robot '{robot}'; choose one of {', '.join(ROBOTS)}")
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    if robot == "go2" and task != "push_t":
        raise ValueError(f"task {task!r}: the go2 stand-in plays Push Cube only (leave task at push_t)")
    config = config or ScriptedOperatorConfig(demo_timeout_steps=DEMO_TIMEOUT_STEPS[robot])
    if robot == "pusht":
        units = PushTUnits(arena_size_m=arena_size_m)
        explorer = PushTExplorer(units, wander_probability=config.play_wander_probability)
        expert = ReachExpert(units) if task in REACH_TASKS else PushTExpert(units)
        return ScriptedOperator(explorer, expert, ACTION_SIZE[robot], config,
                                limit_action=units.clamp)
    explorer = PushCubeExplorer(visit_probability=config.play_wander_probability)
    expert = PushCubeExpert()
    return ScriptedOperator(explorer, expert, ACTION_SIZE[robot], config, press_milestone=True,
                            milestone_met=lined_up, back_off=expert.back_off, limit_action=_clamp_body_velocity)


GO2_COMMAND_LIMITS = np.array([0.5, 0.3, 1.0])
"""|vx| (m/s), |vy| (m/s), |yaw rate| (rad/s) the Go2 stand-in carries out (its PushCubeConfig defaults)."""


def _clamp_body_velocity(command: np.ndarray) -> np.ndarray:
    return np.clip(command, -GO2_COMMAND_LIMITS, GO2_COMMAND_LIMITS)


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
            command = operator.act(pusht_observation(sim.state()))
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
            command = operator.act(push_cube_observation(sim.state()))
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


@dataclass
class ExpertStatistics:
    """The expert alone from resets (no play before it): how often and how fast it succeeds."""

    robot: str
    episodes: int
    episode_steps: int
    """Control steps each episode may take before it counts as failed."""
    successes: int
    success_rate: float
    mean_best_progress: float
    """Mean over episodes of the best task progress reached (Push-T: coverage)."""
    median_steps_to_success: float | None
    """Median control steps from the reset to the first success (successful episodes only)."""
    expert_ms_per_step: float
    """The expert's own compute per control step (ms, mean), without the simulation."""
    seconds_per_episode: float
    """Wall time per episode, simulation included."""


def _stand_in(robot: str, seed: int, task: str = "push_t"):
    """(observe, step, reset, close) of a robot's stand-in simulation; ``step`` takes an expert action.

    Push-T's ``task`` (reach, push_region, push_near, push_t) picks the starts and the success rule; for reach the
    observation's goal is the episode's target."""
    if robot == "pusht":
        from dmo_ros.sims.pusht import PushTConfig, PushTSim

        sim = PushTSim(PushTConfig(seed=seed, task=task))

        def observe() -> Observation:
            s = sim.state()
            goal = s.goal if s.target is None else np.array([*s.target, 0.0])
            progress = s.coverage if s.target is None else float(s.success)
            return Observation(s.episode, s.step, s.agent, s.block, goal, progress, s.success)

        return observe, lambda action: sim.step(action * sim.config.control_period_s), sim.reset, sim.close
    from dmo_ros.sims.push_cube import PushCubeConfig, PushCubeSim

    sim = PushCubeSim(PushCubeConfig(seed=seed))

    return lambda: push_cube_observation(sim.state()), sim.step, sim.reset, sim.close


def expert_statistics(robot: str, episodes: int, seed: int = 0, episode_steps: int = 150,
                      task: str = "push_t") -> ExpertStatistics:
    """Run the robot's expert alone for ``episodes`` episodes of at most ``episode_steps`` control steps
    (Push-T: on ``task``; reach's expert walks to the target)."""
    expert = make_operator(robot, task=task).expert
    observe, step, reset, close = _stand_in(robot, seed, task)
    best, steps_to_success, expert_seconds, expert_steps = [], [], 0.0, 0
    started = time.monotonic()
    try:
        for episode in range(episodes):
            if episode:  # the stand-in starts its first episode itself
                reset()
            observation = observe()
            expert.begin(observation, np.random.default_rng([seed, episode]))
            best.append(observation.progress)
            for _ in range(episode_steps):
                if observation.success:
                    break
                before = time.perf_counter()
                action = expert.act(observation)
                expert_seconds += time.perf_counter() - before
                expert_steps += 1
                step(action)
                observation = observe()
                best[-1] = max(best[-1], observation.progress)
            if observation.success:
                steps_to_success.append(observation.step)
    finally:
        close()
    return ExpertStatistics(
        robot=robot,
        episodes=episodes,
        episode_steps=episode_steps,
        successes=len(steps_to_success),
        success_rate=len(steps_to_success) / episodes,
        mean_best_progress=float(np.mean(best)),
        median_steps_to_success=float(np.median(steps_to_success)) if steps_to_success else None,
        expert_ms_per_step=1e3 * expert_seconds / max(expert_steps, 1),
        seconds_per_episode=(time.monotonic() - started) / episodes,
    )


@stop_on_interrupt
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dmo-play-stats", description=plain_text(__doc__.split("\n\n")[1]))
    parser.add_argument("--robot", choices=ROBOTS, action="append", help="robot(s) to measure (default: both)")
    parser.add_argument("--episodes", type=int, default=20, help="episodes per robot (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the stand-in and the operator")
    parser.add_argument("--demo-probability", type=float, default=0.5, help="share of episodes with a demo")
    parser.add_argument("--expert-only", action="store_true",
                        help="run the expert alone from each reset and report its success rate")
    parser.add_argument("--episode-steps", type=int, default=150,
                        help="with --expert-only: control steps per episode (default 150: 30 s at 5 Hz)")
    parser.add_argument("--task", choices=TASKS, default="push_t",
                        help="with --expert-only on pusht: the task (one of %(choices)s; default push_t)")
    parser.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    options = parser.parse_args(argv)
    if options.episodes <= 0:
        parser.error("--episodes must be positive")
    if options.episode_steps <= 0:
        parser.error("--episode-steps must be positive")
    for robot in options.robot or ROBOTS:
        if options.expert_only:
            e = expert_statistics(robot, options.episodes, options.seed, options.episode_steps, options.task)
            if options.json:
                print(json.dumps(e.__dict__))
                continue
            median = "-" if e.median_steps_to_success is None else f"{e.median_steps_to_success:g}"
            print(f"{robot} expert: {e.successes}/{e.episodes} succeeded within {e.episode_steps} steps "
                  f"({e.success_rate:.1%}), mean best progress {e.mean_best_progress:.3f}, "
                  f"median steps to success {median}\n"
                  f"  expert {e.expert_ms_per_step:.1f} ms per control step, {e.seconds_per_episode:.2f} s per episode")
            continue
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
