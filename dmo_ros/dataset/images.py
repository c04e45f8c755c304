"""Camera messages (deserialized by rosbags) → RGB uint8 arrays at the training resolution.

Accepted: ``sensor_msgs/Image`` in rgb8, bgr8, rgba8, bgra8, mono8, and
``sensor_msgs/CompressedImage`` holding JPEG or PNG. Anything else is an ``ImageError``
naming the encoding — never silently misread.

Resizing keeps the aspect handling explicit (``aspect``):
- ``crop`` (default): centre-crop to the target aspect ratio, then resize (nothing is
  distorted; the borders of a wider image are dropped);
- ``pad``: letterbox with black to the target aspect ratio, then resize (nothing dropped);
- ``stretch``: resize to the target size directly (distorts when the aspect differs).
Downscaling uses area interpolation (OpenCV ``INTER_AREA``), upscaling bilinear.

:func:`camera_frame` (decode, then resize) is the one conversion from a camera message to a
training/policy frame: the dataset converter and the policy node both call it, so a deployed
policy sees its camera exactly as its training data saw the recording.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
CAMERA_TYPES = (IMAGE_TYPE, COMPRESSED_TYPE)
RAW_ENCODINGS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}
ASPECTS = ("crop", "pad", "stretch")


class ImageError(ValueError):
    """A camera message that cannot be decoded faithfully."""


def image_format(message: Any, msgtype: str) -> str:
    """A short description of the image's format, for consistency checks: ``'640x480 rgb8'`` or ``'jpeg'``."""
    if msgtype == IMAGE_TYPE:
        return f"{message.width}x{message.height} {message.encoding}"
    return message.format.split(";")[-1].strip().lower() or "compressed"


def decode(message: Any, msgtype: str) -> np.ndarray:
    """An (H, W, 3) uint8 RGB array from an Image or CompressedImage message."""
    if msgtype == IMAGE_TYPE:
        return _decode_raw(message)
    if msgtype == COMPRESSED_TYPE:
        return _decode_compressed(message)
    raise ImageError(f"not a camera message type: {msgtype}")


def _decode_raw(message: Any) -> np.ndarray:
    encoding = message.encoding
    if encoding not in RAW_ENCODINGS:
        raise ImageError(f"unsupported image encoding '{encoding}'; supported: {', '.join(RAW_ENCODINGS)}")
    channels = RAW_ENCODINGS[encoding]
    height, width, step = int(message.height), int(message.width), int(message.step)
    data = np.asarray(message.data, dtype=np.uint8)
    if step < width * channels or data.size < step * height:
        raise ImageError(f"image data too short: {data.size} bytes for {width}x{height} {encoding} (step {step})")
    rows = data[: step * height].reshape(height, step)[:, : width * channels]
    pixels = rows.reshape(height, width, channels)
    if encoding == "rgb8":
        return pixels
    if encoding == "bgr8":
        return pixels[:, :, ::-1]
    if encoding == "rgba8":
        return pixels[:, :, :3]
    if encoding == "bgra8":
        return pixels[:, :, 2::-1]
    return np.repeat(pixels, 3, axis=2)  # mono8


def _decode_compressed(message: Any) -> np.ndarray:
    kind = message.format.lower()
    if not any(name in kind for name in ("jpeg", "jpg", "png")):
        raise ImageError(f"unsupported compressed image format '{message.format}'; supported: jpeg, png")
    bgr = cv2.imdecode(np.asarray(message.data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ImageError(f"could not decode a '{message.format}' image ({len(message.data)} bytes)")
    return bgr[:, :, ::-1]


def resize(pixels: np.ndarray, height: int, width: int, aspect: str = "crop") -> np.ndarray:
    """Resize an RGB image to (height, width) with the given aspect handling (see the module doc)."""
    if aspect not in ASPECTS:
        raise ValueError(f"unknown aspect handling '{aspect}'; choose one of {', '.join(ASPECTS)}")
    if height < 1 or width < 1:
        raise ValueError(f"image size must be at least 1x1 pixels, got {height}x{width} (height x width)")
    source_h, source_w = pixels.shape[:2]
    if source_h < 1 or source_w < 1:
        raise ValueError(f"cannot resize an empty {source_h}x{source_w} image")
    if aspect == "crop":
        target_ratio = width / height
        if source_w / source_h > target_ratio:  # too wide: crop the sides
            keep = round(source_h * target_ratio)
            left = (source_w - keep) // 2
            pixels = pixels[:, left : left + keep]
        elif source_w / source_h < target_ratio:  # too tall: crop top and bottom
            keep = round(source_w / target_ratio)
            top = (source_h - keep) // 2
            pixels = pixels[top : top + keep]
    elif aspect == "pad":
        target_ratio = width / height
        padded_w = max(source_w, round(source_h * target_ratio))
        padded_h = max(source_h, round(source_w / target_ratio))
        canvas = np.zeros((padded_h, padded_w, 3), np.uint8)
        top, left = (padded_h - source_h) // 2, (padded_w - source_w) // 2
        canvas[top : top + source_h, left : left + source_w] = pixels
        pixels = canvas
    if pixels.shape[:2] == (height, width):
        return np.ascontiguousarray(pixels)
    shrinking = pixels.shape[0] > height or pixels.shape[1] > width
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(pixels), (width, height), interpolation=interpolation)


def camera_frame(message: Any, msgtype: str, height: int, width: int,
                 aspect: str = "crop") -> tuple[np.ndarray, tuple[int, int]]:
    """A camera message as a dataset/policy frame: ``(frame, (source_height, source_width))``.

    ``frame`` is (height, width, 3) uint8 RGB, decoded by :func:`decode` and fitted by :func:`resize`;
    the source size lets the caller refuse a camera that changed size. ``message`` is any object with the
    fields of ``sensor_msgs/Image`` or ``sensor_msgs/CompressedImage`` (rosbags' or rclpy's classes);
    ``msgtype`` is :data:`IMAGE_TYPE` or :data:`COMPRESSED_TYPE`. Raises :class:`ImageError` for an
    unsupported encoding, a truncated buffer or an undecodable compressed image.
    """
    pixels = decode(message, msgtype)
    return resize(pixels, height, width, aspect), (int(pixels.shape[0]), int(pixels.shape[1]))

