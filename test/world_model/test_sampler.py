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
