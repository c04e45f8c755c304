"""dmo-bag-info on bags written here with rosbags, including the quirks of bags from the field."""

from __future__ import annotations

import json
import subprocess

import pytest

from conftest import BIN
from dmo_ros.dataset.synthetic import BagSpec, storage_file, write_bag
from dmo_ros.recording.summary import summarize

STORAGES = ("mcap", "sqlite3")


def bag_info(*args: str, shell_tail: str = "") -> subprocess.CompletedProcess:
    command = [str(BIN / "dmo-bag-info"), *args]
    if shell_tail:  # e.g. "| head -n 1": run through bash, with dmo-bag-info's own exit status
        line = " ".join(f"'{c}'" for c in command) + f" {shell_tail}; exit ${{PIPESTATUS[0]}}"
        return subprocess.run(["bash", "-c", line], capture_output=True, text=True, timeout=120)
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("storage", STORAGES)
def test_foreign_types_are_reported_and_skipped(tmp_path, storage):
    """A service-event topic (.srv schema) and a type with an empty definition: counted, not decoded, no traceback."""
    write_bag(tmp_path / "bag", BagSpec(storage=storage, foreign_topics=True))
    result = bag_info(str(tmp_path / "bag"))
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines()[2:]}
    assert " 5 " in lines["/add_two_ints/_service_event"]
    assert ("not decoded: example_interfaces/srv/AddTwoInts_Event is a service/action type"
            in lines["/add_two_ints/_service_event"])
    assert ("not decoded: vendor_msgs/msg/Status: the bag stores no definition for it and message type "
            "'vendor_msgs/msg/Status' is not known") in lines["/vendor/status"]
    assert "96x96 rgb8 (40)" in lines["/camera/image"]  # the other topics are summarised as usual
    assert "intent on 50%, 1 toggles" in lines["/intent"]


def test_several_paths_one_unreadable(tmp_path):
    write_bag(tmp_path / "a", BagSpec())
    write_bag(tmp_path / "b", BagSpec(storage="sqlite3", seconds=2.0))
    result = bag_info(str(tmp_path / "a"), str(tmp_path / "missing"), str(tmp_path / "b"))
    assert result.returncode == 1, result.stderr
    assert f"error: {tmp_path / 'missing'}: " in result.stderr and "Traceback" not in result.stderr
    assert f"{tmp_path / 'a'}: 1 bag(s)" in result.stdout and f"{tmp_path / 'b'}: 1 bag(s)" in result.stdout
    result = bag_info(str(tmp_path / "a"), str(tmp_path / "b"), "--json")
    assert result.returncode == 0
    assert [s["topics"]["/camera/image"]["count"] for s in json.loads(result.stdout)] == [40, 20]
    assert bag_info(str(tmp_path / "missing")).returncode == 2


def test_piped_into_head_there_is_no_traceback(tmp_path):
    write_bag(tmp_path / "a", BagSpec(seconds=1.0))
    result = bag_info(*[str(tmp_path / "a")] * 300, shell_tail="| head -n 1")
    assert result.returncode == 0, result.stderr
    assert result.stderr == "" and result.stdout.startswith(str(tmp_path / "a"))


@pytest.mark.parametrize("camera", ["jpeg", "png"])
def test_compressed_images_show_format_size_and_mean_bytes(tmp_path, camera):
    write_bag(tmp_path / "bag", BagSpec(camera=camera, width=80, height=60))
    summary = summarize(tmp_path / "bag")
    topic = summary.topics["/camera/image"]
    assert topic.image_formats == {f"{camera} 80x60": 40} and topic.compressed_bytes > 0
    result = bag_info(str(tmp_path / "bag"))
    assert f"{camera} 80x60 (40); mean " in result.stdout and " kB" in result.stdout


@pytest.mark.parametrize("storage", STORAGES)
def test_occasional_zero_stamps_are_worded_as_such(tmp_path, storage):
    write_bag(tmp_path / "bag", BagSpec(storage=storage, zero_stamp_every=10))
    topic = summarize(tmp_path / "bag").topics["/camera/image"]
    assert topic.zero_stamps == 4 and topic.stamps_monotonic
    result = bag_info(str(tmp_path / "bag"))
    assert "4 zero header stamp(s) (unset: the receive time stands in)" in result.stdout
    assert "BACKWARDS" not in result.stdout


@pytest.mark.parametrize("storage", STORAGES)
def test_damaged_messages_and_an_older_intent_definition(tmp_path, storage):
    write_bag(tmp_path / "bag", BagSpec(storage=storage, old_intent=True, cut_payload=("/camera/image", 3)))
    summary = summarize(tmp_path / "bag")
    camera, intent = summary.topics["/camera/image"], summary.topics["/intent"]
    assert camera.count == 40 and camera.damaged == 1 and camera.image_formats == {"96x96 rgb8": 39}
    assert intent.count == 20 and intent.intent_on == 10 and intent.milestones == 0
    assert "1 DAMAGED message(s) (do not deserialise)" in bag_info(str(tmp_path / "bag")).stdout


def test_a_truncated_mcap_is_named_and_read_on_request(tmp_path):
    bag = write_bag(tmp_path / "bag", BagSpec(width=64, height=64, seconds=20.0))
    path = storage_file(bag)
    path.write_bytes(path.read_bytes()[: path.stat().st_size * 6 // 10])
    result = bag_info(str(bag))
    assert result.returncode == 2 and "truncated MCAP file: bag.mcap" in result.stderr, result.stderr
    result = bag_info(str(bag), "--recover-truncated")
    assert result.returncode == 0, result.stderr
    assert "warning: bag.mcap is truncated: recovered the" in result.stdout
    count = int(result.stdout.splitlines()[2].split()[2])
    assert 80 <= count < 120, result.stdout  # the camera's messages in the complete chunks


def test_a_split_without_metadata_is_named_with_the_fix(tmp_path):
    """dmo-bag-info counted the other splits and said nothing of the one it could not read."""
    session = tmp_path / "20261201-120000"
    write_bag(session / "split_00000", BagSpec(seconds=2.0))
    write_bag(session / "split_00001", BagSpec(seconds=2.0, start_s=2.0))
    (session / "split_00001/metadata.yaml").unlink()
    (session / "splits.jsonl").write_text(json.dumps({"path": "split_00001", "messages": 42, "start_ns": 0,
                                                      "end_ns": 2 * 10**9}) + "\n")
    result = bag_info(str(session))
    assert result.returncode == 0, result.stderr
    assert f"{session}: 1 bag(s)" in result.stdout
    assert (f"warning: {session / 'split_00001'} has no metadata.yaml (rosbag2 writes it last, when the bag is "
            f"closed), so its 42 messages (2.0 s, as splits.jsonl lists them) cannot be read; rebuild it with "
            f"`ros2 bag reindex {session / 'split_00001'} -s mcap`") in result.stdout


@pytest.mark.parametrize("storage", STORAGES)
def test_a_bag_without_metadata_says_how_to_rebuild_it(tmp_path, storage):
    write_bag(tmp_path / "bag", BagSpec(storage=storage))
    (tmp_path / "bag/metadata.yaml").unlink()
    result = bag_info(str(tmp_path / "bag"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{tmp_path / 'bag'} has no metadata.yaml" in result.stderr, result.stderr
    assert f"`ros2 bag reindex {tmp_path / 'bag'} -s {storage}`" in result.stderr


def _session(folder, seconds: float = 1.0):
    """A recorder session: one split bag and the manifest."""
    folder.mkdir(parents=True)
    write_bag(folder / "split_00000", BagSpec(seconds=seconds))
    (folder / "session.yaml").write_text("format: dmo_ros split session 1\nclosed: true\n")
    return folder


@pytest.mark.parametrize("layout", ["one_level", "two_levels", "mixed"])
def test_a_folder_of_recordings_reads_every_one_at_any_depth(tmp_path, layout, capsys):
    """``dmo-bag-info bags/t`` (a folder of sessions) was refused while ``dmo-convert bags/t`` read it."""
    from dmo_ros.recording.summary import main

    root = tmp_path / "t"
    deep = root / "robot" if layout == "two_levels" else root
    expected = [_session(deep / "20261201-130000"), _session(deep / "20261201-140000", seconds=2.0)]
    if layout == "mixed":
        expected.append(write_bag(root / "zz_field" / "bag", BagSpec(seconds=1.0)))
    assert main([str(root), "--json"]) == 0
    summaries = json.loads(capsys.readouterr().out)
    assert [s["path"] for s in summaries] == [str(path) for path in expected]
    assert main([str(expected[0]), "--json"]) == 0  # one session named: one object, as before
    assert json.loads(capsys.readouterr().out)["path"] == str(expected[0])


def test_a_folder_without_recordings_says_what_was_searched(tmp_path):
    (tmp_path / "t" / "robot").mkdir(parents=True)
    result = bag_info(str(tmp_path / "t"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (f"dmo-bag-info: error: {tmp_path / 't'}: no rosbag2 bag (a folder with "
                                     "metadata.yaml) or recorder session (split_* bags) here, nor in any folder under "
                                     "it (hidden folders skipped)")
