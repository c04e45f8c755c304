"""Karras schedule by hand; Euler / Heun reach a known clean frame; reproducible, differentiable sampling."""

from __future__ import annotations

import pytest
import torch

from dmo_ros.world_model.config import SamplerConfig, WorldModelConfig
from dmo_ros.world_model.denoiser import Denoiser
from dmo_ros.world_model.sampler import DiffusionSampler, karras_sigmas

SIZE = 8


class Oracle:
    """A denoiser that knows the answer: D(x; sigma) = x0 whatever x and sigma; records its inputs."""

    def __init__(self, x0: torch.Tensor) -> None:
        self.x0 = x0
        self.calls: list[tuple[torch.Tensor, float]] = []

    def denoise(self, noisy, sigma, context_frames, context_actions):
        self.calls.append((noisy.clone(), float(sigma)))
        return self.x0.expand_as(noisy)

    def origin(self, context_frames):
        return torch.zeros(())


def context(batch: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.zeros(batch, 4, 3, SIZE, SIZE), torch.zeros(batch, 4, 2)


def test_three_step_schedule_by_hand() -> None:
    # sigma_i = (5^(1/7) + i/2 (0.002^(1/7) - 5^(1/7)))^7, then 0.
    middle = ((5 ** (1 / 7) + 0.002 ** (1 / 7)) / 2) ** 7
    sigmas = karras_sigmas(3, 2e-3, 5.0, 7.0)
    assert sigmas.tolist() == pytest.approx([5.0, middle, 0.002, 0.0], rel=1e-6)
    assert middle == pytest.approx(0.2831, abs=1e-4)
    assert karras_sigmas(1, 2e-3, 5.0, 7.0).tolist() == [5.0, 0.0]
    many = karras_sigmas(10, 2e-3, 5.0, 7.0)
    assert len(many) == 11 and bool((many[:-1] > many[1:]).all())


@pytest.mark.parametrize("order, calls", [(1, 3), (2, 5)])
def test_solver_reaches_the_clean_frame_of_an_exact_denoiser(order: int, calls: int) -> None:
    """With D = x0 the ODE ends at x0 exactly; Heun adds a correction call on every step but the last."""
    x0 = torch.rand(1, 3, SIZE, SIZE) * 2 - 1
    oracle = Oracle(x0)
    frames, actions = context()
    out = DiffusionSampler(oracle, SamplerConfig(order=order)).sample(frames, actions,
                                                                      torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, x0.expand(2, -1, -1, -1), rtol=0, atol=1e-6)
    assert len(oracle.calls) == calls
    sigmas = [sigma for _, sigma in oracle.calls]
    expected = [5.0, 0.2831, 0.002] if order == 1 else [5.0, 0.2831, 0.2831, 0.002, 0.002]
    assert sigmas == pytest.approx(expected, abs=1e-4)


def test_sampling_starts_from_sigma_max_times_unit_noise() -> None:
    oracle = Oracle(torch.zeros(1, 3, SIZE, SIZE))
    frames, actions = context(batch=64)
    DiffusionSampler(oracle, SamplerConfig(sigma_max=5.0)).sample(frames, actions)
    first = oracle.calls[0][0]
    assert first.std().item() == pytest.approx(5.0, rel=0.05) and abs(first.mean().item()) < 0.1


def tiny_denoiser() -> Denoiser:
    torch.manual_seed(0)
    model = Denoiser(WorldModelConfig.preset("tiny", 2, image_size=SIZE))
    with torch.no_grad():  # zero-initialised layers would make F = 0 and hide the inputs' influence
        for parameter in model.parameters():
            if parameter.ndim > 1 and not parameter.any():
                parameter.normal_(std=0.1)
    return model.eval()


def test_sampling_is_reproducible_with_a_generator_and_in_range() -> None:
    model = tiny_denoiser()
    frames, actions = torch.rand(2, 4, 3, SIZE, SIZE) * 2 - 1, torch.randn(2, 4, 2)
    for config in (SamplerConfig(), SamplerConfig(order=2), SamplerConfig(s_churn=1.0)):
        sampler = DiffusionSampler(model, config)
        with torch.no_grad():
            a = sampler.sample(frames, actions, torch.Generator().manual_seed(7))
            b = sampler.sample(frames, actions, torch.Generator().manual_seed(7))
            c = sampler.sample(frames, actions, torch.Generator().manual_seed(8))
        assert torch.equal(a, b) and not torch.equal(a, c)
        assert a.shape == (2, 3, SIZE, SIZE) and a.min() >= -1 and a.max() <= 1


def test_gradients_flow_through_sampling_to_the_actions() -> None:
    model = tiny_denoiser()
    frames = torch.rand(2, 4, 3, SIZE, SIZE) * 2 - 1
    actions = torch.randn(2, 4, 2, requires_grad=True)
    out = DiffusionSampler(model).sample(frames, actions, torch.Generator().manual_seed(0))
    assert out.requires_grad
    (out * torch.randn_like(out)).sum().backward()
    assert actions.grad is not None and actions.grad.abs().sum() > 0


def test_without_a_config_the_sampler_uses_the_models_sampler_steps() -> None:
    one_step = Denoiser(WorldModelConfig.preset("tiny", 2, image_size=SIZE, sampler_steps=1))
    assert DiffusionSampler(one_step).config.num_steps == 1
    assert DiffusionSampler(one_step, SamplerConfig(num_steps=4)).config.num_steps == 4  # the caller's wins
    assert DiffusionSampler(Oracle(torch.zeros(1))).config == SamplerConfig()  # DIAMOND's 3 Euler steps
    with pytest.raises(ValueError, match="sampler_steps"):
        WorldModelConfig(sampler_steps=0)


def test_change_threshold_drops_small_changes_and_shrinks_large_ones_by_it() -> None:
    last = torch.zeros(1, 4, 3, SIZE, SIZE)  # mid-grey context: 127.5 levels
    level = 1 / 127.5  # one uint8 level in [-1, 1] units
    change = torch.zeros(1, 3, SIZE, SIZE)
    change[..., 0, :] = 3 * level  # a faint haze row: below a threshold of 4 levels
    change[..., 1, :] = -3.9 * level
    change[..., 2, :] = 100 * level  # the agent arriving: kept, 4 levels fainter
    change[..., 3, :] = -60 * level
    oracle = Oracle(change)
    plain = DiffusionSampler(oracle, SamplerConfig(num_steps=1)).sample(last, torch.zeros(1, 4, 2))
    assert torch.allclose(plain, change, atol=1e-6)  # 0: the sample as the ODE returns it
    out = DiffusionSampler(oracle, SamplerConfig(num_steps=1, change_threshold=4)).sample(last, torch.zeros(1, 4, 2))
    assert (out[..., :2, :] == 0).all() and (out[..., 4:, :] == 0).all()
    assert out[..., 2, :] == pytest.approx(torch.full_like(out[..., 2, :], 96 * level), abs=1e-6)
    assert out[..., 3, :] == pytest.approx(torch.full_like(out[..., 3, :], -56 * level), abs=1e-6)
    uint8_context = torch.full((1, 4, 3, SIZE, SIZE), 128, dtype=torch.uint8)  # uint8 context: same rule
    shifted = DiffusionSampler(Oracle(change + 0.5 / 127.5), SamplerConfig(num_steps=1, change_threshold=4)).sample(
        uint8_context, torch.zeros(1, 4, 2))
    assert shifted[..., 0, :] == pytest.approx(torch.full_like(shifted[..., 0, :], 128 / 127.5 - 1), abs=1e-7)  # kept


def test_change_threshold_keeps_static_pixels_still_over_an_open_loop_rollout() -> None:
    # A model of the change that adds faint noise everywhere: without a threshold the haze builds up step by step.
    class Hazy(Oracle):
        def denoise(self, noisy, sigma, context_frames, context_actions):
            last = context_frames[:, -1]
            return last + 2 / 127.5 * torch.randn(last.shape, generator=torch.Generator().manual_seed(len(self.calls)))

        def origin(self, context_frames):
            return context_frames[:, -1]

    def rollout(threshold: float) -> torch.Tensor:
        frames = torch.zeros(1, 4, 3, SIZE, SIZE)
        sampler = DiffusionSampler(Hazy(torch.zeros(1)), SamplerConfig(num_steps=1, change_threshold=threshold))
        for _ in range(20):
            frames = torch.cat([frames[:, 1:], sampler.sample(frames, torch.zeros(1, 4, 2))[:, None]], 1)
        return frames[:, -1]

    assert rollout(0).abs().max() * 127.5 > 10  # a random walk of 2-level steps: over 10 levels in 20 steps
    assert rollout(8).abs().max() == 0  # below 4 sigma of the haze: nothing moves


def test_the_models_sampler_carries_its_change_threshold_and_bad_thresholds_are_refused() -> None:
    model = Denoiser(WorldModelConfig.preset("tiny", 2, image_size=SIZE, sampler_steps=1, sampler_change_threshold=4))
    assert DiffusionSampler(model).config == SamplerConfig(num_steps=1, change_threshold=4)
    model = tiny_denoiser()
    model.config.sampler_change_threshold = 4.0
    frames = torch.rand(2, 4, 3, SIZE, SIZE) * 2 - 1
    actions = torch.randn(2, 4, 2, requires_grad=True)
    out = DiffusionSampler(model).sample(frames, actions, torch.Generator().manual_seed(0))
    (out * torch.randn_like(out)).sum().backward()  # still differentiable to the actions
    assert actions.grad is not None and actions.grad.abs().sum() > 0
    for bad in (-1.0, float("nan"), 255.0):
        with pytest.raises(ValueError, match="change_threshold"):
            SamplerConfig(change_threshold=bad)
        with pytest.raises(ValueError, match="sampler_change_threshold"):
            WorldModelConfig(sampler_change_threshold=bad)
