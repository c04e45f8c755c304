"""The dmo_ros dataset format (version 1): NumPy ``.npy`` arrays, memory-mapped, plus ``meta.json``.

A dataset is one folder::

    meta.json            format name and version, sources, topics, rate, image size,
                         action names/units/scale, alignment rule and skew statistics,
                         counts, episodes (with their split: train / val)
    frames.npy           (N, H, W, 3) uint8   RGB frame of each sample (after the resize)
    actions.npy          (N, A) float32       action of each sample, in the robot's units
    intent.npy           (N,) bool            operator intent (a demonstration) at the sample
    milestone.npy        (N,) float32         milestone key value at the sample (0 unused)
    timestamps.npy       (N,) int64           the sample's time (the action's stamp), ns
    frame_timestamps.npy (N,) int64           stamp of the frame used, ns (skew = the difference)
    episode_index.npy    (N,) int32           episode of each sample (0, 1, ...; samples of an
                                              episode are contiguous and in time order)

Why ``.npy``: NumPy's own file format (NEP 1), readable everywhere, and
``np.load(path, mmap_mode="r")`` maps it without reading it into memory — a loader touches
only the pages of the samples it uses, from any number of worker processes. The converter
writes the arrays in one streaming pass (the header's sample count is fixed at the end) into
a temporary folder that is renamed into place only when complete, so a folder with
``meta.json`` is always a whole dataset.

Episodes in ``meta.json`` are ``{"index", "start", "length", "split", "source"}``: samples
``start .. start + length - 1``. The train/validation split is by episode, deterministic.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock, Timeout

FORMAT_NAME = "dmo_ros.dataset"
FORMAT_VERSION = 1
META_FILE = "meta.json"
DAMAGED = "the dataset is damaged: convert its recordings again with dmo-convert"
"""The way out that every error about a damaged dataset folder ends with."""

ARRAYS: dict[str, tuple[str, str]] = {
    # name: (dtype, shape after N) — the arrays every dataset has.
    "frames": ("uint8", "(H, W, 3)"),
    "actions": ("float32", "(A,)"),
    "intent": ("bool", "()"),
    "milestone": ("float32", "()"),
    "timestamps": ("int64", "()"),
    "frame_timestamps": ("int64", "()"),
    "episode_index": ("int32", "()"),
}


class DatasetError(ValueError):
    """A dataset folder that is missing, incomplete, or of another format version."""


def read_meta(folder: Path | str) -> dict[str, Any]:
    """The dataset's metadata, after checking the format name and version."""
    folder = Path(folder)
    path = folder / META_FILE
    if not path.is_file():
        raise DatasetError(f"{folder} is not a dmo_ros dataset (no {META_FILE}; an interrupted conversion leaves none)")
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DatasetError(f"{path}: unreadable ({error}); {DAMAGED}") from error
    if not isinstance(meta, dict):
        raise DatasetError(f"{path}: holds a {type(meta).__name__}, not a dataset's metadata; convert its "
                           "recordings again with dmo-convert")
    if meta.get("format") != FORMAT_NAME or meta.get("version") != FORMAT_VERSION:
        raise DatasetError(
            f"{folder}: format {meta.get('format')} v{meta.get('version')}, expected {FORMAT_NAME} v{FORMAT_VERSION}"
        )
    return meta


def open_arrays(folder: Path | str) -> dict[str, np.ndarray]:
    """Every array of the dataset, memory-mapped read-only (nothing is read until indexed)."""
    folder = Path(folder)
    meta = read_meta(folder)
    arrays = {}
    for name in ARRAYS:
        path = folder / f"{name}.npy"
        try:
            arrays[name] = np.load(path, mmap_mode="r")
        except (OSError, ValueError) as error:  # missing, cut short (mmap length > file size) or not .npy at all
            raise DatasetError(f"{path}: unreadable ({error}); {DAMAGED}") from error
    samples = meta.get("samples")
    short = sorted(name for name, array in arrays.items() if isinstance(samples, int) and len(array) != samples)
    if short:
        raise DatasetError(f"{folder}: the length of {', '.join(f'{name}.npy' for name in short)} is not {META_FILE}'s "
                           f"{samples} samples; {DAMAGED}")
    return arrays


# -- writing ---------------------------------------------------------------------------------

_NPY_MAGIC = b"\x93NUMPY\x01\x00"
_NPY_HEADER_BYTES = 128  # the whole header, padded: room for any sample count


class NpyAppender:
    """Writes a ``.npy`` file item by item; the sample count goes into the header on close.

    NPY format 1.0: magic, version, a little-endian uint16 header length, then a Python
    dict literal padded with spaces and ending in a newline so the data starts on a
    64-byte boundary. The header is written with a fixed size so it can be rewritten in
    place once the count is known.
    """

    def __init__(self, path: Path, dtype: str, item_shape: tuple[int, ...]) -> None:
        self.path, self.dtype, self.item_shape = path, np.dtype(dtype), tuple(item_shape)
        self.count = 0
        self.file = open(path, "wb")
        self._write_header()

    def _write_header(self) -> None:
        shape = (self.count, *self.item_shape)
        text = f"{{'descr': {self.dtype.str!r}, 'fortran_order': False, 'shape': {shape!r}, }}"
        room = _NPY_HEADER_BYTES - len(_NPY_MAGIC) - 2
        if len(text) + 1 > room:
            raise ValueError(f"array header too long for {self.path.name}: {shape}")
        header = text.ljust(room - 1) + "\n"
        self.file.seek(0)
        self.file.write(_NPY_MAGIC + len(header).to_bytes(2, "little") + header.encode("latin1"))
        self.file.seek(0, 2)

    def append(self, item: np.ndarray | float | int | bool) -> None:
        value = np.asarray(item, dtype=self.dtype)
        if value.shape != self.item_shape:
            raise ValueError(f"{self.path.name}: item of shape {value.shape}, expected {self.item_shape}")
        self.file.write(np.ascontiguousarray(value).tobytes())
        self.count += 1

    def truncate(self, count: int) -> None:
        """Drop the items after the first ``count`` (rolling back a failed input)."""
        self.file.truncate(_NPY_HEADER_BYTES + count * self.dtype.itemsize * int(np.prod(self.item_shape)))
        self.file.seek(0, 2)
        self.count = count

    def close(self) -> None:
        self._write_header()
        self.file.close()


class DatasetWriter:
    """Writes a dataset sample by sample into ``<folder>.partial``; ``finish`` renames it into place.

    While it writes it holds ``<folder>.lock`` (an OS file lock, released even if the process dies), so a
    second writer of the same folder stops with :class:`DatasetError` instead of deleting this one's
    ``.partial`` as the remains of an interrupted conversion.
    """

    def __init__(self, folder: Path | str, image_shape: tuple[int, int], action_size: int) -> None:
        self.folder = Path(folder)
        if self.folder.exists():
            raise DatasetError(f"{self.folder} already exists; choose another output or remove it")
        self.partial = self.folder.with_name(self.folder.name + ".partial")
        self.partial.parent.mkdir(parents=True, exist_ok=True)
        self.lock = FileLock(self.folder.with_name(self.folder.name + ".lock"))
        try:
            self.lock.acquire(timeout=0)
        except Timeout:
            raise DatasetError(f"another process is writing {self.folder} (it holds {self.lock.lock_file}); "
                               "wait for it to finish or choose another output") from None
        if self.folder.exists():  # finished by another writer just before the lock was taken
            self._unlock()
            raise DatasetError(f"{self.folder} already exists; choose another output or remove it")
        if self.partial.exists():  # the remains of an interrupted conversion
            shutil.rmtree(self.partial)
        self.partial.mkdir()
        height, width = image_shape
        shapes = {"frames": (height, width, 3), "actions": (action_size,)}
        self.arrays = {
            name: NpyAppender(self.partial / f"{name}.npy", dtype, shapes.get(name, ()))
            for name, (dtype, _) in ARRAYS.items()
        }

    @property
    def count(self) -> int:
        return self.arrays["frames"].count

    def append(self, frame: np.ndarray, action: np.ndarray, intent: bool, milestone: float, timestamp_ns: int,
               frame_timestamp_ns: int, episode: int) -> None:
        values = {"frames": frame, "actions": action, "intent": intent, "milestone": milestone,
                  "timestamps": timestamp_ns, "frame_timestamps": frame_timestamp_ns, "episode_index": episode}
        for name, value in values.items():
            self.arrays[name].append(value)

    def truncate(self, count: int) -> None:
        for appender in self.arrays.values():
            appender.truncate(count)

    def finish(self, meta: dict[str, Any]) -> Path:
        """Close the arrays, write ``meta.json`` last, and move the dataset into place."""
        for appender in self.arrays.values():
            appender.close()
        meta = {"format": FORMAT_NAME, "version": FORMAT_VERSION, **meta, "samples": self.count}
        (self.partial / META_FILE).write_text(json.dumps(meta, indent=1))
        self.partial.rename(self.folder)
        self._unlock()
        return self.folder

    def abort(self) -> None:
        for appender in self.arrays.values():
            appender.file.close()
        shutil.rmtree(self.partial, ignore_errors=True)
        self._unlock()

    def _unlock(self) -> None:
        # The lock file goes too, so no stray file stays beside the dataset. A writer that opened it just
        # before the unlink still holds a real lock; after a finish it then finds the folder and stops.
        self.lock.release()
        Path(self.lock.lock_file).unlink(missing_ok=True)


def split_episodes(lengths: list[int], validation_fraction: float, seed: int) -> list[str]:
    """'train' / 'val' per episode: a seeded shuffle, at least one of each when there are two or more."""
    count = len(lengths)
    order = np.random.default_rng(seed).permutation(count)
    n_val = int(round(validation_fraction * count))
    if count >= 2 and validation_fraction > 0:
        n_val = min(max(n_val, 1), count - 1)
    val = set(order[:n_val].tolist())
    return ["val" if i in val else "train" for i in range(count)]


def write_dataset(folder: Path | str, frames: np.ndarray, actions: np.ndarray, episode_lengths: list[int],
                  intent: np.ndarray | None = None, milestone: np.ndarray | None = None,
                  rate_hz: float = 5.0, validation_fraction: float = 0.2, seed: int = 0,
                  extra_meta: dict[str, Any] | None = None) -> Path:
    """A whole dataset from in-memory arrays (tests, synthetic data); samples at ``rate_hz``."""
    n = len(frames)
    if sum(episode_lengths) != n or len(actions) != n:
        raise ValueError("frames, actions and the episode lengths must agree")
    intent = np.zeros(n, bool) if intent is None else intent
    milestone = np.zeros(n, np.float32) if milestone is None else milestone
    writer = DatasetWriter(folder, frames.shape[1:3], actions.shape[1])
    period = int(1e9 / rate_hz)
    episodes, start = [], 0
    splits = split_episodes(episode_lengths, validation_fraction, seed)
    for index, length in enumerate(episode_lengths):
        episodes.append({"index": index, "start": start, "length": length, "split": splits[index], "source": "memory"})
        for i in range(start, start + length):
            writer.append(frames[i], actions[i], bool(intent[i]), float(milestone[i]), i * period, i * period, index)
        start += length
    meta = {
        "rate_hz": rate_hz,
        "image": {"height": int(frames.shape[1]), "width": int(frames.shape[2])},
        "action": {"names": [f"a{i}" for i in range(actions.shape[1])], "units": [""] * actions.shape[1]},
        "episodes": episodes,
        **(extra_meta or {}),
    }
    return writer.finish(meta)
