"""Finding the Push Cube stand-in's orange cube by colour, on hand-made frames and on a real stand-in render."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dmo_ros.sims.push_cube_frames import cube_mask, locate_cube


def test_locate_cube_centroid_and_visibility() -> None:
    frames = torch.full((2, 3, 16, 16), 120, dtype=torch.uint8)
    frames[0, :, 2:5, 9:13] = torch.tensor([242, 115, 25], dtype=torch.uint8)[:, None, None]
    centroid, visible = locate_cube(frames)
    assert visible.tolist() == [True, False]
    assert centroid[0].tolist() == pytest.approx([10.5, 3.0])
    assert all(math.isnan(v) for v in centroid[1].tolist())
    # float frames in [-1, 1] read the same; two pixels are too few to count as the cube
    assert torch.equal(cube_mask(frames.float() / 127.5 - 1), cube_mask(frames))
    frames[1, :, 0, 0:2] = torch.tensor([242, 115, 25], dtype=torch.uint8)[:, None]
    assert not locate_cube(frames[1])[1]


def test_the_stand_in_camera_shows_the_cube_and_nothing_else_orange() -> None:
    from dmo_ros.sims.push_cube import PushCubeSim

    sim = PushCubeSim()
    seen = []
    for seed in range(6):
        sim.reset(seed=seed)
        frame = torch.from_numpy(np.ascontiguousarray(sim.render())).permute(2, 0, 1)
        seen.append(bool(locate_cube(frame)[1]) == sim.state().cube_in_view)
    assert sum(seen) >= 5, seen
