"""The scripted experts against the stand-ins' simulations (in-process, no ROS)."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from conftest import BIN
from dmo_ros.teleop.operator import Observation
from dmo_ros.teleop.push_cube_expert import PushCubeExpert
from dmo_ros.teleop.pusht_expert import PushTExpert


def test_push_cube_expert_succeeds_in_most_episodes():
    from dmo_ros.sims.push_cube import PushCubeConfig, PushCubeSim

    sim, expert, successes = PushCubeSim(PushCubeConfig(seed=5)), PushCubeExpert(), 0
    for _ in range(10):
        s = sim.reset()
        expert.begin(None, None)
        for _ in range(150):
            sim.step(expert.act(Observation(s.episode, s.step, s.robot, s.cube, s.goal, s.progress, s.success)))
            s = sim.state()
            if s.success:
                successes += 1
                break
    sim.close()
    assert successes >= 7, f"{successes}/10"


def test_pusht_expert_brings_the_block_to_the_goal():
    from dmo_ros.sims.pusht import PushTConfig, PushTSim

    sim, expert, best = PushTSim(PushTConfig(seed=1)), PushTExpert(), []
    for episode in range(3):
        if episode:
            sim.reset()
        expert.begin(None, np.random.default_rng(episode))
        s, coverage = sim.state(), []
        for _ in range(150):
            observation = Observation(s.episode, s.step, s.agent, s.block, s.goal, s.coverage, s.success)
            sim.step(expert.act(observation) * sim.config.control_period_s)
            s = sim.state()
            coverage.append(s.coverage)
        best.append(max(coverage))
    sim.close()
    # A still or random pusher leaves coverage near 0 from these starts; the expert reaches the goal.
    assert np.mean(best) > 0.9, best


def test_play_stats_command_reports_both_robots():
    result = subprocess.run([str(BIN / "dmo-play-stats"), "--episodes", "3", "--json"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    rows = {row["robot"]: row for row in map(json.loads, result.stdout.splitlines())}
    assert set(rows) == {"pusht", "go2"}
    for row in rows.values():
        assert row["episodes"] == 3 and row["steps"] > 0
        assert 0.0 < row["play_contact_fraction"] < 1.0
        assert 0.0 <= row["intent_fraction"] < 1.0


def test_play_stats_expert_only_reports_the_success_rate():
    result = subprocess.run([str(BIN / "dmo-play-stats"), "--robot", "pusht", "--robot", "go2", "--expert-only",
                             "--episodes", "2", "--episode-steps", "150", "--json"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    rows = {row["robot"]: row for row in map(json.loads, result.stdout.splitlines())}
    assert set(rows) == {"pusht", "go2"}
    for row in rows.values():
        assert row["episodes"] == 2 and row["episode_steps"] == 150
        assert row["successes"] == round(row["success_rate"] * 2)
        assert 0.0 <= row["mean_best_progress"] <= 1.0 and row["expert_ms_per_step"] > 0.0
    assert rows["pusht"]["successes"] >= 1


def test_expert_statistics_on_the_reach_task():
    from dmo_ros.teleop.scripted import expert_statistics

    stats = expert_statistics("pusht", episodes=3, seed=2, episode_steps=150, task="reach")
    assert stats.successes == 3 and stats.median_steps_to_success < 60


def test_noisy_play_actions_stay_within_what_each_robot_carries_out():
    from dataclasses import fields

    from dmo_ros.sims.push_cube import PushCubeConfig
    from dmo_ros.sims.pusht import PushTConfig
    from dmo_ros.teleop.operator import ScriptedOperatorConfig
    from dmo_ros.teleop.scripted import GO2_COMMAND_LIMITS, make_operator

    defaults = {f.name: f.default for f in fields(PushCubeConfig)}
    assert GO2_COMMAND_LIMITS.tolist() == [defaults["max_vx"], defaults["max_vy"], defaults["max_yaw_rate"]]
    pusht = make_operator("pusht", ScriptedOperatorConfig(play_action_noise=5.0))
    huge = pusht.limit_action(np.array([3.0, -4.0]))
    assert np.isclose(np.linalg.norm(huge), 40.0 * 0.5 / 512 / 0.2) and huge[0] > 0 > huge[1]  # direction kept
    assert np.linalg.norm(huge) < PushTConfig().max_speed_m_s  # the stand-in applies it unchanged
    go2 = make_operator("go2", ScriptedOperatorConfig(play_action_noise=5.0))
    assert go2.limit_action(np.array([9.0, -9.0, 0.5])).tolist() == [0.5, -0.3, 0.5]


def test_wandering_play_covers_the_arena_and_plain_play_stays_by_the_t():
    """``play_wander_probability``: play walks to random points of the arena as well as pushing the T, so every
    quarter of the arena is visited (reach_fixed's target lies in the top-right one, which plain play avoids)."""
    from dmo_ros.sims.pusht import PushTConfig, PushTSim
    from dmo_ros.teleop.operator import ScriptedOperatorConfig
    from dmo_ros.teleop.scripted import make_operator, pusht_observation

    def quarters(wander: float) -> np.ndarray:
        operator = make_operator("pusht", ScriptedOperatorConfig(seed=4, demo_probability=0.0, play_steps=(400, 400),
                                                                 play_wander_probability=wander))
        sim = PushTSim(PushTConfig(task="reach_fixed", seed=4))
        visits = np.zeros((2, 2))
        for _ in range(400):
            command = operator.act(pusht_observation(sim.state()))
            sim.step(np.asarray(command.action) * sim.config.control_period_s)
            x, y = sim.state().agent
            visits[int(y >= 256), int(x >= 256)] += 1
        sim.close()
        return visits / visits.sum()

    assert quarters(0.5).min() > 0.05
    assert quarters(0.0)[0, 1] < 0.05  # without wandering the top-right quarter is hardly visited


def test_the_operator_demonstrates_the_reach_tasks_by_walking_to_the_target():
    from dmo_ros.teleop.pusht_expert import PushTExpert, ReachExpert
    from dmo_ros.teleop.scripted import make_operator

    assert isinstance(make_operator("pusht", task="reach_fixed").expert, ReachExpert)
    assert isinstance(make_operator("pusht", task="push_region").expert, PushTExpert)
    with pytest.raises(ValueError, match="plays Push Cube only"):
        make_operator("go2", task="reach")
    with pytest.raises(ValueError, match="unknown task"):
        make_operator("pusht", task="stack")


def test_push_cube_play_visits_the_goal_region_without_the_cube():
    """With play_wander_probability the Go2's play also walks onto the goal region (and elsewhere) and looks around
    there, far more often than play that only pushes the cube."""
    from dmo_ros.sims.push_cube import PushCubeConfig, PushCubeSim
    from dmo_ros.teleop.push_cube_expert import PushCubeExplorer

    def play(probability: float, steps: int = 400) -> list[float]:
        sim, explorer = PushCubeSim(PushCubeConfig(seed=3)), PushCubeExplorer(visit_probability=probability)
        explorer.begin(None, np.random.default_rng(0))
        goal_distances = []
        for _ in range(steps):
            s = sim.state()
            sim.step(explorer.act(Observation(s.episode, s.step, s.robot, s.cube, s.goal, s.progress, s.success)))
            goal_distances.append(float(np.linalg.norm(s.robot[:2] - s.goal[:2])))
        sim.close()
        return goal_distances

    visiting, pushing = (np.array(play(p)) for p in (1.0, 0.0))
    assert visiting.min() < 0.25 and np.mean(visiting < 0.4) > max(0.1, 3 * np.mean(pushing < 0.4)), (
        visiting.min(), np.mean(visiting < 0.4), np.mean(pushing < 0.4))
    with pytest.raises(ValueError, match="visit_probability"):
        PushCubeExplorer(visit_probability=1.5)


def test_push_cube_operator_holds_the_lined_up_milestone_while_lined_up():
    """``lined_up_milestone``: the key holds its value whenever the robot has the cube straight ahead and the goal
    beyond it (behind the cube, facing the goal), in play as in demonstrations, not while walking round; 1.0 at
    success."""
    from dmo_ros.sims.push_cube import PushCubeConfig, PushCubeSim
    from dmo_ros.teleop.operator import ScriptedOperatorConfig
    from dmo_ros.teleop.scripted import make_operator, push_cube_observation

    def session(lined_up_milestone: float, steps: int = 600) -> list[tuple]:
        sim = PushCubeSim(PushCubeConfig(seed=2))
        operator = make_operator("go2", ScriptedOperatorConfig(seed=4, demo_probability=1.0, play_steps=(20, 40),
                                                               lined_up_milestone=lined_up_milestone))
        rows = []
        for _ in range(steps):
            state = sim.state()
            command = operator.act(push_cube_observation(state))
            rows.append((command.milestone, command.intent, state.robot.copy(), state.cube.copy(), state.goal.copy()))
            if command.reset:
                sim.reset()
            else:
                sim.step(command.action)
        sim.close()
        return rows

    held, plain = session(0.5), session(0.0)
    values = [row[0] for row in held]
    assert values.count(1.0) >= 2 and values.count(0.5) >= 10, (values.count(1.0), values.count(0.5))
    assert any(not intent for milestone, intent, *_ in held if milestone > 0)  # play lines up too, now and then
    for milestone, _, robot, cube, goal in held:
        if milestone == 0.5:  # behind the cube: the cube lies between the robot and the goal, the robot facing it
            to_goal = (goal[:2] - cube[:2]) / np.linalg.norm(goal[:2] - cube[:2])
            to_cube = (cube[:2] - robot[:2]) / np.linalg.norm(cube[:2] - robot[:2])
            assert np.dot(to_cube, to_goal) > np.cos(0.35)
            assert np.cos(robot[2] - np.arctan2(to_cube[1], to_cube[0])) > np.cos(0.35)
    # Walking round the cube is not lined up: the key is off for part of each demonstration.
    assert sum(1 for milestone, intent, *_ in held if intent and milestone == 0) > 20
    # The same session otherwise: only the key differs (no random draw is added).
    assert [row[0] for row in plain if row[0] > 0] == [1.0] * values.count(1.0)
    assert all(np.array_equal(a[2], b[2]) for a, b in zip(held, plain, strict=True))


@pytest.mark.parametrize("value", [-0.1, 1.0, float("nan")])
def test_lined_up_milestone_out_of_range_is_refused(value):
    from dmo_ros.teleop.operator import ScriptedOperatorConfig

    with pytest.raises(ValueError, match="lined_up_milestone"):
        ScriptedOperatorConfig(lined_up_milestone=value)


def test_lined_up_milestone_is_refused_for_the_pusht_operator():
    from dmo_ros.teleop.operator import ScriptedOperatorConfig
    from dmo_ros.teleop.scripted import make_operator

    with pytest.raises(ValueError, match="no intermediate milestone"):
        make_operator("pusht", ScriptedOperatorConfig(lined_up_milestone=0.5))
    result = subprocess.run([BIN / "dmo-collect-fast", "--robot", "pusht", "--samples", "10", "--lined-up-milestone",
                             "0.5", "--output", "unused"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "no intermediate milestone" in result.stderr, result.stderr


def test_lined_up_needs_the_cube_ahead_and_the_goal_beyond_it():
    from dmo_ros.teleop.push_cube_expert import lined_up

    def seen(robot, cube, goal) -> bool:
        return lined_up(Observation(0, 0, np.asarray(robot, float), np.asarray(cube, float), np.asarray(goal, float),
                                    0.0, False))

    assert seen([0, 0, 0], [1, 0, 0], [2.5, 0.1, 0])  # facing +x, the cube ahead, the goal beyond it
    assert seen([-2, 0, 0], [1, 0, 0], [2, 0, 0])  # at any distance
    assert not seen([0, 0, np.pi], [1, 0, 0], [2, 0, 0])  # facing away
    assert not seen([3, 0, np.pi], [1, 0, 0], [2, 0, 0])  # the goal between the robot and the cube
    assert not seen([0, 0, 0], [1, 0, 0], [1, 1.5, 0])  # the goal off to the side
    assert not seen([0, 0, 0], [1, 0, 0], [1, 0, 0])  # the cube on the goal: nothing to line up


def test_push_cube_demonstrations_settle_and_back_off_before_the_success_key():
    """``demo_settle_steps`` and ``demo_back_off_steps``: after the first success the expert goes on pushing, then
    the robot walks back (intent on), and only then is the key pressed — with the cube nearer the goal's centre and
    the robot farther from the cube than at the first success; without them the key comes at the first success."""
    from dmo_ros.sims.push_cube import PushCubeConfig, PushCubeSim
    from dmo_ros.teleop.operator import ScriptedOperatorConfig
    from dmo_ros.teleop.scripted import make_operator, push_cube_observation

    def presses(settle: int, back_off: int, steps: int = 700) -> list[tuple[float, float, bool]]:
        """(cube-to-goal distance, robot-to-cube distance, success) at each press of the success key."""
        rows = []
        with PushCubeSim(PushCubeConfig(seed=2)) as sim:
            operator = make_operator("go2", ScriptedOperatorConfig(seed=4, demo_probability=1.0, play_steps=(5, 10),
                                                                   demo_settle_steps=settle,
                                                                   demo_back_off_steps=back_off))
            for _ in range(steps):
                state = sim.state()
                command = operator.act(push_cube_observation(state))
                if command.milestone == 1.0:
                    assert command.intent
                    rows.append((float(np.linalg.norm(state.cube[:2] - state.goal[:2])),
                                 float(np.linalg.norm(state.robot[:2] - state.cube[:2])), state.success))
                if command.reset:
                    sim.reset()
                else:
                    sim.step(command.action)
        return rows

    plain, finished = presses(0, 0), presses(3, 4)
    assert len(plain) >= 3 and len(finished) >= 3, (plain, finished)
    assert all(success for *_, success in plain + finished)
    goal_radius = PushCubeConfig().goal_radius
    assert np.mean([cube for cube, *_ in plain]) > 0.8 * goal_radius  # the plain key: on the disc's edge
    assert np.mean([cube for cube, *_ in finished]) < 0.6 * goal_radius  # pushed well in
    assert np.mean([robot for _, robot, _ in finished]) > np.mean([robot for _, robot, _ in plain]) + 0.2  # backed off
    with pytest.raises(ValueError, match="demo_back_off_steps"):
        make_operator("pusht", ScriptedOperatorConfig(demo_back_off_steps=2))
    with pytest.raises(ValueError, match="demo_settle_steps"):
        ScriptedOperatorConfig(demo_settle_steps=-1)
    result = subprocess.run([BIN / "dmo-collect-fast", "--robot", "pusht", "--samples", "10", "--demo-back-off-steps",
                             "2", "--output", "unused"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "no back-off" in result.stderr, result.stderr
