"""The local model's encoder: spatial-softmax keypoints give positions, and keypoint encoders save and load."""

from __future__ import annotations

import pytest
import torch

from dmo_ros.local_model import LocalModel, LocalModelConfig
from dmo_ros.local_model.encoder import ImageEncoder, SpatialSoftmax


def test_a_keypoint_is_the_position_of_its_heat_maps_peak() -> None:
    layer = SpatialSoftmax(channels=1, keypoints=1, height=16, width=16)
    with torch.no_grad():
        layer.to_heat.weight.fill_(50.0)  # a sharp softmax: nearly all mass on the brightest pixel
        layer.to_heat.bias.zero_()
    for row, column in [(0, 0), (3, 12), (15, 7)]:
        maps = torch.zeros(1, 1, 16, 16)
        maps[0, 0, row, column] = 1.0
        x, y = layer(maps)[0].tolist()
        assert x == pytest.approx(-1 + 2 * column / 15, abs=1e-3) and y == pytest.approx(-1 + 2 * row / 15, abs=1e-3)


def test_the_encoder_with_keypoints_sees_where_a_dot_is() -> None:
    """The keypoint path moves with a dot on a white frame, pixel for pixel, before any training."""
    config = LocalModelConfig(encoder_channels=[8, 8, 8], embed_size=16, keypoints=4, image_size=32)
    encoder = ImageEncoder(config)
    frames = torch.full((2, 3, 32, 32), 255, dtype=torch.uint8)
    frames[0, :, 4:7, 4:7] = 0
    frames[1, :, 24:27, 20:23] = 0
    early = encoder.convs[:6](frames.float() / 127.5 - 1)
    points = encoder.keypoints(early).view(2, 4, 2)
    assert (points[0] - points[1]).abs().max() > 1e-3 and encoder(frames).shape == (2, 16)


def test_keypoints_are_off_by_default_and_bad_counts_are_refused() -> None:
    assert LocalModelConfig().keypoints == 0 and ImageEncoder(LocalModelConfig(image_size=64)).keypoints is None
    with pytest.raises(ValueError, match="keypoints must be >= 0"):
        LocalModelConfig(keypoints=-1)
    with pytest.raises(ValueError, match="encoder_channels needs >= 2 stages"):
        LocalModelConfig(keypoints=2, encoder_channels=[8], image_size=16)


def test_a_keypoint_local_model_round_trips_its_state() -> None:
    config = LocalModelConfig.preset("tiny", action_size=2, keypoints=3)
    model, again = LocalModel(config), LocalModel(LocalModelConfig.from_dict(config.__dict__))
    again.load_state_dict(model.state_dict())
    frames = torch.randint(0, 256, (1, 2, 3, config.image_size, config.image_size), dtype=torch.uint8)
    assert torch.equal(model.encode(frames), again.encode(frames))
