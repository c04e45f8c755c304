"""One conversion from camera message to frame: the policy node sees its camera exactly as the dataset saw the bag.

A bag is converted into a dataset; the same recorded messages, deserialized by rclpy as the policy node receives
them, go through the node's conversion (:func:`dmo_ros.dataset.images.camera_frame`, the converter's own) and must
give the dataset's frames bit for bit, for every encoding the converter accepts and a camera of another aspect.
"""

from __future__ import annotations

import numpy as np
import pytest
from rclpy.serialization import deserialize_message
from rosbags.highlevel import AnyReader
from sensor_msgs.msg import CompressedImage, Image

from dmo_ros.dataset import convert as converter
from dmo_ros.dataset import images
from dmo_ros.dataset.convert import ConvertConfig, convert
from dmo_ros.dataset.format import open_arrays
from dmo_ros.dataset.synthetic import BagSpec, write_bag
from dmo_ros.nodes import policy as policy_node

ROS_TYPES = {images.IMAGE_TYPE: Image, images.COMPRESSED_TYPE: CompressedImage}


def test_the_node_and_the_converter_call_the_same_function():
    assert policy_node.camera_frame is images.camera_frame
    assert converter.camera_frame is images.camera_frame


@pytest.mark.parametrize(("camera", "encoding", "aspect"), [
    ("raw", "rgb8", "crop"), ("raw", "bgr8", "pad"), ("raw", "rgba8", "stretch"), ("raw", "mono8", "crop"),
    ("jpeg", "", "crop"), ("png", "", "crop"),
])
def test_node_frames_equal_the_dataset_frames(tmp_path, camera, encoding, aspect):
    bag = write_bag(tmp_path / "bag", BagSpec(camera=camera, encoding=encoding or "rgb8", width=120, height=72,
                                              seconds=2.0))
    config = ConvertConfig(robot="pusht", height=32, width=40, aspect=aspect)
    convert([bag], tmp_path / "dataset", config, log=lambda _line: None)
    arrays = open_arrays(tmp_path / "dataset")
    dataset_frames = {int(stamp): np.asarray(frame) for stamp, frame in zip(arrays["frame_timestamps"],
                                                                          arrays["frames"], strict=True)}
    assert len(dataset_frames) >= 5
    compared = 0
    with AnyReader([bag]) as reader:
        for connection, _time, raw in reader.messages([c for c in reader.connections if c.topic == "/camera/image"]):
            message = deserialize_message(raw, ROS_TYPES[connection.msgtype])  # what the node's subscription gets
            stamp = message.header.stamp.sec * 10**9 + message.header.stamp.nanosec
            if stamp not in dataset_frames:
                continue
            frame, source = images.camera_frame(message, connection.msgtype, 32, 40, aspect)
            assert source == (72, 120)
            np.testing.assert_array_equal(frame, dataset_frames[stamp])
            compared += 1
    assert compared == len(dataset_frames)
