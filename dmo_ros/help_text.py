"""Docstrings as a terminal shows them: the commands' ``--help`` reuses docstrings written for Sphinx.

Standard library only, so that any command (the recorder's, the teleop's) may use it."""

from __future__ import annotations

import re

_ROLE = re.compile(r":[\w:.-]+:`!?(?:(?P<title>[^`<]*?)\s*<[^`>]*>|(?P<short>~?)(?P<target>[^`]*))`")


def plain_text(rst: str) -> str:
    """reStructuredText inline markup of a docstring as a terminal shows it (``--help``): ````x```` -> ``x``,
    ``:func:`~a.b.c``` -> ``c``, ``:class:`a.B``` -> ``a.B``, ``:ref:`title <target>``` -> ``title``."""
    def role(match: re.Match) -> str:
        if match["title"] is not None:
            return match["title"]
        return match["target"].rsplit(".", 1)[-1] if match["short"] else match["target"]

    return _ROLE.sub(role, rst).replace("``", "")


__all__ = ["plain_text"]
