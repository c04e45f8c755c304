"""Ctrl-C (and SIGTERM) in a command: one line and exit code 130 (143), never a KeyboardInterrupt traceback.

Before, every command below ended a Ctrl-C with a traceback (a trainer after writing its checkpoint)."""

from __future__ import annotations

import argparse
import importlib
import re
import signal
from pathlib import Path

import pytest
from nested_signal import SecondSignalRightAfterAppend

from dmo_ros.interrupt import INTERRUPTED_EXIT_CODE, TERMINATED_EXIT_CODE, stop_on_interrupt

SETUP = Path(__file__).resolve().parents[1] / "setup.py"
ENTRY_POINTS = dict((name, (module, function)) for name, module, function in
                    re.findall(r'"(dmo-[\w-]+) = ([\w.]+):(\w+)"', SETUP.read_text()))
# Every dmo-* command in setup.py: a hand-kept list missed dmo-play-stats, dmo-dream-flags, dmo-dream-strip,
# dmo-world-model-v4-report and dmo-launch, which answered Ctrl-C with a traceback and exit code 1.
COMMANDS = sorted(ENTRY_POINTS)


def test_stop_on_interrupt_prints_one_line_and_returns_130(monkeypatch, capsys) -> None:
    def main(argv=None) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr("sys.argv", ["/usr/bin/dmo-something"])
    assert stop_on_interrupt(main, note="nothing kept")([]) == INTERRUPTED_EXIT_CODE == 130
    assert capsys.readouterr().err.strip() == "dmo-something: interrupted; nothing kept"


def test_the_ctrl_c_test_covers_the_commands_that_lacked_it() -> None:
    assert {"dmo-play-stats", "dmo-dream-flags", "dmo-dream-strip", "dmo-world-model-v4-report",
            "dmo-launch"} <= set(COMMANDS)
    assert len(COMMANDS) >= 20


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_answers_ctrl_c_with_one_line(command: str, monkeypatch, capsys) -> None:
    module, function = ENTRY_POINTS[command]
    main = getattr(importlib.import_module(module), function)

    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt  # Ctrl-C while the command works (here: as soon as it reads its arguments)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", interrupted)
    monkeypatch.setattr("sys.argv", [command])
    assert main([]) == 130
    err = capsys.readouterr().err
    assert err.strip().startswith(f"{command}: interrupted") and "Traceback" not in err


def test_sigterm_is_answered_like_ctrl_c_with_exit_code_143(monkeypatch, capsys) -> None:
    def main(argv=None) -> int:
        signal.raise_signal(signal.SIGTERM)  # as `kill <pid>` does while the command works
        raise AssertionError("SIGTERM did not interrupt the command")

    monkeypatch.setattr("sys.argv", ["/usr/bin/dmo-something"])
    before = signal.getsignal(signal.SIGTERM)
    assert stop_on_interrupt(main, note="nothing kept")([]) == TERMINATED_EXIT_CODE == 143
    assert capsys.readouterr().err.strip() == "dmo-something: terminated (SIGTERM); nothing kept"
    assert signal.getsignal(signal.SIGTERM) is before  # the handler lives only while the command runs


def test_a_second_sigterm_does_not_cut_short_what_the_first_asked_for(monkeypatch) -> None:
    """A command that catches the interrupt to write a checkpoint (the policy trainers) finishes writing it while
    a second SIGTERM arrives, and exits 143 rather than its own 130."""
    written = []

    def main(argv=None) -> int:
        try:
            signal.raise_signal(signal.SIGTERM)
        except KeyboardInterrupt:
            signal.raise_signal(signal.SIGTERM)  # ignored
            written.append("checkpoint")
            return INTERRUPTED_EXIT_CODE
        raise AssertionError("SIGTERM did not interrupt the command")

    monkeypatch.setattr("sys.argv", ["dmo-something"])
    assert stop_on_interrupt(main)([]) == TERMINATED_EXIT_CODE
    assert written == ["checkpoint"]


def test_a_handler_already_in_place_is_left_alone(monkeypatch) -> None:
    """Where something else handles SIGTERM (a ROS launch, an embedding program), the wrapper does not take it."""
    received = []
    monkeypatch.setattr("sys.argv", ["dmo-something"])
    previous = signal.signal(signal.SIGTERM, lambda number, frame: received.append(number))
    try:
        def main(argv=None) -> int:
            signal.raise_signal(signal.SIGTERM)
            return 0

        assert stop_on_interrupt(main)([]) == 0
        assert received == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, previous)


def _in_a_c_callback(work) -> None:
    """Run ``work`` as C calls it back (ctypes; pymunk's cffi draw callbacks in gym-pusht's renderer alike): an
    exception raised there is printed as unraisable and dropped, not propagated."""
    ctypes = pytest.importorskip("ctypes")
    ctypes.CFUNCTYPE(None)(work)()


def _main_that_goes_on(deliver):
    """A command that receives a stop inside a C callback and would go on working (and return 0) if the stop were
    lost, as the rung-1 trainer did at 362 k samples: its SIGTERM landed in a pygame draw callback."""
    def main(argv=None) -> int:
        _in_a_c_callback(deliver)
        _work_for(5.0)  # the stop is delivered again a moment later, out here
        return 0
    return main


def _work_for(seconds: float) -> None:
    import time

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        sum(range(100))


def test_a_sigterm_dropped_in_a_c_callback_is_delivered_again(monkeypatch, capsys) -> None:
    monkeypatch.setattr("sys.argv", ["dmo-something"])
    assert stop_on_interrupt(_main_that_goes_on(lambda: signal.raise_signal(signal.SIGTERM)))([]) == 143
    err = capsys.readouterr().err
    assert err.strip().endswith("dmo-something: terminated (SIGTERM)") and "Traceback" not in err


def test_a_ctrl_c_dropped_in_a_c_callback_is_delivered_again(monkeypatch, capsys) -> None:
    monkeypatch.setattr("sys.argv", ["dmo-something"])
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # a terminal's Ctrl-C
    try:
        assert stop_on_interrupt(_main_that_goes_on(lambda: signal.raise_signal(signal.SIGINT)))([]) == 130
    finally:
        signal.signal(signal.SIGINT, previous)
    err = capsys.readouterr().err
    assert err.strip().endswith("dmo-something: interrupted") and "Traceback" not in err


def test_a_sigterm_dropped_in_a_finaliser_is_delivered_again(monkeypatch) -> None:
    class Finalised:
        def __del__(self) -> None:
            signal.raise_signal(signal.SIGTERM)  # Python drops what a __del__ raises, as it does a C callback's

    def main(argv=None) -> int:
        Finalised()
        _work_for(5.0)
        return 0

    monkeypatch.setattr("sys.argv", ["dmo-something"])
    assert stop_on_interrupt(main)([]) == 143


def test_other_unraisable_exceptions_still_reach_the_hook_before(monkeypatch) -> None:
    import sys

    seen = []
    monkeypatch.setattr(sys, "unraisablehook", lambda unraisable: seen.append(unraisable.exc_type))
    monkeypatch.setattr("sys.argv", ["dmo-something"])

    def main(argv=None) -> int:
        def fails() -> None:
            raise ValueError("in a callback")
        _in_a_c_callback(fails)
        return 0

    assert stop_on_interrupt(main)([]) == 0
    assert seen == [ValueError]


def test_a_sigterm_in_the_stand_ins_draw_callback_stops_the_command(monkeypatch) -> None:
    """The case that lost a ``kill``: the stand-in renders through pymunk's cffi debug-draw callbacks."""
    pytest.importorskip("gym_pusht")
    from gym_pusht.envs.pymunk_override import DrawOptions

    from dmo_ros.sims.pusht import PushTConfig, PushTSim

    draw = DrawOptions.draw_fat_segment
    calls = []

    def draw_and_be_killed(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            signal.raise_signal(signal.SIGTERM)  # lands inside the cffi callback
        return draw(self, *args, **kwargs)

    monkeypatch.setattr(DrawOptions, "draw_fat_segment", draw_and_be_killed)
    monkeypatch.setattr("sys.argv", ["dmo-something"])
    frames = []

    def main(argv=None) -> int:
        sim = PushTSim(PushTConfig(task="push_t", seed=0))
        try:
            for _ in range(100):
                frames.append(sim.render())
        finally:
            sim.close()
        return 0

    assert stop_on_interrupt(main)([]) == 143
    assert len(calls) >= 3 and len(frames) < 100


def test_a_held_stop_waits_for_the_boundary_and_an_ignored_one_stays_ignored():
    """StopAtBoundary: the first Ctrl-C is held to the boundary (a trainer's epoch end, a recorder's tick); a job
    started with nohup, whose SIGINT is ignored, is not made stoppable by it behind the user's back."""
    import os

    from dmo_ros.interrupt import StopAtBoundary

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        notes = []
        with StopAtBoundary(notes.append, "stopping at the next tick") as stop:
            os.kill(os.getpid(), signal.SIGINT)  # held: no KeyboardInterrupt here
            with pytest.raises(KeyboardInterrupt):
                stop.at_boundary()
        assert notes == ["SIGINT: stopping at the next tick (again: stop now)"]
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        with StopAtBoundary() as stop:
            os.kill(os.getpid(), signal.SIGINT)
            stop.at_boundary()  # ignored before, ignored still
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("second", [signal.SIGINT, signal.SIGTERM])
def test_a_second_stop_nesting_in_the_handler_is_delivered_at_once(second):
    """Two signals microseconds apart (a terminal's Ctrl-C beside a launcher's forwarded one) nest the handler; the
    second must still stop at once, not be held with the first (the node handler's CI flake, its whole kind)."""
    from dmo_ros.interrupt import StopAtBoundary

    previous = {number: signal.signal(number, signal.default_int_handler) for number in StopAtBoundary.SIGNALS}
    try:
        with StopAtBoundary() as stop:
            stop.received = SecondSignalRightAfterAppend(lambda: stop._on_signal(second, None))
            with pytest.raises(KeyboardInterrupt):
                stop._on_signal(signal.SIGINT, None)
            assert list(stop.received) == [signal.SIGINT, second]
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
