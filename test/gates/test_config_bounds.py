"""Every gate config refuses counts below one and bounds out of range (nan included) before anything is measured:
a gate measured with zero episodes wrote nan into gate.json."""

from __future__ import annotations

import math

import pytest

from dmo_ros.gates.cli import main as gate_main
from dmo_ros.gates.local_model import LocalModelGateConfig
from dmo_ros.gates.reward import ReachRewardGateConfig, RewardGateConfig
from dmo_ros.gates.world_model import WorldModelGateConfig

BAD = [
    (RewardGateConfig, "episodes", 0, "episodes must be >= 1"),
    (RewardGateConfig, "expert_steps", -3, "expert_steps must be >= 1"),
    (RewardGateConfig, "min_path_spearman", math.nan, "min_path_spearman must be in \\[-1, 1\\]"),
    (RewardGateConfig, "min_gain_over_spread", 0.0, "min_gain_over_spread must be a number > 0"),
    (ReachRewardGateConfig, "step", math.nan, "step must be a number > 0"),
    (ReachRewardGateConfig, "min_ascent", 1.5, "min_ascent must be in \\[0, 1\\]"),
    (LocalModelGateConfig, "probes", 0, "probes must be >= 1"),
    (LocalModelGateConfig, "agent_only_episodes", -1, "agent_only_episodes must be >= 0"),
    (LocalModelGateConfig, "epsilon", math.inf, "epsilon must be a number > 0"),
    (LocalModelGateConfig, "min_gradient_cosine", 2.0, "min_gradient_cosine must be in \\[-1, 1\\]"),
    (WorldModelGateConfig, "windows", 0, "windows must be >= 1"),
    (WorldModelGateConfig, "speed", -0.2, "speed must be a number > 0"),
    (WorldModelGateConfig, "min_visible", math.nan, "min_visible must be in \\[0, 1\\]"),
]


@pytest.mark.parametrize(("config", "field", "value", "message"), BAD, ids=[f"{c.__name__}-{f}" for c, f, _, _ in BAD])
def test_a_gate_config_out_of_range_is_refused_naming_the_field(config, field, value, message):
    with pytest.raises(ValueError, match=message):
        config(**{field: value})


@pytest.mark.parametrize("config", [RewardGateConfig, ReachRewardGateConfig, LocalModelGateConfig,
                                    WorldModelGateConfig])
def test_the_defaults_are_in_range(config):
    config()


def test_dmo_gate_refuses_zero_episodes_naming_the_option_before_reading_the_run(tmp_path, capsys):
    """The run folder does not exist: the option is checked first, and named as typed."""
    assert gate_main(["reward", str(tmp_path / "no_run"), "--goal", str(tmp_path / "goal.png"),
                      "--episodes", "0"]) == 2
    assert capsys.readouterr().err.strip() == "dmo-gate: error: --episodes must be >= 1, got 0"


@pytest.mark.parametrize("component", ["reward", "local-model", "world-model", "world-model-paths"])
def test_dmo_gate_help_states_each_options_own_default(component, capsys):
    """dmo-gate has no presets: its help said "(default: from the preset)" for every option."""
    with pytest.raises(SystemExit):
        gate_main([component, "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "(default: from the preset)" not in out
    assert "(default: 0.95)" in out if component == "world-model-paths" else "(default: 0)" in out
