"""The dream rollouts with a DreamerV4-style world model: L_init-frame starts, K seeds, reward-token rewards."""

from __future__ import annotations

import math

import pytest
import torch

from dmo_ros.dream.rollouts import DreamConfig, Dreamer, DreamStart, ExternalActions
from dmo_ros.world_model_v4.config import DynamicsConfig, TokenizerConfig
from dmo_ros.world_model_v4.model import WorldModelV4


def test_dreamer_drives_the_v4_model_and_reads_its_reward_token() -> None:
    torch.manual_seed(0)
    tokenizer = TokenizerConfig.preset("tiny")
    dynamics = DynamicsConfig.preset("tiny", action_size=3, image_size=16, latent_tokens=tokenizer.latent_tokens,
                                     latent_dim=tokenizer.latent_dim)
    dreamer = Dreamer(WorldModelV4(tokenizer, dynamics).eval(), DreamConfig(horizon=3, seeds=2))
    assert dreamer.context == dynamics.l_init
    frames = torch.randint(0, 256, (2, dynamics.l_init, 3, 16, 16), dtype=torch.int64).to(torch.uint8)
    dreamer.start(DreamStart(frames, torch.zeros(2, dynamics.l_init - 1, 3)), ExternalActions(3))
    steps = dreamer.rollout()
    assert len(steps) == 3
    for step in steps:
        assert step.imagined.shape == (2, 3, 16, 16) and step.imagined.dtype == torch.uint8
        assert step.rewards.shape == (2,) and not any(math.isnan(r) for r in step.rewards.tolist())
        assert step.spread.shape == (2,) and (step.spread > 0).all()  # two seeds differ


def test_bf16_is_refused_for_a_v4_model_by_name() -> None:
    tokenizer = TokenizerConfig.preset("tiny")
    dynamics = DynamicsConfig.preset("tiny", action_size=3, image_size=16, latent_tokens=tokenizer.latent_tokens,
                                     latent_dim=tokenizer.latent_dim)
    with pytest.raises(ValueError, match="bf16 samples the DIAMOND world model"):
        Dreamer(WorldModelV4(tokenizer, dynamics).eval(), DreamConfig(horizon=3, bf16=True))
