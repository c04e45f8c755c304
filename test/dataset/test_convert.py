"""dmo-convert on bags written independently with rosbags: alignment, decoding, episodes, bad input."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from conftest import BIN
from dmo_ros.dataset import convert as convert_module
from dmo_ros.dataset.convert import ConvertConfig, convert
from dmo_ros.dataset.format import open_arrays, read_meta
from dmo_ros.dataset.images import resize
from dmo_ros.dataset.synthetic import T0_NS, BagSpec, action_value, frame_pixels, storage_file, write_bag


def run_convert(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "dmo-convert"), *args], capture_output=True, text=True, timeout=120)


def nominal_action_index(stamp_ns: int, jitter_s: float) -> int:
    return int(round(((stamp_ns - T0_NS) / 1e9 - 0.05) * 5.0))


def frame_index(frame: np.ndarray) -> int:
    """The factory writes frame k (< 40) with green = 8 + 6k everywhere (JPEG blurs it by a level or two)."""
    return int(round((float(np.median(frame[:, :, 1])) - 8) / 6))


@pytest.mark.parametrize(
    ("spec", "robot", "tolerance"),
    [
        (BagSpec(storage="sqlite3", encoding="bgr8", width=80, height=60, jitter_s=0.01), "pusht", 0),
        (BagSpec(camera="png", width=120, height=90, jitter_s=0.01, action_type="geometry_msgs/msg/Twist",
                 action_topic="/cmd_vel"), "go2", 0),
        (BagSpec(camera="jpeg", width=80, height=60, jitter_s=0.02), "pusht", 6),
        (BagSpec(encoding="mono8", width=64, height=64), "pusht", 0),
    ],
    ids=["sqlite3-bgr8-jitter", "png-twist-go2", "jpeg", "mono8"],
)
def test_independent_bag_converts_exactly(tmp_path, spec, robot, tolerance):
    write_bag(tmp_path / "bag", spec)
    dataset, reports = convert([tmp_path / "bag"], tmp_path / "ds", ConvertConfig(robot=robot, height=48, width=64))
    assert dataset is not None and all(r.ok for r in reports), [r.error for r in reports]
    a = open_arrays(dataset)
    n = len(a["timestamps"])
    assert n == int(spec.seconds * 5)  # one sample per action tick
    assert np.all(a["frame_timestamps"] <= a["timestamps"])  # the latest frame at or before the action
    assert np.all(a["timestamps"] - a["frame_timestamps"] <= 0.15e9)  # ... and the latest one (10 Hz images)
    for i in range(n):
        k = frame_index(a["frames"][i]) if spec.encoding != "mono8" else None
        if k is not None:
            source = frame_pixels(k, spec.width, spec.height)
            expected = resize(source, 48, 64, "crop")
            assert np.abs(a["frames"][i].astype(int) - expected).max() <= tolerance, i  # RGB order kept
        j = nominal_action_index(int(a["timestamps"][i]), spec.jitter_s)
        vx, vy, wz = action_value(j)
        expected_action = [vx, vy] if robot == "pusht" else [vx, vy, wz]
        np.testing.assert_allclose(a["actions"][i], expected_action, atol=1e-6)
        assert a["intent"][i] == ((a["timestamps"][i] - T0_NS) / 1e9 >= spec.intent_on_from_s)
    if spec.encoding == "mono8":
        assert np.all(a["frames"][:, :, :, 0] == a["frames"][:, :, :, 2])  # grey in all three channels
    meta = read_meta(dataset)
    assert meta["alignment"]["skew_ms"]["max"] <= 150 and meta["robot"] == robot


def test_episodes_end_at_resets_gaps_and_bag_boundaries(tmp_path):
    write_bag(tmp_path / "one", BagSpec(seconds=6.0, reset_at_s=2.5))
    write_bag(tmp_path / "two", BagSpec(seconds=6.0, action_gap_s=(2.0, 4.0)))
    dataset, _ = convert([tmp_path / "one", tmp_path / "two"], tmp_path / "ds", ConvertConfig())
    meta, a = read_meta(dataset), open_arrays(dataset)
    lengths = [e["length"] for e in meta["episodes"]]
    assert len(lengths) == 4 and sum(lengths) == len(a["timestamps"])
    assert [e["source"].endswith(("one", "two")) for e in meta["episodes"]] == [True] * 4
    # The reset at 2.5 s: the second episode starts with the first action after it.
    second = meta["episodes"][1]
    assert (a["timestamps"][second["start"]] - T0_NS) / 1e9 > 2.5
    assert (a["timestamps"][second["start"] - 1] - T0_NS) / 1e9 < 2.5
    for e in meta["episodes"]:  # episode_index agrees, samples contiguous and in time order
        idx = slice(e["start"], e["start"] + e["length"])
        assert np.all(a["episode_index"][idx] == e["index"]) and np.all(np.diff(a["timestamps"][idx]) > 0)
    assert {e["split"] for e in meta["episodes"]} == {"train", "val"}


def test_milestone_counts_once_and_faster_actions_are_decimated(tmp_path):
    write_bag(tmp_path / "bag", BagSpec(action_rate_hz=20.0, milestone_at_s=1.0, seconds=4.0))
    dataset, [report] = convert([tmp_path / "bag"], tmp_path / "ds", ConvertConfig())
    a = open_arrays(dataset)
    assert 18 <= len(a["timestamps"]) <= 21 and report.decimated >= 55  # 80 actions → ~20 samples at 5 Hz
    steps = np.diff(a["timestamps"]) / 1e9
    assert np.all((steps > 0.14) & (steps < 0.26)) and abs(steps.mean() - 0.2) < 0.01, steps
    assert a["milestone"].sum() == 1.0  # pressed once, counted on one sample


@pytest.mark.parametrize(
    ("name", "make", "message"),
    [
        ("truncated", lambda p: _truncate(write_bag(p, BagSpec())), "truncated MCAP file: truncated.mcap"),
        ("corrupt-sqlite", lambda p: _corrupt(write_bag(p, BagSpec(storage="sqlite3"))), "cannot read the bag"),
        ("no-camera", lambda p: write_bag(p, BagSpec(camera_topic="/front/image_raw")),
         "no camera topic '/camera/image'; the bag has: /front/image_raw (sensor_msgs/msg/Image)"),
        ("yuv", lambda p: write_bag(p, BagSpec(encoding="yuv422")), "unsupported image encoding 'yuv422'"),
        ("empty", lambda p: write_bag(p, BagSpec(seconds=0.0)), "no camera topic"),
        ("resized", lambda p: write_bag(p, BagSpec(resize_at_s=2.0)), "mismatched image sizes within the recording"),
    ],
)
def test_a_bad_bag_is_reported_and_the_good_ones_converted(tmp_path, name, make, message):
    write_bag(tmp_path / "good", BagSpec())
    make(tmp_path / name)
    result = run_convert(str(tmp_path / "good"), str(tmp_path / name), "-o", str(tmp_path / "ds"))
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"FAILED {tmp_path / name}: " in result.stdout and message in result.stdout, result.stdout
    meta = read_meta(tmp_path / "ds")
    assert [s["path"] for s in meta["sources"]] == [str(tmp_path / "good")]
    assert meta["samples"] == 20 and len(open_arrays(tmp_path / "ds")["frames"]) == 20  # nothing of the bad one
    assert meta["failed_sources"][0]["path"] == str(tmp_path / name)


def _truncate(bag):
    path = storage_file(bag)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _corrupt(bag):
    path = storage_file(bag)
    data = bytearray(path.read_bytes())
    data[100:4000] = b"\xff" * 3900
    path.write_bytes(bytes(data))


def test_nothing_converted_writes_no_dataset(tmp_path):
    write_bag(tmp_path / "bad", BagSpec(encoding="yuv422"))
    result = run_convert(str(tmp_path / "bad"), str(tmp_path / "nope"), "-o", str(tmp_path / "ds"))
    assert result.returncode == 2
    assert "no input converted" in result.stderr and "nope: does not exist" in result.stdout
    assert not (tmp_path / "ds").exists() and not (tmp_path / "ds.partial").exists()


def test_an_interrupted_conversion_leaves_no_dataset_that_looks_complete(tmp_path, monkeypatch):
    write_bag(tmp_path / "bag", BagSpec())
    calls = []

    def interrupt(self, stamp, action):
        calls.append(stamp)
        if len(calls) == 5:
            raise KeyboardInterrupt

    monkeypatch.setattr(convert_module.Aligner, "_sample", interrupt)
    with pytest.raises(KeyboardInterrupt):
        convert([tmp_path / "bag"], tmp_path / "ds", ConvertConfig())
    assert not (tmp_path / "ds").exists() and not (tmp_path / "ds.partial").exists()


def test_a_second_conversion_into_the_same_output_stops_and_spares_the_first(tmp_path, monkeypatch):
    write_bag(tmp_path / "bag", BagSpec())
    sample, seconds = convert_module.Aligner._sample, []

    def meanwhile(self, stamp, action):
        if not seconds:  # a second conversion into the same folder starts while this one writes
            seconds.append(run_convert(str(tmp_path / "bag"), "-o", str(tmp_path / "ds")))
        return sample(self, stamp, action)

    monkeypatch.setattr(convert_module.Aligner, "_sample", meanwhile)
    dataset, [report] = convert([tmp_path / "bag"], tmp_path / "ds", ConvertConfig())
    assert seconds[0].returncode == 2 and "another process is writing" in seconds[0].stderr
    assert report.ok and dataset == tmp_path / "ds" and read_meta(dataset)["samples"] == report.samples > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bag", "ds"]  # no lock file or partial left


def test_existing_output_and_bad_options_are_clear_errors(tmp_path):
    write_bag(tmp_path / "bag", BagSpec())
    (tmp_path / "ds").mkdir()
    result = run_convert(str(tmp_path / "bag"), "-o", str(tmp_path / "ds"))
    assert result.returncode == 2 and "already exists" in result.stderr
    result = run_convert(str(tmp_path / "bag"), "-o", str(tmp_path / "x"), "--robot", "spot")
    assert result.returncode == 2 and "no robot profile 'spot'" in result.stderr and "go2, pusht" in result.stderr


@pytest.mark.parametrize("field", ["rate_hz", "gap_threshold_s", "max_frame_age_s", "reorder_window_s",
                                   "validation_fraction", "rate_tolerance"])
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_options_are_refused_by_name(field, value):
    """nan passes every range check (``--rate nan`` used to fail deep inside with 'cannot convert float NaN')."""
    with pytest.raises(ValueError, match=f"{field} must be a finite number"):
        ConvertConfig(**{field: value})


def test_a_recording_listed_twice_is_converted_once(tmp_path):
    """Listed twice (or beside its folder) a bag became two identical episodes, one of them maybe in the
    validation split: silent leakage between train and validation."""
    write_bag(tmp_path / "bags/bag", BagSpec())
    dataset, reports = convert([tmp_path / "bags", tmp_path / "bags/bag"], tmp_path / "ds", ConvertConfig(),
                               log=lambda _: None)
    once, _ = convert([tmp_path / "bags/bag"], tmp_path / "ds_once", ConvertConfig(), log=lambda _: None)
    assert read_meta(dataset)["samples"] == read_meta(once)["samples"]
    assert len(read_meta(dataset)["episodes"]) == len(read_meta(once)["episodes"])
    repeated = [report for report in reports if not report.ok]
    assert len(repeated) == 1 and "repeats recordings of" in repeated[0].error and "listed twice" in repeated[0].error


def test_a_negative_seed_is_refused_by_name():
    """--seed -1 was reported as a bare 'expected non-negative integer' from numpy."""
    with pytest.raises(ValueError, match="seed must be >= 0, got -1"):
        ConvertConfig(seed=-1)


def test_metadata_describes_the_dataset(tmp_path):
    write_bag(tmp_path / "bag", BagSpec(width=80, height=60))
    result = run_convert(str(tmp_path / "bag"), "-o", str(tmp_path / "ds"), "--size", "32", "40", "--aspect", "pad")
    assert result.returncode == 0, result.stderr
    assert "frame skew (action stamp - frame stamp): min" in result.stdout and "MB/s" in result.stdout
    meta = json.loads((tmp_path / "ds" / "meta.json").read_text())
    assert meta["format"] == "dmo_ros.dataset" and meta["version"] == 1
    assert meta["image"] == {"height": 32, "width": 40, "aspect": "pad", "source_formats": ["80x60 rgb8"]}
    assert meta["action"]["names"] == ["vx", "vy"] and meta["action"]["units"] == ["m/s", "m/s"]
    assert meta["topics"]["action"] == "/servo_node/delta_twist_cmds" and meta["rate_hz"] == 5.0
    assert open_arrays(tmp_path / "ds")["frames"].shape == (20, 32, 40, 3)


def test_a_session_whose_first_split_has_only_the_camera(tmp_path):
    """The recorder subscribes to topics as they appear: its first split may hold the camera alone."""
    session = tmp_path / "20261124-010000"
    session.mkdir()
    write_bag(session / "split_00000", BagSpec(seconds=1.0, camera_only=True))
    write_bag(session / "split_00001", BagSpec(seconds=3.0, start_s=1.0))
    dataset, [report] = convert([session], tmp_path / "ds", ConvertConfig())
    assert report.ok, report.error
    assert report.samples == 15 and report.episodes == 1


def test_a_long_stretch_without_actions_holds_no_frames_in_memory(tmp_path, monkeypatch):
    """Only the frames a coming action could still use are kept, however long the camera runs alone."""
    session = tmp_path / "20261124-020000"
    session.mkdir()
    write_bag(session / "split_00000", BagSpec(seconds=60.0, camera_only=True))
    write_bag(session / "split_00001", BagSpec(seconds=2.0, start_s=60.0))
    kept = []
    original = convert_module.Aligner.add_frame

    def spy(self, stamp, message, msgtype):
        original(self, stamp, message, msgtype)
        kept.append(len(self.frames))

    monkeypatch.setattr(convert_module.Aligner, "add_frame", spy)
    dataset, [report] = convert([session], tmp_path / "ds", ConvertConfig())
    assert report.ok and report.samples == 10, report.error
    assert max(kept) <= 10 * 3.5 + 2  # ~ (0.5 + 2 x 0.5 + 1) s of 10 Hz frames, not 600


def write_session(folder, closed: bool):
    """A recorder session: two split bags and the manifest, closed or (after a crash) not."""
    folder.mkdir()
    write_bag(folder / "split_00000", BagSpec(seconds=2.0))
    write_bag(folder / "split_00001", BagSpec(seconds=2.0, start_s=2.0))
    (folder / "session.yaml").write_text(f"format: dmo_ros split session 1\nclosed: {str(closed).lower()}\n")
    return folder


def test_a_session_being_recorded_is_refused_until_it_stops(tmp_path):
    """Converting while the recorder writes would give a dataset silently missing the session's end."""
    import fcntl
    import os

    session = write_session(tmp_path / "20261201-100000", closed=False)
    recorder_lock = os.open(session, os.O_RDONLY)
    fcntl.flock(recorder_lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # what a live SplitBagSession holds
    try:
        dataset, [report] = convert([session], tmp_path / "ds", ConvertConfig())
        assert dataset is None and "is being recorded" in report.error
    finally:
        os.close(recorder_lock)
    (session / "session.yaml").write_text("format: dmo_ros split session 1\nclosed: true\n")
    dataset, [report] = convert([session], tmp_path / "ds", ConvertConfig())
    assert report.ok and report.samples == 20 and not report.warnings


def test_a_crashed_session_converts_with_a_warning_that_names_the_recovery(tmp_path):
    session = write_session(tmp_path / "20261201-110000", closed=False)
    dataset, [report] = convert([session], tmp_path / "ds", ConvertConfig())
    assert report.ok and report.samples == 20
    assert any("was not closed" in w and "recovers" in w for w in report.warnings), report.warnings


def lose_metadata(session, split: str, listed: bool):
    """A split whose metadata.yaml is gone (a copy that missed it, a recorder killed as it wrote it); ``listed``: the
    session's splits.jsonl names it, as the recorder's does."""
    (session / split / "metadata.yaml").unlink()
    if listed:
        entry = {"path": split, "messages": 42, "start_ns": T0_NS, "end_ns": T0_NS + 2 * 10**9}
        (session / "splits.jsonl").write_text(json.dumps(entry) + "\n")


@pytest.mark.parametrize("listed", [True, False], ids=["listed-in-splits.jsonl", "holds-an-mcap"])
def test_a_split_without_metadata_is_named_with_the_fix(tmp_path, listed):
    """It was dropped silently: 60 of 61 splits converted, rc 0, no word."""
    session = write_session(tmp_path / "20261201-120000", closed=True)
    lose_metadata(session, "split_00001", listed)
    dataset, [report] = convert([session], tmp_path / "ds", ConvertConfig(), log=lambda _: None)
    assert report.ok and report.samples == 10
    [warning] = report.warnings
    split = session / "split_00001"
    assert f"{split} has no metadata.yaml" in warning and f"`ros2 bag reindex {split} -s mcap`" in warning
    assert ("its 42 messages (2.0 s" if listed else "split_00001.mcap (") in warning
    result = run_convert(str(session), "-o", str(tmp_path / "ds2"))
    assert result.returncode == 0 and f"warning: {split} has no metadata.yaml" in result.stdout, result.stdout


def test_a_bag_or_session_without_any_metadata_says_how_to_rebuild_it(tmp_path):
    """A lone bag folder with its .mcap but no metadata.yaml said only "no rosbag2 bag"."""
    write_bag(tmp_path / "bag", BagSpec())
    (tmp_path / "bag/metadata.yaml").unlink()
    session = write_session(tmp_path / "20261201-130000", closed=True)
    for split in ("split_00000", "split_00001"):
        (session / split / "metadata.yaml").unlink()
    for inputs in ([tmp_path / "bag", session], [tmp_path]):  # named, or found in a folder of recordings
        dataset, reports = convert(inputs, tmp_path / "ds", ConvertConfig(), log=lambda _: None)
        assert dataset is None
        errors = {report.path: report.error for report in reports}
        assert errors[str(tmp_path / "bag")] == (
            f"{tmp_path / 'bag'} has no metadata.yaml (rosbag2 writes it last, when the bag is closed), so "
            f"bag.mcap ({(tmp_path / 'bag/bag.mcap').stat().st_size / 1e3:.0f} kB) cannot be read; rebuild it with "
            f"`ros2 bag reindex {tmp_path / 'bag'} -s mcap` and read the bag again")
        assert errors[str(session)].startswith(f"no split of the session can be read: {session / 'split_00000'} has "
                                               "no metadata.yaml")
        assert errors[str(session)].endswith("(and 1 more split(s) alike)")


@pytest.mark.parametrize(("option", "message"), [
    (["--rate", "-1"], "--rate must be >= 0 (Hz; 0: the robot profile's rate), got -1.0"),
    (["--rate", "nan"], "--rate must be >= 0 (Hz; 0: the robot profile's rate), got nan"),
    (["--val", "1.5"], "--val must be in [0, 1) (a share of the episodes), got 1.5"),
    (["--val", "-0.1"], "--val must be in [0, 1) (a share of the episodes), got -0.1"),
    (["--gap", "0"], "--gap must be positive (s), got 0.0"),
    (["--seed", "-3"], "--seed must be >= 0, got -3"),
    (["--size", "0", "64"], "--size must be positive (HEIGHT WIDTH), got 0 64"),
], ids=["rate-negative", "rate-nan", "val-above-1", "val-negative", "gap-zero", "seed-negative", "size-zero"])
def test_each_bad_option_is_named_as_typed(tmp_path, capsys, option, message):
    """The errors named ConvertConfig's fields and lumped conditions ("rate_hz must be >= 0 and
    validation_fraction in [0, 1)")."""
    assert convert_module.main([str(tmp_path / "bag"), "-o", str(tmp_path / "ds"), *option]) == 2
    assert capsys.readouterr().err == f"dmo-convert: error: {message}\n"
    assert not (tmp_path / "ds").exists()


def test_rate_zero_is_the_robot_profiles_rate_and_help_says_so(tmp_path, capsys):
    write_bag(tmp_path / "bag", BagSpec())
    assert convert_module.main([str(tmp_path / "bag"), "-o", str(tmp_path / "ds"), "--rate", "0"]) == 0
    assert read_meta(tmp_path / "ds")["rate_hz"] == 5.0
    with pytest.raises(SystemExit):
        convert_module.main(["--help"])
    assert "0: the robot profile's rate_hz" in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize(("field", "message"), [
    ("rate_hz", "rate_hz must be >= 0 (0: the robot profile's rate), got -1"),
    ("validation_fraction", "validation_fraction must be in [0, 1), got -1"),
    ("gap_threshold_s", "gap_threshold_s must be positive (s), got -1"),
    ("max_frame_age_s", "max_frame_age_s must be positive (s), got -1"),
    ("reorder_window_s", "reorder_window_s must be positive (s), got -1"),
])
def test_each_out_of_range_field_is_refused_on_its_own(field, message):
    with pytest.raises(ValueError) as raised:
        ConvertConfig(**{field: -1.0})
    assert str(raised.value) == message


@pytest.mark.parametrize("layout", ["one_level", "two_levels", "mixed"])
def test_a_folder_of_recordings_converts_every_one_at_any_depth(tmp_path, layout):
    """``dmo-convert bags/`` with sessions two levels down (bags/robot/<session>) said "no rosbag2 bag (metadata.yaml)
    or recorder session here"."""
    root = tmp_path / "bags"
    deep = root / "robot" if layout == "two_levels" else root
    deep.mkdir(parents=True)
    expected = [write_session(deep / "20261201-130000", closed=True)]
    if layout == "mixed":  # a plain bag beside a session, one level further down
        expected.append(write_bag(root / "field" / "bag", BagSpec(seconds=2.0)))
    (root / ".cache").mkdir()  # hidden: not searched
    dataset, reports = convert([root], tmp_path / "ds", ConvertConfig(), log=lambda _: None)
    assert dataset is not None, [report.error for report in reports]
    assert [report.path for report in reports] == [str(path) for path in expected]
    assert all(report.ok and report.samples > 0 for report in reports), reports


def test_a_folder_without_recordings_says_what_was_searched(tmp_path):
    (tmp_path / "bags" / "robot" / "empty").mkdir(parents=True)
    result = run_convert(str(tmp_path / "bags"), "-o", str(tmp_path / "ds"))
    assert result.returncode == 2, result.stdout + result.stderr
    assert (f"FAILED {tmp_path / 'bags'}: no rosbag2 bag (a folder with metadata.yaml) or recorder session (split_* "
            "bags) here, nor in any folder under it (hidden folders skipped)") in result.stdout, result.stdout
