"""The planning Push-T expert: its physics model, its walks, its success rate (in-process, no ROS)."""

from __future__ import annotations

import numpy as np
import pytest

from dmo_ros.sims.pusht import PushTConfig, PushTSim
from dmo_ros.teleop.operator import Observation
from dmo_ros.teleop.pusht_expert import (
    PushTExpert,
    PushTUnits,
    _PushModel,
    _segments_clear,
    _walk_path,
    pose_error,
    to_world,
)


def _observe(sim: PushTSim) -> Observation:
    s = sim.state()
    return Observation(s.episode, s.step, s.agent, s.block, s.goal, s.coverage, s.success)


def test_push_model_predicts_where_the_stand_in_leaves_the_block():
    # From a reset (everything at rest) push straight through the T's centre and back out,
    # both in the stand-in and in the expert's private model rebuilt from the observation.
    sim, model, units = PushTSim(PushTConfig(seed=3)), _PushModel(), PushTUnits()
    for _ in range(3):
        s = sim.state()
        centre = to_world(s.block, np.array([0.0, 45.0]))  # the T's centre of gravity
        through = centre + 30.0 * (centre - s.agent) / np.linalg.norm(centre - s.agent)
        targets = [through] * 8 + [s.agent]
        predicted = model.push(s.block, s.agent, targets, units.max_step_px)
        for target in targets:
            delta_px = target - sim.agent_position()
            sim.step(units.velocity(delta_px) * sim.config.control_period_s)
        moved = sim.state().block
        assert np.linalg.norm(moved[:2] - s.block[:2]) > 5.0, "the push should move the block"
        turn = (predicted[2] - moved[2] + np.pi) % (2 * np.pi) - np.pi
        assert np.linalg.norm(predicted[:2] - moved[:2]) < 1.0 and abs(turn) < 0.01, (predicted, moved)
        sim.reset()
    sim.close()


@pytest.mark.parametrize("seed", range(5))
def test_walk_path_keeps_the_pusher_off_the_t_and_in_reach(seed):
    rng, units = np.random.default_rng(seed), PushTUnits()
    found = 0
    for _ in range(20):
        block = np.array([*rng.uniform(80, 432, 2), rng.uniform(0, 2 * np.pi)])
        agent, target = rng.uniform(30, 482, (2, 2))
        if not _segments_clear(np.stack([agent, target]), np.stack([agent, target]), block).all():
            continue  # an end inside the T's clearance: no clear path can exist
        path = _walk_path(agent, target, block, units)
        if not path:
            continue
        found += 1
        nodes = np.stack([agent, *path])
        assert np.allclose(nodes[-1], target)
        assert _segments_clear(nodes[:-1], nodes[1:], block).all()
        assert all(units.reachable(p) for p in nodes[1:-1])
    assert found >= 5


def test_pusht_expert_succeeds_in_most_episodes():
    # 30 s at 5 Hz from a reset; success is gym-pusht's coverage > 0.95. The greedy heuristic
    # it replaced succeeded in 2/50 such episodes; this one in 49-50/50 (seeds 0 and 1000).
    sim, expert, steps_to_success = PushTSim(PushTConfig(seed=1000)), PushTExpert(), []
    for episode in range(5):
        if episode:
            sim.reset()
        expert.begin(None, np.random.default_rng(episode))
        observation = _observe(sim)
        while not observation.success and observation.step < 150:
            sim.step(expert.act(observation) * sim.config.control_period_s)
            observation = _observe(sim)
        if observation.success:
            steps_to_success.append(observation.step)
            assert pose_error(observation.object, observation.goal) < 4.0
    sim.close()
    assert len(steps_to_success) >= 4, steps_to_success


def test_pusht_expert_holds_still_at_the_goal():
    sim = PushTSim(PushTConfig(seed=0))
    s = sim.state()
    expert = PushTExpert()
    at_goal = Observation(s.episode, s.step, s.agent, s.goal.copy(), s.goal, 1.0, True)
    assert np.all(expert.act(at_goal) == 0.0)
    sim.close()
