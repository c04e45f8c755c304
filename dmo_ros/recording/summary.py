"""``dmo-bag-info``: what a recording holds, read back from the bags themselves.

Reads recorder sessions (folders of split bags) or single rosbag2 bags (a folder of them: every one at any depth
under it, as ``dmo-convert`` finds them), and reports per
topic: message type, count, rate, the largest gap, whether header stamps are monotonic
(zero stamps are counted apart), and for images their sizes and encodings (compressed: the
format, the decoded size of the first image, the mean size), for intent labels the share of
steps with intent on, the number of toggles and milestone presses. A topic whose type has
no usable definition (a service-event topic, an empty definition) is counted but not
decoded, with the reason; a message that does not deserialise is counted as damaged. It
does not trust the recorder's own manifest: every message is read. Plain Python (rosbags);
no ROS needed.

    dmo-bag-info bags/20261124-003934
    dmo-bag-info bags/20261124-003934 other_bag/ --json
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from rosbags.rosbag2 import ReaderError

from dmo_ros.help_text import plain_text
from dmo_ros.interrupt import stop_on_interrupt
from dmo_ros.recording.bag_reader import (
    DECODE_ERRORS,
    NO_RECORDING_UNDER,
    BagError,
    BagReader,
    MessageDecoder,
    UndecodableTypeError,
    find_recordings,
    missing_metadata,
    no_split_readable,
    storage_files,
    unreadable_splits,
)
from dmo_ros.recording.bag_writer import session_collection, session_splits

IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
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
    compressed_bytes: int = 0
    zero_stamps: int = 0
    damaged: int = 0
    not_decoded: str = ""
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
    notes: list[str] = field(default_factory=list)
    """What was left out: splits without metadata.yaml, what a recovery of truncated files read and lost."""
    collection: dict[str, Any] | None = None
    """What recorded the session, with which settings (the manifest's ``collection``; None: it does not say)."""

    def to_dict(self) -> dict[str, Any]:
        result = asdict(self)
        for name, topic in self.topics.items():
            result["topics"][name]["rate_hz"] = topic.rate_hz
        return result


def bag_folders(path: Path) -> list[Path]:
    """The bags of a path: a recorder session's finished splits, or the path itself if it is one bag.

    ``BagError`` for a bag folder without metadata.yaml (the fix: reindex it) and for a session none of whose
    splits can be read; ``FileNotFoundError`` for a path that is neither a bag nor a session."""
    if (path / "metadata.yaml").is_file():
        return [path]
    splits = session_splits(path)
    if not splits:
        if storage_files(path):
            raise BagError(missing_metadata(path))
        unreadable = unreadable_splits(path)
        if unreadable:
            raise BagError(no_split_readable(unreadable))
        raise FileNotFoundError(f"{path} is neither a rosbag2 bag nor a recorder session with finished splits")
    return splits


def recordings_of(path: Path) -> list[Path]:
    """What ``dmo-bag-info PATH`` reads: ``path`` itself when it is a bag or a session (or not a folder: reading it
    says why), else the bags and sessions at any depth under it, as ``dmo-convert`` finds them
    (:func:`~dmo_ros.recording.bag_reader.find_recordings`). ``FileNotFoundError`` when a folder holds none."""
    if not path.is_dir():
        return [path]
    found = find_recordings(path)
    if not found:
        raise FileNotFoundError(NO_RECORDING_UNDER)
    return found


def _stamp_ns(message: Any) -> int | None:
    header = getattr(message, "header", None)
    return None if header is None else header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


def _compressed_format(message: Any) -> str:
    """'jpeg 96x96': the format and the size of the image, read from the encoded data's header."""
    fmt = message.format.split(";")[-1].strip().lower() or "compressed"
    pixels = cv2.imdecode(np.asarray(message.data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    return f"{fmt} {pixels.shape[1]}x{pixels.shape[0]}" if pixels is not None else f"{fmt} (undecodable)"


def summarize(path: Path | str, recover_truncated: bool = False) -> SessionSummary:
    """Read every message of a session or bag; ``BagError``/``ReaderError``/``OSError`` for what cannot be read."""
    path = Path(path)
    decoder = MessageDecoder()
    topics: dict[str, TopicSummary] = {}
    last_stamp: dict[str, int] = {}
    last_active: dict[str, bool] = {}
    compressed_seen: dict[str, str] = {}  # format as received → described (decoded once per format)
    bags = bag_folders(path)
    total_bytes, notes = 0, unreadable_splits(path)
    for bag in bags:
        total_bytes += sum(f.stat().st_size for f in bag.iterdir() if f.is_file())
        with BagReader(bag, recover_truncated=recover_truncated) as reader:
            deserialize = {}
            for connection in reader.connections:
                summary = topics.setdefault(connection.topic, TopicSummary(connection.topic, connection.msgtype))
                try:
                    deserialize[connection.id] = decoder.deserializer(connection)
                except UndecodableTypeError as error:
                    summary.not_decoded = str(error)
            for connection, timestamp, data in reader.messages():
                summary = topics[connection.topic]
                if summary.count:
                    summary.max_gap_s = max(summary.max_gap_s, (timestamp - summary.last_ns) * 1e-9)
                else:
                    summary.first_ns = timestamp
                summary.count += 1
                summary.last_ns = timestamp
                if connection.id not in deserialize:
                    continue
                try:
                    message = deserialize[connection.id](data)
                except DECODE_ERRORS:
                    summary.damaged += 1
                    continue
                stamp = _stamp_ns(message)
                if stamp == 0:
                    summary.zero_stamps += 1
                elif stamp is not None:
                    if stamp < last_stamp.get(connection.topic, -1):
                        summary.stamps_monotonic = False
                    last_stamp[connection.topic] = stamp
                if connection.msgtype == IMAGE_TYPE:
                    key = f"{message.width}x{message.height} {message.encoding}"
                    summary.image_formats[key] = summary.image_formats.get(key, 0) + 1
                elif connection.msgtype == COMPRESSED_TYPE:
                    if message.format not in compressed_seen:
                        compressed_seen[message.format] = _compressed_format(message)
                    key = compressed_seen[message.format]
                    summary.image_formats[key] = summary.image_formats.get(key, 0) + 1
                    summary.compressed_bytes += len(message.data)
                elif connection.msgtype == INTENT_TYPE:
                    summary.intent_on += int(message.active)
                    summary.milestones += int(getattr(message, "milestone", 0.0) > 0)
                    previous = last_active.get(connection.topic)
                    summary.intent_toggles += int(previous is not None and previous != message.active)
                    last_active[connection.topic] = bool(message.active)
            notes += reader.notes
    starts = [t.first_ns for t in topics.values() if t.count]
    ends = [t.last_ns for t in topics.values() if t.count]
    duration = (max(ends) - min(starts)) * 1e-9 if starts else 0.0
    return SessionSummary(str(path), len(bags), total_bytes, duration, topics, notes, session_collection(path))


def format_summary(summary: SessionSummary) -> str:
    lines = [
        f"{summary.path}: {summary.bags} bag(s), {summary.bytes / 1e6:.1f} MB, {summary.duration_s:.1f} s",
    ]
    if summary.collection:  # the recording's own settings, e.g. dmo-collect-fast's seed and operator
        settings = {k: v for k, v in summary.collection.items() if k not in ("tool", "publishers")}
        lines.append(f"  recorded by {summary.collection.get('tool', 'an unnamed tool')}: "
                     + ", ".join(f"{k} {v}" for k, v in settings.items()))
        publishers = summary.collection.get("publishers")
        if isinstance(publishers, dict) and publishers:  # the recorder node's: which nodes made each topic
            lines.append("  published by: " + "; ".join(f"{topic} {', '.join(map(str, nodes))}"
                                                        for topic, nodes in publishers.items()))
    wide = max([32, *(len(t.topic) for t in summary.topics.values())])
    wide_type = max([32, *(len(t.msgtype) for t in summary.topics.values())])
    lines.append(f"  {'topic':<{wide}} {'type':<{wide_type}} {'count':>6} {'rate':>8} {'max gap':>8}  details")
    for topic in summary.topics.values():
        details = []
        if topic.image_formats:
            details.append(", ".join(f"{k} ({v})" for k, v in Counter(topic.image_formats).most_common()))
        if topic.compressed_bytes:
            details.append(f"mean {topic.compressed_bytes / max(sum(topic.image_formats.values()), 1) / 1e3:.1f} kB")
        if topic.msgtype == INTENT_TYPE and topic.count:
            decoded = max(topic.count - topic.damaged, 1)
            details.append(f"intent on {topic.intent_on / decoded:.0%}, {topic.intent_toggles} toggles, "
                           f"{topic.milestones} milestones")
        if not topic.stamps_monotonic:
            details.append("HEADER STAMPS GO BACKWARDS")
        if topic.zero_stamps:
            details.append(f"{topic.zero_stamps} zero header stamp(s) (unset: the receive time stands in)")
        if topic.damaged:
            details.append(f"{topic.damaged} DAMAGED message(s) (do not deserialise)")
        if topic.not_decoded:
            details.append(f"not decoded: {topic.not_decoded}")
        lines.append(
            f"  {topic.topic:<{wide}} {topic.msgtype:<{wide_type}} {topic.count:>6} {topic.rate_hz:>6.1f}Hz "
            f"{topic.max_gap_s:>7.2f}s  {'; '.join(details)}"
        )
    lines += [f"  warning: {note}" for note in summary.notes]
    return "\n".join(lines)


@stop_on_interrupt
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dmo-bag-info", description=plain_text(__doc__.split("\n\n")[1]),
                                     epilog="Exit code: 0 every path read, 1 some could not be, 2 none.")
    parser.add_argument("paths", nargs="+", type=Path,
                        help="recorder session folders or rosbag2 bag folders, or folders of them (any depth)")
    parser.add_argument("--json", action="store_true",
                        help="print JSON instead of a table (an object for one bag or session, a list for several)")
    parser.add_argument("--recover-truncated", action="store_true",
                        help="read the messages written before the cut of a truncated MCAP file")
    options = parser.parse_args(argv)
    summaries, failed = [], 0
    try:
        targets = []
        for path in options.paths:
            try:
                targets += recordings_of(path)
            except FileNotFoundError as error:
                print(f"dmo-bag-info: error: {path}: {error}", file=sys.stderr)
                failed += 1
        for path in targets:
            try:
                summary = summarize(path, options.recover_truncated)
            except (OSError, ValueError, ReaderError, sqlite3.DatabaseError) as error:
                print(f"dmo-bag-info: error: {path}: {error}", file=sys.stderr)
                failed += 1
                continue
            summaries.append(summary)
            if not options.json:
                print(format_summary(summary), flush=True)
        if options.json and summaries:
            dicts = [s.to_dict() for s in summaries]
            print(json.dumps(dicts[0] if len(options.paths) == len(targets) == 1 else dicts, indent=1), flush=True)
    except BrokenPipeError:  # piped into `head`: the reader has what it wants
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush does not fail again
        return 0
    return 0 if not failed else 2 if not summaries else 1


if __name__ == "__main__":
    sys.exit(main())
