"""The local model's image encoder (frames -> embedding) and decoder (latent features -> frame).

DreamerV3's convolutional pair: stride-2 convolutions, each followed by a per-pixel layer norm
over channels and SiLU, down to a small feature map that is flattened (here then projected to
``embed_size``); the decoder mirrors it with transposed convolutions. Frames inside the models
are float32 in [-1, 1], channels first (the project's image convention).
"""

from __future__ import annotations

import torch
from torch import nn

from dmo_ros.local_model.config import LocalModelConfig


def to_model_images(frames: torch.Tensor) -> torch.Tensor:
    """uint8 (0..255) frames to float32 in [-1, 1]; float frames are taken as already in [-1, 1]."""
    if frames.dtype == torch.uint8:
        return frames.float() / 127.5 - 1.0
    if not frames.is_floating_point():
        raise ValueError(f"frames must be uint8 (0..255) or float in [-1, 1], got {frames.dtype}")
    return frames.float()


class ChannelNorm(nn.Module):
    """LayerNorm over the channels of each pixel of (N, C, H, W) maps (DreamerV3's ChLayerNorm)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=1e-3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class ImageEncoder(nn.Module):
    """(..., 3, H, W) uint8 or float in [-1, 1] -> (..., embed_size); any number of leading dimensions."""

    def __init__(self, config: LocalModelConfig) -> None:
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        width_in = 3
        for width in config.encoder_channels:
            # Bias-free convolutions: the norm that follows has its own shift.
            layers += [nn.Conv2d(width_in, width, 4, stride=2, padding=1, bias=False), ChannelNorm(width), nn.SiLU()]
            width_in = width
        self.convs = nn.Sequential(*layers)
        self.min_resolution = config.image_size // 2 ** len(config.encoder_channels)
        flat = width_in * self.min_resolution**2
        self.project = nn.Sequential(nn.Linear(flat, config.embed_size, bias=False),
                                     nn.LayerNorm(config.embed_size, eps=1e-3), nn.SiLU())

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        size = self.config.image_size
        if frames.dim() < 3 or tuple(frames.shape[-3:]) != (3, size, size):
            raise ValueError(f"expected frames (..., 3, {size}, {size}), got shape {tuple(frames.shape)}")
        lead = frames.shape[:-3]
        x = to_model_images(frames.reshape(-1, 3, size, size))
        x = self.convs(x).flatten(1)
        return self.project(x).reshape(*lead, -1)


class ImageDecoder(nn.Module):
    """(..., feature_size) latent features -> (..., 3, H, W) frames in [-1, 1] (unbounded: trained with MSE)."""

    def __init__(self, config: LocalModelConfig) -> None:
        super().__init__()
        self.config = config
        channels = list(reversed(config.encoder_channels))
        self.min_resolution = config.image_size // 2 ** len(channels)
        self.first_channels = channels[0]
        self.project = nn.Linear(config.feature_size, channels[0] * self.min_resolution**2)
        layers: list[nn.Module] = []
        for width_in, width in zip(channels, channels[1:], strict=False):
            layers += [nn.ConvTranspose2d(width_in, width, 4, stride=2, padding=1, bias=False), ChannelNorm(width),
                       nn.SiLU()]
        layers.append(nn.ConvTranspose2d(channels[-1], 3, 4, stride=2, padding=1))
        self.deconvs = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        lead = features.shape[:-1]
        r = self.min_resolution
        x = self.project(features.reshape(-1, features.shape[-1])).reshape(-1, self.first_channels, r, r)
        x = self.deconvs(x)
        return x.reshape(*lead, *x.shape[1:])


__all__ = ["ChannelNorm", "ImageDecoder", "ImageEncoder", "to_model_images"]
