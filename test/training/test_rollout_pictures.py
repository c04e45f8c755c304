"""The world-model reports' pictures: the strip puts each frame in its cell, the GIF plays the context first."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dmo_ros.training.rollout_pictures import GAP, HEADER, LABEL_WIDTH, WINDOW_GAP, rollout_strip, write_rollout_gif


def flat(values: list[float], size: int = 4) -> torch.Tensor:
    """(len(values), 3, size, size) frames, each of one grey level in [-1, 1]."""
    return torch.tensor(values).view(-1, 1, 1, 1).expand(-1, 3, size, size).clone()


def test_strip_places_real_above_imagined_with_the_last_context_frame_first() -> None:
    context_last = flat([-1.0, 1.0])  # window 0 black, window 1 white
    real = torch.stack([flat([-0.5, 0.0, 0.5]), flat([0.5, 0.0, -0.5])])  # (2 windows, 3 steps, 3, 4, 4)
    imagined = -real
    strip = np.asarray(rollout_strip(context_last, real, imagined, scale=2))
    side, cell = 8, 8 + GAP
    assert strip.shape == (HEADER + 2 * (2 * cell + WINDOW_GAP), LABEL_WIDTH + 4 * cell, 3)

    def level(window: int, row: int, column: int) -> set[int]:
        top = HEADER + window * (2 * cell + WINDOW_GAP) + row * cell
        left = LABEL_WIDTH + column * cell
        return set(np.unique(strip[top:top + side, left:left + side]).tolist())

    for window in range(2):
        assert level(window, 0, 0) == level(window, 1, 0) == {(0, 255)[window]}  # t=0 on both rows
        for step in range(3):
            for row, frames in enumerate((real, imagined)):
                value = round((float(frames[window, step, 0, 0, 0]) + 1) * 127.5)
                assert level(window, row, step + 1) == {value}
    with pytest.raises(ValueError, match="must agree"):
        rollout_strip(context_last, real, imagined[:, :2])


def test_gif_plays_the_context_on_both_sides_then_real_beside_imagined(tmp_path: Path) -> None:
    context = torch.stack([flat([-1.0, -0.6])])  # 1 window, 2 context frames
    real, imagined = flat([0.2, 0.6])[None], flat([1.0, -0.2])[None]
    write_rollout_gif(tmp_path / "r.gif", context, real, imagined, scale=2)
    gif = Image.open(tmp_path / "r.gif")
    assert gif.n_frames == 4 and gif.size == (2 * 8 + GAP, HEADER + 8 + GAP)
    for t in range(4):
        gif.seek(t)
        frame = np.asarray(gif.convert("RGB"))[HEADER:HEADER + 8]
        assert np.array_equal(frame[:, :8], frame[:, 8 + GAP:]) == (t < 2)
