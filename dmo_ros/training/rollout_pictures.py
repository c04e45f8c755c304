"""Pictures of what a world model imagines, shared by the world-model reports (DIAMOND's and the v4 one).

- :func:`write_rollout_gif` — an animated GIF, one row per window, [real | imagined]; the context plays first.
- :func:`rollout_strip` — a still: per window a row of real frames above a row of imagined ones, at every step,
  the last real context frame first.

Frames are float tensors in [-1, 1] (the models' range); each picture is upscaled with nearest neighbour.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import Tensor

LABEL_WIDTH, HEADER, GAP, WINDOW_GAP = 64, 12, 2, 8
"""Strip layout in pixels: the row labels' column, the step labels' row, between frames, between windows."""


def _upscale(frames: Tensor, factor: int) -> np.ndarray:
    """(..., 3, h, w) float [-1, 1] -> (..., h*f, w*f, 3) uint8, nearest neighbour."""
    image = ((frames.detach().float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).cpu().numpy()
    image = np.moveaxis(image, -3, -1)
    return image.repeat(factor, axis=-3).repeat(factor, axis=-2)


def write_rollout_gif(path: Path, context: Tensor, real: Tensor, imagined: Tensor, scale: int = 3,
                      frame_ms: int = 200) -> None:
    """An animated GIF: one row per window, [real | imagined]; the context plays first (real on both sides).

    ``context`` (N, L, 3, h, w), ``real`` / ``imagined`` (N, H, 3, h, w), all float in [-1, 1].
    The GIF has L + H frames of ``(2 w' + 2, 12 + N (h' + 2))`` pixels, ``w' = scale w``.
    """
    length, horizon = context.shape[1], real.shape[1]
    left = _upscale(torch.cat([context, real], dim=1), scale)  # (N, L+H, h', w', 3)
    right = _upscale(torch.cat([context, imagined], dim=1), scale)
    n, steps, h, w, _ = left.shape
    canvas = np.full((steps, HEADER + n * (h + GAP), 2 * w + GAP, 3), 255, np.uint8)
    for row in range(n):
        top = HEADER + row * (h + GAP)
        canvas[:, top : top + h, :w] = left[row]
        canvas[:, top : top + h, w + GAP :] = right[row]
    images = []
    for t in range(steps):
        image = Image.fromarray(canvas[t])
        label = f"ctx {t + 1}" if t < length else f"+{t - length + 1}/{horizon}"
        draw = ImageDraw.Draw(image)
        draw.text((2, 0), f"real {label}", fill=(0, 0, 0))
        draw.text((w + GAP + 2, 0), "imagined", fill=(0, 0, 0))
        images.append(image)
    images[0].save(path, save_all=True, append_images=images[1:], duration=frame_ms, loop=0)


def rollout_strip(context_last: Tensor, real: Tensor, imagined: Tensor, scale: int = 2) -> Image.Image:
    """A still of N open-loop rollouts: per window a *real* row above an *imagined* row; column 0 is the last
    real context frame (t=0, on both rows), column k the frame after k actions.

    ``context_last`` (N, 3, h, w), ``real`` / ``imagined`` (N, H, 3, h, w), all float in [-1, 1]. The image is
    ``LABEL_WIDTH + (H + 1) (w' + GAP)`` wide and ``HEADER + N (2 (h' + GAP) + WINDOW_GAP)`` high, ``w' = scale w``.
    """
    n, horizon = real.shape[:2]
    if imagined.shape != real.shape or context_last.shape != (n, *real.shape[2:]):
        raise ValueError(f"context_last (N, 3, h, w) and real / imagined (N, H, 3, h, w) must agree, got "
                         f"{tuple(context_last.shape)}, {tuple(real.shape)}, {tuple(imagined.shape)}")
    rows = _upscale(torch.stack([torch.cat([context_last[:, None], real], 1),
                                 torch.cat([context_last[:, None], imagined], 1)], 1), scale)  # (N, 2, H+1, ...)
    h, w = rows.shape[-3:-1]
    canvas = Image.new("RGB", (LABEL_WIDTH + (horizon + 1) * (w + GAP),
                               HEADER + n * (2 * (h + GAP) + WINDOW_GAP)), "white")
    draw = ImageDraw.Draw(canvas)
    for column in range(horizon + 1):
        draw.text((LABEL_WIDTH + column * (w + GAP) + 2, 0), "t=0" if column == 0 else f"+{column}", fill=(0, 0, 0))
    for window in range(n):
        for r, name in enumerate((f"real {window + 1}", "imagined")):
            top = HEADER + window * (2 * (h + GAP) + WINDOW_GAP) + r * (h + GAP)
            draw.text((2, top + h // 2 - 5), name, fill=(0, 0, 0))
            for column in range(horizon + 1):
                canvas.paste(Image.fromarray(rows[window, r, column]), (LABEL_WIDTH + column * (w + GAP), top))
    return canvas
