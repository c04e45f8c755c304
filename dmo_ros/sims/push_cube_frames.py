"""Reading the Push Cube stand-in's camera frames: where the orange cube is (evaluation only).

The stand-in (:mod:`dmo_ros.sims.push_cube`) draws the cube in one saturated orange (rgba 0.95 0.45 0.1) and
nothing else in that colour (walls, floor and goal disc are not orange), so the cube can be found by colour in
any frame that looks like the stand-in's, real or imagined, without a learned detector. The world-model reports
use it to ask "does the imagined cube stay, and move as the real one does?"; nothing in training reads it.

Positions are in pixels of the given frame, (x, y) = (column, row) from the top-left pixel's centre.
"""

from __future__ import annotations

import torch
from torch import Tensor

CUBE_MIN_PIXELS = 3
"""Pixels of cube colour for the cube to count as in view."""


def _to_levels(frames: Tensor) -> Tensor:
    """uint8 [0, 255] or float [-1, 1] -> float uint8 levels."""
    return frames.float() if frames.dtype == torch.uint8 else (frames.float() + 1) * 127.5


def cube_mask(frames: Tensor) -> Tensor:
    """(..., 3, H, W) uint8, or float in [-1, 1] -> (..., H, W) bool: the stand-in's orange cube (red high, blue
    low, green between)."""
    r, g, b = _to_levels(frames).unbind(-3)
    return (r > 150) & (b < 90) & (r - g > 60) & (g > 40)


def locate_cube(frames: Tensor) -> tuple[Tensor, Tensor]:
    """(..., 3, H, W) frames -> the cube's centroid (..., 2) as (x, y) px and whether it is in view (...) bool
    (at least :data:`CUBE_MIN_PIXELS` pixels of its colour). The centroid of an unseen cube is NaN."""
    mask = cube_mask(frames).float()
    height, width = mask.shape[-2:]
    rows = torch.arange(height, dtype=torch.float32, device=mask.device)
    columns = torch.arange(width, dtype=torch.float32, device=mask.device)
    mass = mask.sum((-1, -2))
    visible = mass >= CUBE_MIN_PIXELS
    x = (mask * columns).sum((-1, -2)) / mass.clamp(min=1)
    y = (mask * rows[:, None]).sum((-1, -2)) / mass.clamp(min=1)
    centroid = torch.stack([x, y], -1)
    return torch.where(visible[..., None], centroid, torch.full_like(centroid, float("nan"))), visible
