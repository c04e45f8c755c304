"""Config validation: presets, strict loading, messages that say what to fix."""

from __future__ import annotations

from dataclasses import asdict

import pytest

from dmo_ros.world_model_v4.config import DynamicsConfig, TokenizerConfig


def test_presets_and_round_trip() -> None:
    for name in ("tiny", "cpu", "gpu"):
        tokenizer = TokenizerConfig.preset(name)
        dynamics = DynamicsConfig.preset(name, action_size=3)
        assert TokenizerConfig.from_dict(asdict(tokenizer)) == tokenizer
        assert DynamicsConfig.from_dict(asdict(dynamics)) == dynamics
    gpu = DynamicsConfig.preset("gpu")
    assert gpu.context == 96 and gpu.l_init == 32 and gpu.sampling_steps == 4 and gpu.temporal_every == 4
    assert DynamicsConfig().tokens_per_frame == 16 + 2 + 2


def test_unknown_keys_and_bad_values_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown DynamicsConfig keys"):
        DynamicsConfig.from_dict({"widht": 3})
    with pytest.raises(ValueError, match="unknown TokenizerConfig keys"):
        TokenizerConfig.from_dict({"latent": 3})
    with pytest.raises(ValueError, match="unknown .* preset"):
        DynamicsConfig.preset("huge")
    with pytest.raises(ValueError, match="l_init"):
        DynamicsConfig(context=8, l_init=16)
    with pytest.raises(ValueError, match="power of two"):
        DynamicsConfig(k_max=24)
    with pytest.raises(ValueError, match="patch_size"):
        TokenizerConfig(image_size=64, patch_size=6)
    with pytest.raises(ValueError, match="action_scale"):
        DynamicsConfig(action_size=3, action_scale=[1.0])
