"""Rung 0 on the Go2: the ego-centric true-state observation, its reward, the stand-ins stepped together, and a state
model that learns how a body-velocity command moves the cube in the robot's frame."""

from __future__ import annotations

import gc
import math

import numpy as np
import pytest
import torch
from state_model_fit import fit_state_model

from dmo_ros.ladder import rung0
from dmo_ros.ladder.cube_state_env import (
    APPROACH_RADIUS_M,
    CONTACT_M,
    HALF_M,
    CubeStateEnvs,
    LastSeen,
    Memories,
    both_in_view,
    cube_goal_distance,
    cube_state_reward,
    goal_in_view,
    observation_size,
    observe,
    observe_in_view,
    observe_sim,
)
from dmo_ros.sims.push_cube import PushCubeConfig, PushCubeSim


def test_the_observation_is_the_cube_and_goal_in_the_robots_frame():
    with PushCubeSim(PushCubeConfig(seed=4, width=8, height=8)) as sim:
        sim.set_poses(robot=np.array([0.5, -0.5, math.pi / 2]), cube=np.array([0.5, 0.5, 0.0]))  # 1 m ahead
        state = sim.state()
        observation = observe(state)
    assert observation.shape == (8,) and observation.dtype == np.float32
    np.testing.assert_allclose(observation[0:2] * HALF_M, [1.0, 0.0], atol=1e-2)  # straight ahead, x forward
    goal = state.goal[:2] - state.robot[:2]  # heading +y: body x is world y, body y is world -x
    np.testing.assert_allclose(observation[2:4] * HALF_M, [goal[1], -goal[0]], atol=1e-2)
    np.testing.assert_allclose(observation[4:6] * HALF_M, state.robot[:2], atol=1e-6)
    np.testing.assert_allclose(observation[6:8], [0.0, 1.0], atol=1e-6)
    distance = np.linalg.norm(state.cube[:2] - state.goal[:2])
    assert cube_goal_distance(torch.from_numpy(observation)).item() * HALF_M == pytest.approx(distance, abs=1e-2)


def test_the_in_view_observation_hides_what_the_camera_does_not_see_and_flags_it():
    with PushCubeSim(PushCubeConfig(seed=4, width=8, height=8)) as sim:
        goal = sim.goal[:2]
        # Facing the goal from 1.5 m with the cube 1 m ahead: both in view.
        sim.set_poses(robot=np.r_[goal - [1.5, 0.0], 0.0], cube=np.r_[goal - [0.5, 0.0], 0.0])
        ahead, seen = observe_sim(sim, "in_view"), sim.state()
        assert goal_in_view(sim) and seen.cube_in_view
        # Turned round: neither.
        sim.set_poses(robot=np.r_[goal - [1.5, 0.0], math.pi], cube=np.r_[goal - [0.5, 0.0], 0.0])
        behind, turned = observe_sim(sim, "in_view"), observe(sim.state())
        assert not goal_in_view(sim) and not sim.state().cube_in_view
        assert observe_sim(sim, "full").shape == (8,)
    assert ahead.shape == (observation_size("in_view"),) == (10,) and ahead.dtype == np.float32
    np.testing.assert_allclose(ahead[:8], observe(seen))
    np.testing.assert_array_equal(ahead[8:], [1.0, 1.0])
    np.testing.assert_array_equal(behind[:4], np.zeros(4))  # the positions hidden ...
    np.testing.assert_allclose(behind[4:8], turned[4:8])  # ... the robot's own place and heading kept
    np.testing.assert_array_equal(behind[8:], [0.0, 0.0])
    cube_only = observe_in_view(seen, goal_visible=False)  # each hidden on its own
    np.testing.assert_allclose(cube_only[0:2], observe(seen)[0:2])
    np.testing.assert_array_equal(cube_only[2:4], [0.0, 0.0])
    np.testing.assert_array_equal(cube_only[8:], [1.0, 0.0])
    assert observation_size("full") == 8
    with pytest.raises(ValueError, match="unknown observation"):
        observation_size("pixels")
    with pytest.raises(ValueError, match="unknown observation"):
        CubeStateEnvs(1, 0, 4, observation="pixels")


def test_the_memory_observation_carries_the_last_sightings_by_odometry_and_forgets_them_in_a_new_episode():
    with PushCubeSim(PushCubeConfig(seed=4, width=8, height=8)) as sim:
        goal = sim.goal[:2]
        memory = LastSeen()
        sim.set_poses(robot=np.r_[goal - [1.5, 0.0], 0.0], cube=np.r_[goal - [0.5, 0.0], 0.0])
        ahead, ahead_in_view = observe_sim(sim, "memory", memory), observe_sim(sim, "in_view")
        np.testing.assert_array_equal(ahead, memory.observe(sim))  # reading it twice changes nothing
        # Turned round and stepped aside: neither in view, both where they were, in the new body frame.
        sim.set_poses(robot=np.r_[goal - [1.5, 0.3], math.pi], cube=np.r_[goal - [0.5, 0.0], 0.0])
        behind, turned = observe_sim(sim, "memory", memory), observe(sim.state())
        assert not goal_in_view(sim) and not sim.state().cube_in_view
        unseen = LastSeen().observe(sim)  # a memory that never saw them knows nothing
        with pytest.raises(ValueError, match="needs the stand-in's LastSeen"):
            observe_sim(sim, "memory")
        sim.reset()  # a new episode forgets: turned away from where the goal now is, nothing remembered
        sim.set_poses(robot=np.r_[sim.goal[:2] - [1.5, 0.0], math.pi], cube=np.r_[sim.goal[:2] + [1.0, 0.0], 0.0])
        forgotten = memory.observe(sim)
        assert not goal_in_view(sim) and not sim.state().cube_in_view
    assert ahead.shape == (observation_size("memory"),) == (12,) and ahead.dtype == np.float32
    np.testing.assert_allclose(ahead[:10], ahead_in_view, atol=1e-6)  # in view: what the camera sees
    np.testing.assert_array_equal(ahead[8:], [1.0, 1.0, 1.0, 1.0])
    np.testing.assert_allclose(behind[:8], turned, atol=1e-6)  # remembered = true: nothing moved
    np.testing.assert_array_equal(behind[8:], [0.0, 0.0, 1.0, 1.0])
    np.testing.assert_array_equal(unseen[:4], np.zeros(4))
    np.testing.assert_array_equal(unseen[8:], np.zeros(4))
    np.testing.assert_array_equal(forgotten[:4], np.zeros(4))
    np.testing.assert_array_equal(forgotten[8:], np.zeros(4))
    assert both_in_view(torch.from_numpy(np.stack([ahead, behind]))).tolist() == [True, False]
    envs = CubeStateEnvs(2, 0, 4, observation="memory")
    try:
        first = envs.observations()
        assert first.shape == (2, 12)
        np.testing.assert_array_equal(first[:, 10:], first[:, 8:10])  # at the start: known = in view now
        envs.step(np.zeros((2, 3)))
    finally:
        envs.close()


def test_memories_keep_one_memory_per_stand_in_and_a_new_stand_in_starts_with_none():
    memories = Memories()
    with PushCubeSim(PushCubeConfig(seed=4, width=8, height=8)) as first, \
            PushCubeSim(PushCubeConfig(seed=4, width=8, height=8)) as second:
        assert memories.of(first) is memories.of(first) and memories.of(first) is not memories.of(second)
        goal = first.goal[:2]
        first.set_poses(robot=np.r_[goal - [1.5, 0.0], 0.0], cube=np.r_[goal - [0.5, 0.0], 0.0])
        assert observe_sim(first, "memory", memories.of(first))[10:].tolist() == [1.0, 1.0]
        old = memories.of(first)
        memories.forget(first)
        assert memories.of(first) is not old and memories.of(first).cube is None
        memories.forget(second)
        memories.forget(second)  # forgetting twice is harmless
    del first, second
    gc.collect()
    assert len(memories._by_sim) == 0  # held weakly: a finished stand-in's memory goes with it


def test_the_reward_is_the_cubes_distance_from_the_goal_and_a_pull_toward_the_cube():
    near = torch.tensor([APPROACH_RADIUS_M / HALF_M, 0.0, 0.6, 0.0, 0, 0, 1, 0])  # the cube at the stand-off
    far = near.clone()
    far[0], far[2] = near[0] + 0.5, near[2] + 0.5  # cube and goal 1 m further ahead: the same distance between them
    assert cube_state_reward(near, approach=0.0).item() == pytest.approx(-(0.6 - APPROACH_RADIUS_M / HALF_M))
    assert cube_state_reward(near).item() == pytest.approx(cube_state_reward(near, approach=0.0).item())
    assert cube_state_reward(far).item() < cube_state_reward(near).item()
    moved = near.clone().requires_grad_(True)
    cube_state_reward(moved).backward()
    assert moved.grad[0] > 0  # the cube further ahead (toward the goal, also ahead) is better


def test_cube_envs_step_the_body_velocity_command_and_restart():
    envs = CubeStateEnvs(batch=2, seed=0, episode_steps=3)
    before = envs.observations()
    after = envs.step(np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]))
    assert envs.samples == 2 and after.shape == (2, 8)
    heading = before[0, 6:8] / np.linalg.norm(before[0, 6:8])
    moved = (after[0, 4:6] - before[0, 4:6]) * HALF_M
    assert moved @ heading == pytest.approx(0.5 * 0.2, rel=0.2)  # 0.5 m/s forward for 0.2 s
    assert np.allclose(after[1, 4:6], before[1, 4:6], atol=1e-3) and not np.allclose(after[1, 6:8], before[1, 6:8])
    envs.step(np.zeros((2, 3)))
    envs.step(np.zeros((2, 3)))
    assert envs.restart_ended() == 2 and (envs.steps == 0).all()
    envs.reseed(7919)
    assert not np.allclose(envs.observations(), before)
    envs.close()


def test_the_state_model_learns_how_a_command_moves_the_cube_in_the_robots_frame():
    model, replay, generator, losses = fit_state_model(CubeStateEnvs(batch=8, seed=1, episode_steps=150), 8, 3)
    assert np.mean(losses[-20:]) < 0.3 * np.mean(losses[:5])
    # Walking forward brings the cube closer in the robot's frame: d cube_x / d vx < 0.
    s, a = replay.sample(16, generator)[:2]
    a = a.clone().requires_grad_(True)
    model(s, a)[:, 0].sum().backward()
    assert (a.grad[:, 0] < 0).float().mean() > 0.9


def test_the_behind_target_pulls_the_robot_to_the_pushing_spot_on_the_far_side_from_the_goal():
    """approach_target behind: the term is 0 exactly where the robot pushes from (touching the cube's back on the
    goal's line) and grows on the goal's side of the cube, where the plain approach term is already 0."""
    standoff = CONTACT_M / HALF_M
    behind = torch.tensor([standoff, 0.0, standoff + 0.5, 0.0, 0, 0, 1, 0])  # cube ahead, goal beyond it
    wrong_side = torch.tensor([-0.2, 0.0, 0.3, 0.0, 0, 0, 1, 0])  # the robot between the cube and the goal
    pulled = [cube_state_reward(o, approach=1.0, target="behind") - cube_state_reward(o, approach=0.0)
              for o in (behind, wrong_side)]
    assert pulled[0].item() == pytest.approx(0.0, abs=1e-6) and pulled[1].item() == pytest.approx(-(0.2 + standoff))
    assert cube_state_reward(wrong_side, approach=1.0).item() == pytest.approx(
        cube_state_reward(wrong_side, approach=0.0).item())  # the plain term does not see the wrong side
    with pytest.raises(ValueError, match="approach target"):
        cube_state_reward(behind, target="around")
    with pytest.raises(ValueError, match="approach_target=behind is push_cube's and push_region's"):
        rung0.Rung0Config(task="push_t", approach_target="behind")
