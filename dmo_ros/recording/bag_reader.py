"""Reading rosbag2 bags as robots and older ROS 2 releases write them: correct data or a clear error.

Plain Python over ``rosbags`` (and ``mcap``'s stream reader for recovery); used by
``dmo-bag-info`` and ``dmo-convert``. What it adds to ``rosbags.rosbag2.Reader``:

- **Unlisted storage files**: a ``.mcap``/``.db3`` file in the bag folder that
  ``metadata.yaml`` does not list (a reindex that missed it, a hand-edited metadata) would
  be skipped silently; ``BagError`` names it (fix: ``ros2 bag reindex``).
- **Truncated MCAP** (a recording that was killed: no summary, no end magic): ``BagError``
  says so; with ``recover_truncated=True`` the complete records before the cut are read
  sequentially (``mcap.stream_reader.StreamReader``) and the loss is described in ``notes``.
- **Per-connection definitions** (``MessageDecoder``): each connection is deserialised with
  the message definition stored in the bag, so a bag recorded with an older definition of a
  type (e.g. ``dmo_msgs/Intent`` before ``milestone``) decodes as it was written, and bags of
  both versions can be read in one run. A type with no usable definition (empty, ``.srv``
  text of a service-event topic, no ``.msg`` file) raises ``UndecodableTypeError``.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path, PurePath
from typing import Any

import yaml
from mcap.exceptions import McapError
from mcap.reader import make_reader
from mcap.records import Channel as McapChannel
from mcap.records import Message as McapMessage
from mcap.records import Schema as McapSchema
from mcap.stream_reader import StreamReader
from rosbags.rosbag2 import Reader
from rosbags.serde import SerdeError
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from dmo_ros.recording.bag_writer import SPLIT_LOG, TypeRegistry, UnknownTypeError, session_splits

MCAP_MAGIC = b"\x89MCAP0\r\n"
STORAGE_SUFFIXES = (".mcap", ".db3", ".mcap.zstd", ".db3.zstd")
REINDEX_HINT = "run `ros2 bag reindex BAG` to rebuild metadata.yaml from the files on disk"


class BagError(ValueError):
    """A bag that cannot be read as it is; the message names the cause and the fix."""


class UndecodableTypeError(LookupError):
    """A message type this reader has no usable definition for (the message says why)."""


@dataclass(frozen=True)
class Connection:
    """One connection (topic + type + publisher QoS) of a bag, with the definition stored for it."""

    id: int
    topic: str
    msgtype: str
    definition: str
    """Message definition text stored in the bag ('' when it stores none)."""
    definition_format: str
    """'ros2msg', 'ros2idl', or '' when the bag stores no definition."""


def bag_metadata(bag: Path) -> dict[str, Any]:
    """``rosbag2_bagfile_information`` of the bag's ``metadata.yaml`` (libyaml: a session has many)."""
    try:
        info = yaml.load((bag / "metadata.yaml").read_text(), Loader=getattr(yaml, "CBaseLoader", yaml.BaseLoader))
        info = info["rosbag2_bagfile_information"]
        if not isinstance(info, dict) or not isinstance(info.get("relative_file_paths"), list):
            raise KeyError("relative_file_paths")
        return info
    except (OSError, UnicodeDecodeError, yaml.YAMLError, KeyError, TypeError) as error:
        detail = " ".join(str(error).split())  # YAML errors span lines: one line for the report
        raise BagError(f"{bag / 'metadata.yaml'} is unreadable: {type(error).__name__}: {detail}") from None


def listed_files(info: dict[str, Any]) -> list[str]:
    """The storage files a bag's metadata lists (names in the bag folder)."""
    return [PurePath(str(name)).name for name in info["relative_file_paths"]]


def unlisted_files(bag: Path, info: dict[str, Any]) -> list[str]:
    """Storage files in the bag folder that its metadata does not list."""
    listed = set(listed_files(info))
    return sorted(p.name for p in bag.iterdir()
                  if p.is_file() and p.name.endswith(STORAGE_SUFFIXES) and p.name not in listed)


def storage_files(folder: Path) -> list[Path]:
    """The rosbag2 storage files (MCAP, SQLite3) directly in ``folder``, by name."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(STORAGE_SUFFIXES))


def reindex_command(bag: Path) -> str:
    """The ``ros2 bag reindex`` command that rebuilds ``bag``'s metadata.yaml from its storage files."""
    storage = "sqlite3" if any(".db3" in f.name for f in storage_files(bag)) else "mcap"
    return f"ros2 bag reindex {bag} -s {storage}"


def missing_metadata(bag: Path, lost: str = "") -> str:
    """Why a bag folder without ``metadata.yaml`` is not read, what is lost (``lost``, or its storage files)
    and the fix, in one line."""
    if not lost:
        files = storage_files(bag)
        lost = f"{', '.join(f.name for f in files)} ({sum(f.stat().st_size for f in files) / 1e3:.0f} kB)" \
            if files else "its messages"
    return (f"{bag} has no metadata.yaml (rosbag2 writes it last, when the bag is closed), so {lost} "
            f"cannot be read; rebuild it with `{reindex_command(bag)}` and read the bag again")


def unreadable_splits(session: Path | str) -> list[str]:
    """One line (``missing_metadata``) per split of a session that is left out for want of ``metadata.yaml``:
    a split its ``splits.jsonl`` lists, or a ``split_*`` folder that holds a storage file. Empty for a plain bag."""
    session = Path(session)
    log = session / SPLIT_LOG
    listed: dict[str, dict[str, Any]] = {}
    for line in log.read_text().splitlines() if log.is_file() else []:
        try:
            entry = json.loads(line)
            listed[str(entry["path"])] = entry
        except (json.JSONDecodeError, KeyError, TypeError):
            break  # a crash can cut the last line
    folders = {p.name for p in session.glob("split_*") if p.is_dir() and storage_files(p)} | set(listed)
    problems = []
    for name in sorted(folders):
        split = session / name
        if (split / "metadata.yaml").is_file():
            continue
        entry = listed.get(name)
        if entry is None:
            problems.append(missing_metadata(split))
        elif not split.is_dir():
            problems.append(f"{split} is listed in {SPLIT_LOG} ({entry.get('messages', '?')} messages) but is "
                            "missing: its messages are left out")
        else:
            seconds = (entry.get("end_ns", 0) - entry.get("start_ns", 0)) / 1e9
            problems.append(missing_metadata(split, f"its {entry.get('messages', '?')} messages ({seconds:.1f} s, "
                                                    f"as {SPLIT_LOG} lists them)"))
    return problems


def is_recording(folder: Path) -> bool:
    """Whether ``folder`` is a recording to read or to say why not: a rosbag2 bag (``metadata.yaml``, or storage
    files without it) or a recorder session (finished splits, or splits that cannot be read)."""
    return bool((folder / "metadata.yaml").is_file() or session_splits(folder) or storage_files(folder)
                or unreadable_splits(folder))


def find_recordings(folder: Path | str) -> list[Path]:
    """The recordings (:func:`is_recording`) at any depth under ``folder`` (``[folder]`` when it is one), in path
    order, without looking inside one (a session's splits are its own) nor into hidden folders (``.git``).
    ``dmo-convert`` and ``dmo-bag-info`` both find what a folder of recordings holds with it: they used to look one
    level down only (``dmo-bag-info``: not at all), so ``bags/robot/<session>`` was "no recorder session here"."""
    found: list[Path] = []
    seen: set[Path] = set()  # a symbolic link back up the tree is followed once

    def walk(current: Path) -> None:
        for child in sorted(p for p in current.iterdir() if p.is_dir() and not p.name.startswith(".")):
            resolved = child.resolve()
            if resolved in seen:
                continue
            seen.add(resolved)
            if is_recording(child):
                found.append(child)
            else:
                walk(child)

    folder = Path(folder)
    if is_recording(folder):
        return [folder]
    if folder.is_dir():
        seen.add(folder.resolve())
        walk(folder)
    return found


NO_RECORDING_UNDER = ("no rosbag2 bag (a folder with metadata.yaml) or recorder session (split_* bags) here, nor in "
                      "any folder under it (hidden folders skipped)")
"""The error for a folder that holds no recording at any depth (after its path): what was searched."""


def no_split_readable(problems: list[str]) -> str:
    """The error for a session none of whose splits can be read (``problems``: ``unreadable_splits``' lines)."""
    more = f" (and {len(problems) - 1} more split(s) alike)" if len(problems) > 1 else ""
    return f"no split of the session can be read: {problems[0]}{more}"


def mcap_is_truncated(path: Path) -> bool:
    """True for an MCAP file that starts like one but lacks the closing magic (its end was cut off)."""
    if path.suffix != ".mcap" or not path.is_file():
        return False
    size = path.stat().st_size
    with path.open("rb") as file:
        head = file.read(8)
        if head != MCAP_MAGIC:
            return False
        if size < 16:
            return True
        file.seek(size - 8)
        return file.read(8) != MCAP_MAGIC


class BagReader:
    """A bag's connections and messages, as a context manager (``with BagReader(path) as bag``).

    Opening raises ``BagError`` for storage files that ``metadata.yaml`` does not list and (unless
    ``recover_truncated``) for truncated MCAP files; ``rosbags``' ``ReaderError`` for other damage.
    ``recover_truncated``: read the complete records of a truncated MCAP file instead of refusing it.
    """

    def __init__(self, path: Path | str, recover_truncated: bool = False) -> None:
        self.path = Path(path)
        self.recover_truncated = recover_truncated
        self.connections: list[Connection] = []
        self._reader: Reader | None = None  # rosbags, for SQLite3, several files, compression
        self._mcap: tuple[Any, Any] | None = None  # (open file, mcap reader) of a single indexed MCAP file
        self._recovery_files: list[Path] = []
        self._channel_ids: dict[tuple[int, int], int] = {}  # (file number, MCAP channel id) → connection id
        self._cuts: dict[str, str] = {}

    @property
    def notes(self) -> list[str]:
        """What a recovery read and lost, one line per truncated file (empty for an intact bag)."""
        return list(self._cuts.values())

    def __enter__(self) -> BagReader:
        info = bag_metadata(self.path)
        extra = unlisted_files(self.path, info)
        if extra:
            raise BagError(
                f"{', '.join(extra)} in {self.path} {'is' if len(extra) == 1 else 'are'} not listed in metadata.yaml, "
                f"so {'its' if len(extra) == 1 else 'their'} messages would be left out; {REINDEX_HINT}, "
                "or move the file out of the folder to convert without it"
            )
        files = [self.path / name for name in listed_files(info)]
        truncated = [f for f in files if mcap_is_truncated(f)]
        if truncated and not self.recover_truncated:
            sizes = ", ".join(f"{f.name} ({f.stat().st_size} bytes)" for f in truncated)
            raise BagError(
                f"truncated MCAP file: {sizes} ends without MCAP's closing summary (a recording that was killed "
                "or a copy cut short); --recover-truncated reads the messages written before the cut"
            )
        if truncated:
            self._recovery_files = [f for f in files if f.exists()]
            self._scan_connections()
            return self
        compressed = str(info.get("compression_mode") or "none").lower() != "none"
        # One uncompressed, indexed MCAP file is self-describing: mcap's indexed reader opens it without rosbags'
        # second parse of metadata.yaml and of every channel's QoS (YAML) — most of the time of a 1 s split.
        if len(files) == 1 and files[0].suffix == ".mcap" and files[0].is_file() and not compressed:
            self._open_indexed_mcap(files[0])
            if self._mcap is not None:
                return self
        self._reader = Reader(self.path)
        self._reader.open()
        self.connections = [
            Connection(c.id, c.topic, c.msgtype, c.msgdef.data or "",
                       {"MSG": "ros2msg", "IDL": "ros2idl"}.get(c.msgdef.format.name, ""))
            for c in self._reader.connections
        ]
        return self

    def _open_indexed_mcap(self, path: Path) -> None:
        stream = path.open("rb")
        try:
            reader = make_reader(stream)
            summary = reader.get_summary()
        except (McapError, EOFError, ValueError, struct.error):
            summary = None
        if summary is None or not summary.chunk_indexes or any(
                c.message_encoding != "cdr" for c in summary.channels.values()):
            stream.close()  # unindexed or unusual: rosbags' reader handles (or names) it
            return
        self._mcap = (stream, reader)
        for channel in summary.channels.values():
            self._add_channel(0, summary.schemas.get(channel.schema_id), channel)

    def _add_channel(self, index: int, schema: McapSchema | None, channel: McapChannel) -> None:
        """A connection per topic and type of the MCAP channels (several channels of one topic and type: one)."""
        msgtype = schema.name if schema is not None else ""
        known = next((c for c in self.connections if c.topic == channel.topic and c.msgtype == msgtype), None)
        if known is None:
            text = schema.data.decode("utf-8", "replace") if schema is not None else ""
            known = Connection(len(self.connections) + 1, channel.topic, msgtype, text,
                               schema.encoding if schema is not None else "")
            self.connections.append(known)
        self._channel_ids[(index, channel.id)] = known.id

    def __exit__(self, *exc: object) -> None:
        if self._mcap is not None:
            self._mcap[0].close()
            self._mcap = None
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def messages(self, connections: list[Connection] | None = None) -> Iterator[tuple[Connection, int, bytes]]:
        """(connection, receive time ns, CDR bytes) of the given connections (all when None), in the order
        written (a recorder writes in arrival order)."""
        wanted = {c.id: c for c in (self.connections if connections is None else connections)}
        if self._reader is not None:
            by_id = {c.id: c for c in self._reader.connections}
            chosen = [by_id[i] for i in wanted]
            if not chosen:
                return
            for connection, received, data in self._reader.messages(connections=chosen):
                yield wanted[connection.id], received, data
            return
        if self._mcap is not None:
            ids = self._channel_ids
            # In the order written, which is arrival order for a recorder; sorting by log time on top (a heap over
            # every message) doubles the reading time, and the aligner tolerates small disorder anyway.
            for _schema, channel, message in self._mcap[1].iter_messages(log_time_order=False):
                key = ids.get((0, channel.id))
                if key in wanted:
                    yield wanted[key], message.log_time, message.data
            return
        for record, index in self._records():
            if isinstance(record, McapMessage):
                key = self._channel_ids.get((index, record.channel_id))
                if key in wanted:
                    yield wanted[key], record.log_time, record.data

    def _records(self) -> Iterator[tuple[Any, int]]:
        """Every complete record of the files being recovered; the first unreadable one ends a file."""
        for index, path in enumerate(self._recovery_files):
            messages, cut = 0, False
            with path.open("rb") as stream:
                try:
                    for record in StreamReader(stream, record_size_limit=path.stat().st_size).records:
                        yield record, index
                        messages += isinstance(record, McapMessage)
                except (McapError, EOFError, ValueError, struct.error, IndexError, MemoryError):
                    cut = True
            if cut:
                self._cuts[path.name] = (f"{path.name} is truncated: recovered the {messages} messages written "
                                         "before the cut; the chunk being written when it was cut is lost")

    def _scan_connections(self) -> None:
        schemas: dict[tuple[int, int], McapSchema] = {}
        for record, index in self._records():
            if isinstance(record, McapSchema):
                schemas[(index, record.id)] = record
            elif isinstance(record, McapChannel):
                self._add_channel(index, schemas.get((index, record.schema_id)), record)


class MessageDecoder:
    """Deserialisers per connection, each from the definition the bag stores for that connection.

    A definition equal to the installed one (or of a type not installed) uses one shared
    typestore; a different one (an older version of the type) gets its own store, so both
    versions decode as written. Without a stored definition the installed ``.msg`` files are used.
    """

    def __init__(self, registry: TypeRegistry | None = None) -> None:
        self.registry = registry or TypeRegistry()
        self._by_definition: dict[tuple[str, str, str], Callable[[bytes], Any]] = {}

    def deserializer(self, connection: Connection) -> Callable[[bytes], Any]:
        """``data -> message`` for the connection; ``UndecodableTypeError`` when there is no usable definition."""
        key = (connection.msgtype, connection.definition, connection.definition_format)
        if key not in self._by_definition:
            self._by_definition[key] = self._make(connection)
        return self._by_definition[key]

    def differs_from_installed(self, connection: Connection) -> bool:
        """True when the bag's definition of the type is not the one installed here (an older version)."""
        base = self.registry.typestore.fielddefs
        parsed = self._parse(connection) if connection.definition_format == "ros2msg" else {}
        return any(name in base and base[name] != fields for name, fields in parsed.items())

    def _parse(self, connection: Connection) -> dict[str, Any]:
        try:
            return get_types_from_msg(connection.definition, connection.msgtype)
        except Exception as error:  # rosbags' parser raises several kinds on foreign text (.srv, IDL)
            raise UndecodableTypeError(
                f"the definition of {connection.msgtype} stored in the bag cannot be parsed as a .msg "
                f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})"
            ) from None

    def _make(self, connection: Connection) -> Callable[[bytes], Any]:
        msgtype = connection.msgtype
        if "/srv/" in msgtype or "/action/" in msgtype:
            raise UndecodableTypeError(f"{msgtype} is a service/action type (its definition is .srv/.action text)")
        base = self.registry.typestore
        if connection.definition.strip() and connection.definition_format == "ros2msg":
            parsed = self._parse(connection)
            differing = {name for name, fields in parsed.items() if name in base.fielddefs
                         and base.fielddefs[name] != fields}
            if not differing:
                base.register({n: f for n, f in parsed.items() if n not in base.fielddefs})
                return partial(base.deserialize_cdr, typename=msgtype)
            store = get_typestore(Stores.EMPTY)
            store.register({n: f for n, f in base.fielddefs.items() if n not in parsed})
            store.register(parsed)
            return partial(store.deserialize_cdr, typename=msgtype)
        try:
            self.registry.ensure(msgtype)
        except (UnknownTypeError, ValueError) as error:
            raise UndecodableTypeError(
                f"{msgtype}: the bag stores no definition for it and {error}"
            ) from None
        return partial(base.deserialize_cdr, typename=msgtype)


DECODE_ERRORS: tuple[type[BaseException], ...] = (SerdeError, struct.error, IndexError, ValueError)
"""What a damaged payload raises in ``rosbags``' CDR deserialiser (it wraps most in SerdeError): the
callers count and skip such a message, never fatal to a run."""

