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
