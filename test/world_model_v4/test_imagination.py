"""``WorldModelV4Env``: the DIAMOND env's contract (reset from real windows, step -> frames and rewards), with
the KV cache giving the same rollout as recomputing the window."""

from __future__ import annotations

import pytest
import torch

from dmo_ros.world_model_v4.config import DynamicsConfig, TokenizerConfig
from dmo_ros.world_model_v4.imagination import WorldModelV4Env
from dmo_ros.world_model_v4.model import WorldModelV4


def tiny_model(seed: int = 0) -> WorldModelV4:
    torch.manual_seed(seed)
    tokenizer = TokenizerConfig.preset("tiny")
    dynamics = DynamicsConfig.preset("tiny", action_size=3, action_scale=[0.5, 0.5, 1.0], image_size=16,
                                     latent_tokens=tokenizer.latent_tokens, latent_dim=tokenizer.latent_dim)
    return WorldModelV4(tokenizer, dynamics).eval()


def _history(b: int = 2, length: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    frames = torch.randint(0, 256, (b, length, 3, 16, 16), generator=generator, dtype=torch.int64).to(torch.uint8)
    return frames, torch.randn(b, length, 3, generator=generator)


def test_reset_step_rollout_shapes_and_errors() -> None:
    env = WorldModelV4Env(tiny_model(), generator=torch.Generator().manual_seed(0))
    with pytest.raises(RuntimeError, match="reset"):
        env.step(torch.zeros(2, 3))
    frames, actions = _history()
    observation = env.reset(frames, actions)
    assert observation.shape == (2, 3, 16, 16) and env.rewards.shape == (2,)
    torch.testing.assert_close(observation, frames[:, -1].float() / 127.5 - 1)
    frame, reward = env.step(torch.zeros(2, 3))
    assert frame.shape == (2, 3, 16, 16) and reward.shape == (2,) and frame.abs().max() <= 1
    assert env.frames.shape == (2, 4, 3, 16, 16) and env.actions.shape == (2, 3, 3)
    torch.testing.assert_close(env.observation, frame)
    rolled, rewards = env.rollout(torch.randn(2, 5, 3))  # beyond the context of 6: the window slides
    assert rolled.shape == (2, 5, 3, 16, 16) and rewards.shape == (2, 5)
    assert env.cache.length == env.context - 1
    with pytest.raises(ValueError, match="actions must be"):
        env.step(torch.zeros(3, 3))
    with pytest.raises(ValueError, match="context actions"):
        env.reset(frames, actions[:, :1])
    with pytest.raises(ValueError, match="context frames"):
        env.reset(frames[..., :8], actions)


def test_cached_env_equals_uncached_env() -> None:
    model = tiny_model()
    frames, actions = _history()
    plan = torch.randn(2, 2, 3, generator=torch.Generator().manual_seed(3))
    results = []
    for use_cache in (True, False):
        env = WorldModelV4Env(model, generator=torch.Generator().manual_seed(0), use_cache=use_cache)
        env.reset(frames, actions)
        results.append(env.rollout(plan))
    torch.testing.assert_close(results[0][0], results[1][0], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(results[0][1], results[1][1], rtol=1e-4, atol=1e-4)


def test_restart_replaces_only_the_chosen_episodes() -> None:
    env = WorldModelV4Env(tiny_model(), generator=torch.Generator().manual_seed(0))
    frames, actions = _history(3)
    env.reset(frames, actions)
    env.step(torch.zeros(3, 3))
    kept = env.observation.clone()
    fresh_frames, fresh_actions = _history(1, 4)
    observation = env.restart(torch.tensor([1]), fresh_frames, fresh_actions)
    torch.testing.assert_close(observation[1], fresh_frames[0, -1].float() / 127.5 - 1)
    torch.testing.assert_close(observation[[0, 2]], kept[[0, 2]])
    frame, reward = env.step(torch.zeros(3, 3))
    assert frame.shape == (3, 3, 16, 16) and torch.isfinite(reward).all()
