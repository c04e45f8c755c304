"""PyTorch Datasets over a dmo_ros dataset folder: windows for world models, clips for the reward model.

Two views of the same memory-mapped arrays (see :mod:`dmo_ros.dataset.format`):

- :class:`WindowDataset` — every run of ``context + horizon`` consecutive samples inside one
  episode, with frames, actions, intent and milestone: the DIAMOND world model (``context=4,
  horizon=1``), the RSSM (sequences of frame, action, reward) and behaviour cloning.
- :class:`ClipDataset` — every run of ``length`` consecutive frames inside one episode, frames
  only: passive video for the reward model.

No window or clip straddles two episodes; an episode shorter than the window gives none.

Items are small dataclass batches (:class:`Window`, :class:`Clip`) with ``.to(device)``;
:func:`collate` stacks items into one batch of the same class with a leading batch dimension.
:func:`make_loader` builds a reproducible ``DataLoader`` (seeded sampler and workers).

Memory maps are opened lazily, once per process, on the first item read in that process: a
Dataset pickled to a DataLoader worker carries only the folder path and its index tables,
never an open map nor array contents. Only the pages of the samples read are touched.
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler, SequentialSampler, default_collate

from dmo_ros.dataset.format import ARRAYS, DatasetError, open_arrays, read_meta

SPLITS = ("train", "val", "all")


# -- batches ---------------------------------------------------------------------------------


@dataclass
class Window:
    """``T = context + horizon`` consecutive samples of one episode (or a batch of them).

    Shapes are for one item; a batch from :func:`collate` has a leading batch dimension ``B``
    on every tensor (``frames`` (B, T, 3, H, W), ``episode`` (B,), ...).

    Time alignment, sample ``t`` of the window (dataset sample ``start + t``):

    - ``frames[t]`` is the latest camera image at or before the stamp of action ``t``
      (the converter's alignment rule; the skew is in ``frame_timestamps`` of the dataset).
    - ``actions[t]`` is the action taken at sample ``t``: commanded after ``frames[t]`` was
      seen and acting until sample ``t + 1``, i.e. *between* frame ``t`` and frame ``t + 1``.
      So frame ``t + 1`` is the result of ``frames[: t + 1]`` and ``actions[: t + 1]``.
      For a world model with ``context = L``: the input is ``frames[:L]`` and ``actions[:L]``
      (the last of them, ``actions[L - 1]``, is the action that leads to the target), and the
      target is ``frames[L]``. The last action of a window, ``actions[T - 1]``, leads out of it.
    - ``intent[t]`` / ``milestone[t]`` are the operator's intent flag and milestone value at
      sample ``t`` (the reward labels).
    """

    frames: torch.Tensor
    """(T, 3, H, W) uint8 RGB, channels first, unscaled (the model converts to float)."""
    actions: torch.Tensor
    """(T, A) float32, in the robot's units (see the dataset's meta.json ``action``)."""
    intent: torch.Tensor
    """(T,) bool: operator intent (a demonstration) at each sample."""
    milestone: torch.Tensor
    """(T,) float32: milestone key value at each sample (0 where unused)."""
    episode: torch.Tensor
    """() int64: the episode index (``meta.json`` ``episodes[i]["index"]``)."""
    start: torch.Tensor
    """() int64: dataset sample index of the window's first sample."""
    context: int
    """How many leading samples are context; the remaining ``T - context`` are the future."""

    @property
    def length(self) -> int:
        """T, the number of samples per window."""
        return self.actions.shape[-2]

    @property
    def horizon(self) -> int:
        """How many trailing samples are the future (``T - context``)."""
        return self.length - self.context

    def _time_slice(self, begin: int, end: int, context: int) -> Window:
        # The time axis is the 4th-from-last of frames, 2nd-from-last of actions, last of the flags;
        # that holds with or without a leading batch dimension.
        return replace(
            self,
            frames=self.frames[..., begin:end, :, :, :],
            actions=self.actions[..., begin:end, :],
            intent=self.intent[..., begin:end],
            milestone=self.milestone[..., begin:end],
            context=context,
        )

    def past(self) -> Window:
        """The context part: the first ``context`` samples (frames, actions, ... all cut alike)."""
        return self._time_slice(0, self.context, self.context)

    def future(self) -> Window:
        """The future part: the last ``horizon`` samples (``context`` of the result is 0)."""
        return self._time_slice(self.context, self.length, 0)

    @property
    def context_frames(self) -> torch.Tensor:
        """(…, context, 3, H, W): the frames the model conditions on."""
        return self.frames[..., : self.context, :, :, :]

    @property
    def context_actions(self) -> torch.Tensor:
        """(…, context, A): the actions taken at the context frames; the last leads to the first future frame."""
        return self.actions[..., : self.context, :]

    @property
    def future_frames(self) -> torch.Tensor:
        """(…, horizon, 3, H, W): the frames to predict."""
        return self.frames[..., self.context :, :, :, :]

    @property
    def future_actions(self) -> torch.Tensor:
        """(…, horizon, A): the actions taken at the future frames."""
        return self.actions[..., self.context :, :]

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Window:
        return _to(self, device, non_blocking)

    def pin_memory(self) -> Window:
        """Page-locked copy (the DataLoader calls this when ``pin_memory=True``)."""
        return replace(self, **{name: t.pin_memory() for name, t in _tensors(self).items()})

    @classmethod
    def collate(cls, items: Sequence[Window]) -> Window:
        """Stack items (or batches) into one batch; all must share ``context`` and shapes."""
        contexts = {item.context for item in items}
        if len(contexts) != 1:
            raise ValueError(f"cannot collate windows with different context lengths {sorted(contexts)}")
        return _stack(cls, items, context=contexts.pop())


@dataclass
class Clip:
    """``T = length`` consecutive frames of one episode (or a batch of them): passive video.

    ``frames[t]`` is dataset sample ``start + t``; consecutive frames are one sample period apart
    (the dataset's ``rate_hz``). No actions, no labels: the reward model learns from video alone.
    """

    frames: torch.Tensor
    """(T, 3, H, W) uint8 RGB, channels first, unscaled."""
    episode: torch.Tensor
    """() int64: the episode index."""
    start: torch.Tensor
    """() int64: dataset sample index of the first frame."""

    @property
    def length(self) -> int:
        return self.frames.shape[-4]

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Clip:
        return _to(self, device, non_blocking)

    def pin_memory(self) -> Clip:
        """Page-locked copy (the DataLoader calls this when ``pin_memory=True``)."""
        return replace(self, **{name: t.pin_memory() for name, t in _tensors(self).items()})

    @classmethod
    def collate(cls, items: Sequence[Clip]) -> Clip:
        return _stack(cls, items)


def _tensors(batch: Any) -> dict[str, torch.Tensor]:
    return {f.name: getattr(batch, f.name) for f in fields(batch) if isinstance(getattr(batch, f.name), torch.Tensor)}


def _to(batch: Any, device: torch.device | str, non_blocking: bool) -> Any:
    return replace(batch, **{name: t.to(device, non_blocking=non_blocking) for name, t in _tensors(batch).items()})


def _stack(cls: type, items: Sequence[Any], **static: Any) -> Any:
    if not items:
        raise ValueError("cannot collate an empty list")
    tensors = {
        f.name: torch.stack([getattr(item, f.name) for item in items]) for f in fields(cls) if f.name not in static
    }
    return cls(**tensors, **static)


def collate(items: Sequence[Any]) -> Any:
    """The DataLoader ``collate_fn``: stacks :class:`Window` or :class:`Clip` items into one batch.

    Any item class with a ``collate(items)`` classmethod (the batch dataclasses of the models)
    stacks itself the same way; items of any other type go to torch's ``default_collate``.
    """
    if not items:
        raise ValueError("cannot collate an empty list")
    if callable(getattr(type(items[0]), "collate", None)):  # Window, Clip and other batch dataclasses
        return type(items[0]).collate(items)
    return default_collate(items)


# -- datasets --------------------------------------------------------------------------------


class _EpisodeRuns(Dataset):
    """Every run of ``length`` consecutive samples within one episode of the selected split.

    Keeps the folder, the selected episodes and two index tables (``starts``, ``episode_of``);
    the memory maps live in ``_arrays`` and are (re)opened in whichever process reads first.
    """

    def __init__(self, folder: Path | str, length: int, split: str) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if length < 1:
            raise ValueError(f"window length must be at least 1, got {length}")
        self.folder = Path(folder)
        self.length = int(length)
        self.split = split
        self.meta = read_meta(self.folder)  # DatasetError when not a dataset
        missing = [f"{name}.npy" for name in ARRAYS if not (self.folder / f"{name}.npy").is_file()]
        if missing:
            raise DatasetError(f"{self.folder}: incomplete dataset, missing {', '.join(missing)}")
        if "episodes" not in self.meta:
            raise DatasetError(f"{self.folder}: meta.json has no \"episodes\" list")
        self._check_arrays()
        self.episodes = [ep for ep in self.meta["episodes"] if split == "all" or ep["split"] == split]
        starts, episode_of = [], []
        for ep in self.episodes:
            count = max(0, int(ep["length"]) - self.length + 1)
            starts.append(int(ep["start"]) + np.arange(count, dtype=np.int64))
            episode_of.append(np.full(count, int(ep["index"]), dtype=np.int64))
        self.starts = np.concatenate(starts) if starts else np.zeros(0, np.int64)
        """Dataset sample index of each item's first sample."""
        self.episode_of = np.concatenate(episode_of) if episode_of else np.zeros(0, np.int64)
        """Episode index of each item."""
        self._arrays: dict[str, np.ndarray] | None = None
        self._pid: int | None = None

    def _check_arrays(self) -> None:
        """Shapes and episode bounds agree with meta.json (reads headers and two samples per episode)."""
        arrays = open_arrays(self.folder)
        n = len(arrays["frames"])
        for name, array in arrays.items():
            if len(array) != n:
                raise DatasetError(f"{self.folder}: {name}.npy has {len(array)} samples, frames.npy {n}")
        frames, actions = arrays["frames"], arrays["actions"]
        if frames.ndim != 4 or frames.shape[-1] != 3 or actions.ndim != 2:
            raise DatasetError(f"{self.folder}: frames {frames.shape} / actions {actions.shape} not (N,H,W,3), (N,A)")
        self.image_shape: tuple[int, int] = (int(frames.shape[1]), int(frames.shape[2]))
        """(H, W) of the frames."""
        self.action_size: int = int(actions.shape[1])
        """A, the number of action components."""
        episode_index = arrays["episode_index"]
        for ep in self.meta["episodes"]:
            first, last = int(ep["start"]), int(ep["start"]) + int(ep["length"]) - 1
            if ep["length"] < 1 or first < 0 or last >= n:
                raise DatasetError(f"{self.folder}: episode {ep['index']} spans {first}..{last}, outside 0..{n - 1}")
            if episode_index[first] != ep["index"] or episode_index[last] != ep["index"]:
                raise DatasetError(f"{self.folder}: episode_index.npy disagrees with meta.json, episode {ep['index']}")

    @property
    def arrays(self) -> dict[str, np.ndarray]:
        """The memory maps, opened on first use in this process (a forked or spawned worker reopens them)."""
        pid = os.getpid()
        if self._arrays is None or self._pid != pid:
            self._arrays = open_arrays(self.folder)
            self._pid = pid
        return self._arrays

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_arrays"] = None  # never pickle the maps: each process opens its own
        state["_pid"] = None
        return state

    def __len__(self) -> int:
        return len(self.starts)

    def _span(self, index: int) -> tuple[int, slice]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        start = int(self.starts[index])
        return start, slice(start, start + self.length)

    def _frames(self, span: slice) -> torch.Tensor:
        # np.array copies the pages out of the map into a writable array; then (T,H,W,3) -> (T,3,H,W).
        return torch.from_numpy(np.array(self.arrays["frames"][span])).permute(0, 3, 1, 2).contiguous()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.folder)!r}, split={self.split!r}: {len(self)} items of {self.length})"


class WindowDataset(_EpisodeRuns):
    """Every window of ``context + horizon`` consecutive samples inside one episode, as :class:`Window`.

    ``split``: "train" or "val" (the episodes meta.json assigns to it) or "all". A dataset of
    episodes of lengths 5, 7, 3 with ``context + horizon = 4`` has 2 + 4 + 0 windows.
    """

    def __init__(self, folder: Path | str, context: int, horizon: int, split: str = "train") -> None:
        if context < 1:
            raise ValueError(f"context must be > 0 (frames to condition on), got {context}")
        if horizon < 0:
            raise ValueError(f"horizon must be >= 0 (frames to predict), got {horizon}")
        self.context, self.horizon = int(context), int(horizon)
        super().__init__(folder, self.context + self.horizon, split)

    def __getitem__(self, index: int) -> Window:
        start, span = self._span(index)
        arrays = self.arrays
        return Window(
            frames=self._frames(span),
            actions=torch.from_numpy(np.array(arrays["actions"][span], dtype=np.float32)),
            intent=torch.from_numpy(np.array(arrays["intent"][span], dtype=bool)),
            milestone=torch.from_numpy(np.array(arrays["milestone"][span], dtype=np.float32)),
            episode=torch.tensor(int(self.episode_of[index]), dtype=torch.int64),
            start=torch.tensor(start, dtype=torch.int64),
            context=self.context,
        )


class ClipDataset(_EpisodeRuns):
    """Every clip of ``length`` consecutive frames inside one episode, frames only, as :class:`Clip`."""

    def __init__(self, folder: Path | str, length: int, split: str = "train") -> None:
        if length < 1:
            raise ValueError(f"clip length must be > 0, got {length}")
        super().__init__(folder, length, split)

    def __getitem__(self, index: int) -> Clip:
        start, span = self._span(index)
        return Clip(
            frames=self._frames(span),
            episode=torch.tensor(int(self.episode_of[index]), dtype=torch.int64),
            start=torch.tensor(start, dtype=torch.int64),
        )


# -- loaders ---------------------------------------------------------------------------------


def seed_worker(worker_id: int) -> None:
    """``worker_init_fn``: seeds numpy and ``random`` in a worker from torch's per-worker seed.

    torch sets each worker's seed to ``base_seed + worker_id``, where ``base_seed`` is drawn
    from the loader's generator; so worker randomness is reproducible per loader seed and
    differs between workers. (torch >= 1.9 seeds numpy in workers itself; this keeps the rule
    explicit and independent of the torch version, so forked workers never share the
    parent's numpy state.)
    """
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def make_loader(dataset: Dataset, batch_size: int, seed: int, shuffle: bool = True, num_workers: int = 0,
                drop_last: bool = False, pin_memory: bool = False,
                persistent_workers: bool | None = None) -> DataLoader:
    """A DataLoader of :func:`collate` d batches whose order depends only on ``seed`` (and the epoch).

    Args:
        dataset: a :class:`WindowDataset` or :class:`ClipDataset` (or any Dataset of their items).
        batch_size: items per batch.
        seed: seeds the sampler's shuffle and, through torch's per-worker seeds, numpy and
            ``random`` in each worker. Same seed → same batch sequence, for any ``num_workers``.
        shuffle: random order (a fresh permutation each epoch, drawn from the seeded generator).
        num_workers: worker processes; each opens its own memory maps.
        drop_last: drop a last batch smaller than ``batch_size`` (keeps batch shapes fixed).
        pin_memory: page-locked batches for faster host-to-GPU copies.
        persistent_workers: keep the workers (and their warm memory maps) between epochs;
            default: True when ``num_workers > 0``. Each fresh worker pays page faults again.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    # Two generators from one seed: the sampler's draws the order of every epoch, the loader's
    # only the workers' base seeds. Kept apart, the order cannot depend on how many workers
    # there are or whether they persist (the loader draws a base seed per fresh iterator).
    order = torch.Generator().manual_seed(int(seed))
    sampler = RandomSampler(dataset, generator=order) if shuffle else SequentialSampler(dataset)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        drop_last=drop_last,
        collate_fn=collate,
        worker_init_fn=seed_worker,
        generator=torch.Generator().manual_seed(int(seed)),
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0 if persistent_workers is None else persistent_workers,
    )


# -- several datasets ------------------------------------------------------------------------


def find_datasets(paths: Sequence[Path | str]) -> list[Path]:
    """Dataset folders named by ``paths``: each a dataset, or a folder whose sub-folders are datasets.

    So ``datasets/demo`` (one dataset per recording session) and ``datasets/demo/<session>`` both
    work. Raises :class:`DatasetError` naming a path that holds no dataset, or a dataset named twice.
    """
    found: list[Path] = []
    for path in map(Path, paths):
        if (path / "meta.json").is_file():
            found.append(path)
            continue
        children = sorted(child for child in path.glob("*/meta.json")) if path.is_dir() else []
        if not children:
            raise DatasetError(f"{path}: no dataset here (no meta.json in it or in its sub-folders); "
                               "convert recordings with dmo-convert first")
        found.extend(child.parent for child in children)
    first: dict[Path, Path] = {}
    for folder in found:
        earlier = first.setdefault(folder.resolve(), folder)
        if earlier is not folder:  # it would be trained on twice as often, its validation episodes counted twice
            raise DatasetError(f"{folder}: the dataset is named twice (also as {earlier}); give each dataset once")
    for folder in found:
        read_meta(folder)  # the format check, with its message, before any training starts
    return found


def dataset_shape(folders: Sequence[Path | str], model: str) -> tuple[int, int, str]:
    """(square frame size, action size, robot) shared by all ``folders``; every trainer that takes several
    datasets checks them here, so a mix is refused with one message whichever trainer is given it.

    Raises ``DatasetError`` for frames that are not square and for datasets that differ in robot, frame size or
    action size (one line naming each dataset's). ``model`` names the model in the messages.
    """
    shapes = {}
    for folder in folders:
        meta = read_meta(folder)
        image = meta["image"]
        if image["height"] != image["width"]:
            raise DatasetError(f"{folder}: frames are {image['height']}x{image['width']}; the {model} needs "
                               "square frames (convert with --size N N)")
        shapes[folder] = (int(image["height"]), len(meta["action"]["names"]), str(meta.get("robot")))
    if len(set(shapes.values())) != 1:
        each = "; ".join(f"{folder}: robot {robot}, {size}x{size} frames, {actions} action components"
                         for folder, (size, actions, robot) in shapes.items())
        raise DatasetError(f"the datasets differ in robot, frame size or action size, and one {model} trains on "
                           f"one kind: {each}")
    return next(iter(shapes.values()))


def action_statistics(folders: Sequence[Path | str]) -> dict[str, list[float]]:
    """Per-component ``max_abs``, ``mean`` and ``std`` of the actions over all samples of ``folders``."""
    actions = np.concatenate([np.asarray(open_arrays(folder)["actions"], dtype=np.float64) for folder in folders])
    if not len(actions) or not np.isfinite(actions).all():
        raise DatasetError(f"actions of {', '.join(map(str, folders))} are empty or hold NaN/inf")
    return {"max_abs": np.abs(actions).max(0).tolist(), "mean": actions.mean(0).tolist(),
            "std": actions.std(0).tolist()}
