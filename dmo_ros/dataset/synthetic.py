"""Synthetic recordings for tests and benchmarks: bags written directly with rosbags.

Not written by our recorder, so the converter is checked against an independent writer;
good bags and deliberately bad ones (wrong encoding, changing size, missing topics).

``write_bag`` makes a rosbag2 bag with a camera (raw Image in any encoding, or a
CompressedImage in JPEG/PNG), actions (Twist or TwistStamped), dmo_msgs/Intent and resets,
with stamps jittered around their nominal times. Each frame's pixels encode its index, so a
test can tell exactly which frame a sample got: ``frame_pixels(k, w, h)`` is frame k. Indices,
action values and intent count from the session's start, so a later split (``start_s``)
continues the earlier one's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from dmo_ros.recording.bag_writer import TypeRegistry

STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
T0_NS = 1_700_000_000 * 10**9
# dmo_msgs/Intent as first released, before the milestone field (a bag from an older install).
OLD_INTENT_MSG = "std_msgs/Header header\nbool active\n"
# Topics a dmo_ros tool cannot decode: a service-event topic (its schema is .srv text) and a
# vendor type recorded without a definition. (topic, type, definition, payload)
FOREIGN_TOPICS = (
    ("/add_two_ints/_service_event", "example_interfaces/srv/AddTwoInts_Event", "int64 a\nint64 b\n---\nint64 sum\n",
     b"\x00\x01\x00\x00" + bytes(24)),
    ("/vendor/status", "vendor_msgs/msg/Status", "", b"\x00\x01\x00\x00\x07\x00\x00\x00"),
)


def typestore():
    """ROS 2 Kilted types plus dmo_msgs/Intent (from the installed .msg file)."""
    registry = TypeRegistry()
    registry.ensure("dmo_msgs/msg/Intent")
    return registry.typestore


def frame_pixels(index: int, width: int, height: int) -> np.ndarray:
    """Frame ``index`` as RGB: a horizontal gradient in red, the index in green (8 + 6 (index mod 40)), blue fixed."""
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[:, :, 0] = np.linspace(0, 255, width, dtype=np.uint8)[None, :]
    pixels[:, :, 1] = 8 + 6 * (index % 40)
    pixels[:, :, 2] = 200
    return pixels


def action_value(index: int) -> tuple[float, float, float]:
    return (0.01 * index, -0.02 * index, 0.5 if index % 2 else -0.5)


@dataclass
class BagSpec:
    """What ``write_bag`` writes; times are nominal seconds from the bag's start."""

    storage: str = "mcap"
    camera: str = "raw"  # raw | jpeg | png
    encoding: str = "rgb8"
    width: int = 96
    height: int = 96
    image_rate_hz: float = 10.0
    action_rate_hz: float = 5.0
    action_type: str = "geometry_msgs/msg/TwistStamped"
    seconds: float = 4.0
    jitter_s: float = 0.0
    intent_on_from_s: float = 2.0
    milestone_at_s: float | None = None
    reset_at_s: float | None = None
    resize_at_s: float | None = None  # from then on, images are (width // 2) x (height // 2)
    action_gap_s: tuple[float, float] | None = None  # no actions (nor intent) in this interval
    start_s: float = 0.0  # time of the bag's first message (a later split of a session starts later)
    camera_only: bool = False  # only camera images (a session's first split, before the other topics appear)
    camera_topic: str = "/camera/image"
    action_topic: str = "/servo_node/delta_twist_cmds"
    seed: int = 0
    stamp_offset_s: dict[str, float] | None = None  # topic → offset of its header stamps (another clock)
    reconnect_at_s: float | None = None  # from then on every topic is written on a second connection (other QoS)
    old_intent: bool = False  # Intent written with its definition before the milestone field
    cut_payload: tuple[str, int] | None = None  # (topic, k): that topic's k-th message is stored cut in half
    zero_stamp_every: int = 0  # every n-th camera image has a zero header stamp (a driver that leaves it unset)
    foreign_topics: bool = False  # also write FOREIGN_TOPICS, 5 messages each


def write_bag(path: Path, spec: BagSpec) -> Path:
    store = typestore()
    T = store.types
    old_store = get_typestore(Stores.ROS2_KILTED)
    old_store.register(get_types_from_msg(OLD_INTENT_MSG, "dmo_msgs/msg/Intent"))
    rng = np.random.default_rng(spec.seed)

    offsets = spec.stamp_offset_s or {}

    def stamp(seconds: float, topic: str = ""):
        """(header stamp, receive ns): another clock shifts the stamp only, the recorder receives in wall time."""
        ns = T0_NS + int((seconds + spec.start_s) * 1e9)
        shifted = ns + int(offsets.get(topic, 0.0) * 1e9)
        return T["builtin_interfaces/msg/Time"](sec=shifted // 10**9, nanosec=shifted % 10**9), ns

    def header(seconds: float, topic: str = ""):
        time, ns = stamp(seconds, topic)
        return T["std_msgs/msg/Header"](stamp=time, frame_id="camera"), ns

    camera_type = "sensor_msgs/msg/Image" if spec.camera == "raw" else "sensor_msgs/msg/CompressedImage"
    events = []  # (receive ns, topic, type, message)
    for k in range(int(spec.seconds * spec.image_rate_hz)):
        t = k / spec.image_rate_hz + rng.uniform(-spec.jitter_s, spec.jitter_s)
        shrink = spec.resize_at_s is not None and t >= spec.resize_at_s
        width, height = (spec.width // 2, spec.height // 2) if shrink else (spec.width, spec.height)
        rgb = frame_pixels(k + round(spec.start_s * spec.image_rate_hz), width, height)  # the session-wide index
        h, ns = header(max(t, 0.0), spec.camera_topic)
        if spec.zero_stamp_every and k % spec.zero_stamp_every == spec.zero_stamp_every - 1:
            h = T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=0, nanosec=0), frame_id="camera")
        if spec.camera == "raw":
            channels = {"rgb8": rgb, "bgr8": rgb[:, :, ::-1], "rgba8": np.dstack([rgb, np.full_like(rgb[:, :, :1], 9)]),
                        "mono8": rgb[:, :, 1:2], "yuv422": rgb[:, :, :2]}[spec.encoding]
            channels = np.ascontiguousarray(channels)
            message = T[camera_type](header=h, height=height, width=width, encoding=spec.encoding, is_bigendian=0,
                                     step=width * channels.shape[2], data=channels.reshape(-1))
        else:
            ok, encoded = cv2.imencode(".jpg" if spec.camera == "jpeg" else ".png", rgb[:, :, ::-1])
            assert ok
            message = T[camera_type](header=h, format=spec.camera, data=encoded.reshape(-1))
        events.append((ns + 3_000_000, spec.camera_topic, camera_type, message))
    for k in range(0 if spec.camera_only else int(spec.seconds * spec.action_rate_hz)):
        t = k / spec.action_rate_hz + 0.05 + rng.uniform(-spec.jitter_s, spec.jitter_s)
        if spec.action_gap_s is not None and spec.action_gap_s[0] <= t < spec.action_gap_s[1]:
            continue
        vx, vy, wz = action_value(k + round(spec.start_s * spec.action_rate_hz))
        twist = T["geometry_msgs/msg/Twist"](
            linear=T["geometry_msgs/msg/Vector3"](x=vx, y=vy, z=0.0),
            angular=T["geometry_msgs/msg/Vector3"](x=0.0, y=0.0, z=wz),
        )
        h, ns = header(t, spec.action_topic)
        message = twist if spec.action_type == "geometry_msgs/msg/Twist" else T[spec.action_type](header=h, twist=twist)
        events.append((ns + 1_000_000, spec.action_topic, spec.action_type, message))
        milestone = 1.0 if spec.milestone_at_s is not None and abs(t - 0.05 - spec.milestone_at_s) < 1e-6 else 0.0
        h, _ = header(t, "/intent")
        if spec.old_intent:
            intent = old_store.types["dmo_msgs/msg/Intent"](header=h, active=t + spec.start_s >= spec.intent_on_from_s)
        else:
            intent = T["dmo_msgs/msg/Intent"](header=h, active=t + spec.start_s >= spec.intent_on_from_s,
                                              milestone=milestone)
        events.append((ns + 1_000_000, "/intent", "dmo_msgs/msg/Intent", intent))
    if spec.reset_at_s is not None:
        h, ns = header(spec.reset_at_s)
        events.append((ns, "/reset", "std_msgs/msg/Header", h))
    events.sort(key=lambda e: e[0])
    reconnect_ns = None if spec.reconnect_at_s is None else T0_NS + int((spec.reconnect_at_s + spec.start_s) * 1e9)
    # The second connection of a topic: same type, other QoS (a publisher restarted best-effort).
    best_effort = Qos(QosHistory.KEEP_LAST, 5, QosReliability.BEST_EFFORT, QosDurability.VOLATILE, QosTime(0, 0),
                      QosTime(0, 0), QosLiveliness.AUTOMATIC, QosTime(0, 0), False)
    counts: dict[str, int] = {}
    with Writer(path, version=9, storage_plugin=STORAGES[spec.storage]) as writer:
        connections = {}
        for received, topic, msgtype, message in events:
            second = reconnect_ns is not None and received >= reconnect_ns
            if (topic, second) not in connections:
                types = old_store if msgtype == "dmo_msgs/msg/Intent" and spec.old_intent else store
                connections[(topic, second)] = writer.add_connection(
                    topic, msgtype, typestore=types, offered_qos_profiles=[best_effort] if second else [])
            types = old_store if msgtype == "dmo_msgs/msg/Intent" and spec.old_intent else store
            data = types.serialize_cdr(message, msgtype)
            counts[topic] = counts.get(topic, 0) + 1
            if spec.cut_payload == (topic, counts[topic] - 1):
                data = data[: len(data) // 2]
            writer.write(connections[(topic, second)], received, data)
        for topic, msgtype, definition, payload in FOREIGN_TOPICS if spec.foreign_topics else ():
            connection = writer.add_connection(topic, msgtype, msgdef=definition, rihs01="RIHS01_" + "0" * 64)
            for k in range(5):
                writer.write(connection, T0_NS + int((spec.start_s + k * 0.5) * 1e9), payload)
    return path


def storage_file(bag: Path) -> Path:
    [file] = [p for p in bag.iterdir() if p.suffix in (".mcap", ".db3")]
    return file
