"""``scripts/reward_along_task_paths.py``: the reward along a pushing task's T paths, by distance to the goal."""

from __future__ import annotations

import numpy as np
import pytest
from script_modules import load_script


def _script():
    return load_script("scripts/reward_along_task_paths.py")


def test_the_bands_average_the_rewards_they_hold():
    path = np.array([[5.0, 1.0], [8.0, 3.0], [25.0, -1.0], [50.0, -2.0], [200.0, 9.0]])
    rows = {(low, high): (count, mean) for low, high, count, mean, _ in _script().band_means(path)}
    assert rows[(0, 10)] == (2, 2.0) and rows[(20, 30)] == (1, -1.0) and rows[(45, 60)] == (1, -2.0)
    assert rows[(10, 20)][0] == 0 and np.isnan(rows[(10, 20)][1])  # empty band: no number, not 0
    assert sum(count for count, _ in rows.values()) == 4  # 200 u lies past the last band


def test_the_command_prints_every_band_and_the_rise_over_the_agent_spread(policy_inputs, capsys):
    assert _script().main(["--reward-run", str(policy_inputs["reward"]), "--goal", str(policy_inputs["goal"]),
                           "--episodes", "2"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("u from the goal") == 7
    assert "agent-only spread" in printed and "rise 45-60 u -> 20-30 u" in printed


@pytest.mark.parametrize("argv", [["--task", "reach_fixed"], ["--episodes", "0"]])
def test_a_task_without_a_t_path_or_no_episodes_is_refused(policy_inputs, argv, capsys):
    with pytest.raises(SystemExit) as stop:
        _script().main(["--reward-run", str(policy_inputs["reward"]), "--goal", str(policy_inputs["goal"]), *argv])
    assert stop.value.code == 2 and "must be" in capsys.readouterr().err
