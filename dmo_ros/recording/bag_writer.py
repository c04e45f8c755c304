"""A crash-safe rosbag2 session writer: serialized CDR bytes in, a folder of split bags out.

Plain Python (``rosbags``, no ROS): the ``recorder`` node feeds it the raw bytes of its
subscriptions; tests and the dataset tools read what it wrote with ``read_session``.

Crash-safety design
-------------------
A recording *session* is one folder (``<output>/<YYYYmmdd-HHMMSS>[-N]``, never reused)
holding a sequence of **splits**, each a complete, independent rosbag2 bag folder
(``metadata.yaml`` + one storage file, MCAP or SQLite3)::

    20250101-120000/
        session.yaml            the manifest: per-topic counts, stamps, closed or not
        splits.jsonl            the finished splits in order, one JSON line each (append-only)
        split_00000/            a finished bag: metadata.yaml + split_00000.mcap
        split_00001/
        .partial/split_00002/   the split being written (incomplete until it is closed)

- A split is written under ``.partial/`` and, once ``rosbags`` has finalised it (storage
  summary/index written, ``metadata.yaml`` written last), the whole folder is renamed into
  the session folder. A rename is atomic, and the folder keeps its name (the storage file
  inside is named after it), so every ``split_*`` folder in the session folder is a valid
  bag that ``rosbags.rosbag2.Reader`` opens, whatever happened afterwards.
- A split is closed ``split_duration`` seconds (default 1.0) after its first message, or
  when it holds ``split_size_mb`` of data; ``poll()`` is called from a timer so a split
  also closes when no further message arrives. After ``kill -9`` only the split in
  ``.partial/`` is lost: at most ``split_duration`` (+ one poll period) of data.
- Periods without messages create no (empty) splits: a split opens at its first message.
- Each closed split is appended to ``splits.jsonl`` (one JSON line; a crash can cut only
  the last line, which readers skip), and ``session.yaml`` — totals only, constant size —
  is rewritten by writing a temporary file and renaming it over the old one, so it is
  always consistent (``closed: false`` until the session is closed properly). Neither
  grows in cost as a long session accumulates splits.
- Why not one growing bag: an MCAP or SQLite3 file cut by ``kill -9`` lacks its summary
  (and rosbag2's ``metadata.yaml`` is only written on close), so a reader refuses it and
  the whole session would need a repair step. Small finished bags need none.
- ``kill -9`` does not lose data the OS already has (the page cache survives the process);
  against power loss, ``fsync=True`` also syncs each split's files and folders on close.
- A live session holds an exclusive ``flock`` on its folder (the kernel drops it when the
  process dies, however it dies). ``recover_session`` refuses a locked session and, in one
  that a crash left unclosed, turns what is readable in ``.partial/`` into finished splits:
  a split rosbags had finished but that was not renamed yet, and the complete MCAP chunks
  of a cut split (rosbags writes a chunk once it holds 1 MB: a split smaller than that has
  nothing on disk before it is closed; a cut SQLite3 split holds nothing either, rosbags
  commits on close). The recorder recovers the unclosed sessions of its output folder when
  it starts.

Reading a session = reading its splits in order (``read_session``); each split repeats
the connections of every topic known when it was opened, with the same types.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import struct
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from rosbags.rosbag2 import Reader, ReaderError, StoragePlugin, Writer
from rosbags.rosbag2.storage_mcap import McapReader
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
IMAGE_TYPE = "sensor_msgs/msg/Image"
SUPPORTED_IMAGE_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8")
MANIFEST = "session.yaml"
SPLIT_LOG = "splits.jsonl"
PARTIAL = ".partial"
BAG_VERSION = 9  # rosbag2 metadata version of Jazzy/Kilted


class UnknownTypeError(LookupError):
    """A message type that is neither in the typestore nor found as a .msg file."""


def ros_share_dirs(extra: Iterable[Path | str] = ()) -> list[Path]:
    """Folders that may hold ``<package>/msg/<Name>.msg``: ``extra``, ``AMENT_PREFIX_PATH``, this prefix."""
    prefixes = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    dirs = [Path(d) for d in extra] + [Path(p) / "share" for p in prefixes] + [Path(sys.prefix) / "share"]
    unique: list[Path] = []
    for d in dirs:
        if d not in unique:
            unique.append(d)
    return unique


def _referenced_types(fields: list) -> Iterator[str]:
    """Type names a typesys field list refers to (nested messages, arrays/sequences of them)."""
    for _name, (nodetype, detail) in fields:
        while nodetype in (3, 4):  # ARRAY, SEQUENCE: (inner type, size)
            nodetype, detail = detail[0]
        if nodetype == 2:  # NAME
            yield detail


class TypeRegistry:
    """The ROS 2 Kilted typestore of ``rosbags`` plus custom types registered from .msg text."""

    def __init__(self, share_dirs: Iterable[Path | str] | None = None) -> None:
        self.typestore = get_typestore(Stores.ROS2_KILTED)
        self.share_dirs = ros_share_dirs(share_dirs or ())

    def known(self, msgtype: str) -> bool:
        return msgtype in self.typestore.fielddefs

    def find_msg_file(self, msgtype: str) -> Path | None:
        package, _, name = normalize_type(msgtype).split("/")
        for share in self.share_dirs:
            candidate = share / package / "msg" / f"{name}.msg"
            if candidate.is_file():
                return candidate
        return None

    def ensure(self, msgtype: str) -> None:
        """Register ``msgtype`` (and the custom types it nests) from .msg files when needed."""
        msgtype = normalize_type(msgtype)
        pending, types = [msgtype], {}
        while pending:
            name = pending.pop()
            if name in types or self.known(name):
                continue
            path = self.find_msg_file(name)
            if path is None:
                searched = ", ".join(str(d) for d in self.share_dirs)
                raise UnknownTypeError(
                    f"message type '{name}' is not known and no .msg file was found (searched {searched})"
                )
            parsed = get_types_from_msg(path.read_text(), name)
            types.update(parsed)
            for fields in (f for _consts, f in parsed.values()):
                pending.extend(_referenced_types(fields))
        if types:
            self.typestore.register(types)

    def ensure_from_connection(self, connection: Any) -> None:
        """A bag connection's type: from the definition stored in the bag (MCAP schemas,
        rosbag2 v9 metadata), else from .msg files like ``ensure``."""
        if self.known(connection.msgtype):
            return
        definition = getattr(connection, "msgdef", None)
        text = getattr(definition, "data", "") if definition is not None else ""
        if text and getattr(getattr(definition, "format", None), "name", "MSG") == "MSG":
            self.typestore.register(get_types_from_msg(text, connection.msgtype))
        else:
            self.ensure(connection.msgtype)

    def register_msg_text(self, msgtype: str, text: str) -> None:
        self.typestore.register(get_types_from_msg(text, normalize_type(msgtype)))


def normalize_type(msgtype: str) -> str:
    """``pkg/Name`` or ``pkg/msg/Name`` -> ``pkg/msg/Name``."""
    parts = msgtype.split("/")
    if len(parts) == 2:
        return f"{parts[0]}/msg/{parts[1]}"
    if len(parts) == 3:
        return msgtype
    raise ValueError(f"not a message type name: {msgtype!r}")


def image_encoding_problem(typestore: Any, data: bytes | memoryview) -> str | None:
    """For one serialized sensor_msgs/Image: a description of its unsupported encoding, or None."""
    image = typestore.deserialize_cdr(data, IMAGE_TYPE)
    if image.encoding in SUPPORTED_IMAGE_ENCODINGS:
        return None
    return (
        f"encoding '{image.encoding}' ({image.width}x{image.height}) is not one of "
        f"{', '.join(SUPPORTED_IMAGE_ENCODINGS)}; recording it anyway, but the dataset tools cannot use it"
    )


def new_session_folder(output: Path, now: datetime | None = None) -> Path:
    """Create ``output/<timestamp>[-N]``: a new folder, never an existing one."""
    output.mkdir(parents=True, exist_ok=True)
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    for n in range(1000):
        candidate = output / (stamp if n == 0 else f"{stamp}-{n}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(f"no free session folder name for {stamp} in {output}")


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path, text: str, fsync: bool = False) -> None:
    """Replace ``path`` by ``text`` so that a reader sees the old or the new file, never a mix."""
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("w") as file:
        file.write(text)
        if fsync:
            file.flush()
            os.fsync(file.fileno())
    os.replace(temporary, path)


@dataclass
class SplitInfo:
    path: str
    counts: dict[str, int]
    bytes: int
    start_ns: int
    end_ns: int

    @property
    def messages(self) -> int:
        return sum(self.counts.values())


@dataclass
class _OpenSplit:
    index: int
    writer: Writer
    folder: Path
    opened_at: float
    connections: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    bytes: int = 0
    start_ns: int = 2**63 - 1
    end_ns: int = 0


class SessionInUse(RuntimeError):
    """The session folder is locked by a live writer."""


def _lock_session(folder: Path) -> int | None:
    """An exclusive lock on the session folder: its file descriptor, or None when another holds it."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        return None
    return descriptor


def session_in_use(session: Path | str) -> bool:
    """Whether a live writer holds the session folder's lock (a recording still in progress)."""
    descriptor = _lock_session(Path(session))
    if descriptor is None:
        return True
    os.close(descriptor)  # closing our descriptor drops our probe lock
    return False


def _manifest_field(session: Path | str, name: str, kind: type) -> Any:
    """The manifest's field ``name`` when it is a ``kind``; None without a readable manifest or such a field."""
    try:
        manifest = yaml.safe_load((Path(session) / MANIFEST).read_text())
    except (OSError, yaml.YAMLError):
        return None
    value = manifest.get(name) if isinstance(manifest, dict) else None
    return value if isinstance(value, kind) else None


def session_closed(session: Path | str) -> bool | None:
    """The manifest's ``closed`` flag (False: the writer crashed or was killed); None without a readable manifest."""
    return _manifest_field(session, "closed", bool)


def session_collection(session: Path | str) -> dict[str, Any] | None:
    """The manifest's ``collection`` (what recorded the session, with which settings); None without a readable
    manifest or when it does not say (a live recording, a session written before the field)."""
    return _manifest_field(session, "collection", dict)


class SplitBagSession:
    """Writes serialized messages into a session folder of split rosbag2 bags (see module doc)."""

    def __init__(
        self,
        output: Path | str,
        *,
        storage: str = "mcap",
        split_duration: float = 1.0,
        split_size_mb: float = 0.0,
        registry: TypeRegistry | None = None,
        fsync: bool = False,
        clock: Callable[[], float] = time.monotonic,
        session_folder: Path | str | None = None,
        collection: dict[str, Any] | None = None,
    ) -> None:
        if storage not in STORAGES:
            raise ValueError(f"unknown storage '{storage}'; choose one of {', '.join(STORAGES)}")
        if split_duration <= 0 and split_size_mb <= 0:
            raise ValueError("split_duration or split_size_mb must be positive (splits bound the loss on a crash)")
        if split_duration < 0 or split_size_mb < 0:
            raise ValueError("split_duration and split_size_mb must be >= 0")
        self.storage = storage
        self.split_duration = split_duration
        self.split_size_bytes = int(split_size_mb * 1e6)
        self.registry = registry or TypeRegistry()
        self.fsync = fsync
        self.clock = clock
        # What recorded the session and with which settings (the manifest's ``collection``; None: not told).
        self.collection = None if collection is None else dict(collection)
        # Raises OSError (PermissionError, NotADirectoryError, ...) when the output is unwritable.
        self.folder = Path(session_folder) if session_folder else new_session_folder(Path(output))
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock = _lock_session(self.folder)
        if self._lock is None:
            raise SessionInUse(f"session {self.folder} is being written by another process")
        (self.folder / PARTIAL).mkdir(exist_ok=True)
        self.topics: dict[str, str] = {}  # topic -> msgtype, in the order they were added
        self.counts: dict[str, int] = {}  # messages in finished splits
        self.splits: list[SplitInfo] = []
        self.started_ns = time.time_ns()
        self.current: _OpenSplit | None = None
        self.closed = False
        self._next_index = 0
        self._write_manifest()

    # -- topics and messages -------------------------------------------------------------

    def add_topic(self, topic: str, msgtype: str) -> None:
        """Declare a topic (type registered now); later splits, and the open one, carry it."""
        msgtype = normalize_type(msgtype)
        if topic in self.topics:
            if self.topics[topic] != msgtype:
                raise ValueError(f"topic '{topic}' already recorded as {self.topics[topic]}, not {msgtype}")
            return
        self.registry.ensure(msgtype)
        self.topics[topic] = msgtype
        self.counts.setdefault(topic, 0)
        if self.current is not None:
            self._connect(self.current, topic)

    def write(self, topic: str, timestamp_ns: int, data: bytes | memoryview) -> None:
        """Append one serialized (CDR) message; closes the split when it is full or due."""
        if self.closed:
            raise RuntimeError("the session is closed")
        if topic not in self.topics:
            raise KeyError(f"topic '{topic}' was not added")
        now = self.clock()
        self.poll(now)  # a split that is due closes before this message, not after it
        split = self.current or self._open_split(now)
        split.writer.write(split.connections[topic], timestamp_ns, data)
        split.counts[topic] += 1
        split.bytes += len(data)
        split.start_ns = min(split.start_ns, timestamp_ns)
        split.end_ns = max(split.end_ns, timestamp_ns)
        if self.split_size_bytes and split.bytes >= self.split_size_bytes:
            self.close_split()

    def poll(self, now: float | None = None) -> bool:
        """Close the open split when its duration is over; True when one was closed."""
        split = self.current
        if split is None or self.split_duration <= 0:
            return False
        if (self.clock() if now is None else now) - split.opened_at >= self.split_duration:
            self.close_split()
            return True
        return False

    def close_split(self) -> SplitInfo | None:
        """Finalise the open split (valid bag, moved into the session folder) and update the manifest."""
        split, self.current = self.current, None
        if split is None:
            return None
        split.writer.close()
        final = self.folder / split.folder.name
        if self.fsync:
            for path in split.folder.iterdir():
                _fsync_path(path)
            _fsync_path(split.folder)
        os.rename(split.folder, final)
        if self.fsync:
            _fsync_path(self.folder)
        info = SplitInfo(final.name, dict(split.counts), split.bytes, split.start_ns, split.end_ns)
        self.splits.append(info)
        for topic, count in split.counts.items():
            self.counts[topic] = self.counts.get(topic, 0) + count
        self._log_split(info)
        self._write_manifest()
        return info

    def _log_split(self, info: SplitInfo) -> None:
        """Append the split to the split log: O(1) per split however long the session runs."""
        entry = {"path": info.path, "messages": info.messages, "bytes": info.bytes,
                 "start_ns": info.start_ns, "end_ns": info.end_ns, "counts": info.counts}
        with open(self.folder / SPLIT_LOG, "a") as log:
            log.write(json.dumps(entry) + "\n")
            log.flush()
            if self.fsync:
                os.fsync(log.fileno())

    def close(self) -> None:
        """Close the open split and mark the session complete in the manifest."""
        if self.closed:
            return
        self.close_split()
        self.closed = True
        try:
            (self.folder / PARTIAL).rmdir()
        except OSError:
            pass
        self._write_manifest()
        os.close(self._lock)

    # -- figures -------------------------------------------------------------------------

    def total_counts(self) -> dict[str, int]:
        """Messages per topic, finished splits and the open one."""
        counts = dict(self.counts)
        if self.current is not None:
            for topic, count in self.current.counts.items():
                counts[topic] = counts.get(topic, 0) + count
        return counts

    def bytes_written(self) -> int:
        return sum(s.bytes for s in self.splits) + (self.current.bytes if self.current else 0)

    # -- internals -----------------------------------------------------------------------

    def _open_split(self, now: float) -> _OpenSplit:
        index = self._next_index
        self._next_index += 1
        folder = self.folder / PARTIAL / f"split_{index:05d}"
        writer = Writer(folder, version=BAG_VERSION, storage_plugin=STORAGES[self.storage])
        writer.open()
        split = _OpenSplit(index, writer, folder, now)
        for topic in self.topics:
            self._connect(split, topic)
        self.current = split
        return split

    def _connect(self, split: _OpenSplit, topic: str) -> None:
        split.connections[topic] = split.writer.add_connection(
            topic, self.topics[topic], typestore=self.registry.typestore
        )
        split.counts[topic] = 0

    def manifest(self) -> dict[str, Any]:
        return {
            "format": "dmo_ros split session 1",
            "storage": self.storage,
            "split_duration": self.split_duration,
            "split_size_mb": self.split_size_bytes / 1e6,
            "closed": self.closed,
            "started_ns": self.started_ns,
            "updated_ns": time.time_ns(),
            "start_ns": min((s.start_ns for s in self.splits), default=None),
            "end_ns": max((s.end_ns for s in self.splits), default=None),
            "message_count": sum(self.counts.values()),
            "topics": {t: {"type": m, "count": self.counts.get(t, 0)} for t, m in self.topics.items()},
            **({} if self.collection is None else {"collection": self.collection}),
        }

    def _write_manifest(self) -> None:
        write_atomically(self.folder / MANIFEST, yaml.safe_dump(self.manifest(), sort_keys=False), self.fsync)


# -- reading a session -----------------------------------------------------------------------


def read_manifest(session: Path | str) -> dict[str, Any]:
    """The session's manifest with its ``splits`` list (from the append-only split log).

    A crash can leave the log's last line half written: it is skipped.
    """
    session = Path(session)
    manifest = yaml.safe_load((session / MANIFEST).read_text())
    splits = []
    log = session / SPLIT_LOG
    for line in log.read_text().splitlines() if log.is_file() else []:
        try:
            splits.append(json.loads(line))
        except json.JSONDecodeError:
            break
    manifest["splits"] = splits
    return manifest


def session_splits(session: Path | str) -> list[Path]:
    """The finished splits of a session, in order (every ``split_*`` bag folder, manifest or not)."""
    session = Path(session)
    return sorted(p for p in session.glob("split_*") if p.is_dir() and (p / "metadata.yaml").is_file())


@dataclass
class RecordedMessage:
    topic: str
    msgtype: str
    timestamp_ns: int
    data: bytes
    split: str


def read_session(session: Path | str) -> Iterator[RecordedMessage]:
    """Every message of a session's finished splits, split by split, in timestamp order within each."""
    for split in session_splits(session):
        with Reader(split) as reader:
            for connection, timestamp, data in reader.messages():
                yield RecordedMessage(connection.topic, connection.msgtype, timestamp, bytes(data), split.name)


# -- recovering a session after a crash --------------------------------------------------------

_MCAP_MAGIC = b"\x89MCAP0\r\n"
_RECOVERING = "recovering"


class _CutMcapReader(McapReader):
    """rosbags' MCAP reader for a file a crash cut short: no summary, no footer, maybe half a
    last record. The records that are complete are scanned as rosbags scans an unindexed file."""

    def _open(self) -> None:
        bio = self.bio
        assert bio is not None
        size = os.fstat(bio.fileno()).st_size
        if bio.read(8) != _MCAP_MAGIC or bio.read(1) != b"\x01":
            raise ReaderError("not an MCAP file")
        (header_size,) = struct.unpack("<Q", bio.read(8))
        self.data_start = self.data_end = bio.tell() + header_size
        bio.seek(self.data_start)
        while True:  # records are opcode (1 byte), length (8 bytes), body
            head = bio.read(9)
            if len(head) < 9:
                break
            (length,) = struct.unpack_from("<Q", head, 1)
            end = bio.tell() + length
            if end > size:
                break
            bio.seek(end)
            self.data_end = end
        self.meta_scan()


@dataclass
class RecoveredSplit:
    path: str
    how: str
    """``renamed`` (finished, not moved yet), ``rewritten`` (complete chunks) or ``unreadable``."""
    messages: int


def recover_session(session: Path | str, registry: TypeRegistry | None = None) -> list[RecoveredSplit]:
    """Turn the readable part of an unclosed session's ``.partial/`` splits into finished ones.

    Every recovered split is appended to the split log and counted in the manifest, which
    lists it under ``recovered`` (``closed`` stays false: the recording did not end properly).
    An unreadable split stays in ``.partial/``. Raises ``SessionInUse`` while a writer holds
    the session; returns an empty list for a closed session or one with nothing partial.
    """
    session = Path(session)
    lock = _lock_session(session)
    if lock is None:
        raise SessionInUse(f"session {session} is being written by another process")
    try:
        partial = session / PARTIAL
        if not partial.is_dir():
            return []
        shutil.rmtree(partial / _RECOVERING, ignore_errors=True)  # an earlier recovery that was cut
        registry = registry or TypeRegistry()
        results = []
        for folder in sorted(p for p in partial.glob("split_*") if p.is_dir()):
            results.append(_recover_split(session, folder, registry))
        shutil.rmtree(partial / _RECOVERING, ignore_errors=True)
        recovered = [r for r in results if r.how != "unreadable"]
        if recovered:
            _count_recovered(session, [r.path for r in recovered])
        with suppress(OSError):
            partial.rmdir()  # only when nothing is left in it
        return results
    finally:
        os.close(lock)


def _recover_split(session: Path, folder: Path, registry: TypeRegistry) -> RecoveredSplit:
    final = session / folder.name
    if (folder / "metadata.yaml").is_file():  # rosbags had finished it: only the rename was missing
        with Reader(folder) as reader:
            count = reader.message_count
        os.rename(folder, final)
        _append_split_log(session, final)
        return RecoveredSplit(final.name, "renamed", count)
    storage = folder / f"{folder.name}.mcap"
    if not storage.is_file() or storage.stat().st_size == 0:
        return RecoveredSplit(folder.name, "unreadable", 0)
    reader = _CutMcapReader(storage)
    try:
        reader.open()
        connections = list(reader.connections)
        messages = list(reader.messages_scan(connections))
    except ReaderError:
        return RecoveredSplit(folder.name, "unreadable", 0)
    finally:
        reader.close()
    if not messages:
        return RecoveredSplit(folder.name, "unreadable", 0)
    rewritten = session / PARTIAL / _RECOVERING / folder.name
    rewritten.parent.mkdir(parents=True, exist_ok=True)
    writer = Writer(rewritten, version=BAG_VERSION, storage_plugin=StoragePlugin.MCAP)
    writer.open()
    by_id = {}
    for connection in connections:
        registry.ensure_from_connection(connection)
        by_id[connection.id] = writer.add_connection(connection.topic, connection.msgtype,
                                                     typestore=registry.typestore)
    for connection, timestamp, data in sorted(messages, key=lambda m: m[1]):
        writer.write(by_id[connection.id], timestamp, data)
    writer.close()
    os.rename(rewritten, final)
    shutil.rmtree(folder)
    _append_split_log(session, final)
    return RecoveredSplit(final.name, "rewritten", len(messages))


def _append_split_log(session: Path, split: Path) -> None:
    with Reader(split) as reader:
        counts = {c.topic: 0 for c in reader.connections}
        for connection in reader.connections:
            counts[connection.topic] += connection.msgcount
        entry = {"path": split.name, "messages": reader.message_count, "bytes": sum(
                     f.stat().st_size for f in split.iterdir()), "start_ns": reader.start_time,
                 "end_ns": reader.end_time - 1, "counts": counts}
    with open(session / SPLIT_LOG, "a") as log:
        log.write(json.dumps(entry) + "\n")


def _count_recovered(session: Path, names: list[str]) -> None:
    manifest = read_manifest(session)
    splits = manifest.pop("splits")
    entries = [s for s in splits if s["path"] in names]
    for entry in entries:
        with Reader(session / entry["path"]) as reader:  # topics added after the last manifest update
            types = {c.topic: c.msgtype for c in reader.connections}
        for topic, count in entry["counts"].items():
            manifest["topics"].setdefault(topic, {"type": types[topic], "count": 0})["count"] += count
        manifest["message_count"] += entry["messages"]
    manifest["start_ns"] = min((s["start_ns"] for s in splits), default=None)
    manifest["end_ns"] = max((s["end_ns"] for s in splits), default=None)
    manifest["recovered"] = sorted(set(manifest.get("recovered", [])) | set(names))
    manifest["updated_ns"] = time.time_ns()
    write_atomically(session / MANIFEST, yaml.safe_dump(manifest, sort_keys=False))


def unclosed_sessions(output: Path | str) -> list[Path]:
    """Session folders under ``output`` whose manifest says ``closed: false`` and that have a ``.partial/``."""
    output = Path(output)
    found = []
    for folder in sorted(output.iterdir()) if output.is_dir() else []:
        if (folder / MANIFEST).is_file() and (folder / PARTIAL).is_dir():
            try:
                if yaml.safe_load((folder / MANIFEST).read_text()).get("closed") is False:
                    found.append(folder)
            except (OSError, yaml.YAMLError, AttributeError):
                continue
    return found
