"""Frame resizing: sizes below one pixel and empty images are refused with a message, not a ZeroDivisionError."""

from __future__ import annotations

import numpy as np
import pytest

from dmo_ros.dataset.images import resize


@pytest.mark.parametrize(("height", "width"), [(0, 0), (0, 64), (64, -1)])
def test_a_target_below_one_pixel_is_refused(height: int, width: int) -> None:
    with pytest.raises(ValueError, match="image size must be at least 1x1 pixels"):
        resize(np.zeros((8, 8, 3), np.uint8), height, width, "crop")


def test_an_empty_image_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot resize an empty 0x8 image"):
        resize(np.zeros((0, 8, 3), np.uint8), 4, 4, "crop")


@pytest.mark.parametrize("aspect", ["crop", "pad", "stretch"])
def test_resizes_to_the_size_asked(aspect: str) -> None:
    assert resize(np.zeros((6, 10, 3), np.uint8), 4, 4, aspect).shape == (4, 4, 3)
