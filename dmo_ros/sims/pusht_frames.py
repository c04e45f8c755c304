"""Reading the Push-T stand-in's camera frames: where the agent and the T are (evaluation only).

The stand-in draws with fixed colours (gym-pusht): the agent (end effector) is a RoyalBlue disc,
the T block LightSlateGray with a darker outline, the goal T LightGreen, the table white. So the
agent's and the block's image positions can be read off any frame that looks like the stand-in's
— a real one or one a world model imagined — without a learned detector. The gates use this to
ask "did the imagined agent move where it was told?"; nothing in training reads it.

Positions are in pixels of the given frame, (x, y) = (column, row) with the origin at the
top-left pixel's centre, the arena's axes (gym-pusht: x right, y down). The position is the
colour-score-weighted centroid, so it has sub-pixel resolution even at 64 x 64 where the agent
is about 3 px wide.
"""

from __future__ import annotations

import numpy as np

AGENT_RGB = (65, 105, 225)
"""RoyalBlue: gym-pusht's agent colour."""
BLOCK_RGB = (119, 136, 153)
"""LightSlateGray: gym-pusht's block colour (its fill renders a little lighter, see ``block_score``)."""

AGENT_MIN_MASS = 1.5
"""Agent score mass (about "pixels of pure agent colour") below which the agent counts as not visible.
A 64 x 64 stand-in frame holds 5-8; 96 x 96 about twice that."""

BLOCK_MIN_MASS = 8.0
"""Block score mass below which the block counts as not visible (a 64 x 64 frame holds ~50)."""


def _as_hwc_float(frames: np.ndarray) -> np.ndarray:
    x = np.asarray(frames)
    if x.ndim < 3:
        raise ValueError(f"frames must be (..., H, W, 3) or (..., 3, H, W), got shape {x.shape}")
    if x.shape[-1] != 3 and x.shape[-3] == 3:
        x = np.moveaxis(x, -3, -1)
    if x.shape[-1] != 3:
        raise ValueError(f"frames need 3 colour channels, got shape {x.shape}")
    if x.dtype == np.uint8:
        return x.astype(np.float32)
    if np.issubdtype(x.dtype, np.floating):  # [-1, 1] as the models use them
        return ((x.astype(np.float32) + 1.0) * 127.5).clip(0, 255)
    raise ValueError(f"frames must be uint8 or float in [-1, 1], got {x.dtype}")


def agent_score(frames: np.ndarray) -> np.ndarray:
    """(..., H, W) in [0, 1]: how much each pixel looks like the agent (blue clearly above red and green)."""
    x = _as_hwc_float(frames)
    r, b = x[..., 0], x[..., 2]
    # RoyalBlue has b - r = 160; the block b - r = 34-41, the goal and the table <= 0.
    return np.clip((b - r - 70.0) / 90.0, 0.0, 1.0)


def block_score(frames: np.ndarray) -> np.ndarray:
    """(..., H, W) in [0, 1]: how much each pixel looks like the T block (a bluish grey, darker than the table)."""
    x = _as_hwc_float(frames)
    r, b = x[..., 0], x[..., 2]
    bluish_grey = np.clip((b - r - 15.0) / 20.0, 0.0, 1.0) * np.clip((b - r - 70.0) / -20.0, 0.0, 1.0)
    dark = np.clip((225.0 - x.mean(-1)) / 40.0, 0.0, 1.0)
    return bluish_grey * dark


def _centroid(score: np.ndarray, min_mass: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    h, w = score.shape[-2:]
    mass = score.sum((-2, -1))
    ys, xs = np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64)
    safe = np.maximum(mass, 1e-9)
    x = (score.sum(-2) * xs).sum(-1) / safe
    y = (score.sum(-1) * ys).sum(-1) / safe
    visible = mass >= min_mass
    position = np.stack([x, y], axis=-1)
    position[~visible] = np.nan
    return position, visible, mass


def locate_agent(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Agent positions (..., 2) [x, y] px (NaN where not visible) and visibility (...) bool of frames (..., H, W, 3).

    The minimum mass scales with the frame's area relative to 64 x 64.
    """
    score = agent_score(frames)
    scale = score.shape[-1] * score.shape[-2] / 4096.0
    position, visible, _ = _centroid(score, AGENT_MIN_MASS * scale)
    return position, visible


def locate_block(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """T block centroid positions (..., 2) [x, y] px (NaN where not visible) and visibility (...) bool."""
    score = block_score(frames)
    scale = score.shape[-1] * score.shape[-2] / 4096.0
    position, visible, _ = _centroid(score, BLOCK_MIN_MASS * scale)
    return position, visible


__all__ = ["AGENT_RGB", "BLOCK_RGB", "agent_score", "block_score", "locate_agent", "locate_block"]
