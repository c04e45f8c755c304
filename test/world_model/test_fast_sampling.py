"""Fast sampling (the context prepared once per frame, channels-last weights) gives the reference's frames."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from dmo_ros.world_model.config import SamplerConfig, WorldModelConfig
from dmo_ros.world_model.denoiser import Denoiser
from dmo_ros.world_model.imagination import WorldModelEnv
from dmo_ros.world_model.inner_model import depth_to_space, reference_ops
from dmo_ros.world_model.sampler import DiffusionSampler

TOLERANCE = 1e-4
"""Max |frame difference| on the [-1, 1] scale that counts as unchanged (1/78 of a uint8 level)."""


def trained_looking(preset: str, seed: int = 0, **overrides) -> Denoiser:
    """A denoiser whose zero-initialised layers have small random weights (else F's output would be 0)."""
    torch.manual_seed(seed)
    denoiser = Denoiser(WorldModelConfig.preset(preset, 2, image_size=32, **overrides)).eval()
    with torch.no_grad():
        for parameter in denoiser.parameters():
            if parameter.ndim > 1 and not parameter.abs().sum():
                parameter.normal_(0.0, 0.05)
    return denoiser


def context(denoiser: Denoiser, batch: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(5)
    cfg = denoiser.config
    frames = torch.rand(batch, cfg.context, 3, cfg.image_size, cfg.image_size, generator=generator) * 2 - 1
    return frames, torch.randn(batch, cfg.context, cfg.action_size, generator=generator) * 0.2


@pytest.mark.parametrize("preset", ["tiny", "cpu", "residual"])
@pytest.mark.parametrize("sampler_config", [SamplerConfig(), SamplerConfig(order=2), SamplerConfig(s_churn=0.5),
                                            SamplerConfig(num_steps=1)])
def test_prepared_context_gives_the_reference_frames(preset, sampler_config):
    denoiser = trained_looking("cpu", predict_residual=True) if preset == "residual" else trained_looking(preset)
    frames, actions = context(denoiser)
    with torch.no_grad(), reference_ops():
        reference = DiffusionSampler(denoiser, sampler_config, fast=False).sample(
            frames, actions, torch.Generator().manual_seed(1))
        fast = DiffusionSampler(denoiser, sampler_config).sample(frames, actions, torch.Generator().manual_seed(1))
    assert DiffusionSampler(denoiser).fast and not DiffusionSampler(denoiser, fast=False).fast
    assert reference.std() > 0.05  # a real picture, not a constant
    assert (fast - reference).abs().max().item() <= TOLERANCE


def test_prepared_denoiser_matches_denoise_at_any_sigma():
    denoiser = trained_looking("cpu")
    frames, actions = context(denoiser, batch=2)
    noisy = torch.randn(2, 3, 32, 32)
    prepared = denoiser.prepare(frames, actions)
    with torch.no_grad():
        for sigma in (5.0, 0.3, 2e-3):
            expected = denoiser.denoise(noisy, sigma, frames, actions)
            assert (denoiser.denoise_prepared(noisy, sigma, prepared) - expected).abs().max() <= TOLERANCE
    with pytest.raises(ValueError, match="context frames"):
        denoiser.prepare(frames[:, :2], actions)
    with pytest.raises(ValueError, match="context actions"):
        denoiser.prepare(frames, actions[:, :, :1])


def test_channels_last_world_model_env_gives_the_same_rollout():
    frames, actions = context(trained_looking("cpu"), batch=2)
    plans = torch.randn(2, 3, 2) * 0.2
    rollouts = []
    for channels_last in (False, True):
        env = WorldModelEnv(trained_looking("cpu"), generator=torch.Generator().manual_seed(3),
                            channels_last=channels_last)
        env.reset(frames, actions)
        rollouts.append(env.rollout(plans))
        conv = env.denoiser.inner_model.conv_in.weight
        assert conv.is_contiguous(memory_format=torch.channels_last) == channels_last
    assert (rollouts[0] - rollouts[1]).abs().max().item() <= TOLERANCE


def test_the_sampling_benchmark_runs(capsys):
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "sampling_speed.py"
    spec = importlib.util.spec_from_file_location("sampling_speed", script)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        assert module.main(["--preset", "tiny", "--image-size", "32", "--batch", "2", "--rounds", "1",
                            "--repeats", "1"]) == 0
    finally:
        sys.modules.pop(spec.name, None)
    out = capsys.readouterr().out
    assert "before (per-call context, no_grad)" in out and "prepared + channels_last" in out
    rows = [line for line in out.splitlines() if line.startswith("| prepared + channels_last ")]
    assert rows and rows[0].rstrip().endswith("yes |")  # within the exact tolerance


def test_fused_operations_keep_gradients_for_training():
    denoiser = trained_looking("tiny")
    frames, actions = context(denoiser, batch=2)
    noisy = torch.randn(2, 3, 32, 32)
    with reference_ops():
        expected = denoiser.denoise(noisy, 0.7, frames, actions)
        expected.square().mean().backward()
    reference_grads = [p.grad.clone() for p in denoiser.parameters()]
    denoiser.zero_grad()
    fused = denoiser.denoise(noisy, 0.7, frames, actions)
    fused.square().mean().backward()
    assert (fused - expected).abs().max() <= TOLERANCE
    for parameter, reference in zip(denoiser.parameters(), reference_grads, strict=True):
        assert torch.allclose(parameter.grad, reference, atol=1e-5, rtol=1e-4)
    with torch.no_grad():
        assert (denoiser.denoise(noisy, 0.7, frames, actions) - expected).abs().max() <= TOLERANCE  # in place


@pytest.mark.parametrize("preset", ["tiny", "cpu"])
@pytest.mark.parametrize("steps", [3, 1])
def test_world_model_env_default_path_gives_the_reference_frames(preset, steps):
    """What imagination runs by default (channels-last weights, the conditioning prepared per frame, in-place
    operations, no grad) against the sampler as it was (per-call context, the original operations)."""
    denoiser = trained_looking(preset)
    frames, actions = context(denoiser, batch=2)
    sampler_config = SamplerConfig(num_steps=steps)
    with torch.no_grad(), reference_ops():
        reference = DiffusionSampler(denoiser, sampler_config, fast=False).sample(
            frames, actions, torch.Generator().manual_seed(2))
    env = WorldModelEnv(trained_looking(preset), sampler_config, generator=torch.Generator().manual_seed(2))
    env.reset(frames, actions[:, :-1])
    fast = env.step(actions[:, -1])
    assert reference.std() > 0.05
    assert (fast - reference).abs().max().item() <= TOLERANCE


@pytest.mark.parametrize("sampler_config", [SamplerConfig(), SamplerConfig(order=2, s_churn=0.5)])
def test_the_sampler_prepares_the_conditioning_of_every_noise_level_it_uses(sampler_config):
    denoiser = trained_looking("tiny")
    frames, actions = context(denoiser, batch=2)
    calls = []
    denoise_prepared = denoiser.denoise_prepared

    def spy(noisy, sigma, prepared):
        calls.append(sigma in prepared.modulations)
        return denoise_prepared(noisy, sigma, prepared)

    denoiser.denoise_prepared = spy
    with torch.no_grad():
        DiffusionSampler(denoiser, sampler_config).sample(frames, actions)
    assert calls and all(calls)


def test_prepared_modulations_match_the_conditioning_vector():
    denoiser = trained_looking("cpu")
    frames, actions = context(denoiser, batch=2)
    noisy = torch.randn(2, 3, 32, 32)
    sigmas = [5.0, 0.3]
    prepared = denoiser.prepare(frames, actions, sigmas)
    assert set(prepared.modulations) == set(sigmas)
    plain = denoiser.prepare(frames, actions)
    assert not plain.modulations
    with torch.no_grad():
        for sigma in sigmas:
            expected = denoiser.denoise(noisy, sigma, frames, actions)
            assert (denoiser.denoise_prepared(noisy, sigma, prepared) - expected).abs().max() <= TOLERANCE
            assert (denoiser.denoise_prepared(noisy, sigma, plain) - expected).abs().max() <= TOLERANCE


def test_fast_sampling_keeps_gradients_to_the_actions():
    denoiser = trained_looking("tiny")
    frames, actions = context(denoiser, batch=2)
    grads = []
    for fast in (False, True):
        wanted = actions.clone().requires_grad_(True)
        sampled = DiffusionSampler(denoiser, fast=fast).sample(frames, wanted, torch.Generator().manual_seed(4))
        sampled.square().mean().backward()
        grads.append(wanted.grad)
    assert grads[0].abs().sum() > 0
    assert torch.allclose(grads[0], grads[1], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("channels_last", [False, True])
def test_depth_to_space_is_pixel_shuffle(channels_last):
    x = torch.randn(2, 12, 5, 7)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    out = depth_to_space(x, 2)
    assert torch.equal(out, torch.nn.functional.pixel_shuffle(x, 2))
    assert out.is_contiguous()
