"""numpy ⇄ sensor_msgs/Image without cv_bridge (the PyPI cv-bridge breaks with numpy 2)."""

from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Time
from sensor_msgs.msg import Image


def rgb8_image(pixels: np.ndarray, stamp: Time, frame_id: str) -> Image:
    """An (H, W, 3) uint8 RGB array as an rgb8 Image message."""
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(f"rgb8 needs an (H, W, 3) uint8 array, got {pixels.shape} {pixels.dtype}")
    height, width, _ = pixels.shape
    message = Image(height=height, width=width, encoding="rgb8", is_bigendian=0, step=width * 3)
    message.header.stamp = stamp
    message.header.frame_id = frame_id
    message.data = np.ascontiguousarray(pixels).tobytes()
    return message
