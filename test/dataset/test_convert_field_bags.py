"""dmo-convert on bags as they come from the field: every quirk gives exact samples or a clear error.

Each bag is written here with rosbags (``dmo_ros.dataset.synthetic``): a 64x64 rgb8 camera at
10 Hz whose pixels encode the frame index, TwistStamped at 5 Hz whose linear.x encodes the
tick, Intent at 5 Hz (on from 2 s). Where a case can fail an input, a good bag is converted
in the same run and must come through whole.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest
import yaml

from conftest import BIN
from dmo_ros.dataset.convert import ConvertConfig, convert
from dmo_ros.dataset.format import open_arrays, read_meta
from dmo_ros.dataset.synthetic import T0_NS, BagSpec, action_value, storage_file, write_bag

STORAGES = ("mcap", "sqlite3")
WALL = T0_NS / 1e9


def spec(**kwargs) -> BagSpec:
    """The issue's small input: 64x64 rgb8 at 10 Hz, actions and intent at 5 Hz."""
    return BagSpec(**{"width": 64, "height": 64, **kwargs})


def run_convert(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "dmo-convert"), *args], capture_output=True, text=True, timeout=120)


def assert_exact(dataset, samples: int, action_rate_hz: float = 5.0, intent_on_from_s: float = 2.0,
                 first: int = 0) -> None:
    """Every sample holds the action of its tick, the latest frame at or before it, and the right intent."""
    a = open_arrays(dataset)
    assert len(a["timestamps"]) == samples
    for i in range(samples):
        t = (int(a["timestamps"][i]) - T0_NS) / 1e9
        tick = int(round((t - 0.05) * action_rate_hz))
        assert tick == first + i, (i, t)
        np.testing.assert_allclose(a["actions"][i], action_value(tick)[:2], atol=1e-6)
        frame_time = (int(a["frame_timestamps"][i]) - T0_NS) / 1e9
        k = int(round(frame_time * 10))
        assert 0 <= t - frame_time < 0.1 + 0.01, (i, t, frame_time)  # the latest 10 Hz frame at or before
        assert int(round((float(np.median(a["frames"][i][:, :, 1])) - 8) / 6)) == k % 40, i  # its pixels
        assert bool(a["intent"][i]) == (t >= intent_on_from_s), i


def test_a_good_bag_is_exact(tmp_path):
    """The reference the cases below differ from."""
    write_bag(tmp_path / "bag", spec(seconds=10.0))
    dataset, [report] = convert([tmp_path / "bag"], tmp_path / "ds", ConvertConfig())
    assert report.ok and report.warnings == [] and report.action_rate_hz == pytest.approx(5.0)
    assert_exact(dataset, 50)


# -- 1. a storage file on disk that metadata.yaml does not list ------------------------------------


def write_two_file_bag(tmp_path, storage: str, listed: bool):
    """A 10 s bag as two storage files (0-5 s, 5-10 s); metadata.yaml lists the first, or both."""
    first = write_bag(tmp_path / "bag", spec(storage=storage, seconds=5.0))
    second = write_bag(tmp_path / "second", spec(storage=storage, seconds=5.0, start_s=5.0))
    suffix = storage_file(first).suffix
    moved = first / f"bag_1{suffix}"
    shutil.move(storage_file(second), moved)
    if listed:  # what `ros2 bag reindex` writes: both files, the counts added up
        meta = yaml.safe_load((first / "metadata.yaml").read_text())
        info = meta["rosbag2_bagfile_information"]
        extra = yaml.safe_load((second / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
        info["relative_file_paths"].append(moved.name)
        info["message_count"] += extra["message_count"]
        info["duration"]["nanoseconds"] += extra["duration"]["nanoseconds"]
        for topic, other in zip(info["topics_with_message_count"], extra["topics_with_message_count"], strict=True):
            topic["message_count"] += other["message_count"]
        (first / "metadata.yaml").write_text(yaml.safe_dump(meta))
    shutil.rmtree(second)
    return first, moved


@pytest.mark.parametrize("storage", STORAGES)
def test_an_unlisted_storage_file_is_named_and_the_bag_refused(tmp_path, storage):
    bag, unlisted = write_two_file_bag(tmp_path, storage, listed=False)
    write_bag(tmp_path / "good", spec())
    result = run_convert(str(bag), str(tmp_path / "good"), "-o", str(tmp_path / "ds"))
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"FAILED {bag}: {unlisted.name} in {bag} is not listed in metadata.yaml" in result.stdout, result.stdout
    assert "ros2 bag reindex" in result.stdout
    meta = read_meta(tmp_path / "ds")
    assert [s["path"] for s in meta["sources"]] == [str(tmp_path / "good")] and meta["samples"] == 20
    assert_exact(tmp_path / "ds", 20)


@pytest.mark.parametrize("storage", STORAGES)
def test_a_bag_whose_metadata_lists_both_files_converts_whole(tmp_path, storage):
    bag, _ = write_two_file_bag(tmp_path, storage, listed=True)
    dataset, [report] = convert([bag], tmp_path / "ds", ConvertConfig())
    assert report.ok, report.error
    assert_exact(dataset, 50)


# -- 2. topics stamped on different clocks ---------------------------------------------------------


@pytest.mark.parametrize("storage", STORAGES)
def test_a_camera_on_a_boot_clock_is_named(tmp_path, storage):
    write_bag(tmp_path / "boot", spec(storage=storage, stamp_offset_s={"/camera/image": 5000.0 - WALL}))
    write_bag(tmp_path / "good", spec())
    dataset, reports = convert([tmp_path / "boot", tmp_path / "good"], tmp_path / "ds", ConvertConfig())
    assert not reports[0].ok and reports[1].ok
    assert reports[0].error.startswith(
        "clocks do not match: camera '/camera/image' is stamped 5000.0-5003.9 s, action "
        "'/servo_node/delta_twist_cmds' 1700000000.0-1700000003.8 s (1.7e+09 s apart)"), reports[0].error
    assert "--time-source receive" in reports[0].error
    assert_exact(dataset, 20)


@pytest.mark.parametrize("storage", STORAGES)
def test_intent_on_wall_time_beside_sim_time_is_named(tmp_path, storage):
    sim = {"/camera/image": 100.0 - WALL, "/servo_node/delta_twist_cmds": 100.0 - WALL}
    write_bag(tmp_path / "sim", spec(storage=storage, stamp_offset_s=sim))
    write_bag(tmp_path / "good", spec())
    dataset, [report, good] = convert([tmp_path / "sim", tmp_path / "good"], tmp_path / "ds", ConvertConfig())
    assert not report.ok and good.ok
    assert_exact(dataset, 20)  # the good input whole, nothing of the refused one
    assert report.error.startswith("clocks do not match: intent '/intent' is stamped 1700000000.0-1700000003.8 s, "
                                   "action '/servo_node/delta_twist_cmds' 100.0-103.8 s"), report.error


@pytest.mark.parametrize("offsets", [{"/camera/image": 5000.0 - WALL},
                                     {"/camera/image": 100.0 - WALL, "/servo_node/delta_twist_cmds": 100.0 - WALL}],
                         ids=["boot-camera", "sim-time-intent-wall"])
def test_receive_time_aligns_topics_on_different_clocks(tmp_path, offsets):
    write_bag(tmp_path / "bag", spec(stamp_offset_s=offsets))
    dataset, [report] = convert([tmp_path / "bag"], tmp_path / "ds", ConvertConfig(time_source="receive"))
    assert report.ok, report.error
    a = open_arrays(dataset)
    assert len(a["timestamps"]) == 20
    # Receive times: actions 1 ms and frames 3 ms after their nominal times; intent on from 2 s (a third of ticks).
    t = (a["timestamps"] - T0_NS) / 1e9
    np.testing.assert_allclose(t, 0.05 + np.arange(20) / 5 + 0.001, atol=1e-6)
    np.testing.assert_allclose(a["actions"][:, 0], 0.01 * np.arange(20), atol=1e-6)
    assert a["intent"].tolist() == [bool(x >= 2.0) for x in t] and a["intent"].sum() == 10


# -- 3. one topic on two connections -----------------------------------------------------------------


@pytest.mark.parametrize("storage", STORAGES)
def test_a_topic_on_two_connections_is_one_stream(tmp_path, storage):
    """A publisher restarted with other QoS at 5 s: every topic's second half is on a second connection."""
    write_bag(tmp_path / "bag", spec(storage=storage, seconds=10.0, reconnect_at_s=5.0))
    dataset, [report] = convert([tmp_path / "bag"], tmp_path / "ds", ConvertConfig())
    assert report.ok and report.camera_messages == 100, report.error
    assert_exact(dataset, 50)


# -- 4. messages that do not deserialise as the installed type ---------------------------------------


@pytest.mark.parametrize("storage", STORAGES)
def test_intent_of_an_older_definition_converts_beside_current_ones(tmp_path, storage):
    """An Intent recorded before the milestone field: decoded with the bag's definition, milestone 0."""
    write_bag(tmp_path / "new1", spec(milestone_at_s=1.0))
    write_bag(tmp_path / "old", spec(storage=storage, old_intent=True))
    write_bag(tmp_path / "new2", spec(milestone_at_s=1.0))
    dataset, reports = convert([tmp_path / "new1", tmp_path / "old", tmp_path / "new2"], tmp_path / "ds",
                               ConvertConfig())
    assert all(r.ok for r in reports), [r.error for r in reports]
    assert [len(r.warnings) for r in reports] == [0, 1, 0]
    assert "older dmo_msgs/Intent (no milestone field): milestone is 0" in reports[1].warnings[0]
    a = open_arrays(dataset)
    pressed = [float(i == 5) for i in range(20)]  # the milestone key at 1 s: tick 5
    assert a["milestone"].tolist() == pressed + [0.0] * 20 + pressed
    assert a["intent"].tolist() == [i >= 10 for i in range(20)] * 3  # the old bag's intent is read too


@pytest.mark.parametrize(("topic", "samples"), [("/camera/image", 20), ("/servo_node/delta_twist_cmds", 19),
                                                ("/intent", 20)])
@pytest.mark.parametrize("storage", STORAGES)
def test_a_cut_payload_is_counted_and_skipped(tmp_path, storage, topic, samples):
    write_bag(tmp_path / "cut", spec(storage=storage, cut_payload=(topic, 5)))
    write_bag(tmp_path / "good", spec())
    result = run_convert(str(tmp_path / "cut"), str(tmp_path / "good"), "-o", str(tmp_path / "ds"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"warning: 1 message(s) on {topic} could not be deserialised (damaged payload): skipped" in result.stdout
    meta = json.loads((tmp_path / "ds" / "meta.json").read_text())
    assert [s["undecodable"] for s in meta["sources"]] == [{topic: 1}, {}]
    a = open_arrays(tmp_path / "ds")
    assert len(a["timestamps"]) == samples + 20
    ticks = np.round(((a["timestamps"][:samples] - T0_NS) / 1e9 - 0.05) * 5).astype(int)
    expected = [k for k in range(20) if not (topic.startswith("/servo") and k == 5)]
    assert ticks.tolist() == expected  # only the damaged action's tick is missing
    if topic == "/camera/image":  # tick 2 (0.45 s) falls back to frame 4 instead of the damaged frame 5
        assert (a["frame_timestamps"][2] - T0_NS) / 1e9 == pytest.approx(0.4)


# -- 5. action rate different from the profile's ------------------------------------------------------


@pytest.mark.parametrize("storage", STORAGES)
def test_actions_slower_than_the_profile_are_refused_with_the_measured_rate(tmp_path, storage):
    write_bag(tmp_path / "slow", spec(storage=storage, action_rate_hz=2.0, seconds=10.0))
    write_bag(tmp_path / "good", spec())
    dataset, reports = convert([tmp_path / "slow", tmp_path / "good"], tmp_path / "ds", ConvertConfig())
    assert not reports[0].ok and reports[1].ok
    assert reports[0].error.startswith("actions arrive at 2.00 Hz (median interval 0.500 s) but the pusht "
                                       "profile's rate is 5 Hz"), reports[0].error
    assert "--rate 2" in reports[0].error
    assert_exact(dataset, 20)


def test_slower_actions_convert_at_their_rate_with_rate(tmp_path):
    write_bag(tmp_path / "slow", spec(action_rate_hz=2.0, seconds=10.0))
    result = run_convert(str(tmp_path / "slow"), "-o", str(tmp_path / "ds"), "--rate", "2")
    assert result.returncode == 0, result.stderr
    assert "dataset: 20 samples at 2 Hz (10 s)" in result.stdout
    assert_exact(tmp_path / "ds", 20, action_rate_hz=2.0)


# -- 6. truncated MCAP ----------------------------------------------------------------------------


def test_a_truncated_mcap_is_named_and_recovered_on_request(tmp_path):
    bag = write_bag(tmp_path / "killed", spec(seconds=20.0))  # 2.4 MB in 1 MiB chunks: the cut is in the third
    path = storage_file(bag)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 6 // 10])
    write_bag(tmp_path / "good", spec())
    result = run_convert(str(bag), str(tmp_path / "good"), "-o", str(tmp_path / "ds"))
    assert result.returncode == 1
    assert f"FAILED {bag}: truncated MCAP file: killed.mcap" in result.stdout and "--recover-truncated" in result.stdout
    shutil.rmtree(tmp_path / "ds")
    dataset, reports = convert([bag, tmp_path / "good"], tmp_path / "ds", ConvertConfig(recover_truncated=True))
    assert all(r.ok for r in reports), [r.error for r in reports]
    recovered = reports[0].samples
    assert 30 <= recovered < 60, recovered  # the complete chunks before the cut (~40 % of 20 s), each sample exact
    assert any("killed.mcap is truncated: recovered the" in w for w in reports[0].warnings), reports[0].warnings
    a = open_arrays(dataset)
    assert len(a["timestamps"]) == recovered + 20
    ticks = np.round(((a["timestamps"][:recovered] - T0_NS) / 1e9 - 0.05) * 5).astype(int)
    assert ticks.tolist() == list(range(recovered))
    np.testing.assert_allclose(a["actions"][:recovered, 0], 0.01 * np.arange(recovered), atol=1e-6)
