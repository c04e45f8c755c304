"""The local model's reward head on held frames, and its action gradient against finite differences."""

from __future__ import annotations

import numpy as np
import torch

from dmo_ros.local_model.config import LocalModelConfig
from dmo_ros.local_model.frame_reward import (
    HOLD_STEPS,
    cosine_toward,
    decoded_reward_gradients,
    gradient_drift,
    local_reward_gradients,
    local_reward_of_frames,
)
from dmo_ros.local_model.model import LocalModel
from dmo_ros.local_model.rssm import features


def _model(latent: str = "categorical") -> LocalModel:
    from dataclasses import replace

    torch.manual_seed(0)
    model = LocalModel(replace(LocalModelConfig.preset("tiny", 2, [0.2, 0.2], image_size=32), latent=latent))
    with torch.no_grad():  # DreamerV3 zero-initialises the reward head's output: a flat reward has no gradient
        for parameter in model.reward_head.parameters():
            parameter.normal_(0.0, 0.3)
    return model


def _frames(count: int = 3) -> torch.Tensor:
    return torch.randint(0, 256, (count, 3, 32, 32), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)


def _held_action_reward(model: LocalModel, frames: torch.Tensor, action: torch.Tensor, steps: int) -> torch.Tensor:
    """sum over frames and k of r̂(s_k), s_k the prior after k steps of ``action`` (N, 2) from the held posterior."""
    with torch.no_grad():
        state = model.rssm.initial(len(frames), "cpu")
        zero = torch.zeros(len(frames), 2, dtype=torch.float32)
        embed = model.encode(frames)
        for _ in range(HOLD_STEPS):
            state = model.rssm.posterior(model.rssm.prior_step(state, zero, sample=False), embed, sample=False)
        total = torch.zeros((), dtype=torch.float32)
        for _ in range(steps):
            state = model.rssm.prior_step(state, action, sample=False)
            total = total + model.reward(state).sum()
    return total


def test_the_frame_reward_is_one_value_per_frame_and_ignores_the_start_frame():
    model, frames = _model(), _frames()
    reward = local_reward_of_frames(model)
    values = reward(frames, frames[0])
    assert values.shape == (3,) and torch.isfinite(values).all()
    torch.testing.assert_close(values, reward(frames, frames[2]))
    torch.testing.assert_close(values[1:], reward(frames[1:], frames[1]))  # per frame: the batch does not mix


def test_the_action_gradient_matches_finite_differences_through_the_held_prior_steps():
    # A Gaussian latent's mode (its mean) is smooth in the action; a categorical's mode jumps (straight-through).
    model, frames = _model("gaussian"), _frames()
    for steps in (1, 3):
        gradient = local_reward_gradients(model, frames, steps)
        assert gradient.shape == (3, 2) and gradient.abs().min() > 1e-3
        epsilon = 1e-3  # float32 (the encoder casts frames to it): a central difference good to ~1e-5
        for frame in range(3):
            for axis in range(2):
                step = torch.zeros(3, 2, dtype=torch.float32)
                step[frame, axis] = epsilon
                difference = (_held_action_reward(model, frames, step, steps)
                              - _held_action_reward(model, frames, -step, steps)) / (2 * epsilon)
                torch.testing.assert_close(gradient[frame, axis], difference, rtol=2e-2, atol=2e-5)


def test_gradient_drift_tells_one_direction_everywhere_from_a_field_that_depends_on_the_place():
    points = np.stack(np.meshgrid(np.arange(0.0, 500.0, 50.0), np.arange(0.0, 500.0, 50.0)), -1).reshape(-1, 2)
    centre = np.array([225.0, 225.0])
    one_way = np.tile([3.0, 4.0], (len(points), 1)) * np.linspace(0.1, 2.0, len(points))[:, None]
    length, direction = gradient_drift(one_way)
    assert length == np.float64(1.0) or abs(length - 1.0) < 1e-9
    assert np.allclose(direction, [0.6, 0.8])
    toward_centre = centre - points  # toward one spot from all round it: the field a pushing policy needs
    assert gradient_drift(toward_centre)[0] < 0.05
    assert np.all(cosine_toward(points, toward_centre, centre) > 0.999)
    assert gradient_drift(np.zeros((4, 2)))[0] == 0.0  # no gradient: no drift



def test_the_decoded_frames_reward_gradient_matches_finite_differences():
    model, frames = _model("gaussian"), _frames()
    weights = torch.linspace(-1.0, 1.0, 3 * 32 * 32).reshape(3, 32, 32)

    def reward(images: torch.Tensor) -> torch.Tensor:  # a smooth frame reward that depends on every pixel
        return (images * weights).sum((1, 2, 3))

    def total(action: torch.Tensor, steps: int) -> torch.Tensor:
        with torch.no_grad():
            state = model.rssm.initial(len(frames), "cpu")
            zero, embed = torch.zeros(len(frames), 2), model.encode(frames)
            for _ in range(HOLD_STEPS):
                state = model.rssm.posterior(model.rssm.prior_step(state, zero, sample=False), embed, sample=False)
            value = torch.zeros(())
            for _ in range(steps):
                state = model.rssm.prior_step(state, action, sample=False)
                value = value + reward(model.decoder(features(state)).clamp(-1.0, 1.0)).sum()
        return value

    gradient = decoded_reward_gradients(model, reward, frames, 2)
    assert gradient.shape == (3, 2) and gradient.abs().min() > 1e-4
    epsilon = 1e-3
    for frame in range(3):
        for axis in range(2):
            step = torch.zeros(3, 2)
            step[frame, axis] = epsilon
            difference = (total(step, 2) - total(-step, 2)) / (2 * epsilon)
            torch.testing.assert_close(gradient[frame, axis], difference, rtol=3e-2, atol=1e-3)


def test_the_decoded_frames_reward_gradient_needs_a_decoder():
    from dataclasses import replace

    import pytest

    model = LocalModel(replace(LocalModelConfig.preset("tiny", 2, [0.2, 0.2], image_size=32), decoder_loss_scale=0.0))
    with pytest.raises(ValueError, match="no decoder"):
        decoded_reward_gradients(model, lambda images: images.sum((1, 2, 3)), _frames(), 1)
