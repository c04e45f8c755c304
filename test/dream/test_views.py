"""What the dream node shows: tiled rollouts and the strip plot."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dmo_ros.dream.views import GAP, StripPlot, heat, tile


def test_tile_lays_rollouts_side_by_side_upscaled():
    frames = torch.zeros(3, 3, 4, 5, dtype=torch.uint8)
    for b in range(3):
        frames[b, 0] = 10 * (b + 1)
    image = tile(frames, scale=2)
    assert image.shape == (8, 3 * 10 + 2 * GAP, 3) and image.dtype == np.uint8
    for b in range(3):
        left = b * (10 + GAP)
        assert (image[:, left : left + 10, 0] == 10 * (b + 1)).all()
    with pytest.raises(ValueError, match="uint8"):
        tile(frames.float())


def test_heat_maps_variance_to_black_red_yellow():
    variance = torch.tensor([[[0.0, 0.025, 0.05, 1.0]]])
    image = heat(variance, full=0.05)
    assert image.shape == (1, 3, 1, 4)
    assert image[0, :, 0, 0].tolist() == [0, 0, 0]
    assert image[0, :, 0, 1].tolist() == [255, 0, 0]
    assert image[0, :, 0, 2].tolist() == [255, 255, 0] == image[0, :, 0, 3].tolist()


def test_strip_plot_scales_each_series_and_skips_nan():
    plot = StripPlot(length=4, width=3.0, height=1.0)
    for reward, value in [(0.0, math.nan), (1.0, math.nan), (0.5, 2.0), (2.0, 2.0), (1.0, 2.0)]:
        plot.add(reward=reward, value=value)
    # the last 4 (1, 0.5, 2, 1) scaled by their range 0.5..2
    np.testing.assert_allclose(plot.points("reward"), [(0.0, 1 / 3), (1.0, 0.0), (2.0, 1.0), (3.0, 1 / 3)])
    assert plot.points("value") == [(1.0, 0.5), (2.0, 0.5), (3.0, 0.5)]  # flat: mid-height; NaN left out
    assert plot.points("spread") == [] and math.isnan(plot.latest("spread")) and plot.latest("reward") == 1.0
    plot.clear()
    assert plot.points("reward") == []
