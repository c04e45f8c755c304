"""Every ``dmo-*`` command in setup.py answers ``--help`` (argparse %-formats help text, so a docstring's
"1 %" once crashed ``dmo-train-world-model --help``)."""

from __future__ import annotations

import contextlib
import importlib
import io
import re
from pathlib import Path

import pytest

SETUP = Path(__file__).resolve().parents[1] / "setup.py"
COMMANDS = re.findall(r'"(dmo-[\w-]+) = ([\w.]+):(\w+)"', SETUP.read_text())


def test_setup_py_lists_the_commands() -> None:
    assert len(COMMANDS) >= 15


@pytest.mark.parametrize(("command", "module", "function"), COMMANDS, ids=[c[0] for c in COMMANDS])
def test_help_prints_and_exits_0(command: str, module: str, function: str) -> None:
    main = getattr(importlib.import_module(module), function)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0, command
    assert "usage:" in out.getvalue()


def _help(main, argv: list[str]) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        main(argv)
    return out.getvalue()


@pytest.mark.parametrize(("command", "module", "function"), COMMANDS, ids=[c[0] for c in COMMANDS])
def test_help_shows_no_restructuredtext_markup(command: str, module: str, function: str) -> None:
    """Option help comes from the config dataclasses' docstrings, written for Sphinx: a terminal must not show
    ``:func:`~a.b``` or double backquotes (dmo-gate and dmo-train-local-model did)."""
    main = getattr(importlib.import_module(module), function)
    top = _help(main, ["--help"])
    subcommands = re.search(r"\{([\w,-]+)\}", top)
    for argv in [[]] + [[name] for name in (subcommands.group(1).split(",") if subcommands else [])]:
        text = _help(main, [*argv, "--help"])
        markup = re.findall(r":\w+:`[^`]*`|``", text)
        assert not markup, f"{command} {' '.join(argv)} --help shows {markup[:3]}"
