"""The reward gate passes a reward that measures the T's distance to its goal and fails one that follows the agent."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dmo_ros.gates.reward import (
    ReachRewardGateConfig,
    RewardGateConfig,
    agent_grid,
    cosine_with_t_way,
    hill_climb_ends,
    reach_reward_gate,
    reach_reward_map_plot,
    reward_gate,
    reward_shape_plots,
    sim_frame,
)
from dmo_ros.sims.pusht import PushTConfig, PushTSim
from dmo_ros.sims.pusht_frames import locate_agent, locate_block

CONFIG = RewardGateConfig(episodes=3, steps=10, agent_places=6, expert_runs=2, expert_steps=60)


def _goal_centroid() -> np.ndarray:
    sim = PushTSim(PushTConfig())
    env = sim.env
    env.block.angle = float(env.goal_pose[2])
    env.block.position = tuple(float(v) for v in env.goal_pose[:2])
    env.space.reindex_shapes_for_body(env.block)
    position, _ = locate_block(sim_frame(sim, 64))
    sim.close()
    return position


def test_a_reward_of_the_t_distance_to_its_goal_passes_the_shape_checks(tmp_path):
    goal = _goal_centroid()

    def t_distance(frames: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
        position, _ = locate_block(frames.numpy())
        return torch.from_numpy(-np.linalg.norm(position - goal, axis=-1) / 10.0)

    report = reward_gate(t_distance, CONFIG)
    checks = {c.name: c for c in report.checks}
    assert checks["t_path_spearman"].passed and checks["t_path_spearman"].value > 0.95, report.format()
    assert checks["t_gain_over_agent_spread"].value > 10, report.format()
    png = reward_shape_plots(report, tmp_path / "reward_shape.png")
    assert png.stat().st_size > 10_000


def test_the_first_half_gain_tells_a_reward_with_slope_far_from_the_goal_from_one_that_rises_only_near_it():
    goal = _goal_centroid()

    def distance(frames: torch.Tensor) -> np.ndarray:
        position, _ = locate_block(frames.numpy())
        return np.linalg.norm(position - goal, axis=-1)

    def linear(frames, start):  # falls with the T's distance all the way (half its gain in the first half)
        return torch.from_numpy(-distance(frames) / 10.0)

    def late(frames, start):  # flat until the T is within 2 px of its goal, then rises (what rung 0 cannot follow)
        return torch.from_numpy(np.clip(2.0 - distance(frames), 0.0, None))

    shares = {}
    for name, reward in (("linear", linear), ("late", late)):
        report = reward_gate(reward, CONFIG)
        shares[name] = report.metrics["t_gain_first_half"] / report.metrics["t_gain"]
        assert any(note.startswith("first half of the T-only path: gain") for note in report.notes), report.format()
    assert 0.35 < shares["linear"] < 0.65 and abs(shares["late"]) < 0.05, shares


def test_a_reward_that_follows_the_agent_fails(tmp_path):
    def agent_x(frames: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
        position, _ = locate_agent(frames.numpy())
        return torch.from_numpy(np.nan_to_num(position[:, 0]) / 64.0)

    report = reward_gate(agent_x, CONFIG)
    checks = {c.name: c for c in report.checks}
    assert not checks["t_gain_over_agent_spread"].passed and not checks["t_path_spearman"].passed
    assert not report.passed


# -- reach tasks ---------------------------------------------------------------------------------------------

REACH = ReachRewardGateConfig(task="reach_fixed", step=36.0)
"""A 36 u grid has a spot 4 u from reach_fixed's target (384, 128): (380, 128)."""
TARGET = np.array((384.0, 128.0))


def _agent_spots(frames: torch.Tensor) -> list[np.ndarray]:
    return [locate_agent(frame.permute(1, 2, 0).numpy())[0] * 512 / 64 for frame in frames]


def test_a_reward_of_the_agents_distance_to_the_target_passes_the_reach_gate(tmp_path):
    def distance(frames, start):
        return torch.tensor([-np.linalg.norm(spot - TARGET) for spot in _agent_spots(frames)])

    report = reach_reward_gate(distance, REACH)
    assert report.passed, report.format()
    grid = np.asarray(report.metrics["map"]["points"])
    assert grid.min() == 20.0 and grid.max() == 492.0  # the agent's whole reachable range, walls included
    shape = {**report.metrics["map"], "ascent": 1.0, "spearman": 1.0}
    png = reach_reward_map_plot({"distance": shape}, np.full((64, 64, 3), 255, np.uint8), tmp_path / "map.png")
    assert png.stat().st_size > 5_000


def test_a_reward_that_is_also_high_in_a_corner_or_peaks_off_target_or_is_flat_fails_the_reach_gate():
    def wall_trap(frames, start):  # the distance, but the walls outscore the open arena beside them
        return torch.tensor([-np.linalg.norm(spot - TARGET) + 300.0 * (min(spot) < 40 or max(spot) > 470)
                             for spot in _agent_spots(frames)])

    failed = {c.name for c in reach_reward_gate(wall_trap, REACH).failed}
    assert "ascent" in failed and "peak_offset_u" in failed

    def off_target(frames, start):  # smooth, but its peak is 60 u from the target
        return torch.tensor([-np.linalg.norm(spot - TARGET - 60.0) for spot in _agent_spots(frames)])

    assert "peak_offset_u" in {c.name for c in reach_reward_gate(off_target, REACH).failed}
    flat = reach_reward_gate(lambda frames, start: torch.zeros(len(frames)), REACH)
    assert {c.name for c in flat.failed} >= {"ascent", "distance_spearman"}


def test_hill_climbs_end_on_local_maxima():
    points = np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [3.0, 0.0]])
    ends = hill_climb_ends(points, np.array([0.0, 1.0, 0.5, 2.0]), step=1.0)
    np.testing.assert_array_equal(ends[:, 0], [1.0, 1.0, 3.0, 3.0])


def test_the_reach_gate_takes_only_reach_tasks():
    import pytest

    with pytest.raises(ValueError, match="no agent target"):
        ReachRewardGateConfig(task="push_t")


def test_a_reach_task_is_sent_to_the_reach_gate():
    with pytest.raises(ValueError, match="reach gate"):
        RewardGateConfig(task="reach_fixed")


def test_the_cosine_with_the_t_way_points_from_the_t_to_its_goal():
    sim = PushTSim(PushTConfig(task="push_t", seed=3))
    state = sim.state()
    sim.close()
    way = state.goal[:2] - state.block[:2]
    assert cosine_with_t_way(state, way * 7.0) == pytest.approx(1.0)
    assert cosine_with_t_way(state, -way) == pytest.approx(-1.0)
    assert cosine_with_t_way(state, np.array([-way[1], way[0]])) == pytest.approx(0.0, abs=1e-9)


def test_agent_grid_can_first_move_the_t_to_a_given_pose():
    sim = PushTSim(PushTConfig(task="push_region", seed=3))
    try:
        pose = np.array([300.0, 200.0, 0.5])
        points, frames, states = agent_grid(sim, 128.0, 32, block=pose)
        assert len(points) == len(frames) == len(states) > 0
        assert all(np.allclose(state.block, pose, atol=1e-6) for state in states)
    finally:
        sim.close()
