"""PairDataset draws (start, earlier, later, goal) by its documented rule; RankingPairs batches them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dmo_ros.dataset.format import DatasetError, write_dataset
from dmo_ros.dataset.loaders import collate, make_loader
from dmo_ros.reward.pairs import TIE_PIXEL_STEP, PairDataset, RankingPairs, changed_share, true_runs

LENGTHS = [12, 7, 2, 20, 9]


def _indexed_dataset(folder: Path, lengths: list[int] = LENGTHS, intent: np.ndarray | None = None,
                     size: int = 8) -> Path:
    """Frames whose pixels name their sample: red = index % 256, green = index // 256, blue = episode."""
    n = sum(lengths)
    frames = np.zeros((n, size, size, 3), np.uint8)
    frames[..., 0] = (np.arange(n) % 256)[:, None, None]
    frames[..., 1] = (np.arange(n) // 256)[:, None, None]
    frames[..., 2] = np.repeat(np.arange(len(lengths)), lengths)[:, None, None]
    return write_dataset(folder, frames, np.zeros((n, 2), np.float32), lengths, intent=intent,
                         validation_fraction=0.4, seed=3)


def _sample_of(frame: torch.Tensor) -> int:
    return int(frame[0, 0, 0]) + 256 * int(frame[1, 0, 0])


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return _indexed_dataset(tmp_path_factory.mktemp("pairs") / "ds")


def _episode_bounds(dataset: PairDataset) -> dict[int, tuple[int, int]]:
    return {int(ep["index"]): (int(ep["start"]), int(ep["start"]) + int(ep["length"]))
            for ep in dataset.sources[0].meta["episodes"]}


@pytest.mark.parametrize("min_span,max_span", [(1, 4), (3, 6), (2, 0)])
def test_sampling_invariants(folder: Path, min_span: int, max_span: int) -> None:
    dataset = PairDataset(folder, "all", max_span=max_span, min_span=min_span, seed=5)
    bounds = _episode_bounds(dataset)
    # One item per sample that has at least min_span samples after it in its episode.
    assert len(dataset) == sum(length - min_span for length in LENGTHS if length > min_span)
    spans = set()
    for _ in range(3):
        for index in range(len(dataset)):
            item = dataset[index]
            start, earlier, later, goal = (_sample_of(f) for f in (item.start, item.earlier, item.later, item.goal))
            assert start <= earlier < later <= goal
            assert item.steps.tolist() == [0, earlier - start, later - start, goal - start]
            first, end = bounds[int(item.episode)]
            assert first <= start and goal < end  # one episode
            assert {int(f[2, 0, 0]) for f in (item.start, item.earlier, item.later, item.goal)} == {int(item.episode)}
            span = goal - start
            assert min_span <= span and (max_span == 0 or span <= max_span)
            spans.add(span)
    longest = max_span or max(LENGTHS) - 1
    assert set(range(min_span, min(longest, 8) + 1)) <= spans and max(spans) <= longest


def test_item_index_is_the_start(folder: Path) -> None:
    """Item k starts at the k-th sample that can start a pair (episodes in order)."""
    dataset = PairDataset(folder, "all", max_span=3, min_span=2)
    starts = [_sample_of(dataset[k].start) for k in range(len(dataset))]
    expected = [first + p for first, length in zip(np.cumsum([0, *LENGTHS[:-1]]), LENGTHS, strict=True)
                for p in range(length - 2)]
    assert starts == expected


def test_endpoints_included_and_pairs_uniform(folder: Path) -> None:
    """With the span fixed at 3, the 6 pairs (i < j) of the 4 frames start..goal come up about equally often."""
    dataset = PairDataset(folder, "all", max_span=3, min_span=3, resample=True)
    torch.manual_seed(0)
    counts: dict[tuple[int, int], int] = {}
    for _ in range(20):
        for index in range(len(dataset)):
            steps = dataset[index].steps.tolist()
            assert steps[0] == 0 and steps[3] == 3
            counts[(steps[1], steps[2])] = counts.get((steps[1], steps[2]), 0) + 1
    assert sorted(counts) == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    total = sum(counts.values())
    assert all(abs(c / total - 1 / 6) < 0.04 for c in counts.values()), counts


def test_val_pairs_fixed_train_pairs_fresh_and_reproducible(folder: Path) -> None:
    val = PairDataset(folder, "val", max_span=5, seed=1)
    assert not val.resample
    assert all(torch.equal(val[k].steps, val[k].steps) for k in range(len(val)))
    assert [val[k].steps.tolist() for k in range(len(val))] == \
        [PairDataset(folder, "val", max_span=5, seed=1)[k].steps.tolist() for k in range(len(val))]
    train = PairDataset(folder, "train", max_span=5, seed=1)
    assert train.resample
    draws = lambda: [train[k].steps.tolist() for k in range(len(train))]  # noqa: E731
    torch.manual_seed(7)
    first = draws()
    second = draws()
    torch.manual_seed(7)
    again = draws()
    assert first == again and first != second


def test_splits_are_disjoint_episodes(folder: Path) -> None:
    train, val = PairDataset(folder, "train", 4), PairDataset(folder, "val", 4)
    assert len(train) and len(val)
    assert not set(train.segments[:, 1]) & set(val.segments[:, 1])
    meta = train.sources[0].meta["episodes"]
    assert {int(e) for e in train.segments[:, 1]} <= {ep["index"] for ep in meta if ep["split"] == "train"}


def test_intent_only_draws_inside_intent_runs(tmp_path: Path) -> None:
    n = sum(LENGTHS)
    intent = np.zeros(n, bool)
    intent[2:8] = True  # episode 0: samples 2..7
    intent[11:15] = True  # crosses from episode 0 (ends at 11) into episode 1: two runs
    intent[30:31] = True  # a single sample: too short for a pair
    folder = _indexed_dataset(tmp_path / "ds", intent=intent)
    dataset = PairDataset(folder, "all", max_span=0, intent_only=True)
    # Sample 11 (the run's part in episode 0) and sample 30 are single samples: no pair.
    assert sorted(map(tuple, dataset.segments[:, 2:].tolist())) == [(2, 6), (12, 3)]
    for index in range(len(dataset)):
        item = dataset[index]
        for frame in (item.start, item.earlier, item.later, item.goal):
            assert intent[_sample_of(frame)]


def test_negatives_come_from_other_episodes_and_rank_below_the_context(folder: Path) -> None:
    """With negative_fraction q, about q of the items put another episode's frame as the earlier one (offset -1);
    the later frame, the start and the goal stay in the context's own episode, and q = 0 draws as before."""
    plain = PairDataset(folder, "all", max_span=4, seed=2)
    dataset = PairDataset(folder, "all", max_span=4, seed=2, negative_fraction=0.4)
    bounds = _episode_bounds(dataset)
    negatives = 0
    for index in range(len(dataset)):
        item = dataset[index]
        start, earlier, later, goal = (_sample_of(f) for f in (item.start, item.earlier, item.later, item.goal))
        first, end = bounds[int(item.episode)]
        assert first <= start < later <= goal < end
        if int(item.steps[1]) == -1:
            negatives += 1
            assert int(item.earlier[2, 0, 0]) != int(item.episode) and not first <= earlier < end
        else:
            assert start <= earlier < later and int(item.steps[1]) == earlier - start
        # The context is drawn as without negatives: same start, later frame and goal.
        assert item.steps[[0, 2, 3]].tolist() == plain[index].steps[[0, 2, 3]].tolist()
    assert 0.25 < negatives / len(dataset) < 0.55, negatives
    assert "negatives 0.4" in repr(dataset)
    with pytest.raises(ValueError, match="negative_fraction"):
        PairDataset(folder, "all", negative_fraction=1.0)


def _agent_then_scene_dataset(folder: Path) -> Path:
    """Episodes of 10 frames, 16 x 16: in frames 0-4 only one pixel (the "agent") moves, from frame 5 on a 6 x 6
    square (the "scene") moves each step."""
    frames = np.full((30, 16, 16, 3), 200, np.uint8)
    for episode in range(3):
        for t in range(10):
            frame = frames[10 * episode + t]
            frame[1, min(t, 4) + 1] = 0
            frame[8:14, 8 + max(t - 5, 0): 14 + max(t - 5, 0)] = 30 if t >= 5 else 200
    return write_dataset(folder, frames, np.zeros((30, 2), np.float32), [10, 10, 10], validation_fraction=0.4,
                         seed=3)


def test_pairs_that_differ_only_in_a_few_pixels_are_ties(tmp_path: Path) -> None:
    """With tie_changed_share, an in-segment pair is a tie exactly when its frames differ in at most that share of
    pixels (here: both frames before the scene moved); negatives and runs without the option have no ties."""
    video = _agent_then_scene_dataset(tmp_path / "video")
    dataset = PairDataset(video, "all", max_span=0, seed=1, tie_changed_share=0.02, negative_fraction=0.3)
    plain = PairDataset(video, "all", max_span=0, seed=1)
    ties = 0
    for index in range(len(dataset)):
        item = dataset[index]
        negative = int(item.steps[1]) == -1
        segment, _, _, later, _ = dataset.draw(index)
        expected = not negative and later - int(dataset.segments[segment, 2]) <= 4  # both before the scene moved
        assert bool(item.tie) == expected, (index, item.steps.tolist())
        ties += expected
        assert not bool(plain[index].tie)
    assert 0 < ties < len(dataset)
    assert "ties at <= 0.02 changed" in repr(dataset)
    batch = RankingPairs.collate([dataset[0], dataset[1]])
    assert batch.tie.shape == (2,) and batch.tie.dtype == torch.bool
    with pytest.raises(ValueError, match="tie_changed_share"):
        PairDataset(video, "all", tie_changed_share=1.0)


def test_changed_share_counts_pixels_that_changed_by_more_than_the_step() -> None:
    first = np.zeros((4, 4, 3), np.uint8)
    second = first.copy()
    second[0, 0, 2] = TIE_PIXEL_STEP  # not more than the step: unchanged
    second[1, 1, 0] = TIE_PIXEL_STEP + 1
    second[2, 2] = 255
    assert changed_share(first, second) == 2 / 16
    assert changed_share(second, first) == 2 / 16 and changed_share(first, first) == 0.0


def test_one_episode_has_no_negatives(tmp_path: Path) -> None:
    single = _indexed_dataset(tmp_path / "one", lengths=[10])
    dataset = PairDataset(single, "all", max_span=4, negative_fraction=0.9)
    assert all(int(dataset[k].steps[1]) >= 0 for k in range(len(dataset)))


def test_several_folders(tmp_path: Path, folder: Path) -> None:
    other = _indexed_dataset(tmp_path / "other", lengths=[6, 6])
    both = PairDataset([folder, other], "all", max_span=4)
    assert len(both) == len(PairDataset(folder, "all", 4)) + len(PairDataset(other, "all", 4))
    sources = {int(both[k].source) for k in range(len(both))}
    assert sources == {0, 1}
    small = _indexed_dataset(tmp_path / "small", lengths=[6, 6], size=4)
    with pytest.raises(DatasetError, match="different frame sizes"):
        PairDataset([folder, small], "all")


def test_batches_collate_and_move(folder: Path) -> None:
    dataset = PairDataset(folder, "train", max_span=4)
    batch = collate([dataset[0], dataset[1], dataset[2]])
    assert isinstance(batch, RankingPairs) and batch.batch_size == 3
    assert batch.start.shape == (3, 3, 8, 8) and batch.start.dtype == torch.uint8
    assert batch.steps.shape == (3, 4) and batch.episode.shape == (3,)
    moved = batch.to("cpu")
    assert torch.equal(moved.later, batch.later)
    loader_batch = next(iter(make_loader(dataset, batch_size=4, seed=0)))
    assert isinstance(loader_batch, RankingPairs) and loader_batch.later.shape == (4, 3, 8, 8)


def test_bad_arguments(folder: Path) -> None:
    with pytest.raises(ValueError, match="min_span"):
        PairDataset(folder, "train", min_span=0)
    with pytest.raises(ValueError, match="max_span"):
        PairDataset(folder, "train", max_span=2, min_span=3)
    with pytest.raises(ValueError, match="split"):
        PairDataset(folder, "test")
    with pytest.raises(IndexError):
        PairDataset(folder, "all", 4)[10_000]


def test_true_runs() -> None:
    assert true_runs(np.array([0, 1, 1, 0, 1, 0, 0, 1], bool)) == [(1, 3), (4, 5), (7, 8)]
    assert true_runs(np.zeros(3, bool)) == []
