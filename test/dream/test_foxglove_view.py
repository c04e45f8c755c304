"""The Foxglove view of the dream streams: a loopback websocket server a client receives frames from, and an MCAP
file that reads back with the rollouts' message counts (no ROS)."""

from __future__ import annotations

import json
import struct
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("foxglove")

from dmo_ros.dream.foxglove_view import FoxgloveView  # noqa: E402

SUBPROTOCOLS = ["foxglove.sdk.v1", "foxglove.websocket.v1"]


def listening_addresses(port: int) -> set[str]:
    """Local addresses of the TCP sockets listening on ``port`` (from /proc/net/tcp and tcp6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                if len(address) == 8:
                    found.add(".".join(str(b) for b in bytes.fromhex(address)[::-1]))
                else:
                    found.add(address)
    return found


def test_server_binds_loopback_and_a_websocket_client_receives_frames():
    from websockets.sync.client import connect

    view = FoxgloveView(port=0)  # the default host
    try:
        assert listening_addresses(view.port) == {"127.0.0.1"}
        image = np.zeros((8, 12, 3), np.uint8)
        image[:, :6] = 255
        with connect(f"ws://127.0.0.1:{view.port}", subprotocols=SUBPROTOCOLS, open_timeout=10) as client:
            channels: dict[str, dict] = {}
            deadline = time.monotonic() + 10
            while "/dream/imagined" not in channels:
                assert time.monotonic() < deadline, channels
                message = client.recv(timeout=5)
                if isinstance(message, str) and json.loads(message).get("op") == "advertise":
                    channels.update({c["topic"]: c for c in json.loads(message)["channels"]})
            assert {"/dream/imagined", "/dream/real", "/dream/step"} <= set(channels)
            assert channels["/dream/imagined"]["schemaName"] == "foxglove.RawImage"
            client.send(json.dumps({"op": "subscribe", "subscriptions": [
                {"id": 7, "channelId": channels["/dream/imagined"]["id"]}]}))
            received = None
            while received is None:
                assert time.monotonic() < deadline + 10, "no frame received"
                view.log_image("imagined", image, time.time_ns())
                try:
                    message = client.recv(timeout=0.1)
                except TimeoutError:
                    continue
                if isinstance(message, bytes) and message[0] == 1:  # opcode 1: message data
                    received = message
        subscription, stamp = struct.unpack_from("<IQ", received, 1)
        assert subscription == 7 and stamp > 0
        payload = received[13:]
        assert image.tobytes() in payload  # the raw rgb8 pixels travel in the RawImage message
    finally:
        view.close()


def test_mcap_reads_back_with_the_rollouts_message_counts(tmp_path):
    from mcap.reader import make_reader

    path = tmp_path / "rollouts" / "dream.mcap"
    view = FoxgloveView(port=None, mcap_path=path)
    steps, rollouts = 7, 3
    for step in range(steps):
        stamp = 1_000_000_000 + step * 200_000_000
        view.log_image("imagined", np.full((4, 12, 3), step, np.uint8), stamp)
        if step < 5:  # the recording ran out after 5 steps: no real frame after that
            view.log_image("real", np.zeros((4, 12, 3), np.uint8), stamp)
        for rollout in range(rollouts):
            view.log_step(stamp, step, rollout, [0.1, -0.1], reward=0.5, value=float("nan"), spread=1e-3,
                          off_data=False, start="episode 0, sample 0")
    view.close()
    counts: Counter = Counter()
    steps_read = []
    with path.open("rb") as stream:
        reader = make_reader(stream)
        summary = reader.get_summary()
        for _schema, channel, message in reader.iter_messages():
            counts[channel.topic] += 1
            if channel.topic == "/dream/step":
                steps_read.append(json.loads(message.data))
    assert counts == {"/dream/imagined": steps, "/dream/real": 5, "/dream/step": steps * rollouts}
    assert view.counts == dict(counts)
    assert summary is not None and summary.statistics.message_count == sum(counts.values())
    assert steps_read[0] == {"step": 0, "rollout": 0, "action": [0.1, -0.1], "reward": 0.5, "value": None,
                             "spread": 1e-3, "off_data": False, "start": "episode 0, sample 0"}
