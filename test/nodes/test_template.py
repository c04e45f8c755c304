"""The node template's signal handling, in-process (the process-level behaviour: the
recorder tests and test/launch/test_launch_parity.py)."""

from __future__ import annotations

import signal

from dmo_ros.nodes.template import _StopRequests


class FakeNode:
    def __init__(self) -> None:
        self.finished: list[int] = []

    def finish(self, code: int = 0) -> None:
        self.finished.append(code)


def test_the_first_signal_finishes_the_node_and_later_ones_are_only_reported(capfd):
    node, stop = FakeNode(), _StopRequests()
    stop.node = node
    stop(signal.SIGINT, None)
    assert node.finished == [0] and stop.requested
    assert capfd.readouterr().err == ""
    stop.shutting_down = True
    stop(signal.SIGINT, None)
    stop(signal.SIGTERM, None)
    assert node.finished == [0]  # nothing raised, nothing interrupted
    err = capfd.readouterr().err
    assert "SIGINT again: already stopping; the shutdown finishes first" in err
    assert "SIGTERM again: already stopping" in err


def test_a_signal_before_the_node_exists_is_kept_for_it():
    stop = _StopRequests()
    stop(signal.SIGTERM, None)  # while the node is still being built (a simulator loading)
    assert stop.requested and stop.received == ["SIGTERM"]


def test_a_first_signal_during_shutdown_does_not_finish_again(capfd):
    node, stop = FakeNode(), _StopRequests()
    stop.node, stop.shutting_down = node, True  # the node finished by itself and is closing
    stop(signal.SIGINT, None)
    assert node.finished == []
    assert "already stopping" in capfd.readouterr().err
