"""The crash-safe split-bag writer, without ROS: real rosbag2 files written and read back."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from rosbags.rosbag2 import Reader

from conftest import REPO
from dmo_ros.recording import (
    SplitBagSession,
    TypeRegistry,
    UnknownTypeError,
    image_encoding_problem,
    read_manifest,
    read_session,
    session_splits,
)
from dmo_ros.recording.bag_writer import (
    PARTIAL,
    SessionInUse,
    new_session_folder,
    recover_session,
    unclosed_sessions,
)

IMAGE = "sensor_msgs/msg/Image"
INTENT = "dmo_msgs/msg/Intent"


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def registry() -> TypeRegistry:
    return TypeRegistry([REPO])  # REPO/dmo_msgs/msg/*.msg, like <prefix>/share/dmo_msgs/msg


def image_bytes(store, index: int, encoding: str = "rgb8", width: int = 8, height: int = 4) -> bytes:
    types = store.types
    pixels = np.full(height * width * 3, index % 256, np.uint8)
    header = types["std_msgs/msg/Header"](
        stamp=types["builtin_interfaces/msg/Time"](sec=index, nanosec=0), frame_id="camera"
    )
    image = types[IMAGE](header, height, width, encoding, 0, width * 3, pixels)
    return bytes(store.serialize_cdr(image, IMAGE))


def intent_bytes(store, index: int) -> bytes:
    types = store.types
    header = types["std_msgs/msg/Header"](
        stamp=types["builtin_interfaces/msg/Time"](sec=index, nanosec=0), frame_id=""
    )
    return bytes(store.serialize_cdr(types[INTENT](header, index % 2 == 1, 0.5), INTENT))


def record(session: SplitBagSession, clock: FakeClock, seconds: float, image_hz: int = 10, intent_hz: int = 5) -> dict:
    """Write messages at the given rates on a fake clock; returns how many were written per topic."""
    store = session.registry.typestore
    sent = {"/camera/image": 0, "/intent": 0}
    steps = int(seconds * 10 * image_hz)  # 0.1/rate resolution
    for step in range(steps):
        clock.now = step / (10 * image_hz)
        stamp = int(clock.now * 1e9) + 1_000_000_000
        if step % 10 == 0:
            session.write("/camera/image", stamp, image_bytes(store, sent["/camera/image"]))
            sent["/camera/image"] += 1
        if step % (10 * image_hz // intent_hz) == 0:
            session.write("/intent", stamp, intent_bytes(store, sent["/intent"]))
            sent["/intent"] += 1
        session.poll()
    return sent


def check_session(folder: Path, expected: dict[str, int]) -> list[Path]:
    """Every split reads back; counts, order and the manifest agree with what was written."""
    splits = session_splits(folder)
    manifest = read_manifest(folder)
    assert [s["path"] for s in manifest["splits"]] == [p.name for p in splits]
    read_counts = {topic: 0 for topic in expected}
    for split, entry in zip(splits, manifest["splits"], strict=True):
        with Reader(split) as reader:
            counts = {c.topic: c.msgcount for c in reader.connections}
            assert {t: counts.get(t, 0) for t in entry["counts"]} == entry["counts"]
            assert reader.message_count == entry["messages"]
            assert reader.start_time == entry["start_ns"]
        for topic, count in entry["counts"].items():
            read_counts[topic] += count
    assert read_counts == expected
    assert {t: v["count"] for t, v in manifest["topics"].items()} == expected
    assert manifest["message_count"] == sum(expected.values())
    stamps = {topic: [] for topic in expected}
    for message in read_session(folder):
        stamps[message.topic].append(message.timestamp_ns)
    assert {t: len(s) for t, s in stamps.items()} == expected
    assert all(s == sorted(s) for s in stamps.values())
    return splits


def test_splits_by_duration_and_every_split_is_a_bag(tmp_path):
    clock = FakeClock()
    session = SplitBagSession(tmp_path / "bags", split_duration=1.0, registry=registry(), clock=clock)
    session.add_topic("/camera/image", IMAGE)
    session.add_topic("/intent", "dmo_msgs/Intent")  # pkg/Name is accepted too
    sent = record(session, clock, seconds=5.0)
    session.close()
    assert sent == {"/camera/image": 50, "/intent": 25}
    splits = check_session(session.folder, sent)
    assert len(splits) == 5  # one per second of recording
    manifest = read_manifest(session.folder)
    assert manifest["closed"] is True and manifest["storage"] == "mcap"
    assert all(entry["counts"] == {"/camera/image": 10, "/intent": 5} for entry in manifest["splits"])
    assert all((p / f"{p.name}.mcap").is_file() for p in splits)
    assert not (session.folder / PARTIAL).exists()
    # The bytes and types come back exactly: the custom type's definition is in the bag.
    first = next(read_session(session.folder))
    with Reader(splits[0]) as reader:
        intent = next(c for c in reader.connections if c.topic == "/intent")
        assert intent.msgtype == INTENT and "bool active" in intent.msgdef.data
    assert first.data == image_bytes(session.registry.typestore, 0)


def test_splits_by_size(tmp_path):
    clock = FakeClock()
    store = registry()
    session = SplitBagSession(tmp_path, split_duration=0.0, split_size_mb=0.001, registry=store, clock=clock)
    session.add_topic("/camera/image", IMAGE)
    size = len(image_bytes(store.typestore, 0, width=32, height=4))
    assert 384 <= size < 500  # 384 bytes of pixels plus the header: a 1000-byte split closes at the 3rd
    for index in range(30):
        session.write("/camera/image", 1_000 + index, image_bytes(store.typestore, index, width=32, height=4))
    session.close()
    splits = check_session(session.folder, {"/camera/image": 30})
    assert len(splits) == 10
    assert all(entry["messages"] == 3 for entry in read_manifest(session.folder)["splits"])
    assert all(entry["bytes"] >= 1000 for entry in read_manifest(session.folder)["splits"])


def test_sqlite3_storage(tmp_path):
    clock = FakeClock()
    session = SplitBagSession(tmp_path, storage="sqlite3", split_duration=1.0, registry=registry(), clock=clock)
    session.add_topic("/camera/image", IMAGE)
    session.add_topic("/intent", INTENT)
    sent = record(session, clock, seconds=2.0)
    session.close()
    splits = check_session(session.folder, sent)
    assert len(splits) == 2
    assert all((p / f"{p.name}.db3").is_file() for p in splits)
    assert read_manifest(session.folder)["storage"] == "sqlite3"


def test_no_empty_splits_and_a_topic_added_mid_split(tmp_path):
    clock = FakeClock()
    session = SplitBagSession(tmp_path, split_duration=1.0, registry=registry(), clock=clock)
    session.add_topic("/intent", INTENT)
    for now in (0.0, 5.0, 10.0):  # nothing written: no split opens
        clock.now = now
        assert session.poll() is False
    assert session.splits == [] and session.current is None
    session.write("/intent", 10, intent_bytes(session.registry.typestore, 0))
    session.add_topic("/camera/image", IMAGE)  # appears while a split is open
    session.write("/camera/image", 20, image_bytes(session.registry.typestore, 0))
    clock.now = 11.5
    assert session.poll() is True
    session.close()
    check_session(session.folder, {"/intent": 1, "/camera/image": 1})
    with pytest.raises(ValueError, match="already recorded as"):
        session.add_topic("/intent", IMAGE)


def test_custom_types_register_from_msg_text_with_the_ros_hash():
    types = registry()
    assert not types.known(INTENT)
    types.ensure(INTENT)
    types.ensure("dmo_msgs/msg/ImaginedStep")  # nests sensor_msgs/Image (already in the store)
    # The hash matches the one rosidl generated for the installed package (when installed).
    generated = Path(sys.prefix) / "share" / "dmo_msgs" / "msg" / "Intent.json"
    if generated.is_file():
        hashes = {h["type_name"]: h["hash_string"] for h in json.loads(generated.read_text())["type_hashes"]}
        assert types.typestore.hash_rihs01(INTENT) == hashes[INTENT]
    with pytest.raises(UnknownTypeError, match="no_such_msgs/msg/Thing"):
        types.ensure("no_such_msgs/msg/Thing")


def test_image_encoding_check():
    store = registry().typestore
    assert image_encoding_problem(store, image_bytes(store, 0, "rgb8")) is None
    assert image_encoding_problem(store, image_bytes(store, 0, "mono8")) is None
    problem = image_encoding_problem(store, image_bytes(store, 0, "yuv422_weird", width=6, height=2))
    assert problem and "yuv422_weird" in problem and "6x2" in problem and "rgb8" in problem


def test_session_folders_never_overwrite(tmp_path):
    moment = datetime(2025, 1, 2, 3, 4, 5)
    first = new_session_folder(tmp_path, moment)
    second = new_session_folder(tmp_path, moment)
    assert first.name == "20250102-030405" and second.name == "20250102-030405-1"
    a = SplitBagSession(tmp_path, registry=registry())
    b = SplitBagSession(tmp_path, registry=registry())
    assert a.folder != b.folder and a.folder.parent == b.folder.parent == tmp_path


def test_unwritable_output_is_an_os_error(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(OSError):
        SplitBagSession(blocker / "bags", registry=registry())
    with pytest.raises(ValueError, match="unknown storage"):
        SplitBagSession(tmp_path, storage="rosbag1", registry=registry())


CRASHING_WRITER = """
import sys, time
sys.path[:0] = [{test_dir!r}, {conftest_dir!r}]
from test_bag_writer import image_bytes, intent_bytes, registry
from dmo_ros.recording import SplitBagSession
session = SplitBagSession({output!r}, split_duration=0.2, registry=registry())
session.add_topic("/camera/image", "sensor_msgs/msg/Image")
session.add_topic("/intent", "dmo_msgs/msg/Intent")
store = session.registry.typestore
index = 0
while True:
    session.write("/camera/image", time.time_ns(), image_bytes(store, index, width=64, height=64))
    if index % 3 == 0:
        session.write("/intent", time.time_ns(), intent_bytes(store, index))
    if index == 5:
        print("writing", flush=True)
    index += 1
    time.sleep(0.002)
"""


def test_kill_9_leaves_every_finished_split_readable(tmp_path):
    script = CRASHING_WRITER.format(
        test_dir=str(Path(__file__).parent), conftest_dir=str(REPO / "test"), output=str(tmp_path)
    )
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert process.stdout.readline().strip() == "writing"
    time.sleep(1.5)
    killed_ns = time.time_ns()
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    (folder,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    splits = session_splits(folder)
    assert len(splits) >= 4
    manifest = read_manifest(folder)
    assert manifest["closed"] is False
    # The manifest is consistent: it lists finished splits only (maybe not the very last one
    # renamed just before the kill), with the counts they hold.
    listed = [s["path"] for s in manifest["splits"]]
    assert listed == [p.name for p in splits[: len(listed)]] and len(listed) >= len(splits) - 1
    for split, entry in zip(splits, manifest["splits"], strict=False):
        with Reader(split) as reader:
            assert reader.message_count == entry["messages"] > 0
    stamps = [message.timestamp_ns for message in read_session(folder)]
    assert stamps and stamps == sorted(stamps)  # one writer thread: splits continue each other
    last = stamps[-1]
    lost_s = (killed_ns - last) / 1e9
    assert 0 <= lost_s <= 0.2 + 0.3, lost_s  # bounded by the split duration
    assert list((folder / PARTIAL).iterdir())  # the unfinished split, never renamed


# -- recovering what a crash left in .partial/ -------------------------------------------------

# One long split of 64x64 images (12 KB each) cut by SIGKILL after `count` of them: rosbags
# writes a 1 MB chunk to the file as soon as it is full, the rest is in memory and lost.
CUT_SPLIT_WRITER = """
import os, signal, sys
sys.path[:0] = [{test_dir!r}, {conftest_dir!r}]
from test_bag_writer import image_bytes, registry
from dmo_ros.recording import SplitBagSession
session = SplitBagSession({output!r}, split_duration=3600, registry=registry(), session_folder={session!r})
session.add_topic("/camera/image", "sensor_msgs/msg/Image")
store = session.registry.typestore
for index in range({count}):
    session.write("/camera/image", 10**18 + index, image_bytes(store, index, width=64, height=64))
os.kill(os.getpid(), signal.SIGKILL)
"""


def cut_session(tmp_path: Path, count: int) -> Path:
    session = tmp_path / "bags" / "cut"
    script = CUT_SPLIT_WRITER.format(test_dir=str(Path(__file__).parent), conftest_dir=str(REPO / "test"),
                                     output=str(tmp_path / "bags"), session=str(session), count=count)
    assert subprocess.run([sys.executable, "-c", script], cwd=REPO).returncode == -signal.SIGKILL
    return session


def test_recover_rewrites_the_complete_chunks_of_a_cut_split(tmp_path):
    session = cut_session(tmp_path, count=250)  # 3 MB: two full chunks reached the file
    assert session_splits(session) == [] and read_manifest(session)["closed"] is False
    assert unclosed_sessions(tmp_path / "bags") == [session]
    [result] = recover_session(session, registry())
    assert result.how == "rewritten" and result.path == "split_00000"
    stamps = [m.timestamp_ns for m in read_session(session)]
    assert 160 <= len(stamps) < 250 and len(stamps) == result.messages
    assert stamps == [10**18 + i for i in range(len(stamps))]  # the first messages, none twice, none skipped
    manifest = read_manifest(session)
    assert manifest["recovered"] == ["split_00000"] and manifest["closed"] is False
    assert manifest["topics"]["/camera/image"]["count"] == manifest["message_count"] == len(stamps)
    assert [s["path"] for s in manifest["splits"]] == ["split_00000"]
    assert not (session / PARTIAL).exists()
    assert unclosed_sessions(tmp_path / "bags") == []
    assert recover_session(session, registry()) == []  # once


def test_recover_reports_a_cut_split_with_nothing_on_disk(tmp_path):
    session = cut_session(tmp_path, count=10)  # 120 KB: still in memory at the kill
    [result] = recover_session(session, registry())
    assert result.how == "unreadable" and result.messages == 0
    assert (session / PARTIAL / "split_00000").is_dir()  # left as it was
    assert "recovered" not in read_manifest(session)


def test_recover_renames_a_finished_split_that_was_not_moved(tmp_path):
    clock = FakeClock()
    session = SplitBagSession(tmp_path, split_duration=1.0, registry=registry(), clock=clock)
    session.add_topic("/intent", INTENT)
    for index in range(5):
        session.write("/intent", index, intent_bytes(session.registry.typestore, index))
    split = session.current
    split.writer.close()  # finished by rosbags, then the crash: never renamed, never logged
    os.close(session._lock)
    [result] = recover_session(session.folder, registry())
    assert (result.path, result.how, result.messages) == (split.folder.name, "renamed", 5)
    assert [m.timestamp_ns for m in read_session(session.folder)] == list(range(5))
    assert read_manifest(session.folder)["message_count"] == 5


def test_a_live_session_is_never_recovered(tmp_path):
    session = SplitBagSession(tmp_path, registry=registry())
    with pytest.raises(SessionInUse, match="is being written by another process"):
        recover_session(session.folder)
    with pytest.raises(SessionInUse):
        SplitBagSession(tmp_path, session_folder=session.folder, registry=registry())
    session.close()
    assert recover_session(session.folder) == []
