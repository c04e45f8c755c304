"""Ctrl-C (and SIGTERM) in a command: one line and exit code 130 (143), never a KeyboardInterrupt traceback.

Before, every command below ended a Ctrl-C with a traceback (a trainer after writing its checkpoint)."""

from __future__ import annotations

import argparse
import importlib
import re
import signal
from pathlib import Path

import pytest

from dmo_ros.interrupt import INTERRUPTED_EXIT_CODE, TERMINATED_EXIT_CODE, stop_on_interrupt

SETUP = Path(__file__).resolve().parents[1] / "setup.py"
ENTRY_POINTS = dict((name, (module, function)) for name, module, function in
                    re.findall(r'"(dmo-[\w-]+) = ([\w.]+):(\w+)"', SETUP.read_text()))
COMMANDS = ["dmo-bag-info", "dmo-convert", "dmo-export-lerobot", "dmo-goal-image", "dmo-train-reward",
            "dmo-train-world-model", "dmo-train-local-model", "dmo-train-policy", "dmo-train-act", "dmo-train-rung0",
            "dmo-train-tokenizer", "dmo-train-dynamics", "dmo-gate", "dmo-eval-policy", "dmo-compare",
            "dmo-ladder-table", "dmo-world-model-report", "dmo-reward-eval"]


def test_stop_on_interrupt_prints_one_line_and_returns_130(monkeypatch, capsys) -> None:
    def main(argv=None) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr("sys.argv", ["/usr/bin/dmo-something"])
    assert stop_on_interrupt(main, note="nothing kept")([]) == INTERRUPTED_EXIT_CODE == 130
    assert capsys.readouterr().err.strip() == "dmo-something: interrupted; nothing kept"


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
