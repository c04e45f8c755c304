"""Recording: a crash-safe rosbag2 writer of serialized messages (plain Python, no ROS)."""

from dmo_ros.recording.bag_writer import (
    SUPPORTED_IMAGE_ENCODINGS,
    RecordedMessage,
    SplitBagSession,
    TypeRegistry,
    UnknownTypeError,
    image_encoding_problem,
    read_manifest,
    read_session,
    session_splits,
)

__all__ = [
    "SUPPORTED_IMAGE_ENCODINGS",
    "RecordedMessage",
    "SplitBagSession",
    "TypeRegistry",
    "UnknownTypeError",
    "image_encoding_problem",
    "read_manifest",
    "read_session",
    "session_splits",
]
