"""``dmo-bag-info``: what a recording holds, read back from the bags themselves.

Reads a recorder session (a folder of split bags) or a single rosbag2 bag, and reports per
topic: message type, count, rate, the largest gap, whether header stamps are monotonic,
and for images their sizes and encodings, for intent labels the share of steps with intent
on, the number of toggles and milestone presses. It does not trust the recorder's own
manifest: every message is read. Plain Python (rosbags); no ROS needed.

    dmo-bag-info bags/20261124-003934
    dmo-bag-info bags/20261124-003934 --json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rosbags.rosbag2 import Reader, ReaderError

from dmo_ros.recording.bag_writer import TypeRegistry, session_splits

IMAGE_TYPE = "sensor_msgs/msg/Image"
INTENT_TYPE = "dmo_msgs/msg/Intent"


@dataclass
class TopicSummary:
    topic: str
    msgtype: str
    count: int = 0
    first_ns: int = 0
    last_ns: int = 0
    max_gap_s: float = 0.0
    stamps_monotonic: bool = True
    image_formats: dict[str, int] = field(default_factory=dict)
    intent_on: int = 0
    intent_toggles: int = 0
    milestones: int = 0

    @property
    def rate_hz(self) -> float:
        span = (self.last_ns - self.first_ns) * 1e-9
        return (self.count - 1) / span if self.count > 1 and span > 0 else 0.0


@dataclass
class SessionSummary:
    path: str
    bags: int
    bytes: int
    duration_s: float
    topics: dict[str, TopicSummary]

    def to_dict(self) -> dict[str, Any]:
        result = asdict(self)
        for name, topic in self.topics.items():
            result["topics"][name]["rate_hz"] = topic.rate_hz
        return result


def bag_folders(path: Path) -> list[Path]:
    """The bags of a path: a recorder session's finished splits, or the path itself if it is one bag."""
    if (path / "metadata.yaml").is_file():
        return [path]
    splits = session_splits(path)
    if not splits:
        raise FileNotFoundError(f"{path} is neither a rosbag2 bag nor a recorder session with finished splits")
    return splits


def _stamp_ns(message: Any) -> int | None:
    header = getattr(message, "header", None)
    return None if header is None else header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


def summarize(path: Path | str) -> SessionSummary:
    path = Path(path)
    registry = TypeRegistry()
    topics: dict[str, TopicSummary] = {}
    last_stamp: dict[str, int] = {}
    last_active: dict[str, bool] = {}
    total_bytes = 0
    bags = bag_folders(path)
    for bag in bags:
        total_bytes += sum(f.stat().st_size for f in bag.iterdir() if f.is_file())
        with Reader(bag) as reader:
            for connection in reader.connections:
                registry.ensure_from_connection(connection)
                topics.setdefault(connection.topic, TopicSummary(connection.topic, connection.msgtype))
            for connection, timestamp, data in reader.messages():
                summary = topics[connection.topic]
                if summary.count:
                    summary.max_gap_s = max(summary.max_gap_s, (timestamp - summary.last_ns) * 1e-9)
                else:
                    summary.first_ns = timestamp
                summary.count += 1
                summary.last_ns = timestamp
                message = registry.typestore.deserialize_cdr(bytes(data), connection.msgtype)
                stamp = _stamp_ns(message)
                if stamp is not None:
                    if stamp < last_stamp.get(connection.topic, -1):
                        summary.stamps_monotonic = False
                    last_stamp[connection.topic] = stamp
                if connection.msgtype == IMAGE_TYPE:
                    key = f"{message.width}x{message.height} {message.encoding}"
                    summary.image_formats[key] = summary.image_formats.get(key, 0) + 1
                elif connection.msgtype == INTENT_TYPE:
                    summary.intent_on += int(message.active)
                    summary.milestones += int(message.milestone > 0)
                    previous = last_active.get(connection.topic)
                    summary.intent_toggles += int(previous is not None and previous != message.active)
                    last_active[connection.topic] = bool(message.active)
    starts = [t.first_ns for t in topics.values() if t.count]
    ends = [t.last_ns for t in topics.values() if t.count]
    duration = (max(ends) - min(starts)) * 1e-9 if starts else 0.0
    return SessionSummary(str(path), len(bags), total_bytes, duration, topics)


def format_summary(summary: SessionSummary) -> str:
    lines = [
        f"{summary.path}: {summary.bags} bag(s), {summary.bytes / 1e6:.1f} MB, {summary.duration_s:.1f} s",
        f"  {'topic':<32} {'type':<32} {'count':>6} {'rate':>8} {'max gap':>8}  details",
    ]
    for topic in summary.topics.values():
        details = []
        if topic.image_formats:
            details.append(", ".join(f"{k} ({v})" for k, v in Counter(topic.image_formats).most_common()))
        if topic.msgtype == INTENT_TYPE and topic.count:
            details.append(f"intent on {topic.intent_on / topic.count:.0%}, {topic.intent_toggles} toggles, "
                           f"{topic.milestones} milestones")
        if not topic.stamps_monotonic:
            details.append("HEADER STAMPS GO BACKWARDS")
        lines.append(
            f"  {topic.topic:<32} {topic.msgtype:<32} {topic.count:>6} {topic.rate_hz:>6.1f}Hz "
            f"{topic.max_gap_s:>7.2f}s  {'; '.join(details)}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dmo-bag-info", description=__doc__.split("\n\n")[1])
    parser.add_argument("path", type=Path, help="a recorder session folder or a rosbag2 bag folder")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    options = parser.parse_args(argv)
    try:
        summary = summarize(options.path)
    except (OSError, ValueError, ReaderError) as error:
        print(f"dmo-bag-info: error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(summary.to_dict(), indent=1) if options.json else format_summary(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
