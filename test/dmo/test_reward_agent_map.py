"""``scripts/reward_agent_map.py``: the reward over agent positions, for the reach tasks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from script_modules import load_script


def _script():
    return load_script("scripts/reward_agent_map.py")


def test_a_reward_that_measures_the_distance_to_the_target_scores_one(monkeypatch):
    """A reward that reads the agent's distance to the target off the frame ranks the grid perfectly; one that
    ignores the frame does not."""
    from dmo_ros.sims.pusht_frames import locate_agent

    script = _script()
    target = np.array((384.0, 128.0))

    def distance_reward(frames, start):
        spots = [locate_agent(frame.permute(1, 2, 0).numpy())[0] * 512 / 64 for frame in frames]
        return torch.tensor([-np.linalg.norm(spot - target) for spot in spots])

    result = script.reward_agent_map(distance_reward, "reach_fixed", step=64.0)
    assert result["spearman"] > 0.95 and np.linalg.norm(result["best"] - target) < 64
    assert result["near"] > result["far"] and result["ascent"] > 0.95
    # The grid reaches the walls: a reward that is also high in a corner traps the climbs that start near it.
    assert result["points"].min() == 20.0 and result["points"].max() == 492.0

    def corner_trap(frames, start):
        spots = [locate_agent(frame.permute(1, 2, 0).numpy())[0] * 512 / 64 for frame in frames]
        return torch.tensor([-np.linalg.norm(spot - target) + 600.0 * (min(spot) > 420) for spot in spots])

    trapped = script.reward_agent_map(corner_trap, "reach_fixed", step=64.0)
    assert trapped["ascent"] < 0.9 and trapped["best"].min() > 420
    flat = script.reward_agent_map(lambda frames, start: torch.zeros(len(frames)), "reach_fixed", step=64.0)
    assert not flat["spearman"] > 0.5
    with pytest.raises(ValueError, match="no agent target"):
        script.reward_agent_map(distance_reward, "push_t")


def test_the_command_draws_the_map_and_refuses_a_missing_run(policy_inputs, tmp_path, capsys):
    script = _script()
    out = tmp_path / "map.png"
    assert script.main(["--reward-run", str(policy_inputs["reward"]), "--goal", str(policy_inputs["goal"]),
                        "--local-model", str(policy_inputs["local_model"]), "--step", "96", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert out.is_file() and "learned reward: Spearman(reward, -distance to the target)" in printed
    assert "local model's reward head: Spearman" in printed
    assert script.main(["--reward-run", str(tmp_path / "none"), "--goal", str(policy_inputs["goal"])]) == 2
    assert "reward_agent_map: error" in capsys.readouterr().err
