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

AGENT_RADIUS_PX = 3.0
"""Radius (px at 64 x 64) around the strongest blob within which the agent's colour is summed (its disc is ~2 px)."""

AGENT_MIN_CONCENTRATION = 0.6
"""Fraction of the frame's blue that the agent's blob must hold to count as the agent."""

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

    The agent is a compact blue disc: the position is the score-weighted centroid within
    ``AGENT_RADIUS_PX`` (scaled to the frame) of the strongest 3 x 3 blob, and the agent counts as
    visible only when that blob holds at least ``AGENT_MIN_MASS`` (scaled by area) and at least
    ``AGENT_MIN_CONCENTRATION`` of all the blue in the frame — blue noise scattered over an
    imagined frame is not an agent.
    """
    score = agent_score(frames)
    lead, (h, w) = score.shape[:-2], score.shape[-2:]
    flat = score.reshape(-1, h, w)
    scale = w / 64.0
    padded = np.pad(flat, ((0, 0), (1, 1), (1, 1)))
    blob = sum(padded[:, dy : dy + h, dx : dx + w] for dy in range(3) for dx in range(3))
    peak = blob.reshape(len(flat), -1).argmax(-1)
    py, px = np.divmod(peak, w)
    ys, xs = np.mgrid[0:h, 0:w]
    near = ((ys[None] - py[:, None, None]) ** 2 + (xs[None] - px[:, None, None]) ** 2) <= (AGENT_RADIUS_PX * scale) ** 2
    weights = flat * near
    mass_near = weights.sum((-2, -1))
    total = flat.sum((-2, -1))
    safe = np.maximum(mass_near, 1e-9)
    position = np.stack([(weights * xs).sum((-2, -1)) / safe, (weights * ys).sum((-2, -1)) / safe], axis=-1)
    visible = (mass_near >= AGENT_MIN_MASS * scale**2) & (mass_near >= AGENT_MIN_CONCENTRATION * total)
    position[~visible] = np.nan
    return position.reshape(*lead, 2), visible.reshape(lead)


def locate_block(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """T block centroid positions (..., 2) [x, y] px (NaN where not visible) and visibility (...) bool."""
    score = block_score(frames)
    scale = score.shape[-1] * score.shape[-2] / 4096.0
    position, visible, _ = _centroid(score, BLOCK_MIN_MASS * scale)
    return position, visible


__all__ = ["AGENT_RGB", "BLOCK_RGB", "agent_score", "block_score", "locate_agent", "locate_block"]
