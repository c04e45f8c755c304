"""BagReader and MessageDecoder on bags written here with rosbags."""

from __future__ import annotations

import shutil

import pytest
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from dmo_ros.dataset.synthetic import OLD_INTENT_MSG, BagSpec, storage_file, write_bag
from dmo_ros.recording.bag_reader import (
    BagError,
    BagReader,
    Connection,
    MessageDecoder,
    UndecodableTypeError,
    find_recordings,
    mcap_is_truncated,
)


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_every_message_of_every_connection(tmp_path, storage):
    write_bag(tmp_path / "bag", BagSpec(storage=storage, reconnect_at_s=2.0))
    with BagReader(tmp_path / "bag") as bag:
        topics = sorted(c.topic for c in bag.connections)
        counts: dict[str, int] = {}
        for connection, _, _ in bag.messages():
            counts[connection.topic] = counts.get(connection.topic, 0) + 1
    assert counts == {"/camera/image": 40, "/servo_node/delta_twist_cmds": 20, "/intent": 20}
    # MCAP channels of one topic and type read as one connection; rosbags keeps SQLite3's two.
    assert len(topics) == (3 if storage == "mcap" else 6)
    assert all(c.definition_format == "ros2msg" and c.definition for c in bag.connections)


def test_unlisted_file_and_truncation_are_named(tmp_path):
    bag = write_bag(tmp_path / "bag", BagSpec())
    shutil.copy(storage_file(bag), bag / "bag_1.mcap")
    with pytest.raises(BagError, match=r"bag_1\.mcap in .* is not listed in metadata.yaml.*ros2 bag reindex"):
        BagReader(bag).__enter__()
    (bag / "bag_1.mcap").unlink()
    data = storage_file(bag).read_bytes()
    storage_file(bag).write_bytes(data[:1000])
    assert mcap_is_truncated(storage_file(bag))
    with pytest.raises(BagError, match="truncated MCAP file: bag.mcap"):
        BagReader(bag).__enter__()
    with BagReader(bag, recover_truncated=True) as reader:  # the cut falls in the first chunk: nothing complete
        assert list(reader.messages()) == []
        assert reader.notes == ["bag.mcap is truncated: recovered the 0 messages written before the cut; "
                                "the chunk being written when it was cut is lost"]


def test_two_definitions_of_one_type_decode_side_by_side():
    decoder = MessageDecoder()
    current = decoder.registry
    current.ensure("dmo_msgs/msg/Intent")
    new_text, _ = current.typestore.generate_msgdef("dmo_msgs/msg/Intent", ros_version=2)
    old = Connection(1, "/intent", "dmo_msgs/msg/Intent", OLD_INTENT_MSG, "ros2msg")
    new = Connection(2, "/intent", "dmo_msgs/msg/Intent", new_text, "ros2msg")
    old_store = get_typestore(Stores.ROS2_KILTED)
    old_store.register(get_types_from_msg(OLD_INTENT_MSG, "dmo_msgs/msg/Intent"))
    header = old_store.types["std_msgs/msg/Header"](
        stamp=old_store.types["builtin_interfaces/msg/Time"](sec=5, nanosec=0), frame_id="")
    old_data = old_store.serialize_cdr(old_store.types["dmo_msgs/msg/Intent"](header=header, active=True),
                                       "dmo_msgs/msg/Intent")
    store = current.typestore
    new_data = store.serialize_cdr(store.types["dmo_msgs/msg/Intent"](header=header, active=True, milestone=1.0),
                                   "dmo_msgs/msg/Intent")
    old_message = decoder.deserializer(old)(old_data)
    new_message = decoder.deserializer(new)(new_data)
    assert old_message.active and not hasattr(old_message, "milestone")
    assert new_message.active and new_message.milestone == 1.0 and old_message.header.stamp.sec == 5
    assert decoder.differs_from_installed(old) and not decoder.differs_from_installed(new)


@pytest.mark.parametrize(("connection", "reason"), [
    (Connection(1, "/x/_service_event", "example_interfaces/srv/AddTwoInts_Event", "int64 a\n---\nint64 s\n",
                "ros2msg"), "service/action type"),
    (Connection(2, "/vendor", "vendor_msgs/msg/Status", "", ""), "the bag stores no definition for it"),
])
def test_types_without_a_usable_definition_are_named(connection, reason):
    with pytest.raises(UndecodableTypeError, match=reason):
        MessageDecoder().deserializer(connection)


@pytest.mark.parametrize(("text", "reason"), [("garbage: [\n", "ScannerError|ParserError"),
                                              ("rosbag2_bagfile_information: [1, 2]\n", "KeyError"),
                                              ("- a\n- b\n", "TypeError"),
                                              (b"\xff\xfe", "UnicodeDecodeError")])
def test_a_damaged_metadata_yaml_is_one_line_naming_the_file(tmp_path, text, reason):
    """A list under rosbag2_bagfile_information ended dmo-bag-info and dmo-convert in an AttributeError traceback;
    a YAML syntax error gave a three-line message."""
    from dmo_ros.recording.bag_reader import bag_metadata

    path = tmp_path / "metadata.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(BagError, match=f"metadata.yaml is unreadable: ({reason})") as error:
        bag_metadata(tmp_path)
    assert "\n" not in str(error.value)


def _session(folder, seconds: float = 1.0):
    """A recorder session: one split bag and the manifest."""
    folder.mkdir(parents=True)
    write_bag(folder / "split_00000", BagSpec(seconds=seconds))
    (folder / "session.yaml").write_text("format: dmo_ros split session 1\nclosed: true\n")
    return folder


def test_find_recordings_at_any_depth_without_looking_inside_one(tmp_path):
    """dmo-convert looked one level down only and dmo-bag-info not at all: bags/robot/<session> was not found."""
    one = _session(tmp_path / "one_level")
    two = _session(tmp_path / "a" / "b" / "two_levels")
    bag = write_bag(tmp_path / "a" / "plain_bag", BagSpec(seconds=1.0))
    _session(tmp_path / ".hidden" / "skipped")  # hidden folders are not searched
    (tmp_path / "empty" / "deeper").mkdir(parents=True)
    assert find_recordings(tmp_path) == [two, bag, one]  # path order; a session's splits are its own
    assert find_recordings(tmp_path / "a") == [two, bag]
    assert find_recordings(tmp_path / "empty") == []
    assert find_recordings(tmp_path / "missing") == []
    assert find_recordings(one) == [one]  # a session itself, not its splits
    (tmp_path / "a" / "b" / "loop").symlink_to(tmp_path / "a")  # a link back up the tree is followed once
    assert find_recordings(tmp_path / "a") == [two, bag]
