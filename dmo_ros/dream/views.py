"""What the dream node shows, as plain arrays: tiled frames and the reward/value strip plot (no ROS here).

- :func:`tile` lays the B rollouts' frames side by side, upscaled with nearest neighbour, so one
  ``sensor_msgs/Image`` (or Foxglove RawImage) shows them all; the real frames are tiled the same way,
  so rollout b sits at the same place in both images.
- :class:`StripPlot` keeps the last rewards / values / spreads of one rollout and turns them into
  polyline points in a box of the RViz fixed frame (the node wraps them in LINE_STRIP markers).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

GAP = 2
"""Pixels (after upscaling) between tiled rollouts."""


def tile(frames: Tensor | np.ndarray, scale: int = 1, gap: int = GAP) -> np.ndarray:
    """(B, 3, H, W) uint8 -> (H * scale, B * W * scale + (B - 1) * gap, 3) uint8 RGB, rollouts left to right."""
    frames = torch.as_tensor(np.asarray(frames))
    if frames.ndim != 4 or frames.shape[1] != 3 or frames.dtype != torch.uint8:
        raise ValueError(f"frames must be (B, 3, H, W) uint8, got {tuple(frames.shape)} {frames.dtype}")
    if scale < 1:
        raise ValueError(f"scale must be at least 1, got {scale}")
    images = frames.permute(0, 2, 3, 1).numpy()
    images = images.repeat(scale, axis=1).repeat(scale, axis=2)
    b, h, w, _ = images.shape
    canvas = np.zeros((h, b * w + (b - 1) * gap, 3), np.uint8)
    for i in range(b):
        canvas[:, i * (w + gap) : i * (w + gap) + w] = images[i]
    return canvas


def heat(variance: Tensor, full: float = 0.05) -> Tensor:
    """(B, H, W) per-pixel variance -> (B, 3, H, W) uint8 in black-red-yellow (``full`` variance is yellow);
    for a spread view beside the imagined frames."""
    level = (variance.float() / full).clamp(0, 1)
    red = (level * 2).clamp(0, 1)
    green = (level * 2 - 1).clamp(0, 1)
    image = torch.stack([red, green, torch.zeros_like(red)], dim=1)
    return (image * 255).round().to(torch.uint8)


@dataclass
class StripPlot:
    """The last ``length`` values of a few named series, mapped to points in a ``width`` x ``height`` box.

    Each series is scaled to the box by its own running range (a flat series sits mid-height); NaN values
    (no reward model, no critic) are left out of the points.
    """

    length: int = 32
    width: float = 1.0
    height: float = 0.3
    series: dict[str, deque] = field(default_factory=dict)

    def clear(self) -> None:
        self.series.clear()

    def add(self, **values: float) -> None:
        for name, value in values.items():
            self.series.setdefault(name, deque(maxlen=self.length)).append(float(value))

    def points(self, name: str) -> list[tuple[float, float]]:
        """(x, y) of the series ``name``: x from 0 (oldest kept) to ``width``, y in [0, height]."""
        values = list(self.series.get(name, ()))
        finite = [v for v in values if math.isfinite(v)]
        if not finite:
            return []
        low, high = min(finite), max(finite)
        span = high - low
        step = self.width / max(self.length - 1, 1)
        return [(i * step, self.height * ((v - low) / span if span > 0 else 0.5))
                for i, v in enumerate(values) if math.isfinite(v)]

    def latest(self, name: str) -> float:
        values = self.series.get(name)
        return values[-1] if values else math.nan


__all__ = ["GAP", "StripPlot", "heat", "tile"]
