"""The causal tokenizer: a patch autoencoder from a frame to a few tanh latent tokens and back.

Encoder: the frame's ``P = (H / p)^2`` patches become tokens (linear patch embedding + learned position),
``N_z`` learned latent query tokens are appended, a transformer with full attention within the frame mixes
them, and the latent queries' outputs are projected to ``D_z`` channels and squashed by ``tanh`` — the
bottleneck the dynamics model diffuses in. Decoder: the latents are projected back to the width, ``P``
learned patch query tokens are appended, a transformer mixes them, and each patch query is projected to its
``p x p x 3`` pixels.

Each frame is encoded from itself alone, so the tokenizer is causal in time by construction (DreamerV4's
tokenizer also has causal temporal layers; this one trades them for speed on a CPU).

Training (``forward(batch) -> (loss, logs)``): masked-patch autoencoding — per sample, with probability
``mask_probability``, a ratio ``r ~ U(0, mask_ratio_max)`` of the patch tokens is replaced by a learned mask
token before encoding; the loss is the MSE of the whole reconstructed frame in [-1, 1].

Image convention: float32 in [-1, 1] = uint8 / 127.5 - 1, channels first (B, 3, H, W).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor, nn

from dmo_ros.world_model_v4.config import TokenizerConfig
from dmo_ros.world_model_v4.layers import Block, RMSNorm


def to_model_range(frames: Tensor) -> Tensor:
    """uint8 images in [0, 255] -> float32 in [-1, 1]; float input is taken as already in [-1, 1]."""
    return frames.float() / 127.5 - 1 if frames.dtype == torch.uint8 else frames.float()


def to_uint8(frames: Tensor) -> Tensor:
    """Float images in [-1, 1] -> uint8 (rounded, clamped)."""
    return ((frames.detach().float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)


@dataclass
class FrameBatch:
    """A batch of single frames for the tokenizer."""

    frames: Tensor
    """(B, 3, H, W) uint8 RGB."""

    def to(self, device: torch.device | str, non_blocking: bool = False) -> FrameBatch:
        return replace(self, frames=self.frames.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> FrameBatch:
        return replace(self, frames=self.frames.pin_memory())

    @classmethod
    def collate(cls, items: list[FrameBatch]) -> FrameBatch:
        return cls(frames=torch.stack([item.frames for item in items]))


class Tokenizer(nn.Module):
    """Frame (B, 3, H, W) in [-1, 1] <-> latents (B, N_z, D_z) in [-1, 1]; see the module doc."""

    def __init__(self, config: TokenizerConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        patch_pixels = c.patch_size * c.patch_size * c.image_channels
        self.patch_embed = nn.Linear(patch_pixels, c.width)
        self.patch_pos = nn.Parameter(torch.randn(c.patches, c.width) * 0.5)
        self.mask_token = nn.Parameter(torch.zeros(c.width))
        self.latent_queries = nn.Parameter(torch.randn(c.latent_tokens, c.width) * 0.5)
        self.encoder = nn.ModuleList(Block(c.width, c.heads) for _ in range(c.encoder_depth))
        self.encoder_norm = RMSNorm(c.width)
        self.to_latent = nn.Linear(c.width, c.latent_dim)
        self.from_latent = nn.Linear(c.latent_dim, c.width)
        self.latent_pos = nn.Parameter(torch.randn(c.latent_tokens, c.width) * 0.5)
        self.patch_queries = nn.Parameter(torch.randn(c.patches, c.width) * 0.5)
        self.decoder = nn.ModuleList(Block(c.width, c.heads) for _ in range(c.decoder_depth))
        self.decoder_norm = RMSNorm(c.width)
        self.to_pixels = nn.Linear(c.width, patch_pixels)

    @property
    def device(self) -> torch.device:
        return self.patch_pos.device

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def patchify(self, frames: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, P, p * p * C) patches in row-major order."""
        p = self.config.patch_size
        b, ch, h, w = frames.shape
        return frames.view(b, ch, h // p, p, w // p, p).permute(0, 2, 4, 3, 5, 1).reshape(b, -1, p * p * ch)

    def unpatchify(self, patches: Tensor) -> Tensor:
        """(B, P, p * p * C) -> (B, C, H, W), the inverse of :meth:`patchify`."""
        c, p = self.config, self.config.patch_size
        side = c.image_size // p
        b = patches.shape[0]
        return patches.view(b, side, side, p, p, c.image_channels).permute(0, 5, 1, 3, 2, 4).reshape(
            b, c.image_channels, c.image_size, c.image_size)

    def encode(self, frames: Tensor, mask: Tensor | None = None) -> Tensor:
        """Frames (B, 3, H, W) uint8 or float in [-1, 1] -> latents (B, N_z, D_z) in [-1, 1].

        ``mask`` (B, P) bool marks patch tokens replaced by the mask token (training only).
        """
        c = self.config
        frames = to_model_range(frames)
        if frames.shape[1:] != (c.image_channels, c.image_size, c.image_size):
            raise ValueError(f"frames must be (B, {c.image_channels}, {c.image_size}, {c.image_size}), "
                             f"got {tuple(frames.shape)}")
        tokens = self.patch_embed(self.patchify(frames))
        if mask is not None:
            tokens = torch.where(mask[..., None], self.mask_token.to(tokens.dtype), tokens)
        tokens = tokens + self.patch_pos
        x = torch.cat([tokens, self.latent_queries.expand(len(tokens), -1, -1)], dim=1)
        for block in self.encoder:
            x = block(x)[0]
        return torch.tanh(self.to_latent(self.encoder_norm(x[:, c.patches:])))

    def decode(self, latents: Tensor) -> Tensor:
        """Latents (B, N_z, D_z) -> frames (B, 3, H, W), float, about [-1, 1] (not clamped)."""
        c = self.config
        if latents.shape[1:] != (c.latent_tokens, c.latent_dim):
            raise ValueError(f"latents must be (B, {c.latent_tokens}, {c.latent_dim}), got {tuple(latents.shape)}")
        x = torch.cat([self.from_latent(latents) + self.latent_pos,
                       self.patch_queries.expand(len(latents), -1, -1)], dim=1)
        for block in self.decoder:
            x = block(x)[0]
        return self.unpatchify(self.to_pixels(self.decoder_norm(x[:, c.latent_tokens:])))

    def draw_mask(self, batch: int, device: torch.device) -> Tensor:
        """(B, P) bool: per sample, masked with probability ``mask_probability`` at a ratio ~ U(0, max)."""
        c = self.config
        ratio = torch.rand(batch, 1, device=device) * c.mask_ratio_max
        ratio = ratio * (torch.rand(batch, 1, device=device) < c.mask_probability)
        return torch.rand(batch, c.patches, device=device) < ratio

    def forward(self, batch: FrameBatch) -> tuple[Tensor, dict[str, Any]]:
        """Masked-patch reconstruction loss: MSE of the decoded frame in [-1, 1]; logs ``mse``, ``psnr``."""
        frames = to_model_range(batch.frames)
        mask = self.draw_mask(len(frames), frames.device) if self.training else None
        decoded = self.decode(self.encode(frames, mask))
        loss = (decoded - frames).pow(2).mean()
        psnr = 10 * torch.log10(4.0 / loss.detach().clamp_min(1e-10))  # peak-to-peak 2 in [-1, 1]
        logs = {"mse": loss.detach(), "psnr": psnr}
        if mask is not None:
            logs["mask_ratio"] = mask.float().mean()
        return loss, logs

    @torch.no_grad()
    def sample_images(self, batch: FrameBatch) -> dict[str, Tensor]:
        """Up to 8 frames over their reconstructions (TensorBoard), in [0, 1]."""
        frames = to_model_range(batch.frames[:8])
        decoded = self.decode(self.encode(frames)).clamp(-1, 1)
        return {"reconstruction": (torch.cat([frames, decoded], dim=2) + 1) / 2}


__all__ = ["FrameBatch", "Tokenizer", "to_model_range", "to_uint8"]
