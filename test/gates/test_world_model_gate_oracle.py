"""``scripts/world_model_gate_oracle.py``: the world-model gate's measurement on the true simulator."""

from __future__ import annotations

from script_modules import load_script

from dmo_ros.gates.world_model import COMMANDS


def test_the_true_simulator_keeps_the_agent_visible_and_moving_the_commanded_way(capsys, tmp_path):
    script = load_script("scripts/world_model_gate_oracle.py")
    assert script.main(["--episodes", "3", "--json", str(tmp_path / "oracle.json")]) == 0
    result = script.simulator_action_response(3, script.WorldModelGateConfig())
    # The gate's visibility bound is reachable: real frames never lose the agent, walls included.
    assert result["agent_visible"] == 1.0 and set(result["visible_per_step"]) == set(COMMANDS)
    assert result["right_direction_all_rollouts"] >= 0.5  # a wall may stop a held command within 3 steps
    assert "agent visible 1.000" in capsys.readouterr().out and (tmp_path / "oracle.json").is_file()
