"""Generating the next frame: EDM sampling on the Karras noise schedule (Euler, or Heun), as in DIAMOND.

The probability-flow ODE ``dx/dsigma = (x - D(x; sigma)) / sigma`` is integrated from
``x = origin + sigma_max * n`` (n ~ N(0, I); origin 0, or the last context frame for a model of
the change) down to sigma = 0 over the Karras schedule. With DIAMOND's
3 Euler steps that is 3 denoiser calls per frame. Heun (``order=2``) corrects each step with a
second call, except the last step (to sigma = 0, where the ODE's slope is undefined).

Sampling runs with whatever autograd mode the caller is in: no ``no_grad`` inside, so a caller
may backpropagate through the generated frames (to the actions or the context).
"""

from __future__ import annotations

import itertools
import math
from typing import Protocol

import torch
from torch import Tensor

from dmo_ros.world_model.config import SamplerConfig


class SupportsDenoise(Protocol):
    def denoise(self, noisy: Tensor, sigma: Tensor | float, context_frames: Tensor,
                context_actions: Tensor) -> Tensor: ...

    def origin(self, context_frames: Tensor) -> Tensor:
        """Where sampling is centred: the initial state is ``origin + sigma_max * noise``."""
        ...


def karras_sigmas(num_steps: int, sigma_min: float, sigma_max: float, rho: float,
                  device: torch.device | str | None = None) -> Tensor:
    """``num_steps`` noise levels from sigma_max to sigma_min, evenly spaced in sigma^(1/rho), then 0.

    ``sigma_i = (sigma_max^(1/rho) + i / (n - 1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho``; one step
    is just sigma_max. Returns (num_steps + 1,) float32.
    """
    if num_steps < 1:
        raise ValueError(f"num_steps must be at least 1, got {num_steps}")
    ramp = torch.linspace(0, 1, num_steps, dtype=torch.float64)
    low, high = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    sigmas = (high + ramp * (low - high)) ** rho
    return torch.cat([sigmas, sigmas.new_zeros(1)]).to(device=device, dtype=torch.float32)


def soft_threshold_change(frame: Tensor, last: Tensor, levels: float) -> Tensor:
    """``frame`` (B, C, H, W) in [-1, 1] with its change from ``last`` (the last context frame, uint8 or float in
    [-1, 1]) soft-thresholded at ``levels`` uint8 levels: ``last + sign(d) max(|d| - t, 0)``, d the change.
    Differentiable almost everywhere (a caller may backpropagate through it)."""
    last = last.float() / 127.5 - 1 if last.dtype == torch.uint8 else last
    change = frame - last
    threshold = levels / 127.5  # uint8 levels in [-1, 1] units
    return last + change.sign() * (change.abs() - threshold).clamp(min=0)


class DiffusionSampler:
    """Samples next frames from a denoiser given context frames and actions."""

    def __init__(self, denoiser: SupportsDenoise, config: SamplerConfig | None = None, fast: bool = True) -> None:
        self.denoiser = denoiser
        # No config: the model's own default (its config's sampler_steps), else DIAMOND's 3 Euler steps.
        self.config = config or getattr(denoiser, "sampler_config", None) or SamplerConfig()
        self.fast = fast and hasattr(denoiser, "prepare") and hasattr(denoiser, "denoise_prepared")
        """Prepare the context once per frame (:meth:`Denoiser.prepare`): the same frames up to float rounding
        (``benchmarks/sampling_speed.py`` measures both); False runs every call through ``denoise``."""
        cfg = self.config
        self.sigmas = karras_sigmas(cfg.num_steps, cfg.sigma_min, cfg.sigma_max, cfg.rho)
        """(num_steps + 1,) the schedule, ending with 0 (on the CPU; steps use Python floats)."""

    def sample(self, context_frames: Tensor, context_actions: Tensor,
               generator: torch.Generator | None = None) -> Tensor:
        """The next frame (B, C, H, W), float in [-1, 1] (clamped).

        Args:
            context_frames: (B, L, C, H, W) past frames, float in [-1, 1] (uint8 is converted by the denoiser).
            context_actions: (B, L, A) raw actions; the last leads to the frame sampled.
            generator: source of the initial (and churn) noise, for reproducible samples; its
                device may differ from the frames' (the noise is moved).
        """
        cfg = self.config
        b, _, c, h, w = context_frames.shape
        device = context_frames.device

        def noise() -> Tensor:
            where = generator.device if generator is not None else device
            return torch.randn((b, c, h, w), generator=generator, device=where).to(device)

        sigmas = self.sigmas.tolist()
        gamma = min(cfg.s_churn / cfg.num_steps, math.sqrt(2) - 1)
        if self.fast:  # every noise level the denoiser will be called at: its conditioning is prepared with the context
            levels = [sigma * (1 + gamma) for sigma in sigmas[:-1]]
            levels += [sigma for sigma in sigmas[1:-1] if cfg.order == 2]
            prepared = self.denoiser.prepare(context_frames, context_actions, levels)

            def denoise(x: Tensor, sigma: float) -> Tensor:
                return self.denoiser.denoise_prepared(x, sigma, prepared)
        else:
            def denoise(x: Tensor, sigma: float) -> Tensor:
                return self.denoiser.denoise(x, sigma, context_frames, context_actions)

        x = self.denoiser.origin(context_frames) + sigmas[0] * noise()
        for sigma, next_sigma in itertools.pairwise(sigmas):
            sigma_hat = sigma * (1 + gamma)
            if gamma > 0:  # churn: raise the noise level a little with fresh noise
                x = x + math.sqrt(sigma_hat**2 - sigma**2) * noise()
            denoised = denoise(x, sigma_hat)
            if next_sigma == 0 and self.fast:  # the last Euler step lands on D(x) itself: x + (0 - s) (x - D) / s
                x = denoised
                continue
            slope = (x - denoised) / sigma_hat
            x_next = x + (next_sigma - sigma_hat) * slope
            if cfg.order == 2 and next_sigma > 0:
                next_slope = (x_next - denoise(x_next, next_sigma)) / next_sigma
                x_next = x + (next_sigma - sigma_hat) * (slope + next_slope) / 2
            x = x_next
        if cfg.change_threshold > 0:
            x = soft_threshold_change(x, context_frames[:, -1], cfg.change_threshold)
        return x.clamp(-1, 1)
