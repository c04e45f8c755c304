"""Training pairs for the Bradley-Terry energy: (s_start, s_goal, s_earlier, s_later) from passive video.

Frames only — no actions, no intent labels as inputs, no simulator state. Any dataset folder
works: play data, demonstrations, or several folders mixed.

Sampling of one item (the rule :class:`PairDataset` implements; all choices uniform):

1. The item index picks a *start* sample ``p`` of a segment (an episode, or with
   ``intent_only`` a contiguous intent=1 run of an episode): every sample that has at least
   ``min_span`` samples after it in its segment is one item, so one epoch starts once from each.
2. The span ``d`` is uniform in ``min_span .. min(max_span, samples left in the segment)``
   (``max_span = 0``: up to the segment's end); the goal is ``g = p + d``.
3. Two distinct frames ``i < j`` are drawn uniformly among the ``d + 1`` frames ``p .. g``,
   endpoints **included**: ``p <= i < j <= g``. Including the endpoints teaches
   f(s_start | s_start, s_goal) to be the lowest and f(s_goal | s_start, s_goal) the highest
   energy of a context, which the reward's normalisation relies on (see ``EnergyNet``).

``earlier = frame i`` and ``later = frame j``; "later" is temporally closer to the goal, so the
Bradley-Terry loss asks for f(later) > f(earlier).

4. With ``negative_fraction`` q > 0, an item is a **negative** with probability q: ``earlier`` is then a
   uniformly drawn frame of another episode (one that does not lead to this goal; its offset in ``steps``
   is -1) and ``later`` is frame j as above, so f ranks frames off the way to the goal below frames on it.

5. With ``tie_changed_share`` c > 0, an in-segment pair whose frames ``i`` and ``j`` differ in at most a share c
   of their pixels (:func:`changed_share`) is a **tie** (``tie`` True): only something small moved between them
   (on Push-T the agent, the T standing still), so neither frame is closer to the goal and the loss asks for
   f(later) = f(earlier). Negatives are never ties.

Randomness: with ``resample`` (the default for the train split) each read draws afresh from
torch's random generator, which the DataLoader seeds per worker from its own seeded generator
(so runs are reproducible for a given seed and worker count, and every epoch sees new pairs).
Without it (the default for val / all) item ``k`` is a pure function of ``(seed, k)``:
validation sees the same pairs at every evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from dmo_ros.dataset.format import DatasetError
from dmo_ros.dataset.loaders import ClipDataset


@dataclass
class RankingPairs:
    """One Bradley-Terry item (or a batch of them, with a leading batch dimension B on every tensor)."""

    start: torch.Tensor
    """(3, H, W) uint8: s_start, the context's first frame."""
    goal: torch.Tensor
    """(3, H, W) uint8: s_goal, a later frame of the same segment."""
    earlier: torch.Tensor
    """(3, H, W) uint8: s_i, the frame farther from the goal in time."""
    later: torch.Tensor
    """(3, H, W) uint8: s_j, the frame closer to the goal (the one f should rank higher)."""
    steps: torch.Tensor
    """(4,) int64: sample offsets from the start of (start, earlier, later, goal): 0 <= i < j <= d."""
    episode: torch.Tensor
    """() int64: episode index in its dataset folder."""
    source: torch.Tensor
    """() int64: which of the PairDataset's folders the item came from."""
    tie: torch.Tensor
    """() bool: the two frames differ too little to rank (module doc, item 5); the loss asks f(earlier) = f(later)."""

    def to(self, device: torch.device | str, non_blocking: bool = False) -> RankingPairs:
        return replace(self, **{f.name: getattr(self, f.name).to(device, non_blocking=non_blocking)
                                for f in fields(self)})

    def pin_memory(self) -> RankingPairs:
        return replace(self, **{f.name: getattr(self, f.name).pin_memory() for f in fields(self)})

    @property
    def batch_size(self) -> int:
        return self.start.shape[0] if self.start.dim() == 4 else 1

    @classmethod
    def collate(cls, items: Sequence[RankingPairs]) -> RankingPairs:
        """Stack items into one batch."""
        if not items:
            raise ValueError("cannot collate an empty list")
        return cls(**{f.name: torch.stack([getattr(item, f.name) for item in items]) for f in fields(cls)})


class PairDataset(Dataset):
    """Bradley-Terry pairs drawn from the episodes of one or more dataset folders (see the module doc).

    Args:
        folders: a dataset folder or a list of them (all with the same frame size).
        split: "train", "val" or "all" (each folder's own episode split).
        max_span: most samples between start and goal; 0 = up to the end of the segment.
        min_span: fewest samples between start and goal (>= 1).
        seed: seeds the draws (fixed pairs) or is mixed into them (``resample``).
        intent_only: draw only inside contiguous intent=1 runs (demonstrations), not whole episodes.
        resample: fresh draws at every read; default True for "train", False otherwise.
        negative_fraction: share of items whose earlier frame is a negative (module doc, item 4); in [0, 1).
            Needs segments of at least two episodes of one folder to draw from (else no item is a negative).
        tie_changed_share: pairs whose frames differ in at most this share of pixels are ties (module doc,
            item 5); in [0, 1), 0 = no ties.
    """

    def __init__(self, folders: Path | str | Sequence[Path | str], split: str = "train", max_span: int = 64,
                 min_span: int = 1, seed: int = 0, intent_only: bool = False, resample: bool | None = None,
                 negative_fraction: float = 0.0, tie_changed_share: float = 0.0) -> None:
        if min_span < 1:
            raise ValueError(f"min_span must be >= 1 (a pair needs two distinct frames), got {min_span}")
        if max_span != 0 and max_span < min_span:
            raise ValueError(f"max_span ({max_span}) must be 0 (whole segments) or >= min_span ({min_span})")
        folder_list = [folders] if isinstance(folders, (str, Path)) else list(folders)
        if not folder_list:
            raise ValueError("PairDataset needs at least one dataset folder")
        if not 0.0 <= negative_fraction < 1.0:
            raise ValueError(f"negative_fraction must be in [0, 1), got {negative_fraction}")
        self.split, self.max_span, self.min_span, self.seed = split, int(max_span), int(min_span), int(seed)
        self.negative_fraction = float(negative_fraction)
        if not 0.0 <= tie_changed_share < 1.0:
            raise ValueError(f"tie_changed_share must be in [0, 1), got {tie_changed_share}")
        self.tie_changed_share = float(tie_changed_share)
        self.intent_only = intent_only
        self.resample = split == "train" if resample is None else bool(resample)
        # ClipDataset of length 1 checks each folder and opens its memory maps lazily per process.
        self.sources = [ClipDataset(folder, 1, split) for folder in folder_list]
        shapes = {source.image_shape for source in self.sources}
        if len(shapes) != 1:
            raise DatasetError(f"dataset folders have different frame sizes {sorted(shapes)}; convert them alike")
        self.image_shape: tuple[int, int] = shapes.pop()
        """(H, W) of the frames."""

        table = []  # (source, episode, first sample, length) of every segment
        for source_index, source in enumerate(self.sources):
            intent = np.asarray(source.arrays["intent"]) if intent_only else None
            for ep in source.episodes:
                first, length = int(ep["start"]), int(ep["length"])
                runs = true_runs(intent[first: first + length]) if intent is not None else [(0, length)]
                table += [(source_index, int(ep["index"]), first + a, b - a) for a, b in runs]
        table = [row for row in table if row[3] > self.min_span]
        self.segments = np.array(table, dtype=np.int64).reshape(-1, 4)
        """(S, 4) int64: source, episode, first sample and length of every segment pairs are drawn from."""
        self._cumulative = np.cumsum(self.segments[:, 3] - self.min_span)  # starts per segment, summed

    def __len__(self) -> int:
        return int(self._cumulative[-1]) if len(self._cumulative) else 0

    def draw(self, index: int) -> tuple[int, int, int, int, int]:
        """(segment, start, i, j, goal) of item ``index``; sample indices are absolute (into the folder)."""
        return self._draw(index)[:5]

    def _draw(self, index: int) -> tuple[int, int, int, int, int, int]:
        """:meth:`draw` and the item's negative: an absolute sample of another episode's segment, or -1."""
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        segment = int(np.searchsorted(self._cumulative, index, side="right"))
        offset = index - (int(self._cumulative[segment - 1]) if segment else 0)
        _, _, first, length = (int(v) for v in self.segments[segment])
        start = first + offset
        left = first + length - 1 - start  # samples after the start in this segment (>= min_span)
        longest = min(left, self.max_span) if self.max_span else left
        entropy = [self.seed, index]
        if self.resample:
            entropy.append(int(torch.randint(0, 2**62, ())))
        rng = np.random.default_rng(entropy)
        span = int(rng.integers(self.min_span, longest + 1))
        i, j = sorted(int(v) for v in rng.choice(span + 1, size=2, replace=False))
        negative = -1
        if self.negative_fraction and rng.random() < self.negative_fraction:
            source, episode = (int(v) for v in self.segments[segment, :2])
            others = np.flatnonzero((self.segments[:, 0] == source) & (self.segments[:, 1] != episode))
            if len(others):
                _, _, other_first, other_length = (int(v) for v in self.segments[int(rng.choice(others))])
                negative = other_first + int(rng.integers(other_length))
        return segment, start, start + i, start + j, start + span, negative

    def __getitem__(self, index: int) -> RankingPairs:
        segment, start, i, j, goal, negative = self._draw(index)
        source, episode = (int(v) for v in self.segments[segment, :2])
        earlier = i if negative < 0 else negative
        frames = np.array(self.sources[source].arrays["frames"][[start, earlier, j, goal]])  # copies out of the map
        tie = (negative < 0 and self.tie_changed_share > 0
               and changed_share(frames[1], frames[2]) <= self.tie_changed_share)
        frames = torch.from_numpy(frames).permute(0, 3, 1, 2).contiguous()
        return RankingPairs(
            start=frames[0], earlier=frames[1], later=frames[2], goal=frames[3],
            steps=torch.tensor([0, i - start if negative < 0 else -1, j - start, goal - start], dtype=torch.int64),
            episode=torch.tensor(episode, dtype=torch.int64),
            source=torch.tensor(source, dtype=torch.int64),
            tie=torch.tensor(tie),
        )

    def __repr__(self) -> str:
        folders = ", ".join(str(s.folder) for s in self.sources)
        return (f"PairDataset([{folders}], split={self.split!r}, spans {self.min_span}..{self.max_span or 'end'}"
                f"{', intent only' if self.intent_only else ''}"
                f"{f', negatives {self.negative_fraction:g}' if self.negative_fraction else ''}"
                f"{f', ties at <= {self.tie_changed_share:g} changed' if self.tie_changed_share else ''}: "
                f"{len(self.segments)} segments, {len(self)} items)")


TIE_PIXEL_STEP = 40
"""Levels (of 255) by which a channel must change for its pixel to count as changed in :func:`changed_share`:
above JPEG-like noise and anti-aliasing flicker, below the contrast of an object's edge."""


def changed_share(first: np.ndarray, second: np.ndarray) -> float:
    """Share of pixels of two (H, W, 3) uint8 frames where some channel differs by more than :data:`TIE_PIXEL_STEP`."""
    difference = np.abs(first.astype(np.int16) - second.astype(np.int16)).max(axis=-1)
    return float((difference > TIE_PIXEL_STEP).mean())


def true_runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """[begin, end) of every run of True in a 1-D bool array."""
    padded = np.concatenate([[False], np.asarray(flags, dtype=bool), [False]])
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]
