"""The EDM denoiser of the DIAMOND-style world model: preconditioning, training loss, loading a run.

Karras et al. (2022), "Elucidating the design space of diffusion-based generative models" (EDM),
as used by DIAMOND. With the network F (:class:`~dmo_ros.world_model.inner_model.InnerModel`)::

    D(x_sigma) = c_skip(sigma) x_sigma + c_out(sigma) F(c_in(sigma) x_sigma, c_noise(sigma), context)

    c_in = 1 / sqrt(sigma^2 + sigma_d^2)      c_skip = sigma_d^2 / (sigma^2 + sigma_d^2)
    c_out = sigma sigma_d / sqrt(sigma^2 + sigma_d^2)      c_noise = ln(sigma) / 4

Training draws ``ln(sigma) ~ N(loc, scale^2)`` (clipped) per sample, noises the next frame
``x_sigma = x_0 + sigma n`` and regresses F on its own target ``(x_0 - c_skip x_sigma) / c_out``,
which has unit variance at every noise level (EDM's loss weighting folded in).

With ``config.predict_residual`` the same EDM process runs on ``x_0 - f_t``, the change from the
last context frame ``f_t``: D of a noisy frame is ``f_t + D_residual(x_sigma - f_t)``, so callers
(the sampler, imagination) still see frames. ``config.change_weight`` weights the loss on the
pixels that change between ``f_t`` and the target.

Image convention inside the model: float32 in [-1, 1] = uint8 / 127.5 - 1, channels first.
Actions enter in the robot's units and are divided by ``config.action_scale`` here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from dmo_ros.dataset.loaders import Window
from dmo_ros.world_model.config import SamplerConfig, WorldModelConfig
from dmo_ros.world_model.inner_model import ContextFeatures, InnerModel, Modulation
from dmo_ros.world_model.sampler import DiffusionSampler


class PreparedContext(NamedTuple):
    """A context prepared once per generated frame (:meth:`Denoiser.prepare`)."""

    features: ContextFeatures
    batch: int
    origin: Tensor | None = None
    """The last context frame where the model diffuses the change from it (``predict_residual``), else None."""
    modulations: dict[float, Modulation] = {}
    """The UNet's adaptive-GroupNorm scales and shifts at the noise levels the sampler announced, by level."""


class Preconditioning(NamedTuple):
    """EDM's four scalings at a noise level (each shaped like ``sigma``)."""

    c_in: Tensor
    c_skip: Tensor
    c_out: Tensor
    c_noise: Tensor


def edm_preconditioning(sigma: Tensor, sigma_data: float) -> Preconditioning:
    """c_in, c_skip, c_out, c_noise of EDM at noise level(s) ``sigma`` (> 0)."""
    variance = sigma**2 + sigma_data**2
    return Preconditioning(
        c_in=variance.rsqrt(),
        c_skip=sigma_data**2 / variance,
        c_out=sigma * sigma_data * variance.rsqrt(),
        c_noise=sigma.log() / 4,
    )


def to_model_range(frames: Tensor) -> Tensor:
    """uint8 images in [0, 255] -> float32 in [-1, 1]; float input is taken as already in [-1, 1]."""
    if frames.dtype == torch.uint8:
        return frames.float() / 127.5 - 1
    return frames.float()


def to_uint8(frames: Tensor) -> Tensor:
    """Float images in [-1, 1] -> uint8 in [0, 255] (rounded, clamped); the inverse of :func:`to_model_range`."""
    return ((frames.detach().float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)


CHANGE_THRESHOLD = 0.1
"""A pixel "changes" when some channel moves more than this (in [-1, 1] units, ~13/255) between frames."""


def _per_sample(value: Tensor, batch: int, device: torch.device) -> Tensor:
    """A scalar or (B,) noise level as a float (B,) tensor."""
    value = torch.as_tensor(value, dtype=torch.float32, device=device)
    return value.expand(batch) if value.ndim == 0 else value.reshape(batch)


class Denoiser(nn.Module):
    """D(x_sigma | past frames, past actions) with EDM preconditioning; trains with ``forward(window)``."""

    def __init__(self, config: WorldModelConfig) -> None:
        super().__init__()
        self.config = config
        self.inner_model = InnerModel(config)
        # From the config, not the weights (persistent=False): config.json stays the one source of truth.
        self.register_buffer("action_scale", torch.tensor(config.action_scale, dtype=torch.float32),
                             persistent=False)

    @classmethod
    def from_config(cls, config: WorldModelConfig) -> Denoiser:
        return cls(config)

    @property
    def num_parameters(self) -> int:
        """Trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    @property
    def sampler_config(self) -> SamplerConfig:
        """How this model is sampled by default: ``config.sampler_steps`` deterministic Euler steps, the change
        thresholded at ``config.sampler_change_threshold``."""
        return SamplerConfig(num_steps=self.config.sampler_steps,
                             change_threshold=self.config.sampler_change_threshold)

    def sampler_with(self, change_threshold: float | None = None, bf16: bool | None = None) -> SamplerConfig:
        """This model's own sampler, with ``change_threshold`` (uint8 levels) and ``bf16`` (bfloat16 autocast, see
        :attr:`SamplerConfig.bf16`) in place of its own where given."""
        changes = {name: value for name, value in (("change_threshold", change_threshold), ("bf16", bf16))
                   if value is not None}
        return replace(self.sampler_config, **changes) if changes else self.sampler_config

    @property
    def device(self) -> torch.device:
        return self.inner_model.conv_in.weight.device

    # -- the denoiser -------------------------------------------------------------------------

    def _check_inputs(self, noisy: Tensor, context_frames: Tensor, context_actions: Tensor) -> None:
        cfg = self.config
        size, channels, length = cfg.image_size, cfg.image_channels, cfg.context
        if noisy.ndim != 4 or tuple(noisy.shape[1:]) != (channels, size, size):
            raise ValueError(f"next frames must be (B, {channels}, {size}, {size}), got {tuple(noisy.shape)}")
        if tuple(context_frames.shape[1:]) != (length, channels, size, size):
            raise ValueError(
                f"context frames must be (B, {length}, {channels}, {size}, {size}), got {tuple(context_frames.shape)}"
            )
        if tuple(context_actions.shape[1:]) != (length, cfg.action_size):
            raise ValueError(f"context actions must be (B, {length}, {cfg.action_size}), "
                             f"got {tuple(context_actions.shape)}")

    def model_output(self, noisy: Tensor, conditioning: Preconditioning, context_frames: Tensor,
                     context_actions: Tensor) -> Tensor:
        """F's output for noisy frames (B, C, H, W), float context in [-1, 1], raw actions."""
        b = noisy.shape[0]
        return self.inner_model(
            noisy * conditioning.c_in.view(b, 1, 1, 1),
            conditioning.c_noise.view(b),
            context_frames / self.config.sigma_data,  # unit variance, like the scaled noisy input
            context_actions / self.action_scale,
        )

    def denoise(self, noisy: Tensor, sigma: Tensor | float, context_frames: Tensor, context_actions: Tensor) -> Tensor:
        """D(x_sigma): the estimate of the clean next frame (float, nominally [-1, 1]; not clamped).

        Args:
            noisy: (B, C, H, W) noisy next frame x_sigma.
            sigma: its noise level, a scalar or (B,).
            context_frames: (B, L, C, H, W) float in [-1, 1] (or uint8, converted).
            context_actions: (B, L, A) raw actions; ``context_actions[:, -1]`` leads to the next frame.
        Differentiable (no ``no_grad`` here: a caller may backpropagate through sampling).
        """
        context_frames = to_model_range(context_frames)
        self._check_inputs(noisy, context_frames, context_actions)
        b = noisy.shape[0]
        sigma = _per_sample(sigma, b, noisy.device)
        origin = self.origin(context_frames)
        noisy = noisy - origin
        conditioning = edm_preconditioning(sigma, self.config.sigma_data)
        output = self.model_output(noisy, conditioning, context_frames, context_actions.float())
        return origin + conditioning.c_skip.view(b, 1, 1, 1) * noisy + conditioning.c_out.view(b, 1, 1, 1) * output

    def origin(self, context_frames: Tensor) -> Tensor:
        """What the diffused variable is measured from: the last context frame (B, C, H, W) when
        ``predict_residual``, else 0. The sampler starts from ``origin + sigma_max * noise``."""
        if self.config.predict_residual:
            return to_model_range(context_frames[:, -1])
        return torch.zeros((), device=context_frames.device)

    def prepare(self, context_frames: Tensor, context_actions: Tensor,
                sigmas: Sequence[float] = ()) -> PreparedContext:
        """Checks and scales the context once, and computes its share of the network (the stem's context
        channels, the action embedding), for every denoiser call of one generated frame
        (:meth:`denoise_prepared`). Same arguments as :meth:`denoise`, and the noise levels ``sigmas`` the
        calls will use (optional): the conditioning at those levels (every adaptive GroupNorm's scale and
        shift) is computed here too, in one batch."""
        context_frames = to_model_range(context_frames)
        b = context_frames.shape[0]
        cfg = self.config
        size, channels = cfg.image_size, cfg.image_channels
        if context_frames.ndim != 5:
            raise ValueError(f"context frames must be (B, {cfg.context}, {channels}, {size}, {size}), "
                             f"got {tuple(context_frames.shape)}")
        self._check_inputs(context_frames[:, 0], context_frames, context_actions)  # the next frame's shape
        features = self.inner_model.prepare_context(context_frames / cfg.sigma_data,
                                                    context_actions.float() / self.action_scale)
        origin = context_frames[:, -1] if cfg.predict_residual else None
        levels = list(dict.fromkeys(sigmas))  # distinct, in order
        if not levels:
            return PreparedContext(features, b, origin)
        c_noise = torch.tensor([math.log(sigma) / 4 for sigma in levels], device=context_frames.device)
        modulations = self.inner_model.modulations(c_noise[:, None].expand(-1, b), features)
        return PreparedContext(features, b, origin, dict(zip(levels, modulations, strict=True)))

    def denoise_prepared(self, noisy: Tensor, sigma: float, context: PreparedContext) -> Tensor:
        """:meth:`denoise` at one noise level ``sigma`` (a Python float) for a prepared context: the same
        output up to float rounding, without repeating the context's work (the fast path of sampling)."""
        b = context.batch
        variance = sigma**2 + self.config.sigma_data**2
        c_in, c_skip = variance**-0.5, self.config.sigma_data**2 / variance
        c_out = sigma * self.config.sigma_data * variance**-0.5
        c_noise = torch.full((b,), math.log(sigma) / 4, device=noisy.device)
        if context.origin is not None:  # predict_residual: the process runs on the change from the last frame
            noisy = noisy - context.origin
        output = self.inner_model.forward_prepared(noisy * c_in, c_noise, context.features,
                                                   context.modulations.get(sigma))
        denoised = torch.add(output * c_out, noisy, alpha=c_skip)
        return denoised if context.origin is None else denoised + context.origin

    # -- training -----------------------------------------------------------------------------

    def sample_sigma(self, batch: int, device: torch.device | str) -> Tensor:
        """Training noise levels: log-normal(loc, scale), clipped to [sigma_min, sigma_max]."""
        cfg = self.config
        log_sigma = torch.randn(batch, device=device) * cfg.sigma_scale + cfg.sigma_loc
        return log_sigma.exp().clamp(cfg.sigma_min, cfg.sigma_max)

    def _split_window(self, batch: Window) -> tuple[Tensor, Tensor, Tensor]:
        """(context frames, context actions, target frame) of a batch of windows, frames float in [-1, 1]."""
        length = self.config.context
        if batch.frames.ndim != 5:
            raise ValueError(f"expected a batch of windows, frames (B, T, C, H, W), got {tuple(batch.frames.shape)}")
        if batch.context != length or batch.horizon < 1:
            raise ValueError(
                f"the world model needs windows with context={length} and horizon >= 1, "
                f"got context={batch.context}, horizon={batch.horizon}"
            )
        frames = to_model_range(batch.frames[:, : length + 1])
        return frames[:, :length], batch.actions[:, :length].float(), frames[:, length]

    def _imagined_context(self, batch: Window) -> tuple[Tensor, Tensor, Tensor, Tensor, int]:
        """(context frames, context actions, target, recorded last context frame, frames imagined) for
        ``rollout_context``: the target is each window's last frame; the context before it ends in j frames
        this model sampled (without gradient) from the recorded context j steps earlier, j uniform in
        0..rollout_context, the same for the whole batch."""
        length, extra = self.config.context, self.config.rollout_context
        if batch.frames.ndim != 5 or batch.context != length or batch.horizon < extra + 1:
            raise ValueError(f"rollout_context {extra} needs windows with context={length} and horizon >= "
                             f"{extra + 1}, got context={batch.context}, horizon={batch.horizon}")
        frames = to_model_range(batch.frames[:, : length + extra + 1])
        actions = batch.actions[:, : length + extra].float()
        imagined = int(torch.randint(0, extra + 1, ()).item())
        start = extra - imagined
        context = frames[:, start : start + length]
        if imagined:
            sampler = DiffusionSampler(self)
            with torch.no_grad():
                for offset in range(start, extra):
                    frame = sampler.sample(context, actions[:, offset : offset + length])
                    context = torch.cat([context[:, 1:], frame[:, None]], dim=1)
        return context, actions[:, extra:], frames[:, -1], frames[:, -2], imagined

    def forward(self, batch: Window) -> tuple[Tensor, dict[str, float]]:
        """Denoising loss on the first future frame of each window (the training-loop contract; with
        ``rollout_context``, on the last frame, after a partly imagined context)."""
        imagined = 0
        if self.training and self.config.rollout_context > 0:
            context_frames, context_actions, target, last_real, imagined = self._imagined_context(batch)
        else:
            context_frames, context_actions, target = self._split_window(batch)
            last_real = context_frames[:, -1]  # what really changed is measured on the frames as recorded
        self._check_inputs(target, context_frames, context_actions)
        b = target.shape[0]
        last_context = context_frames[:, -1]
        if self.training and self.config.context_noise > 0:
            context_frames = context_frames + self.config.context_noise * torch.randn_like(context_frames)
        clean = target - self.origin(context_frames)  # the frame, or its change from the last context frame
        sigma = self.sample_sigma(b, target.device)
        noisy = clean + sigma.view(b, 1, 1, 1) * torch.randn_like(clean)
        conditioning = edm_preconditioning(sigma, self.config.sigma_data)
        output = self.model_output(noisy, conditioning, context_frames, context_actions)
        f_target = (clean - conditioning.c_skip.view(b, 1, 1, 1) * noisy) / conditioning.c_out.view(b, 1, 1, 1)
        squared_error = (output - f_target) ** 2
        logs = {}
        if self.config.change_weight > 0:
            changed = ((target - last_real).abs() > CHANGE_THRESHOLD).any(dim=1, keepdim=True)
            if imagined:  # and what the imagined last frame got wrong (a trail to erase) counts as a change too
                changed |= ((target - last_context).abs() > CHANGE_THRESHOLD).any(dim=1, keepdim=True)
            squared_error = squared_error * (1 + self.config.change_weight * changed)
            logs["changed_pixels"] = changed.float().mean().item()
        loss = squared_error.mean()
        if self.config.rollout_context > 0 and self.training:
            logs["imagined_context_frames"] = float(imagined)
        return loss, {"loss": loss.item(), "sigma_mean": sigma.mean().item(), **logs}

    @torch.no_grad()
    def sample_images(self, batch: Window, count: int = 4,
                      sampler_config: SamplerConfig | None = None) -> dict[str, Tensor]:
        """Up to ``count`` rows of [last context frame | predicted next frame | true next frame] in [0, 1]."""
        context_frames, context_actions, target = self._split_window(batch)
        context_frames, context_actions, target = context_frames[:count], context_actions[:count], target[:count]
        generator = torch.Generator(device=target.device).manual_seed(0)  # the same noise at every call
        prediction = DiffusionSampler(self, sampler_config).sample(context_frames, context_actions, generator)
        grid = torch.cat([context_frames[:, -1], prediction, target], dim=-1)  # side by side along the width
        return {"next_frame": ((grid + 1) / 2).clamp(0, 1)}


# -- loading a trained world model -----------------------------------------------------------------


def world_model_from_state(model_config: dict[str, Any], state_dict: dict[str, Tensor],
                           device: torch.device | str = "cpu") -> Denoiser:
    """A denoiser from a saved ``"model"`` config section and its weights (strict: every key must match)."""
    denoiser = Denoiser(WorldModelConfig.from_dict(model_config))
    denoiser.load_state_dict(state_dict, strict=True)
    return denoiser.to(device).eval()


def load_world_model(run_dir: Path | str, device: torch.device | str = "cpu", checkpoint: str = "last") -> Denoiser:
    """The world model trained in ``run_dir``: ``config.json``'s ``"model"`` section + safetensors weights."""
    # Imported on use: the training package pulls in TensorBoard and friends, which using a model does not need.
    from dmo_ros.training import load_model_weights, read_run_config

    run_config = read_run_config(run_dir, kind="world_model")
    if "model" not in run_config:
        raise ValueError(f"{run_dir}: config.json has no \"model\" section; is this a world-model run?")
    return world_model_from_state(run_config["model"], load_model_weights(run_dir, checkpoint), device)
