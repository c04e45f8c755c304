"""Ctrl-C in a command: one line and exit code 130 (as a shell reports SIGINT), never a KeyboardInterrupt traceback.

Light on purpose (no torch): every command's ``main`` may be wrapped. What a command keeps when it is
interrupted is its own business (a trainer's loop writes a checkpoint first; dmo-convert leaves only its
``.partial`` folder); the wrapper only ends it cleanly.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable

INTERRUPTED_EXIT_CODE = 130
"""A command stopped by Ctrl-C exits 128 + SIGINT, as a shell reports it."""


def stop_on_interrupt(main: Callable[..., int], note: str = "") -> Callable[..., int]:
    """``main(argv)`` that answers Ctrl-C with ``<command>: interrupted[; note]`` on stderr and exit code 130."""

    @functools.wraps(main)
    def wrapped(argv: list[str] | None = None) -> int:
        try:
            return main(argv)
        except KeyboardInterrupt:
            prog = os.path.basename(sys.argv[0])
            print(f"\n{prog}: interrupted" + (f"; {note}" if note else ""), file=sys.stderr, flush=True)
            return INTERRUPTED_EXIT_CODE

    return wrapped


__all__ = ["INTERRUPTED_EXIT_CODE", "stop_on_interrupt"]
