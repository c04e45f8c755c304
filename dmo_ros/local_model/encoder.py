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


class SpatialSoftmax(nn.Module):
    """(N, C, H, W) maps -> (N, 2 K) expected keypoint positions (x, y) in [-1, 1] (Levine et al. 2016; robomimic's
    ``SpatialSoftmax``): a 1x1 convolution to K heat maps, a softmax over each map's pixels with a learned
    temperature, and the expectation of the pixel coordinates under it."""

    def __init__(self, channels: int, keypoints: int, height: int, width: int) -> None:
        super().__init__()
        self.to_heat = nn.Conv2d(channels, keypoints, 1)
        self.log_temperature = nn.Parameter(torch.zeros(()))
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, height), torch.linspace(-1, 1, width), indexing="ij")
        self.register_buffer("grid", torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1), persistent=False)

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        heat = self.to_heat(maps).flatten(2) / self.log_temperature.exp()  # (N, K, H W)
        return (heat.softmax(-1) @ self.grid).flatten(1)  # (N, K, 2) -> (N, 2 K)


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
        self.keypoints = None
        if config.keypoints:  # read after the second stage (3 modules a stage: conv, norm, SiLU)
            side = config.image_size // 4
            self.keypoints = SpatialSoftmax(config.encoder_channels[1], config.keypoints, side, side)
            flat += 2 * config.keypoints
        self.project = nn.Sequential(nn.Linear(flat, config.embed_size, bias=False),
                                     nn.LayerNorm(config.embed_size, eps=1e-3), nn.SiLU())

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        size = self.config.image_size
        if frames.dim() < 3 or tuple(frames.shape[-3:]) != (3, size, size):
            raise ValueError(f"expected frames (..., 3, {size}, {size}), got shape {tuple(frames.shape)}")
        lead = frames.shape[:-3]
        x = to_model_images(frames.reshape(-1, 3, size, size))
        if self.keypoints is None:
            x = self.convs(x).flatten(1)
        else:
            early = self.convs[:6](x)
            x = torch.cat([self.convs[6:](early).flatten(1), self.keypoints(early)], dim=1)
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
