"""The network F inside the EDM denoiser: a UNet conditioned on past frames, past actions and the noise level.

Structure (DIAMOND's Atari world model):

- input: the scaled noisy next frame concatenated on channels with the L scaled context frames,
  ``(1 + L) * 3`` channels, through a 3x3 convolution;
- conditioning vector: Fourier features of ``c_noise`` plus a linear embedding of the L flattened
  (already scaled) actions, through a two-layer MLP; it drives every residual block through
  adaptive GroupNorm (GroupNorm without affine, then a per-channel scale and shift from the vector);
- a UNet: per level ``depths[i]`` residual blocks then a stride-2 convolution down; two blocks at the
  lowest resolution; on the way up nearest-neighbour upsampling, ``depths[i] + 1`` blocks each fed
  one skip connection from the way down;
- output: GroupNorm, SiLU, a zero-initialised 3x3 convolution to 3 channels (so an untrained F
  outputs 0 and D starts as c_skip times the input).

Only the frame/time layout is this module's business; the EDM scalings are in :mod:`.denoiser`.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dmo_ros.world_model.config import WorldModelConfig

GROUP_SIZE = 32
"""Channels per GroupNorm group (at least one group)."""

HEAD_DIM = 8
"""Channels per self-attention head."""


_REFERENCE_OPS = [False]
"""True inside :func:`reference_ops`."""


@contextlib.contextmanager
def reference_ops() -> Iterator[None]:
    """Run the network with its original operations (separate scale and shift, SiLU out of place, the pad
    always applied): what ``benchmarks/sampling_speed.py`` and the tests compare the fused ones with."""
    saved = _REFERENCE_OPS[0]
    _REFERENCE_OPS[0] = True
    try:
        yield
    finally:
        _REFERENCE_OPS[0] = saved


def _groups(channels: int) -> int:
    return max(1, channels // GROUP_SIZE)


def _conv3x3(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)


class FourierFeatures(nn.Module):
    """cos/sin of random frequencies of a scalar per sample (the noise level); frequencies are a saved buffer."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.register_buffer("frequencies", torch.randn(1, size // 2))

    def forward(self, value: Tensor) -> Tensor:
        phase = 2 * math.pi * value[:, None] * self.frequencies
        return torch.cat([phase.cos(), phase.sin()], dim=-1)


class Modulation(NamedTuple):
    """Every adaptive GroupNorm's ``1 + scale`` and ``shift`` (B, C, 1, 1) at one noise level, computed ahead
    (:meth:`InnerModel.modulations`: one matrix product for all the layers and all the noise levels of a frame)
    and passed through the UNet in place of the conditioning vector."""

    factors: dict[nn.Module, tuple[Tensor, Tensor]]


class AdaGroupNorm(nn.Module):
    """GroupNorm whose per-channel scale and shift come from the conditioning vector."""

    def __init__(self, channels: int, cond_channels: int) -> None:
        super().__init__()
        self.groups = _groups(channels)
        self.to_scale_shift = nn.Linear(cond_channels, 2 * channels)

    def forward(self, x: Tensor, cond: Tensor | Modulation) -> Tensor:
        if isinstance(cond, Modulation):  # 1 + scale and shift computed ahead (InnerModel.modulations)
            factor, shift = cond.factors[self]
        else:
            scale, shift = self.to_scale_shift(cond)[:, :, None, None].chunk(2, dim=1)
            factor = 1 + scale
        normed = F.group_norm(x, self.groups)
        if _REFERENCE_OPS[0] or torch.is_grad_enabled():  # training: exactly the original operations
            return normed * factor + shift
        return normed.mul_(factor).add_(shift)  # sampling: in place, no new tensors


class SelfAttention2d(nn.Module):
    """Multi-head self-attention over the pixels of a feature map, residual, output zero-initialised."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.heads = max(1, channels // HEAD_DIM)
        self.norm = nn.GroupNorm(_groups(channels), channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, kernel_size=1)
        self.out = nn.Conv2d(channels, channels, kernel_size=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w).transpose(-1, -2).unbind(1)
        y = F.scaled_dot_product_attention(q, k, v)  # (b, heads, h*w, c/heads)
        out = self.out(y.transpose(-1, -2).reshape(b, c, h, w))
        if _REFERENCE_OPS[0] or torch.is_grad_enabled():
            return x + out
        return out.add_(x)  # sampling: into the fresh output (the same sum)


class ResBlock(nn.Module):
    """Two AdaGN-SiLU-conv layers with a residual path (1x1 projection when channels change)."""

    def __init__(self, in_channels: int, out_channels: int, cond_channels: int, attention: bool) -> None:
        super().__init__()
        self.skip = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()
        self.norm1 = AdaGroupNorm(in_channels, cond_channels)
        self.conv1 = _conv3x3(in_channels, out_channels)
        self.norm2 = AdaGroupNorm(out_channels, cond_channels)
        self.conv2 = _conv3x3(out_channels, out_channels)
        nn.init.zeros_(self.conv2.weight)  # each block starts as (a projection of) the identity
        self.attention = SelfAttention2d(out_channels) if attention else nn.Identity()

    def forward(self, x: Tensor, cond: Tensor | Modulation) -> Tensor:
        in_place = not (torch.is_grad_enabled() or _REFERENCE_OPS[0])  # fresh outputs: SiLU and the sum may overwrite
        h = self.conv1(F.silu(self.norm1(x, cond), inplace=in_place))
        h = self.conv2(F.silu(self.norm2(h, cond), inplace=in_place))
        return self.attention(h.add_(self.skip(x)) if in_place else self.skip(x) + h)


class UNet(nn.Module):
    """Residual UNet over ``len(channels)`` resolution levels with one skip per block on the way down."""

    def __init__(self, channels: list[int], depths: list[int], attention: list[bool], mid_attention: bool,
                 cond_channels: int) -> None:
        super().__init__()
        self.down_blocks, self.up_blocks = nn.ModuleList(), nn.ModuleList()
        self.downsamples, self.upsamples = nn.ModuleList(), nn.ModuleList()
        for level, (c, depth, attn) in enumerate(zip(channels, depths, attention, strict=True)):
            c_prev = channels[max(0, level - 1)]  # channels of the map that enters this level
            self.downsamples.append(
                nn.Identity() if level == 0 else nn.Conv2d(c_prev, c_prev, kernel_size=3, stride=2, padding=1)
            )
            self.down_blocks.append(nn.ModuleList(
                ResBlock(c_prev if i == 0 else c, c, cond_channels, attn) for i in range(depth)
            ))
            # Way up: depth blocks each take a block output (c) as skip, the last takes the level's input (c_prev).
            self.up_blocks.append(nn.ModuleList(
                [ResBlock(2 * c, c, cond_channels, attn) for _ in range(depth)]
                + [ResBlock(c + c_prev, c_prev, cond_channels, attn)]
            ))
            self.upsamples.append(nn.Identity() if level == 0 else nn.Sequential(
                nn.Upsample(scale_factor=2.0, mode="nearest"), _conv3x3(c_prev, c_prev)
            ))
        self.mid_blocks = nn.ModuleList(
            ResBlock(channels[-1], channels[-1], cond_channels, mid_attention) for _ in range(2)
        )

    def forward(self, x: Tensor, cond: Tensor | Modulation) -> Tensor:
        height, width = x.shape[-2:]
        multiple = 2 ** (len(self.down_blocks) - 1)  # pad so every downsampling halves exactly
        if height % multiple or width % multiple or _REFERENCE_OPS[0]:
            x = F.pad(x, (0, -width % multiple, 0, -height % multiple))
        skips: list[Tensor] = []
        for down, blocks in zip(self.downsamples, self.down_blocks, strict=True):
            x = down(x)
            skips.append(x)
            for block in blocks:
                x = block(x, cond)
                skips.append(x)
        for block in self.mid_blocks:
            x = block(x, cond)
        for up, blocks in zip(reversed(self.upsamples), reversed(self.up_blocks), strict=True):
            for block in blocks:
                x = block(torch.cat([x, skips.pop()], dim=1), cond)
            x = up(x)  # to the next level up (after the last level: the identity)
        return x[..., :height, :width]


class ContextFeatures(NamedTuple):
    """The context's share of one generated frame's denoiser calls (see :meth:`InnerModel.prepare_context`)."""

    stem: Tensor
    """(B, channels[0], H', W') the stem convolution of the context channels, bias included."""
    actions: Tensor
    """(B, cond_channels) the action embedding."""


def depth_to_space(x: Tensor, patch: int) -> Tensor:
    """``F.pixel_shuffle`` into a plain (channels-first) tensor: the same values, without pixel_shuffle's slow
    channels-last path (and its channels-last output, which makes the sampler's arithmetic slow too)."""
    b, c, h, w = x.shape
    if not x.is_contiguous(memory_format=torch.channels_last) or x.is_contiguous():
        return F.pixel_shuffle(x, patch)
    rows = x.permute(0, 2, 3, 1).unflatten(3, (c // patch**2, patch, patch))  # (B, H, W, C', r, r), a view
    return rows.permute(0, 3, 1, 4, 2, 5).reshape(b, c // patch**2, h * patch, w * patch)


def noisy_channels(conv_in: nn.Conv2d, noisy: Tensor) -> slice:
    """The stem weight's input channels that read the noisy frame (the last ones)."""
    return slice(conv_in.weight.shape[1] - noisy.shape[1], None)


class InnerModel(nn.Module):
    """F(c_in x_sigma, c_noise, context frames, context actions) for EDM preconditioning."""

    def __init__(self, config: WorldModelConfig) -> None:
        super().__init__()
        self.config = config
        cond = config.cond_channels
        self.noise_embedding = FourierFeatures(cond)
        self.action_embedding = nn.Linear(config.context * config.action_size, cond)
        self.cond_mlp = nn.Sequential(nn.Linear(cond, cond), nn.SiLU(), nn.Linear(cond, cond))
        patch = config.patch_size**2  # pixels folded into channels by the stem (1: none)
        self.conv_in = _conv3x3((config.context + 1) * config.image_channels * patch, config.channels[0])
        self.unet = UNet(config.channels, config.depths, config.attention, config.mid_attention, cond)
        self.norm_out = nn.GroupNorm(_groups(config.channels[0]), config.channels[0])
        self.conv_out = _conv3x3(config.channels[0], config.image_channels * patch)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def prepare_context(self, context_frames: Tensor, context_actions: Tensor) -> ContextFeatures:
        """What depends on the context only, once per generated frame instead of once per denoiser call.

        The stem's convolution is linear in its input channels, so it splits exactly (up to float rounding)
        into the context channels' part (computed here, bias included) and the noisy frame's part (per call).
        Args as :meth:`forward`'s (scaled)."""
        x = context_frames.flatten(1, 2)
        if self.config.patch_size > 1:  # space-to-depth acts per channel: it commutes with the concatenation
            x = F.pixel_unshuffle(x, self.config.patch_size)
        stem = F.conv2d(x, self.conv_in.weight[:, : x.shape[1]], self.conv_in.bias, padding=1)
        return ContextFeatures(stem=stem, actions=self.action_embedding(context_actions.flatten(1)))

    def modulations(self, c_noise: Tensor, context: ContextFeatures) -> list[Modulation]:
        """Every adaptive GroupNorm's scale and shift at S noise levels ``c_noise`` (S, B), for
        :meth:`forward_prepared`: what depends on the noise level and the context but not on the noisy frame,
        once per generated frame — one conditioning MLP pass and one matrix product for all the layers and
        levels instead of one small product per layer and denoiser call (the same values up to rounding)."""
        steps, batch = c_noise.shape
        cond = self.cond_mlp(self.noise_embedding(c_noise.flatten()) + context.actions.repeat(steps, 1))
        norms = [module for module in self.modules() if isinstance(module, AdaGroupNorm)]
        weight = torch.cat([norm.to_scale_shift.weight for norm in norms])
        bias = torch.cat([norm.to_scale_shift.bias for norm in norms])
        outputs = F.linear(cond, weight, bias).unflatten(0, (steps, batch))[..., None, None]
        sizes = [norm.to_scale_shift.out_features for norm in norms]
        factors: list[dict[nn.Module, tuple[Tensor, Tensor]]] = [{} for _ in range(steps)]
        for norm, output in zip(norms, outputs.split(sizes, dim=2), strict=True):
            scale, shift = output.chunk(2, dim=2)
            factor, shift = 1 + scale, shift.contiguous()
            for step in range(steps):
                factors[step][norm] = (factor[step], shift[step])
        return [Modulation(step) for step in factors]

    def forward_prepared(self, noisy: Tensor, c_noise: Tensor, context: ContextFeatures,
                         modulation: Modulation | None = None) -> Tensor:
        """:meth:`forward` with the context's part from :meth:`prepare_context` (the same output, up to rounding),
        and the noise level's part from :meth:`modulations` if given (else computed from ``c_noise``)."""
        cond = modulation if modulation is not None else self.cond_mlp(self.noise_embedding(c_noise) + context.actions)
        x = F.pixel_unshuffle(noisy, self.config.patch_size) if self.config.patch_size > 1 else noisy
        x = context.stem + F.conv2d(x, self.conv_in.weight[:, noisy_channels(self.conv_in, x)], None, padding=1)
        x = self.unet(x, cond)
        x = self.conv_out(F.silu(self.norm_out(x)))
        return depth_to_space(x, self.config.patch_size) if self.config.patch_size > 1 else x

    def forward(self, noisy: Tensor, c_noise: Tensor, context_frames: Tensor, context_actions: Tensor) -> Tensor:
        """Args (all already scaled by the denoiser):
            noisy: (B, C, H, W) c_in-scaled noisy next frame.
            c_noise: (B,) noise-level input.
            context_frames: (B, L, C, H, W) past frames.
            context_actions: (B, L, A) past actions; the last leads to the next frame.
        Returns (B, C, H, W), F's output.
        """
        cond = self.cond_mlp(self.noise_embedding(c_noise) + self.action_embedding(context_actions.flatten(1)))
        x = torch.cat([context_frames.flatten(1, 2), noisy], dim=1)
        if self.config.patch_size > 1:  # space-to-depth: the UNet runs at 1/patch the resolution, no pixel lost
            x = F.pixel_unshuffle(x, self.config.patch_size)
        x = self.unet(self.conv_in(x), cond)
        x = self.conv_out(F.silu(self.norm_out(x)))
        return F.pixel_shuffle(x, self.config.patch_size) if self.config.patch_size > 1 else x
