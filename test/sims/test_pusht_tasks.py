"""The Push-T tasks: reset distributions, goal pictures and success rules, seeded and selectable by name."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from dmo_ros.sims.pusht import PushTConfig, PushTSim
from dmo_ros.sims.pusht_frames import locate_agent
from dmo_ros.sims.pusht_tasks import GOAL_POSE, TASKS, TaskConfig, disc_clears_t, make_task, pose_error


def starts(task: str, seed: int = 4, episodes: int = 6) -> list:
    sim = PushTSim(PushTConfig(task=task, seed=seed))
    states = []
    for episode in range(episodes):
        if episode:
            sim.reset()
        states.append(sim.state())
    sim.close()
    return states


def test_tasks_by_name_and_unknown_names():
    assert TASKS == ("reach", "reach_fixed", "push_region", "push_near", "push_t")
    for name in TASKS:
        assert make_task(name).name == name
    with pytest.raises(ValueError, match="unknown Push-T task"):
        make_task("stack")
    with pytest.raises(ValueError, match="unknown Push-T task"):
        PushTConfig(task="stack")
    with pytest.raises(ValueError, match="reach_success_px"):
        TaskConfig(reach_success_px=0)
    for bad in ((256.0, 256.0), (600.0, 100.0), (1.0, 2.0, 3.0)):  # on the T, outside, not [x, y]
        with pytest.raises(ValueError, match="reach_fixed_target"):
            TaskConfig(reach_fixed_target=bad)


def test_push_t_keeps_gym_pushts_own_reset():
    from dmo_ros.sims.pusht import episode_seed

    env = gym.make("gym_pusht/PushT-v0", obs_type="state").unwrapped
    for episode, state in enumerate(starts("push_t", seed=9, episodes=3)):
        env.reset(seed=episode_seed(9, episode))
        np.testing.assert_allclose(state.agent, env.agent.position)
        np.testing.assert_allclose(state.block[:2], env.block.position)
        assert state.target is None and state.status.distance == pytest.approx(pose_error(state.block, state.goal))
    env.close()


def test_starts_are_reproducible_per_seed_and_differ_across_seeds():
    for task in TASKS:
        a, b, c = starts(task, seed=4, episodes=2), starts(task, seed=4, episodes=2), starts(task, seed=5, episodes=2)
        np.testing.assert_array_equal(a[1].block, b[1].block)
        np.testing.assert_array_equal(a[1].agent, b[1].agent)
        assert not np.array_equal(a[1].block, c[1].block) or not np.array_equal(a[1].agent, c[1].agent)


def test_reach_targets_are_clear_of_the_t_and_away_from_the_start():
    config = TaskConfig()
    for state in starts("reach", episodes=8):
        assert state.target is not None and disc_clears_t(state.target, state.block)
        assert np.linalg.norm(state.target - state.agent) >= config.reach_min_start_px
        assert np.all(state.target >= config.reach_margin_px) and np.all(state.target <= 512 - config.reach_margin_px)
        assert state.status.distance == pytest.approx(np.linalg.norm(state.target - state.agent))
        assert not state.success


def test_reach_succeeds_within_the_radius_and_the_goal_picture_shows_the_target():
    sim = PushTSim(PushTConfig(task="reach", seed=2))
    target = sim.state().target
    goal = sim.goal_image()
    position, visible = locate_agent(goal)
    assert visible and np.allclose(position * 512 / 96, target, atol=8.0)  # the agent drawn on the target
    frame_position, _ = locate_agent(sim.render())
    assert np.allclose(frame_position * 512 / 96, sim.state().agent, atol=8.0)  # the live frame: where it is
    for offset, success, loose in ((10.0, True, True), (30.0, False, True), (60.0, False, False)):
        sim.env.agent.position = (float(target[0] + offset), float(target[1]))
        status = sim.state().status
        assert (status.success, status.loose_success) == (success, loose)
        assert sim.state().success == success
    sim.close()


def test_reach_fixed_keeps_one_target_with_the_t_on_its_goal_pose():
    config = TaskConfig()
    states = starts("reach_fixed", episodes=8)
    for state in states:
        np.testing.assert_allclose(state.target, config.reach_fixed_target)
        np.testing.assert_allclose(state.block[:2], GOAL_POSE[:2], atol=1e-6)
        assert state.coverage > 0.99  # the T rests on its goal pose
        assert np.linalg.norm(state.target - state.agent) >= config.reach_min_start_px
        assert disc_clears_t(state.agent, state.block, radius=20.0)
        assert state.status.distance == pytest.approx(np.linalg.norm(state.target - state.agent))
        assert not state.success
    assert len({tuple(state.agent.round(3)) for state in states}) == len(states)  # the agent's start varies


def test_reach_fixed_goal_picture_is_the_same_every_episode_and_shows_the_target():
    sim = PushTSim(PushTConfig(task="reach_fixed", seed=3))
    first = sim.goal_image()
    sim.reset()
    second = sim.goal_image()
    sim.close()
    np.testing.assert_array_equal(first, second)
    position, visible = locate_agent(first)
    assert visible and np.allclose(position * 512 / 96, TaskConfig().reach_fixed_target, atol=8.0)
    other = PushTSim(PushTConfig(task="reach_fixed", seed=9, task_config=TaskConfig(reach_fixed_target=(128, 128))))
    position, _ = locate_agent(other.goal_image())
    other.close()
    assert np.allclose(position * 512 / 96, (128, 128), atol=8.0)


def test_push_near_starts_near_the_goal_but_not_on_it():
    config = TaskConfig()
    for state in starts("push_near", episodes=10):
        assert np.linalg.norm(state.block[:2] - GOAL_POSE[:2]) <= config.near_offset_px + 1e-6
        turn = (state.block[2] - GOAL_POSE[2] + np.pi) % (2 * np.pi) - np.pi
        assert abs(turn) <= config.near_angle_rad + 1e-6
        assert state.status.pose_error >= config.near_min_error_px and state.coverage < 0.95
        assert disc_clears_t(state.agent, state.block, radius=20.0)
        np.testing.assert_allclose(state.goal, GOAL_POSE)


def test_push_near_succeeds_on_the_goal_pose():
    sim = PushTSim(PushTConfig(task="push_near", seed=1))
    env = sim.env
    env.block.angle = float(GOAL_POSE[2])
    env.block.position = (float(GOAL_POSE[0]), float(GOAL_POSE[1]))
    env.space.reindex_shapes_for_body(env.block)
    state = sim.state()
    assert state.coverage > 0.95 and state.success and state.status.loose_success
    assert state.status.distance < 1.0
    sim.close()


def test_push_region_starts_behind_the_t_and_succeeds_by_the_centre_alone():
    from dmo_ros.sims.pusht_tasks import T_CENTRE, t_centre

    config = TaskConfig()
    goal_centre = t_centre(GOAL_POSE)
    for state in starts("push_region", episodes=8):
        centre = t_centre(state.block)
        assert config.region_start_px[0] - 1e-6 <= np.linalg.norm(centre - goal_centre) <= config.region_start_px[1]
        assert abs(state.block[2] - GOAL_POSE[2]) <= config.region_angle_rad + 1e-9
        assert disc_clears_t(state.agent, state.block, radius=25.0)
        # The agent is on the far side of the T from the goal: one straight push towards the goal moves the T there.
        assert np.linalg.norm(state.agent - goal_centre) > np.linalg.norm(centre - goal_centre)
        assert state.status.distance == pytest.approx(np.linalg.norm(centre - goal_centre)) and not state.success
    np.testing.assert_allclose(t_centre([10.0, 20.0, np.pi / 2]), [10.0 - T_CENTRE[1], 20.0])

    sim = PushTSim(PushTConfig(task="push_region", seed=3))
    for offset, success, loose in ((20.0, True, True), (45.0, False, True), (80.0, False, False)):
        angle = GOAL_POSE[2] + 1.0  # any angle: only the centre counts
        origin = goal_centre + np.array([offset, 0.0]) - (t_centre([0.0, 0.0, angle]))
        sim.env.block.angle, sim.env.block.position = angle, tuple(origin)
        status = sim.state().status
        assert status.distance == pytest.approx(offset) and (status.success, status.loose_success) == (success, loose)
    sim.close()
    with pytest.raises(ValueError, match="region_start_px"):
        TaskConfig(region_start_px=(50.0, 20.0))


def test_push_region_training_starts_can_put_the_agent_anywhere_and_leave_the_ts_draws_as_they_were():
    """``region_agent_anywhere`` (a training-start variant): with 1 every agent is placed clear of the T, no longer
    behind it each time; the T's starts are those of the default; 0 keeps the default's draws exactly."""
    from dmo_ros.sims.pusht_tasks import t_centre

    def starts_with(fraction: float, episodes: int = 12) -> list:
        sim = PushTSim(PushTConfig(task="push_region", seed=4, task_config=TaskConfig(region_agent_anywhere=fraction)))
        states = [sim.state()] + [sim.reset() or sim.state() for _ in range(episodes - 1)]
        sim.close()
        return states

    default, anywhere = starts("push_region", episodes=12), starts_with(1.0)
    goal_centre = t_centre(GOAL_POSE)
    behind = [np.linalg.norm(s.agent - goal_centre) > np.linalg.norm(t_centre(s.block) - goal_centre)
              for s in anywhere]
    assert all(disc_clears_t(s.agent, s.block, radius=25.0) for s in anywhere)
    assert not all(behind)  # behind every time would be the default's rule
    assert not any(np.allclose(a.agent, d.agent) for a, d in zip(anywhere, default, strict=True))
    for state in anywhere:  # the T still starts in the task's band
        distance = np.linalg.norm(t_centre(state.block) - goal_centre)
        assert TaskConfig().region_start_px[0] - 1e-6 <= distance <= TaskConfig().region_start_px[1]
    for a, d in zip(starts_with(0.0), default, strict=True):
        np.testing.assert_array_equal(a.agent, d.agent)
        np.testing.assert_array_equal(a.block, d.block)
    with pytest.raises(ValueError, match="region_agent_anywhere"):
        TaskConfig(region_agent_anywhere=1.5)


def test_the_stand_in_plays_the_task_it_is_given():
    """The stand-in node's ``task`` parameter: its resets and success rule are the task's, as in the direct
    evaluation (so the deploy graph can be scored on push_region); the go2 stand-in refuses a Push-T task."""
    from dmo_ros.sims.standin import StandinSimConfig, make_standin_sim

    standin = make_standin_sim(StandinSimConfig(robot="pusht", seed=10000, task="push_region"))
    direct = PushTSim(PushTConfig(seed=10000, task="push_region"))
    assert standin.sim.task.name == "push_region"
    np.testing.assert_allclose(standin.observation().object, direct.state().block)
    with pytest.raises(ValueError, match="go2 stand-in plays Push Cube only"):
        StandinSimConfig(robot="go2", task="push_region")
