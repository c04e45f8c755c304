"""Output paths on the command line: argparse types that refuse a path of the wrong kind before any work.

A report that ran for minutes and then died on ``mkdir`` (``--out`` naming a file) or on ``open`` (``--out``
naming a folder) with a traceback loses the work; these types stop at the parse with one line (exit 2).
Light on purpose (no torch): every command may use them.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def _check_above(text: str, path: Path) -> None:
    blocking = next((parent for parent in path.parents if parent.exists() and not parent.is_dir()), None)
    if blocking is not None:
        raise argparse.ArgumentTypeError(f"{text}: {blocking} is a file, so no folder can be made there")


def output_folder(text: str) -> Path:
    """A folder to write into (created if missing): an existing file there is refused."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file, not a folder; give a folder (it is created if missing)")
    _check_above(text, path)
    return path


def output_file(text: str) -> Path:
    """A file to write (its folder created if missing): an existing folder there is refused."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder; give the name of the file to write")
    _check_above(text, path)
    return path


__all__ = ["output_file", "output_folder"]
