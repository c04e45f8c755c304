"""``dmo-convert``: rosbag2 recordings → one training dataset (see ``dmo_ros.dataset.format``).

    dmo-convert bags/ -o datasets/pusht --robot pusht
    dmo-convert bags/20261124-003934 other_bag/ -o datasets/go2 --robot go2 --size 64 64

Inputs: rosbag2 bags (MCAP or SQLite3), recorder sessions (folders of split bags, read as
one continuous recording), or folders holding several of those. Topics and the action
mapping come from the robot profile (``config/robots/ROBOT.yaml``); topic arguments
override them.

Alignment rule (one sample per action tick, at the control rate):
- Every message's time is its header stamp when it has one, else the time the recorder
  received it. Actions arriving faster than ``rate_hz`` are decimated to it.
- A sample's frame is the latest camera image with a stamp at or before the action's
  stamp (the image the operator or policy saw when acting); the skew (action stamp −
  frame stamp) is reported. No image within ``max_frame_age_s``: the sample is dropped
  (stale camera) and the episode ends there.
- Intent and milestone: the latest ``dmo_msgs/Intent`` with a stamp at or before the
  action's stamp + half a period (teleop publishes both with one stamp); a milestone
  press counts once, on the first sample after it.
- Episodes end at gaps longer than ``gap_threshold_s``, at reset events (``/reset``), at a
  stale camera, and at the end of each input (bag or session). An action whose frame was taken
  before a reset it follows is dropped (``dropped_before_reset``): that frame shows the scene
  before the reset, and the robot drops a command sent with the reset.
- All connections of a topic with the same type are one stream (a publisher restarted with
  other QoS); a topic recorded with two different types is refused.

Checks that refuse an input rather than write wrong samples (each message names the cause):
- Clocks: every role topic's header stamps must overlap the actions' (a camera on a boot
  clock, intent in wall time beside sim time); ``--time-source receive`` aligns by the
  recorder's receive times instead.
- Rate: the measured action rate must match ``rate_hz`` (the profile's) within
  ``rate_tolerance``; faster actions are decimated, slower ones need ``--rate``.
- Storage: files in the bag folder that ``metadata.yaml`` does not list; a truncated MCAP
  (``--recover-truncated`` reads what was written before the cut).
A message that does not deserialise (a cut payload) is counted per topic, skipped and
reported; a bag recorded with an older definition of a type is decoded with that definition
(an ``Intent`` without ``milestone`` gives milestone 0, with a warning).

A bad input (unreadable, truncated or corrupt file, missing camera/action topic, unknown
image encoding, images changing size, clocks or rate that do not match, no samples) is reported with the reason and left
out; its samples are rolled back. The exit code is 0 when every input converted, 1 when
some failed (the dataset holds the good ones), 2 when none did (no dataset is written).
The dataset is written under ``OUT.partial`` and renamed to ``OUT`` only when complete.
"""

from __future__ import annotations

import argparse
import math
import sqlite3
import struct
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from rosbags.rosbag2 import ReaderError

from dmo_ros.dataset.format import DatasetWriter, read_meta, split_episodes
from dmo_ros.dataset.images import ASPECTS, CAMERA_TYPES, ImageError, camera_frame, image_format
from dmo_ros.dataset.robot_profile import ProfileError, RobotProfile, load_robot_profile
from dmo_ros.interrupt import stop_on_interrupt
from dmo_ros.output_paths import output_folder
from dmo_ros.recording.bag_reader import (
    DECODE_ERRORS,
    NO_RECORDING_UNDER,
    BagError,
    BagReader,
    Connection,
    MessageDecoder,
    UndecodableTypeError,
    find_recordings,
    missing_metadata,
    no_split_readable,
    storage_files,
    unreadable_splits,
)
from dmo_ros.recording.bag_writer import session_closed, session_collection, session_in_use, session_splits

INTENT_TYPE = "dmo_msgs/msg/Intent"
CONVERTER_VERSION = 1
TIME_SOURCES = ("header", "receive")


@dataclass
class ConvertConfig:
    """How bags become a dataset."""

    robot: str = "pusht"
    """Robot profile (config/robots/ROBOT.yaml, or a path to one): topics, rate, action mapping."""
    camera_topic: str = ""
    """Camera topic (sensor_msgs/Image or CompressedImage); empty: the profile's."""
    action_topic: str = ""
    """Action topic; empty: the profile's."""
    intent_topic: str = ""
    """dmo_msgs/Intent topic; empty: the profile's."""
    reset_topic: str = ""
    """Reset events topic; empty: the profile's."""
    rate_hz: float = 0.0
    """Samples per second (actions faster than this are decimated); 0: the profile's."""
    height: int = 64
    """Frame height in the dataset (pixels)."""
    width: int = 64
    """Frame width in the dataset (pixels)."""
    aspect: str = "crop"
    """How a different aspect ratio is handled: crop (centre), pad (black borders) or stretch."""
    gap_threshold_s: float = 1.0
    """A longer gap between two actions ends the episode."""
    max_frame_age_s: float = 0.5
    """A sample whose latest frame is older than this is dropped (stale camera)."""
    reorder_window_s: float = 0.5
    """How long an action waits for late-arriving images stamped before it."""
    validation_fraction: float = 0.2
    """Share of episodes in the validation split."""
    seed: int = 0
    """Seed of the train/validation split."""
    time_source: str = "header"
    """Message time: header (the header stamp, else the receive time) or receive (the recorder's receive time)."""
    rate_tolerance: float = 0.1
    """An input whose measured action rate is below rate_hz by more than this fraction is refused."""
    recover_truncated: bool = False
    """Read the messages written before the cut of a truncated MCAP file instead of refusing the input."""

    def __post_init__(self) -> None:
        for name in ("rate_hz", "gap_threshold_s", "max_frame_age_s", "reorder_window_s", "validation_fraction",
                     "rate_tolerance"):  # nan passes every comparison below
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"{name} must be a finite number, got {getattr(self, name)}")
        if self.height <= 0 or self.width <= 0:
            raise ValueError(f"frame size must be positive, got {self.width}x{self.height}")
        if self.aspect not in ASPECTS:
            raise ValueError(f"aspect must be one of {', '.join(ASPECTS)}, got '{self.aspect}'")
        if self.rate_hz < 0:
            raise ValueError(f"rate_hz must be >= 0 (0: the robot profile's rate), got {self.rate_hz:g}")
        if not 0 <= self.validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in [0, 1), got {self.validation_fraction:g}")
        for name in ("gap_threshold_s", "max_frame_age_s", "reorder_window_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive (s), got {getattr(self, name):g}")
        if self.time_source not in TIME_SOURCES:
            raise ValueError(f"time_source must be one of {', '.join(TIME_SOURCES)}, got '{self.time_source}'")
        if not 0 <= self.rate_tolerance < 1:
            raise ValueError(f"rate_tolerance must be in [0, 1), got {self.rate_tolerance}")
        if self.seed < 0:  # numpy seeds the train/validation split; it takes no negative seed
            raise ValueError(f"seed must be >= 0, got {self.seed}")


class SourceError(ValueError):
    """An input that cannot be converted; the message says why."""


@dataclass
class Source:
    """One input: a bag, or a recorder session (its splits in order)."""

    path: Path
    bags: list[Path]
    warnings: list[str] = field(default_factory=list)
    """What of it cannot be read (a session's splits without metadata.yaml); each becomes a report warning."""

    @property
    def bytes(self) -> int:
        return sum(f.stat().st_size for bag in self.bags for f in bag.iterdir() if f.is_file())


@dataclass
class SourceReport:
    path: str
    ok: bool = False
    error: str = ""
    samples: int = 0
    episodes: int = 0
    camera_messages: int = 0
    bytes: int = 0
    seconds: float = 0.0
    dropped_stale: int = 0
    dropped_before_reset: int = 0
    dropped_invalid: int = 0
    decimated: int = 0
    intent_missing: bool = False
    image_format: str = ""
    action_rate_hz: float = 0.0
    undecodable: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    collection: dict[str, Any] | None = None
    """What recorded a session and with which settings (its manifest's ``collection``: ``dmo-collect-fast``'s
    robot, seed, task, operator settings, ...); None for a plain bag or a session that does not say."""


def find_sources(paths: list[Path]) -> tuple[list[Source], list[SourceReport]]:
    """Expand the inputs into bags and sessions; paths that are neither are reported, and so is an input whose
    bags an earlier input already holds (a session listed twice, or beside its folder or one of its splits):
    converted twice, one recording would be two episodes, one of them maybe in the validation split."""
    sources, bad = _expand_sources(paths)
    unique, seen = [], {}
    for source in sources:
        bags = {bag.resolve() for bag in source.bags}
        first = next((seen[bag] for bag in bags if bag in seen), None)
        if first is not None:
            bad.append(SourceReport(str(source.path), error=f"repeats recordings of {first} (listed twice, or inside "
                                                            f"it); converted once, as {first}"))
            continue
        seen.update(dict.fromkeys(bags, source.path))
        unique.append(source)
    return unique, bad


def _expand_sources(paths: list[Path]) -> tuple[list[Source], list[SourceReport]]:
    sources, bad = [], []
    for path in paths:
        if (path / "metadata.yaml").is_file():
            sources.append(Source(path, [path]))
        elif session_splits(path):
            if session_in_use(path):  # its newest split is still open: a dataset now would silently lack the rest
                bad.append(SourceReport(str(path), error="is being recorded (a live recorder holds the session's "
                                                         "lock): convert it after the recording stops"))
            else:
                sources.append(Source(path, session_splits(path), unreadable_splits(path)))
        elif storage_files(path):
            bad.append(SourceReport(str(path), error=missing_metadata(path)))
        elif unreadable_splits(path):
            bad.append(SourceReport(str(path), error=no_split_readable(unreadable_splits(path))))
        elif path.is_dir():
            found = find_recordings(path)  # at any depth; the unreadable ones too, to say why and how to fix them
            if found:
                more, more_bad = _expand_sources(found)
                sources += more
                bad += more_bad
            else:
                bad.append(SourceReport(str(path), error=NO_RECORDING_UNDER))
        else:
            bad.append(SourceReport(str(path), error="does not exist" if not path.exists() else "not a bag folder"))
    return sources, bad


def _stamp(message: Any, fallback_ns: int) -> int:
    header = getattr(message, "header", None)
    if header is None:
        return fallback_ns
    stamp = header.stamp.sec * 1_000_000_000 + header.stamp.nanosec
    return stamp if stamp > 0 else fallback_ns


@dataclass
class StampRange:
    """The span of one role topic's message times in a source (ns)."""

    topic: str
    first: int = 2**63 - 1
    last: int = -(2**63)

    def add(self, stamp: int) -> None:
        self.first = min(self.first, stamp)
        self.last = max(self.last, stamp)

    def describe(self) -> str:
        return f"{self.first / 1e9:.1f}-{self.last / 1e9:.1f} s"


def clock_mismatch(ranges: dict[str, StampRange], slack_ns: int) -> str:
    """'' when every role topic's times overlap the actions' (within ``slack_ns``); else the cause, named."""
    action = ranges.get("action")
    if action is None:
        return ""
    for role in ("camera", "intent", "reset"):
        other = ranges.get(role)
        if other is None or (other.first <= action.last + slack_ns and action.first <= other.last + slack_ns):
            continue
        apart = abs((other.first + other.last) / 2 - (action.first + action.last) / 2) / 1e9
        return (f"clocks do not match: {role} '{other.topic}' is stamped {other.describe()}, action "
                f"'{action.topic}' {action.describe()} ({apart:.3g} s apart); the topics are stamped on different "
                "clocks (e.g. a boot/steady clock or sim time beside wall time). Fix the stamping, or convert with "
                "--time-source receive to align by the recorder's receive times")
    return ""


def measured_rate_hz(stamps: list[int], gap_threshold_ns: float) -> float:
    """Actions per second: 1 / the median interval between consecutive actions (gaps excluded); 0 if unknown."""
    steps = np.diff(np.sort(np.asarray(stamps, dtype=np.int64)))
    steps = steps[(steps > 0) & (steps <= gap_threshold_ns)]
    return 1e9 / float(np.median(steps)) if len(steps) else 0.0


@dataclass
class Sample:
    frame: np.ndarray
    action: np.ndarray
    intent: bool
    milestone: float
    stamp: int
    frame_stamp: int
    new_episode: bool


class Aligner:
    """Turns one source's time-ordered messages into samples (the rule in the module doc)."""

    def __init__(self, config: ConvertConfig, rate_hz: float, emit: Callable[[Sample], None],
                 report: SourceReport) -> None:
        self.config, self.emit, self.report = config, emit, report
        self.period_ns = int(1e9 / rate_hz)
        self.frames: deque[tuple[int, Any, str]] = deque()
        self.pending: deque[tuple[int, int, np.ndarray]] = deque()  # (stamp, received, action)
        self.intents: deque[tuple[int, bool, float, int]] = deque()  # (stamp, active, milestone, serial)
        self.resets: deque[int] = deque()
        self.last_kept: int | None = None
        self.next_due: int | None = None
        self.last_sample: int | None = None
        self.last_intent_serial = -1
        self.intent_serial = 0
        self.held_intent = False
        self.break_next = True
        self.decoded: tuple[int, np.ndarray] | None = None  # (frame stamp, resized frame)
        self.expected_size: tuple[int, int] | None = None

    def add_frame(self, stamp: int, message: Any, msgtype: str) -> None:
        self.report.camera_messages += 1
        self.frames.append((stamp, message, msgtype))
        # Frames this much older than the newest can serve no action that is still to come (a
        # later action would find them stale), so a stretch without actions holds no memory.
        horizon = int((self.config.max_frame_age_s + 2 * self.config.reorder_window_s + 1.0) * 1e9)
        while self.frames and self.frames[0][0] < stamp - horizon:
            self.frames.popleft()

    def add_intent(self, stamp: int, message: Any) -> None:
        self.intent_serial += 1
        # An Intent recorded before the milestone field existed decodes without it: no milestone.
        milestone = float(getattr(message, "milestone", 0.0))
        self.intents.append((stamp, bool(message.active), milestone, self.intent_serial))

    def add_reset(self, stamp: int) -> None:
        self.resets.append(stamp)

    def add_action(self, stamp: int, received: int, action: list[float]) -> None:
        self.pending.append((stamp, received, np.asarray(action, dtype=np.float32)))

    def flush(self, now_received: int | None) -> None:
        """Emit the actions whose late images can no longer arrive (all of them at the end)."""
        window = int(self.config.reorder_window_s * 1e9)
        while self.pending and (now_received is None or now_received - self.pending[0][1] > window):
            stamp, _, action = self.pending.popleft()
            self._sample(stamp, action)

    def _sample(self, stamp: int, action: np.ndarray) -> None:
        if not np.all(np.isfinite(action)):
            self.report.dropped_invalid += 1
            return
        if self.last_kept is not None:
            if stamp <= self.last_kept:  # a stamp going backwards: not a new tick
                self.report.dropped_invalid += 1
                return
            if stamp < self.next_due - self.period_ns // 4:  # faster than the rate: keep one per period
                self.report.decimated += 1
                return
        # The next tick is due one period after this one's slot (or after this action, after a gap).
        slot = stamp if self.next_due is None or stamp > self.next_due + self.period_ns // 2 else self.next_due
        self.next_due = slot + self.period_ns
        self.last_kept = stamp
        chosen = None
        for entry in self.frames:
            if entry[0] <= stamp and (chosen is None or entry[0] >= chosen[0]):
                chosen = entry
        if chosen is None or stamp - chosen[0] > self.config.max_frame_age_s * 1e9:
            self.report.dropped_stale += 1
            self.break_next = True
            return
        # Frames older than the chosen one can no longer be chosen (later actions are later).
        self.frames = deque(e for e in self.frames if e[0] >= chosen[0])
        frame = self._decode(chosen)
        intent, milestone = self._intent(stamp)
        new_episode = self.break_next or (
            self.last_sample is not None and stamp - self.last_sample > self.config.gap_threshold_s * 1e9
        )
        reset_at = None
        while self.resets and self.resets[0] <= stamp:
            if self.last_sample is None or self.resets[0] > self.last_sample:
                new_episode, reset_at = self.last_sample is not None or new_episode, self.resets[0]
            self.resets.popleft()
        if reset_at is not None and chosen[0] < reset_at:
            # The frame was taken before the reset: it shows the previous scene (and the stand-in or robot
            # drops the command sent with the reset). The next sample starts the new episode.
            self.report.dropped_before_reset += 1
            self.break_next = self.break_next or self.last_sample is not None
            return
        self.break_next = False
        self.last_sample = stamp
        self.emit(Sample(frame, action, intent, milestone, stamp, chosen[0], new_episode))

    def _decode(self, entry: tuple[int, Any, str]) -> np.ndarray:
        stamp, message, msgtype = entry
        if self.decoded is not None and self.decoded[0] == stamp:
            return self.decoded[1]
        frame, size = camera_frame(message, msgtype, self.config.height, self.config.width, self.config.aspect)
        if self.expected_size is None:
            self.expected_size = size
        elif size != self.expected_size:
            raise SourceError(
                f"mismatched image sizes within the recording: {self.expected_size[1]}x{self.expected_size[0]} "
                f"then {size[1]}x{size[0]}"
            )
        self.decoded = (stamp, frame)
        return frame

    def _intent(self, stamp: int) -> tuple[bool, float]:
        """The latest intent up to the sample, and the milestone pressed since the last sample."""
        limit = stamp + self.period_ns // 2
        chosen, milestone = None, 0.0
        while self.intents and self.intents[0][0] <= limit:
            chosen = self.intents.popleft()
            if chosen[3] > self.last_intent_serial:  # not yet seen by a sample
                milestone = max(milestone, chosen[2])
        if chosen is None:
            return self.held_intent, 0.0
        self.intents.appendleft(chosen)  # it stays the latest until a newer one arrives
        self.held_intent = chosen[1]
        self.last_intent_serial = chosen[3]
        return chosen[1], milestone


@dataclass
class SourceReading:
    """What a source's bags hold, gathered while reading them (for the checks at its end)."""

    available: dict[str, str] = field(default_factory=dict)  # topic → type, over all bags
    ranges: dict[str, StampRange] = field(default_factory=dict)  # role → span of its message times
    action_stamps: list[int] = field(default_factory=list)
    old_intent: bool = False


class Converter:
    """Converts sources into one dataset; bad sources are rolled back and reported."""

    def __init__(self, config: ConvertConfig, profile: RobotProfile) -> None:
        self.config, self.profile = config, profile
        self.topics = {
            "camera": config.camera_topic or profile.topics["camera"],
            "action": config.action_topic or profile.topics["action"],
            "intent": config.intent_topic or profile.topics.get("intent", ""),
            "reset": config.reset_topic or profile.topics.get("reset", ""),
        }
        self.rate_hz = config.rate_hz or profile.rate_hz
        self.decoder = MessageDecoder()
        self.episodes: list[dict[str, Any]] = []
        self.skews_ns: list[int] = []

    def convert_source(self, source: Source, writer: DatasetWriter) -> SourceReport:
        """Append one source's samples to the dataset; on failure roll them back and say why."""
        report = SourceReport(str(source.path), bytes=source.bytes)
        started = time.monotonic()
        start_count, start_episodes, start_skews = writer.count, len(self.episodes), len(self.skews_ns)

        def emit(sample: Sample) -> None:
            if sample.new_episode or len(self.episodes) == start_episodes:
                self.episodes.append({"index": len(self.episodes), "start": writer.count, "length": 0,
                                      "source": str(source.path)})
            episode = self.episodes[-1]
            writer.append(sample.frame, sample.action, sample.intent, sample.milestone, sample.stamp,
                          sample.frame_stamp, episode["index"])
            episode["length"] += 1
            self.skews_ns.append(sample.stamp - sample.frame_stamp)

        report.collection = session_collection(source.path)
        report.warnings.extend(source.warnings)
        if session_closed(source.path) is False:
            report.warnings.append("the session was not closed (its recorder crashed or was killed): the seconds in "
                                   "its .partial/ split are not converted; starting the recorder on the same output "
                                   "folder recovers what is readable there, convert after that")
        aligner = Aligner(self.config, self.rate_hz, emit, report)
        reading = SourceReading()
        try:
            for bag in source.bags:
                self._read_bag(bag, aligner, report, reading)
            listing = ", ".join(f"{t} ({m})" for t, m in reading.available.items()) or "none"
            for role in ("camera", "action"):  # a session's first split may lack a topic, not the session
                if self.topics[role] not in reading.available:
                    raise SourceError(f"no {role} topic '{self.topics[role]}'; the bag has: {listing}")
            if self.topics["intent"] not in reading.available:
                report.intent_missing = True
                report.warnings.append(f"no intent topic '{self.topics['intent']}': intent is false throughout")
            self._check_source(reading, report)
            aligner.flush(None)
            if writer.count == start_count:
                lost = f" ({', '.join(f'{n} undecodable on {t}' for t, n in report.undecodable.items())})" \
                    if report.undecodable else ""
                raise SourceError(f"no samples: no action had a camera frame at or before it{lost}")
        except (SourceError, ImageError, BagError, UndecodableTypeError) as error:
            report.error = str(error)
        except (ReaderError, sqlite3.DatabaseError, OSError, EOFError, struct.error, IndexError, KeyError,
                ValueError) as error:  # a damaged or foreign file: reported, the other inputs go on
            report.error = f"cannot read the bag: {type(error).__name__}: {error}"
        if report.error:  # roll back everything this source added
            writer.truncate(start_count)
            del self.episodes[start_episodes:]
            del self.skews_ns[start_skews:]
        else:
            report.ok = True
            report.samples = writer.count - start_count
            report.episodes = len(self.episodes) - start_episodes
        report.seconds = time.monotonic() - started
        return report

    def _check_source(self, reading: SourceReading, report: SourceReport) -> None:
        """Refuse a source whose clocks or action rate do not fit (before its last samples are emitted)."""
        slack_ns = int(max(self.config.gap_threshold_s, self.config.max_frame_age_s) * 1e9)
        mismatch = clock_mismatch(reading.ranges, slack_ns)
        if mismatch:
            raise SourceError(mismatch)
        report.action_rate_hz = measured_rate_hz(reading.action_stamps, self.config.gap_threshold_s * 1e9)
        if report.action_rate_hz and report.action_rate_hz < self.rate_hz * (1 - self.config.rate_tolerance):
            source_of_rate = "--rate" if self.config.rate_hz else f"the {self.profile.name} profile's rate"
            raise SourceError(
                f"actions arrive at {report.action_rate_hz:.2f} Hz (median interval "
                f"{1 / report.action_rate_hz:.3f} s) but {source_of_rate} is {self.rate_hz:g} Hz: samples would be "
                f"{self.rate_hz / report.action_rate_hz:.1f}x too close in time. Convert these recordings with "
                f"--rate {report.action_rate_hz:.3g}, or fix the recording rate"
            )
        for topic, count in report.undecodable.items():
            report.warnings.append(f"{count} message(s) on {topic} could not be deserialised (damaged payload): "
                                   "skipped")

    def _roles(self, reader: BagReader, reading: SourceReading) -> dict[str, list[Connection]]:
        """The bag's connections of each role topic (all of a topic's connections: one stream)."""
        for connection in reader.connections:
            reading.available.setdefault(connection.topic, connection.msgtype)
        roles: dict[str, list[Connection]] = {}
        for role in ("camera", "action", "intent", "reset"):
            connections = [c for c in reader.connections if c.topic == self.topics[role]]
            if not connections:
                continue
            types = sorted({c.msgtype for c in connections} | {reading.available[self.topics[role]]})
            if len(types) > 1:
                raise SourceError(f"{role} topic '{self.topics[role]}' was recorded with several types: "
                                  f"{', '.join(types)}")
            roles[role] = connections
        camera, action = roles.get("camera", [None])[0], roles.get("action", [None])[0]
        if camera is not None and camera.msgtype not in CAMERA_TYPES:
            raise SourceError(f"camera topic '{camera.topic}' carries {camera.msgtype}, not an image type")
        if action is not None and action.msgtype != self.profile.action.message:
            raise SourceError(
                f"action topic '{action.topic}' carries {action.msgtype}; the {self.profile.name} profile maps "
                f"{self.profile.action.message}"
            )
        if "intent" in roles and roles["intent"][0].msgtype != INTENT_TYPE:
            raise SourceError(f"intent topic '{roles['intent'][0].topic}' carries {roles['intent'][0].msgtype}")
        return roles

    def _read_bag(self, bag: Path, aligner: Aligner, report: SourceReport, reading: SourceReading) -> None:
        with BagReader(bag, recover_truncated=self.config.recover_truncated) as reader:
            roles = self._roles(reader, reading)
            if not roles:
                return
            role_of, deserialize = {}, {}
            for role, connections in roles.items():
                for connection in connections:
                    role_of[connection.id] = role
                    deserialize[connection.id] = self.decoder.deserializer(connection)
            use_header = self.config.time_source == "header"
            ranges = reading.ranges
            for connection, received, data in reader.messages([c for cs in roles.values() for c in cs]):
                role = role_of[connection.id]
                try:
                    message = deserialize[connection.id](data)
                except DECODE_ERRORS:
                    report.undecodable[connection.topic] = report.undecodable.get(connection.topic, 0) + 1
                    continue
                stamp = _stamp(message, received) if use_header else received
                if role not in ranges:
                    ranges[role] = StampRange(connection.topic)
                ranges[role].add(stamp)
                if role == "camera":
                    fmt = image_format(message, connection.msgtype)
                    if not report.image_format:
                        report.image_format = fmt
                    elif connection.msgtype == "sensor_msgs/msg/Image" and fmt != report.image_format:
                        raise SourceError(f"mismatched image sizes within the recording: {report.image_format} "
                                          f"then {fmt}")
                    aligner.add_frame(stamp, message, connection.msgtype)
                elif role == "action":
                    reading.action_stamps.append(stamp)
                    aligner.add_action(stamp, received, self.profile.action.vector(message))
                elif role == "intent":
                    if not hasattr(message, "milestone") and not reading.old_intent:
                        reading.old_intent = True
                        report.warnings.append(f"intent topic '{connection.topic}' was recorded with an older "
                                               "dmo_msgs/Intent (no milestone field): milestone is 0 throughout")
                    aligner.add_intent(stamp, message)
                else:
                    aligner.add_reset(stamp)
                aligner.flush(received)
            report.warnings.extend(reader.notes)


    def meta(self, reports: list[SourceReport], bad: list[SourceReport]) -> dict[str, Any]:
        lengths = [e["length"] for e in self.episodes]
        splits = split_episodes(lengths, self.config.validation_fraction, self.config.seed)
        for episode, split in zip(self.episodes, splits, strict=True):
            episode["split"] = split
        action = self.profile.action
        return {
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "converter_version": CONVERTER_VERSION,
            "robot": self.profile.name,
            "rate_hz": self.rate_hz,
            "topics": self.topics,
            "image": {"height": self.config.height, "width": self.config.width, "aspect": self.config.aspect,
                      "source_formats": sorted({r.image_format for r in reports if r.ok})},
            "action": {"message": action.message, "fields": list(action.fields), "names": list(action.names),
                       "units": list(action.units), "scale": list(action.scale), "semantics": action.semantics},
            "alignment": {
                "rule": "frame = latest image stamped at or before the action's stamp; intent = latest Intent "
                        "stamped at or before the action's stamp + half a period; header stamps, else receive time",
                "skew_ms": skew_statistics(self.skews_ns),
                "gap_threshold_s": self.config.gap_threshold_s,
                "max_frame_age_s": self.config.max_frame_age_s,
            },
            "split": {"validation_fraction": self.config.validation_fraction, "seed": self.config.seed,
                      "train_episodes": splits.count("train"), "val_episodes": splits.count("val")},
            "sources": [report_dict(r) for r in reports if r.ok],
            "failed_sources": [report_dict(r) for r in [*bad, *reports] if not r.ok],
            "episodes": self.episodes,
        }


def report_dict(report: SourceReport) -> dict[str, Any]:
    keys = ("path", "ok", "error", "samples", "episodes", "camera_messages", "bytes", "dropped_stale",
            "dropped_before_reset", "dropped_invalid", "decimated", "image_format", "action_rate_hz", "undecodable",
            "warnings", "collection")
    return {k: getattr(report, k) for k in keys}


def skew_statistics(skews_ns: list[int]) -> dict[str, float]:
    if not skews_ns:
        return {}
    ms = np.asarray(skews_ns, dtype=np.float64) / 1e6
    return {"min": float(ms.min()), "median": float(np.median(ms)), "p95": float(np.percentile(ms, 95)),
            "max": float(ms.max()), "mean": float(ms.mean())}


def convert(inputs: list[Path], output: Path, config: ConvertConfig, log: Callable[[str], None] = print,
            ) -> tuple[Path | None, list[SourceReport]]:
    """Convert ``inputs`` into the dataset ``output``; (the dataset or None, every source's report)."""
    profile = load_robot_profile(config.robot)
    sources, bad = find_sources(inputs)
    for report in bad:
        log(f"  FAILED {report.path}: {report.error}")
    writer = DatasetWriter(output, (config.height, config.width), len(profile.action.fields))
    converter = Converter(config, profile)
    reports = []
    try:
        for source in sources:
            report = converter.convert_source(source, writer)
            reports.append(report)
            if report.ok:
                rate = report.bytes / 1e6 / max(report.seconds, 1e-9)
                log(f"  ok     {report.path}: {report.samples} samples, {report.episodes} episodes, "
                    f"{report.image_format} ({report.bytes / 1e6:.1f} MB at {rate:.0f} MB/s)"
                    + "".join(f"\n         warning: {w}" for w in report.warnings))
            else:
                log(f"  FAILED {report.path}: {report.error}")
    except BaseException:
        writer.abort()
        raise
    if writer.count == 0:
        writer.abort()
        return None, [*bad, *reports]
    return writer.finish(converter.meta(reports, bad)), [*bad, *reports]


def format_summary(meta: dict[str, Any], seconds: float, total_bytes: int, camera_messages: int) -> str:
    skew = meta["alignment"]["skew_ms"]
    episodes = meta["episodes"]
    lengths = [e["length"] for e in episodes]
    return "\n".join([
        f"dataset: {meta['samples']} samples at {meta['rate_hz']:g} Hz ({meta['samples'] / meta['rate_hz']:.0f} s), "
        f"{len(episodes)} episodes (train {meta['split']['train_episodes']}, val {meta['split']['val_episodes']}; "
        f"length min {min(lengths)}, median {int(np.median(lengths))}, max {max(lengths)})",
        f"frames: {meta['image']['width']}x{meta['image']['height']} ({meta['image']['aspect']}) from "
        f"{', '.join(meta['image']['source_formats'])}; actions: {', '.join(meta['action']['names'])} "
        f"[{', '.join(meta['action']['units'])}]",
        f"frame skew (action stamp - frame stamp): min {skew['min']:.1f} ms, median {skew['median']:.1f} ms, "
        f"p95 {skew['p95']:.1f} ms, max {skew['max']:.1f} ms",
        f"sources: {len(meta['sources'])} converted, {len(meta['failed_sources'])} failed; "
        f"{total_bytes / 1e6:.1f} MB of bags in {seconds:.2f} s = {total_bytes / 1e6 / max(seconds, 1e-9):.0f} MB/s, "
        f"{camera_messages / max(seconds, 1e-9):.0f} camera frames/s",
    ])


def option_problem(options: argparse.Namespace) -> str:
    """The first option with a value out of range, named as typed (``--rate must be ...``); '' when all fit.

    Checked here rather than left to ``ConvertConfig``, whose messages name its fields, not the options."""
    checks = [
        ("--rate", options.rate, options.rate >= 0, "must be >= 0 (Hz; 0: the robot profile's rate)"),
        ("--gap", options.gap, options.gap > 0, "must be positive (s)"),
        ("--val", options.val, 0 <= options.val < 1, "must be in [0, 1) (a share of the episodes)"),
        ("--seed", options.seed, options.seed >= 0, "must be >= 0"),
        ("--size", " ".join(map(str, options.size)), min(options.size) > 0, "must be positive (HEIGHT WIDTH)"),
    ]
    for option, value, fits, rule in checks:  # nan fails every comparison, so it is refused too
        if not fits:
            return f"{option} {rule}, got {value}"
    return ""


@stop_on_interrupt
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dmo-convert", description="Convert rosbag2 recordings into a dataset.",
                                     epilog="Exit code: 0 all inputs converted, 1 some failed, 2 none.")
    parser.add_argument("inputs", nargs="+", type=Path, help="bags, recorder sessions, or folders of them")
    parser.add_argument("-o", "--output", type=output_folder, required=True, help="dataset folder to create")
    defaults = ConvertConfig()
    parser.add_argument("--robot", default=defaults.robot, help="robot profile name or YAML path (default pusht)")
    for role in ("camera", "action", "intent", "reset"):
        parser.add_argument(f"--{role}-topic", default="", help=f"{role} topic (default: the robot profile's)")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="samples per second (default, or 0: the robot profile's rate_hz)")
    parser.add_argument("--size", type=int, nargs=2, metavar=("HEIGHT", "WIDTH"), default=(64, 64),
                        help="frame size in the dataset (default 64 64)")
    parser.add_argument("--aspect", choices=ASPECTS, default=defaults.aspect, help="aspect handling (default crop)")
    parser.add_argument("--gap", type=float, default=defaults.gap_threshold_s, help="episode gap threshold, s")
    parser.add_argument("--val", type=float, default=defaults.validation_fraction, help="validation fraction")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seed of the train/validation split")
    parser.add_argument("--time-source", choices=TIME_SOURCES, default=defaults.time_source,
                        help="message time: header stamps (default; receive time when there is none or it is 0) or "
                             "the recorder's receive times (for topics stamped on different clocks)")
    parser.add_argument("--recover-truncated", action="store_true",
                        help="read the messages written before the cut of a truncated MCAP file (a killed recording) "
                             "instead of refusing it")
    options = parser.parse_args(argv)
    problem = option_problem(options)
    if problem:
        print(f"dmo-convert: error: {problem}", file=sys.stderr)
        return 2
    try:
        config = ConvertConfig(
            robot=options.robot, camera_topic=options.camera_topic, action_topic=options.action_topic,
            intent_topic=options.intent_topic, reset_topic=options.reset_topic, rate_hz=options.rate,
            height=options.size[0], width=options.size[1], aspect=options.aspect, gap_threshold_s=options.gap,
            validation_fraction=options.val, seed=options.seed, time_source=options.time_source,
            recover_truncated=options.recover_truncated,
        )
        print(f"converting {len(options.inputs)} input(s) into {options.output} (robot {options.robot})")
        started = time.monotonic()
        dataset, reports = convert(options.inputs, options.output, config)
    except (ProfileError, ValueError) as error:
        print(f"dmo-convert: error: {error}", file=sys.stderr)
        return 2
    seconds = time.monotonic() - started
    failed = [r for r in reports if not r.ok]
    if dataset is None:
        print(f"dmo-convert: error: no input converted ({len(failed)} failed); no dataset written", file=sys.stderr)
        return 2
    good = [r for r in reports if r.ok]
    print(format_summary(read_meta(dataset), seconds, sum(r.bytes for r in good), sum(r.camera_messages for r in good)))
    if failed:
        print(f"dmo-convert: {len(failed)} input(s) failed (listed above); the dataset holds the others",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

