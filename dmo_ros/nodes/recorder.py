"""recorder: writes the configured topics to crash-safe rosbag2 bags, bytes as they arrive.

Subscribes to every topic of ``topics`` with ``raw=True`` and hands the serialized CDR
bytes to ``dmo_ros.recording.SplitBagSession`` (no deserialization, no re-encoding). Each
session is a new timestamped folder under ``output`` made of split bags, each closed and
finalised every ``split_duration`` seconds (or ``split_size_mb``), so ``kill -9`` loses
at most one split; SIGINT/SIGTERM close the open split, nothing is lost, and a second
signal while it closes is ignored (the node template). At start, the readable part of the
``.partial/`` splits of unclosed sessions in ``output`` is recovered (see the module
``dmo_ros.recording.bag_writer`` for the design, the layout and the recovery).

- Types come from the ROS graph: a topic's subscription is created when it appears
  (polled). Custom types (``dmo_msgs/*``) are registered with ``rosbags`` from the
  installed ``.msg`` files; standard ones come from its ROS 2 Kilted typestore.
- QoS follows the publishers: reliable when all of them are reliable, else best effort
  (so sensor-data cameras are recorded too); transient-local when all of them are.
- A configured topic that does not appear within ``topic_timeout`` is named in a warning;
  the others are recorded. The first message of each sensor_msgs/Image topic is checked
  (that one only is deserialized): an encoding the dataset tools cannot read is a warning.
- ``duration`` > 0 ends the recording (exit code 0); an output folder that cannot be
  written is an error with exit code 2.

The stand-ins' ``standin_state`` evaluation topic is not in the default list: training
must never read simulator state.
"""

from __future__ import annotations

import importlib
import os
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rclpy.qos import QoSDurabilityPolicy, QoSHistoryPolicy, QoSProfile, QoSReliabilityPolicy

from dmo_ros.nodes.template import DmoNode, param, run_node
from dmo_ros.recording import SplitBagSession, TypeRegistry, UnknownTypeError, image_encoding_problem
from dmo_ros.recording.bag_writer import (
    IMAGE_TYPE,
    STORAGES,
    ReaderError,
    SessionInUse,
    recover_session,
    unclosed_sessions,
)

DEFAULT_TOPICS = ["/camera/image", "/action", "/intent", "/reset"]
EVALUATION_ONLY_TYPES = {"dmo_msgs/msg/StandinState"}
UNKNOWN_NODE = "_NODE_NAME_UNKNOWN_"
"""The node name DDS discovery reports for a publisher whose node it has not matched yet."""


@dataclass
class RecorderParameters:
    topics: list[str] = param(
        DEFAULT_TOPICS, "Topics to record (absolute names); each is subscribed once it appears on the graph."
    )
    output: str = param("bags", "Folder that receives the recording; each session is a new timestamped sub-folder.")
    storage: str = param("mcap", f"rosbag2 storage format: {', '.join(STORAGES)}.")
    duration: float = param(0.0, "Seconds to record, then exit 0; 0 records until stopped (SIGINT/SIGTERM).")
    split_duration: float = param(
        1.0, "Seconds per split bag; a kill -9 loses at most this much. 0: split by size only."
    )
    split_size_mb: float = param(0.0, "Close a split once it holds this many MB; 0: no size limit.")
    topic_timeout: float = param(5.0, "Warn about each configured topic not seen on the graph after this many seconds.")
    report_period: float = param(5.0, "Seconds between per-topic count lines; 0 for none.")
    discovery_period: float = param(0.2, "Seconds between looks at the graph for configured topics not yet subscribed.")
    queue_depth: int = param(100, "History depth of each subscription (messages buffered while the recorder is busy).")
    fsync: bool = param(False, "Also fsync each finished split (survives power loss, not only a process crash).")


def msg_share_dirs() -> list[Path]:
    """Share folders holding the .msg files of installed interface packages (dmo_msgs first)."""
    dirs: list[Path] = []
    try:
        from ament_index_python.packages import get_package_share_directory

        dirs.append(Path(get_package_share_directory("dmo_msgs")).parent)
    except Exception:  # no AMENT_PREFIX_PATH (a pip environment) or not indexed: fall back
        pass
    try:
        import dmo_msgs

        for parent in Path(dmo_msgs.__file__).resolve().parents:
            if (parent / "share" / "dmo_msgs" / "msg").is_dir():
                dirs.append(parent / "share")
                break
    except ImportError:
        pass
    return dirs


def message_class(msgtype: str) -> Any:
    package, kind, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{package}.{kind}"), name)


class Recorder(DmoNode):
    def __init__(self) -> None:
        super().__init__("recorder")
        self.parameters = p = self.declare(RecorderParameters)
        if not p.topics or not all(p.topics):
            raise ValueError("parameter 'topics' must name at least one topic")
        self.topics = [t if t.startswith("/") else f"/{t}" for t in dict.fromkeys(p.topics)]
        if p.storage not in STORAGES:
            raise ValueError(f"unknown storage '{p.storage}'; choose one of {', '.join(STORAGES)}")
        if p.duration < 0 or p.split_duration < 0 or p.split_size_mb < 0 or p.topic_timeout < 0 or p.report_period < 0:
            raise ValueError("duration, split_duration, split_size_mb, topic_timeout and report_period must be >= 0")
        if p.split_duration == 0 and p.split_size_mb == 0:
            raise ValueError("split_duration or split_size_mb must be positive: splits bound what a crash loses")
        if p.discovery_period <= 0 or p.queue_depth <= 0:
            raise ValueError("discovery_period and queue_depth must be positive")
        self.recover_crashed_sessions(Path(p.output).expanduser())
        try:
            self.session = SplitBagSession(
                Path(p.output).expanduser(),
                storage=p.storage,
                split_duration=p.split_duration,
                split_size_mb=p.split_size_mb,
                registry=TypeRegistry(msg_share_dirs()),
                fsync=p.fsync,
                collection=self.collection_settings(p),
            )
        except OSError as error:
            raise ValueError(f"cannot write to output folder '{p.output}': {error.strerror or error}") from None
        self.started = time.monotonic()
        self.subscriptions_by_topic: dict[str, Any] = {}
        self.unusable: set[str] = set()  # topics whose type cannot be recorded (warned once)
        self.timeout_warned: set[str] = set()
        self.names_pending: set[str] = set()  # subscribed topics with a publisher whose node name is not known yet
        self.images_to_check: set[str] = set()
        self.create_timer(p.discovery_period, self.discover)
        self.create_timer(min(0.1, (p.split_duration or 1.0) / 4), self.session.poll)
        if p.duration > 0:
            self.create_timer(p.duration, lambda: self.finish(0))
        if p.report_period > 0:
            self.create_timer(p.report_period, self.report)
        self.get_logger().info(
            f"recording {', '.join(self.topics)} to {self.session.folder} ({p.storage}, "
            f"{p.split_duration:g} s splits) for {f'{p.duration:g} s' if p.duration else 'ever'}"
        )
        self.discover()

    @staticmethod
    def collection_settings(parameters: RecorderParameters) -> dict[str, Any]:
        """The manifest's ``collection`` (``dmo-bag-info`` prints it, ``dmo-convert`` copies it into the dataset):
        this recorder's parameters, the host and ROS distribution, and each recorded topic's publishing nodes
        (filled in as topics are subscribed), so a live recording says what made it as ``dmo-collect-fast``'s do."""
        return {"tool": "recorder node", "host": socket.gethostname(), "ros_distro": os.environ.get("ROS_DISTRO"),
                **asdict(parameters), "publishers": {}}

    def recover_crashed_sessions(self, output: Path) -> None:
        """Finish the readable splits that a crash (kill -9, power loss) left in ``.partial/``
        of earlier sessions in ``output``; a session another recorder is writing is left alone."""
        for session in unclosed_sessions(output):
            try:
                results = recover_session(session, TypeRegistry(msg_share_dirs()))
            except SessionInUse:
                continue
            except (OSError, ValueError, ReaderError, UnknownTypeError) as error:  # never stops a new recording
                self.get_logger().warning(f"could not recover {session}: {error}")
                continue
            for result in results:
                if result.how == "unreadable":
                    self.get_logger().warning(
                        f"{session}: split {result.path} was cut by a crash before any of it reached the disk; "
                        "nothing to recover"
                    )
                else:
                    self.get_logger().info(
                        f"{session}: recovered split {result.path} ({result.messages} messages, {result.how})"
                    )

    # -- discovery ---------------------------------------------------------------------

    def note_publishers(self, topic: str, publishers: list[Any]) -> None:
        """Add the nodes publishing ``topic`` to the manifest's ``collection`` (from its next write). Discovery can
        report a publisher before its node's name (``_NODE_NAME_UNKNOWN_``): such a topic is looked at again on the
        next discovery until every name is known."""
        names = {f"{p.node_namespace.rstrip('/')}/{p.node_name}" for p in publishers
                 if UNKNOWN_NODE not in (p.node_name, p.node_namespace)}
        known = set(self.session.collection["publishers"].get(topic, []))
        self.session.collection["publishers"][topic] = sorted(known | names)
        if len(names) < len(publishers):
            self.names_pending.add(topic)
        else:
            self.names_pending.discard(topic)

    def discover(self) -> None:
        for topic in list(self.names_pending):
            self.note_publishers(topic, self.get_publishers_info_by_topic(topic))
        waiting = [t for t in self.topics if t not in self.subscriptions_by_topic and t not in self.unusable]
        if not waiting:
            return
        graph = dict(self.get_topic_names_and_types())
        for topic in waiting:
            types = graph.get(topic)
            publishers = self.get_publishers_info_by_topic(topic) if types else []
            if types and publishers:
                self.subscribe(topic, types, publishers)
        elapsed = time.monotonic() - self.started
        for topic in waiting:
            if topic not in self.subscriptions_by_topic and topic not in self.timeout_warned:
                if elapsed >= self.parameters.topic_timeout:
                    self.timeout_warned.add(topic)
                    self.get_logger().warning(
                        f"topic '{topic}' has no publisher after {self.parameters.topic_timeout:g} s; "
                        "recording the others (it is subscribed if it appears later)"
                    )

    def subscribe(self, topic: str, types: list[str], publishers: list[Any]) -> None:
        msgtype = types[0]
        if len(types) > 1:
            self.get_logger().warning(f"topic '{topic}' has several types {types}; recording {msgtype}")
        try:
            self.session.add_topic(topic, msgtype)
            message_type = message_class(msgtype)
        except (UnknownTypeError, ImportError, AttributeError, ValueError) as error:
            self.unusable.add(topic)
            self.get_logger().error(f"cannot record topic '{topic}' ({msgtype}): {error}")
            return
        qos = self.qos_for(publishers)
        self.note_publishers(topic, publishers)  # which nodes made it (a camera driver or a stand-in)
        self.subscriptions_by_topic[topic] = self.create_subscription(
            message_type, topic, lambda data, t=topic: self.on_message(t, data), qos, raw=True
        )
        if msgtype == IMAGE_TYPE:
            self.images_to_check.add(topic)
        if msgtype in EVALUATION_ONLY_TYPES:
            self.get_logger().warning(
                f"topic '{topic}' carries {msgtype}: evaluation data, training must never read it"
            )
        reliability = "reliable" if qos.reliability == QoSReliabilityPolicy.RELIABLE else "best effort"
        self.get_logger().info(f"subscribed to '{topic}' ({msgtype}, {reliability}, {len(publishers)} publisher(s))")

    def qos_for(self, publishers: list[Any]) -> QoSProfile:
        """Reliable if every publisher offers it (else best effort); transient-local likewise."""
        reliable = all(p.qos_profile.reliability == QoSReliabilityPolicy.RELIABLE for p in publishers)
        latched = all(p.qos_profile.durability == QoSDurabilityPolicy.TRANSIENT_LOCAL for p in publishers)
        return QoSProfile(
            history=QoSHistoryPolicy.KEEP_LAST,
            depth=self.parameters.queue_depth,
            reliability=QoSReliabilityPolicy.RELIABLE if reliable else QoSReliabilityPolicy.BEST_EFFORT,
            durability=QoSDurabilityPolicy.TRANSIENT_LOCAL if latched else QoSDurabilityPolicy.VOLATILE,
        )

    # -- recording ---------------------------------------------------------------------

    def on_message(self, topic: str, data: bytes) -> None:
        self.session.write(topic, time.time_ns(), data)
        if topic in self.images_to_check:
            self.images_to_check.discard(topic)
            try:
                problem = image_encoding_problem(self.session.registry.typestore, data)
            except Exception as error:  # a malformed image: say so, keep recording
                problem = f"cannot decode its first message ({error})"
            if problem:
                self.get_logger().warning(f"image topic '{topic}': {problem}")

    def counts_text(self) -> str:
        counts = self.session.total_counts()
        return ", ".join(f"{t} {counts.get(t, 0)}" for t in self.topics)

    def report(self) -> None:
        elapsed = time.monotonic() - self.started
        self.get_logger().info(
            f"recorded {self.counts_text()} in {elapsed:.1f} s "
            f"({len(self.session.splits)} splits, {self.session.bytes_written() / 1e6:.1f} MB)"
        )

    def on_shutdown(self) -> None:
        self.session.close()
        elapsed = time.monotonic() - self.started
        missing = [t for t in self.topics if t not in self.subscriptions_by_topic]
        self.get_logger().info(
            f"summary: {self.counts_text()} in {elapsed:.1f} s; {len(self.session.splits)} splits, "
            f"{self.session.bytes_written() / 1e6:.1f} MB in {self.session.folder}"
            + (f"; never seen: {', '.join(missing)}" if missing else "")
        )


def main(args: list[str] | None = None) -> int:
    return run_node(Recorder, args)


if __name__ == "__main__":
    raise SystemExit(main())
