"""The reward gate passes a reward that measures the T's distance to its goal and fails one that follows the agent."""

from __future__ import annotations

import numpy as np
import torch

from dmo_ros.gates.reward import RewardGateConfig, reward_gate, reward_shape_plots, sim_frame
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


def test_a_reward_that_follows_the_agent_fails(tmp_path):
    def agent_x(frames: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
        position, _ = locate_agent(frames.numpy())
        return torch.from_numpy(np.nan_to_num(position[:, 0]) / 64.0)

    report = reward_gate(agent_x, CONFIG)
    checks = {c.name: c for c in report.checks}
    assert not checks["t_gain_over_agent_spread"].passed and not checks["t_path_spearman"].passed
    assert not report.passed
