"""The recorder node with real processes over DDS: what it writes, and how it stops or dies."""

from __future__ import annotations

import itertools
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rosbags.rosbag2 import Reader

from conftest import BIN, REPO, LiveProcess, run_command
from dmo_ros.recording import TypeRegistry, read_manifest, read_session, session_splits
from dmo_ros.recording.bag_writer import PARTIAL
from dmo_ros.recording.summary import format_summary, summarize

pytestmark = pytest.mark.ros

IMAGE = "sensor_msgs/msg/Image"
INTENT = "dmo_msgs/msg/Intent"
TEST_PATTERN = [str(BIN / "test_pattern"), "--ros-args", "-r", "camera/image:=/camera/image", "-r", "intent:=/intent"]

# Publishes numbered Intent messages (milestone = 0, 1, 2, ...) reliably at 50 Hz once the
# recorder has subscribed; prints each number it sent.
NUMBERED_INTENTS = """
import time, rclpy
from rclpy.node import Node
from dmo_msgs.msg import Intent
from dmo_ros.nodes.template import qos_profile
rclpy.init()
node = Node("numbered_intents")
publisher = node.create_publisher(Intent, "/intent", qos_profile("reliable"))
while publisher.get_subscription_count() == 0:
    rclpy.spin_once(node, timeout_sec=0.05)
print("matched", flush=True)
for n in range(100000):
    publisher.publish(Intent(active=n % 2 == 0, milestone=float(n)))
    print("sent", n, flush=True)
    time.sleep(0.02)
"""

# Publishes 32x16 images with an encoding the dataset tools do not know.
WEIRD_IMAGES = """
import time, rclpy
from rclpy.node import Node
from sensor_msgs.msg import Image
from dmo_ros.nodes.template import qos_profile
rclpy.init()
node = Node("weird_camera")
publisher = node.create_publisher(Image, "/weird/image", qos_profile("reliable"))
while True:
    publisher.publish(Image(height=16, width=32, encoding="yuv422_weird", step=64, data=bytes(16 * 64)))
    time.sleep(0.1)
"""


def recorder(tmp_path: Path, **parameters) -> list[str]:
    args = [str(BIN / "recorder"), "--ros-args", "-p", f"output:={tmp_path / 'bags'}"]
    for name, value in parameters.items():
        args += ["-p", f"{name}:={value}"]
    return args


def the_session(tmp_path: Path) -> Path:
    (session,) = [p for p in (tmp_path / "bags").iterdir() if p.is_dir()]
    return session


def decoder():
    types = TypeRegistry([REPO])
    types.ensure(INTENT)
    return types.typestore


def test_records_the_test_pattern(ros_env, tmp_path):
    talker = LiveProcess(TEST_PATTERN, ros_env)
    try:
        result = run_command(recorder(tmp_path, duration=3.0, topic_timeout=1.0, report_period=1.0), ros_env)
    finally:
        talker.stop()
    assert result.returncode == 0, result.stdout
    assert "Traceback" not in result.stdout
    for missing in ("/action", "/reset"):  # in the default list, not published here
        assert f"topic '{missing}' has no publisher after 1 s" in result.stdout
    assert "summary: /camera/image" in result.stdout

    session = the_session(tmp_path)
    splits = session_splits(session)
    assert 2 <= len(splits) <= 4  # 1 s splits over 3 s
    manifest = read_manifest(session)
    assert manifest["closed"] is True and not (session / PARTIAL).exists()
    # What made the recording: the recorder's settings and each recorded topic's publishing node.
    collection = manifest["collection"]
    assert collection["tool"] == "recorder node" and collection["duration"] == 3.0 and collection["host"]
    assert collection["publishers"] == {"/camera/image": ["/test_pattern"], "/intent": ["/test_pattern"]}
    assert "published by: /camera/image /test_pattern" in format_summary(summarize(session))
    with Reader(splits[0]) as reader:
        assert {c.topic: c.msgtype for c in reader.connections} == {"/camera/image": IMAGE, "/intent": INTENT}
        assert (splits[0] / f"{splits[0].name}.mcap").is_file()

    store = decoder()
    received = {"/camera/image": [], "/intent": []}
    images, actives, header_stamps = [], [], []
    for message in read_session(session):
        received[message.topic].append(message.timestamp_ns)
        decoded = store.deserialize_cdr(message.data, message.msgtype)
        if message.topic == "/camera/image":
            images.append((decoded.width, decoded.height, decoded.encoding, len(decoded.data)))
            header_stamps.append(decoded.header.stamp.sec * 10**9 + decoded.header.stamp.nanosec)
        else:
            actives.append(bool(decoded.active))
    counts = {topic: len(stamps) for topic, stamps in received.items()}
    assert {t: v["count"] for t, v in manifest["topics"].items()} == counts
    # Rates over what was recorded: 10 Hz images, 5 Hz intent (discovery eats a little of the 3 s).
    for topic, rate in (("/camera/image", 10.0), ("/intent", 5.0)):
        stamps = received[topic]
        assert 2.0 * rate <= len(stamps) <= 3.0 * rate + 2, counts
        assert stamps == sorted(stamps), topic
        measured = (len(stamps) - 1) / ((stamps[-1] - stamps[0]) / 1e9)
        assert abs(measured - rate) <= 0.2 * rate, (topic, measured)
    assert set(images) == {(64, 64, "rgb8", 64 * 64 * 3)}
    assert header_stamps == sorted(header_stamps)
    assert len([k for k, _ in itertools.groupby(actives)]) >= 2, actives  # 'active' toggles (every 1 s)


def test_sigint_closes_the_open_split_and_loses_nothing(ros_env, tmp_path):
    # 30 s splits: everything recorded is in the open split, which only a proper close keeps.
    rec = LiveProcess(recorder(tmp_path, topics="[/intent]", split_duration=30.0), ros_env)
    talker = LiveProcess([sys.executable, "-c", NUMBERED_INTENTS], ros_env)
    try:
        rec.wait_for("subscribed to '/intent'")
        talker.wait_for("sent 50")
        assert not session_splits(the_session(tmp_path))  # nothing finished yet
        stopped_ns = time.time_ns()
        assert rec.stop(signal.SIGINT) == 0, rec.output
    finally:
        talker.stop(signal.SIGKILL)
        rec.stop(signal.SIGKILL)
    assert "Traceback" not in rec.output
    session = the_session(tmp_path)
    manifest = read_manifest(session)
    assert manifest["closed"] is True and len(manifest["splits"]) == 1
    assert not (session / PARTIAL).exists()
    store = decoder()
    messages = list(read_session(session))
    numbers = [int(store.deserialize_cdr(m.data, INTENT).milestone) for m in messages]
    assert len(numbers) >= 50
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), numbers  # no gap
    assert numbers[0] <= 2  # matched before publishing: from the start
    # ...to the end: the last message before SIGINT is in the bag (50 Hz: one every 20 ms).
    assert (stopped_ns - messages[-1].timestamp_ns) / 1e9 < 0.2
    assert f"summary: /intent {len(numbers)} " in rec.output


def test_kill_9_loses_at_most_one_split(ros_env, tmp_path):
    talker = LiveProcess(TEST_PATTERN + ["-p", "intent_rate_hz:=20.0"], ros_env)
    rec = LiveProcess(recorder(tmp_path, topics="[/camera/image,/intent]"), ros_env)
    try:
        rec.wait_for("subscribed to '/intent'")
        rec.wait_for("subscribed to '/camera/image'")
        time.sleep(3.4)
        killed_ns = time.time_ns()
        assert rec.stop(signal.SIGKILL) == -signal.SIGKILL
    finally:
        talker.stop()
        rec.stop(signal.SIGKILL)
    session = the_session(tmp_path)
    splits = session_splits(session)
    assert len(splits) >= 2, rec.output
    manifest = read_manifest(session)
    assert manifest["closed"] is False
    listed = [s["path"] for s in manifest["splits"]]
    assert listed == [p.name for p in splits[: len(listed)]] and len(listed) >= len(splits) - 1
    for split, entry in zip(splits, manifest["splits"], strict=False):
        with Reader(split) as reader:  # every finished split is a valid bag
            assert reader.message_count == entry["messages"] > 0
            assert {c.topic for c in reader.connections} == {"/camera/image", "/intent"}
    stamps = [m.timestamp_ns for m in read_session(session)]
    lost = (killed_ns - max(stamps)) / 1e9
    print(f"kill -9: {len(splits)} finished splits, {len(stamps)} messages, lost interval {lost:.3f} s")
    assert 0 <= lost <= 1.0 + 0.4, lost  # the split duration (1 s default) + a margin


def test_a_topic_that_never_appears_is_named_and_the_others_recorded(ros_env, tmp_path):
    talker = LiveProcess(TEST_PATTERN, ros_env)
    try:
        result = run_command(
            recorder(tmp_path, topics="[/intent,/not_there]", duration=2.0, topic_timeout=1.0), ros_env
        )
    finally:
        talker.stop()
    assert result.returncode == 0, result.stdout
    assert "topic '/not_there' has no publisher after 1 s" in result.stdout
    assert "'/intent' has no publisher" not in result.stdout
    assert "never seen: /not_there" in result.stdout
    counts = read_manifest(the_session(tmp_path))["topics"]
    assert set(counts) == {"/intent"} and counts["/intent"]["count"] >= 5


def test_an_unusual_image_encoding_is_a_warning_and_still_recorded(ros_env, tmp_path):
    camera = LiveProcess([sys.executable, "-c", WEIRD_IMAGES], ros_env)
    try:
        result = run_command(recorder(tmp_path, topics="[/weird/image]", duration=2.0), ros_env)
    finally:
        camera.stop(signal.SIGKILL)
    assert result.returncode == 0, result.stdout
    warnings = [line for line in result.stdout.splitlines() if "yuv422_weird" in line]
    assert len(warnings) == 1, result.stdout  # once: only the first message is checked
    assert "[WARN]" in warnings[0] and "'/weird/image'" in warnings[0] and "rgb8" in warnings[0]
    assert read_manifest(the_session(tmp_path))["topics"]["/weird/image"]["count"] >= 10


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"output": "{blocker}/bags"}, "cannot write to output folder '{blocker}/bags'"),
        ({"storage": "rosbag1"}, "unknown storage 'rosbag1'; choose one of mcap, sqlite3"),
        ({"split_duration": 0.0}, "split_duration or split_size_mb must be positive"),
    ],
)
def test_bad_output_or_parameters_exit_2_without_a_traceback(ros_env, tmp_path, parameters, message):
    blocker = tmp_path / "a_file"
    blocker.write_text("a file where a folder should be")
    parameters = {k: str(v).format(blocker=blocker) for k, v in parameters.items()}
    args = recorder(tmp_path, duration=1.0)
    for name, value in parameters.items():
        args += ["-p", f"{name}:={value}"]
    result = run_command(args, ros_env)
    assert result.returncode == 2, result.stdout
    assert message.format(blocker=blocker) in result.stdout
    assert "[ERROR]" in result.stdout and "Traceback" not in result.stdout


# A recording cut by SIGKILL mid-split: 30 messages of 100 kB in one long split; the two
# complete 1 MB chunks are on disk, the rest was in memory.
CUT_RECORDING = """
import os, signal, sys
from dmo_ros.recording import SplitBagSession
session = SplitBagSession(sys.argv[1], split_duration=3600)
session.add_topic("/notes", "std_msgs/msg/String")
store = session.registry.typestore
for index in range(30):
    text = store.types["std_msgs/msg/String"](data=str(index).rjust(100_000))
    session.write("/notes", 10**18 + index, bytes(store.serialize_cdr(text, "std_msgs/msg/String")))
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_new_recorder_recovers_what_a_crash_left_in_partial(ros_env, tmp_path):
    output = tmp_path / "bags"
    assert subprocess.run([sys.executable, "-c", CUT_RECORDING, str(output)]).returncode == -signal.SIGKILL
    (crashed,) = list(output.iterdir())
    assert not session_splits(crashed) and (crashed / PARTIAL / "split_00000").is_dir()
    result = run_command(recorder(tmp_path, topics="[/intent]", duration=0.5), ros_env)
    assert result.returncode == 0, result.stdout
    line = next(line for line in result.stdout.splitlines() if "recovered split" in line)
    assert f"{crashed}: recovered split split_00000 (" in line and "messages, rewritten)" in line
    recovered = [int(store_text(m.data)) for m in read_session(crashed)]
    assert recovered == list(range(len(recovered))) and 15 <= len(recovered) < 30
    manifest = read_manifest(crashed)
    assert manifest["recovered"] == ["split_00000"] and manifest["message_count"] == len(recovered)
    assert len([p for p in output.iterdir() if p.is_dir()]) == 2  # and the new session beside it


def store_text(data: bytes) -> str:
    return TypeRegistry().typestore.deserialize_cdr(data, "std_msgs/msg/String").data.strip()


def test_a_second_sigint_while_closing_does_not_interrupt_the_close(ros_env, tmp_path):
    # Under ros2 launch every Ctrl-C of the terminal reaches every node: two presses 20-60 ms
    # apart used to abort the close (KeyboardInterrupt) and leave the split in .partial/.
    rec = LiveProcess(recorder(tmp_path, topics="[/intent]", split_duration=30.0), ros_env)
    talker = LiveProcess([sys.executable, "-c", NUMBERED_INTENTS], ros_env)
    try:
        rec.wait_for("subscribed to '/intent'")
        talker.wait_for("sent 30")
        rec.process.send_signal(signal.SIGINT)
        time.sleep(0.02)
        rec.process.send_signal(signal.SIGINT)
        time.sleep(0.03)
        rec.process.send_signal(signal.SIGTERM)
        assert rec.finish() == 0, rec.output
    finally:
        talker.stop(signal.SIGKILL)
        rec.stop(signal.SIGKILL)
    assert "Traceback" not in rec.output and "KeyboardInterrupt" not in rec.output
    session = the_session(tmp_path)
    assert read_manifest(session)["closed"] is True and not (session / PARTIAL).exists()
    numbers = [int(decoder().deserialize_cdr(m.data, INTENT).milestone) for m in read_session(session)]
    assert len(numbers) >= 30 and numbers == list(range(numbers[0], numbers[0] + len(numbers)))


# Starts the recorder as its child, says the child's pid, then waits to be killed.
PARENT = """
import subprocess, sys, time
child = subprocess.Popen(sys.argv[1:])
print(child.pid, flush=True)
time.sleep(120)
"""


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_the_recorder_stops_and_closes_when_its_parent_dies(ros_env, tmp_path, sig):
    talker = LiveProcess(TEST_PATTERN, ros_env)
    parent = LiveProcess([sys.executable, "-c", PARENT, *recorder(tmp_path, topics="[/camera/image]")], ros_env)
    try:
        parent.wait_for("subscribed to '/camera/image'")
        child = int(parent.lines[0])
        time.sleep(1.0)
        parent.process.send_signal(sig)  # the default action: the parent dies at once
        deadline = time.monotonic() + 2.0
        while Path(f"/proc/{child}").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        alive = Path(f"/proc/{child}/status").exists() and "zombie" not in Path(f"/proc/{child}/status").read_text()
    finally:
        talker.stop()
        parent.stop(signal.SIGKILL)
    assert not alive, "the recorder outlived its parent by 2 s"
    session = the_session(tmp_path)
    manifest = read_manifest(session)
    assert manifest["closed"] is True and manifest["message_count"] >= 5


def test_a_publisher_discovered_before_its_node_name_is_named_at_a_later_discovery():
    """DDS can report a publisher before its node (``_NODE_NAME_UNKNOWN_``): the manifest named that placeholder
    as the camera's publisher (a CI run). The topic is looked at again until the name is known."""
    from types import SimpleNamespace

    from dmo_ros.nodes.recorder import Recorder

    def publisher(name: str, namespace: str = "/") -> SimpleNamespace:
        return SimpleNamespace(node_name=name, node_namespace=namespace)

    recorder = SimpleNamespace(session=SimpleNamespace(collection={"publishers": {}}), names_pending=set())
    Recorder.note_publishers(recorder, "/camera/image", [publisher("_NODE_NAME_UNKNOWN_", "_NODE_NAMESPACE_UNKNOWN_")])
    assert recorder.session.collection["publishers"]["/camera/image"] == []
    assert recorder.names_pending == {"/camera/image"}
    Recorder.note_publishers(recorder, "/camera/image", [publisher("test_pattern")])
    assert recorder.session.collection["publishers"]["/camera/image"] == ["/test_pattern"]
    assert recorder.names_pending == set()
