"""Loaders: windows and clips inside episodes, splits, contents, seeded order, lazy memory maps."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from dmo_ros.dataset import loaders
from dmo_ros.dataset.format import DatasetError, open_arrays, read_meta, write_dataset
from dmo_ros.dataset.loaders import Clip, ClipDataset, Window, WindowDataset, collate, make_loader

LENGTHS = [5, 7, 3]
H, W, A = 6, 8, 2  # H != W so a transposed image shows


def make_dataset(folder: Path, lengths: list[int], seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    n = sum(lengths)
    frames = rng.integers(0, 256, size=(n, H, W, 3), dtype=np.uint8)
    actions = np.stack([np.arange(n), -np.arange(n)], axis=1).astype(np.float32) + rng.random((n, A), np.float32)
    intent = rng.random(n) < 0.5
    milestone = rng.random(n).astype(np.float32)
    return write_dataset(folder, frames, actions, lengths, intent=intent, milestone=milestone, validation_fraction=0.34)


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("small") / "ds", LENGTHS)


@pytest.fixture(scope="module")
def larger(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("larger") / "ds", [30, 25, 40, 2, 33], seed=1)


def splits_of(folder: Path) -> dict[int, str]:
    return {ep["index"]: ep["split"] for ep in read_meta(folder)["episodes"]}


# -- windows ---------------------------------------------------------------------------------


def test_window_count_per_episode(small):
    dataset = WindowDataset(small, context=3, horizon=1, split="all")
    assert len(dataset) == 2 + 4 + 0
    episodes = [int(dataset[i].episode) for i in range(len(dataset))]
    assert episodes == [0, 0, 1, 1, 1, 1]
    assert [int(dataset[i].start) for i in range(len(dataset))] == [0, 1, 5, 6, 7, 8]


@pytest.mark.parametrize(("context", "horizon", "expected"), [(1, 0, 15), (2, 1, 3 + 5 + 1), (5, 2, 0 + 1 + 0)])
def test_window_counts_other_lengths(small, context, horizon, expected):
    assert len(WindowDataset(small, context, horizon, split="all")) == expected


def test_windows_never_straddle_episodes(larger):
    dataset = WindowDataset(larger, context=4, horizon=2, split="all")
    episode_index = open_arrays(larger)["episode_index"]
    assert len(dataset) == (30 - 5) + (25 - 5) + (40 - 5) + 0 + (33 - 5)
    for i in range(len(dataset)):
        item = dataset[i]
        start = int(item.start)
        samples = episode_index[start : start + 6]
        assert (samples == int(item.episode)).all(), f"window {i} at {start} straddles {samples}"


def test_window_contents_match_arrays(small):
    arrays = open_arrays(small)
    dataset = WindowDataset(small, context=3, horizon=1, split="all")
    for i in range(len(dataset)):
        item = dataset[i]
        s = int(item.start)
        assert item.frames.shape == (4, 3, H, W) and item.frames.dtype == torch.uint8
        assert np.array_equal(item.frames.numpy(), arrays["frames"][s : s + 4].transpose(0, 3, 1, 2))
        assert item.frames[0, 1, 2, 5] == arrays["frames"][s, 2, 5, 1]  # channel-first, not transposed
        assert item.actions.dtype == torch.float32 and item.actions.shape == (4, A)
        assert np.array_equal(item.actions.numpy(), arrays["actions"][s : s + 4])
        assert item.intent.dtype == torch.bool and np.array_equal(item.intent.numpy(), arrays["intent"][s : s + 4])
        assert item.milestone.dtype == torch.float32
        assert np.array_equal(item.milestone.numpy(), arrays["milestone"][s : s + 4])


def test_window_context_and_future_parts(small):
    item = WindowDataset(small, context=3, horizon=1, split="all")[2]
    assert (item.context, item.horizon, item.length) == (3, 1, 4)
    assert torch.equal(item.context_frames, item.frames[:3]) and torch.equal(item.future_frames, item.frames[3:])
    assert torch.equal(item.context_actions, item.actions[:3]) and torch.equal(item.future_actions, item.actions[3:])
    past, future = item.past(), item.future()
    assert past.frames.shape == (3, 3, H, W) and past.actions.shape == (3, A) and past.intent.shape == (3,)
    assert future.frames.shape == (1, 3, H, W) and future.milestone.shape == (1,) and future.context == 0
    assert torch.equal(future.actions[0], item.actions[3])


def test_collate_stacks_windows_into_a_batch(small):
    dataset = WindowDataset(small, context=2, horizon=2, split="all")
    batch = collate([dataset[i] for i in range(3)])
    assert isinstance(batch, Window)
    assert batch.frames.shape == (3, 4, 3, H, W) and batch.actions.shape == (3, 4, A)
    assert batch.intent.shape == (3, 4) and batch.episode.shape == (3,) and batch.start.tolist() == [0, 1, 5]
    assert batch.context_frames.shape == (3, 2, 3, H, W) and batch.future_actions.shape == (3, 2, A)
    assert batch.past().intent.shape == (3, 2) and batch.future().frames.shape == (3, 2, 3, H, W)
    moved = batch.to("meta")
    assert all(t.device.type == "meta" for t in (moved.frames, moved.actions, moved.intent, moved.milestone,
                                                  moved.episode, moved.start))


def test_collate_refuses_mixed_context(small):
    a = WindowDataset(small, context=2, horizon=2, split="all")[0]
    b = WindowDataset(small, context=3, horizon=1, split="all")[0]
    with pytest.raises(ValueError, match="context"):
        collate([a, b])


@pytest.mark.parametrize("split", ["train", "val"])
def test_split_selects_only_its_episodes(larger, split):
    splits = splits_of(larger)
    assert set(splits.values()) == {"train", "val"}
    dataset = WindowDataset(larger, context=1, horizon=0, split=split)
    expected = sum(ep["length"] for ep in read_meta(larger)["episodes"] if ep["split"] == split)
    assert len(dataset) == expected  # T = 1: one window per sample
    assert {splits[int(e)] for e in dataset.episode_of} == {split}
    assert all(splits[int(dataset[i].episode)] == split for i in range(0, len(dataset), 7))


def test_all_split_is_train_plus_val(larger):
    sizes = {s: len(WindowDataset(larger, 2, 1, split=s)) for s in ("train", "val", "all")}
    assert sizes["all"] == sizes["train"] + sizes["val"] > 0


# -- clips -----------------------------------------------------------------------------------


def test_clip_dataset_contents(small):
    arrays = open_arrays(small)
    dataset = ClipDataset(small, length=3, split="all")
    assert len(dataset) == 3 + 5 + 1
    for i in range(len(dataset)):
        clip = dataset[i]
        assert isinstance(clip, Clip) and not hasattr(clip, "actions") and not hasattr(clip, "intent")
        s = int(clip.start)
        assert clip.frames.shape == (3, 3, H, W) and clip.frames.dtype == torch.uint8
        assert np.array_equal(clip.frames.numpy(), arrays["frames"][s : s + 3].transpose(0, 3, 1, 2))
        assert (arrays["episode_index"][s : s + 3] == int(clip.episode)).all()
    batch = collate([dataset[0], dataset[4]])
    assert isinstance(batch, Clip) and batch.frames.shape == (2, 3, 3, H, W) and batch.episode.tolist() == [0, 1]


# -- loaders ---------------------------------------------------------------------------------


def batch_sequence(loader) -> list[tuple[list[int], torch.Tensor]]:
    return [(batch.start.tolist(), batch.frames.clone()) for batch in loader]


def assert_same_batches(a, b) -> None:
    assert [starts for starts, _ in a] == [starts for starts, _ in b]
    assert all(torch.equal(fa, fb) for (_, fa), (_, fb) in zip(a, b, strict=True))


def test_same_seed_same_batches_with_0_and_2_workers(larger):
    dataset = WindowDataset(larger, context=4, horizon=1, split="all")
    runs = {
        (seed, workers): batch_sequence(make_loader(dataset, batch_size=8, seed=seed, num_workers=workers))
        for seed in (1, 2)
        for workers in (0, 2)
    }
    assert_same_batches(runs[1, 0], batch_sequence(make_loader(dataset, batch_size=8, seed=1)))
    assert_same_batches(runs[1, 0], runs[1, 2])
    assert_same_batches(runs[2, 0], runs[2, 2])
    assert [s for s, _ in runs[1, 0]] != [s for s, _ in runs[2, 0]]
    seen = sorted(start for starts, _ in runs[1, 2] for start in starts)
    assert seen == sorted(dataset.starts.tolist())  # every window once per epoch


def test_epochs_differ_but_repeat_with_the_seed(larger):
    dataset = ClipDataset(larger, length=3, split="train")

    def two_epochs(workers):
        loader = make_loader(dataset, batch_size=16, seed=7, num_workers=workers, drop_last=True)
        return [batch_sequence(loader) for _ in range(2)]

    first, second = two_epochs(2)
    assert [s for s, _ in first] != [s for s, _ in second]
    again = two_epochs(0)
    assert_same_batches(first, again[0])
    assert_same_batches(second, again[1])


def test_unshuffled_loader_is_in_order_and_drop_last(small):
    dataset = WindowDataset(small, context=3, horizon=1, split="all")
    batches = list(make_loader(dataset, batch_size=4, seed=0, shuffle=False, drop_last=True))
    assert len(batches) == 1 and batches[0].start.tolist() == [0, 1, 5, 6]


class NumpyRandom(Dataset):
    """Returns numpy's global random numbers: shows how each worker's numpy is seeded."""

    def __len__(self) -> int:
        return 8

    def __getitem__(self, index: int) -> int:
        return int(np.random.randint(0, 2**31))


def test_workers_seed_numpy_from_the_loader_seed():
    def draws(seed):
        return [int(x) for batch in make_loader(NumpyRandom(), 1, seed, shuffle=False, num_workers=2) for x in batch]

    first = draws(5)
    assert first == draws(5)
    assert first != draws(6)
    assert len(set(first)) == len(first)  # the two workers do not repeat each other's numbers


# -- lazy memory maps ------------------------------------------------------------------------


def test_dataset_pickles_without_its_memory_maps(small):
    dataset = WindowDataset(small, context=3, horizon=1, split="all")
    assert dataset._arrays is None  # nothing opened until an item is read
    first = dataset[0]
    assert isinstance(dataset._arrays["frames"], np.memmap)  # mapped, not loaded
    blob = pickle.dumps(dataset)
    assert b"frames.npy" not in blob and len(blob) < 4096
    copy = pickle.loads(blob)
    assert copy._arrays is None and copy.folder == dataset.folder and len(copy) == len(dataset)
    again = copy[0]
    assert torch.equal(again.frames, first.frames) and isinstance(copy._arrays["frames"], np.memmap)


def test_maps_are_reopened_in_another_process(small, monkeypatch):
    dataset = ClipDataset(small, length=2, split="all")
    dataset[0]
    maps = dataset._arrays
    dataset[1]
    assert dataset._arrays is maps  # same process: opened once
    monkeypatch.setattr(loaders.os, "getpid", lambda: -1)
    dataset[1]
    assert dataset._arrays is not maps


# -- errors ----------------------------------------------------------------------------------


def test_folder_without_meta_is_a_dataset_error(tmp_path, small):
    with pytest.raises(DatasetError, match="meta.json"):
        WindowDataset(tmp_path, context=1, horizon=0)
    with pytest.raises(DatasetError, match="meta.json"):
        ClipDataset(tmp_path / "missing", length=2)


def test_missing_array_is_a_dataset_error(tmp_path):
    folder = make_dataset(tmp_path / "ds", [4, 4])
    (folder / "actions.npy").unlink()
    with pytest.raises(DatasetError, match="actions.npy"):
        WindowDataset(folder, context=1, horizon=0, split="all")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"context": 0, "horizon": 1}, "context must be > 0"),
        ({"context": -2, "horizon": 1}, "context must be > 0"),
        ({"context": 1, "horizon": -1}, "horizon must be >= 0"),
        ({"context": 1, "horizon": 0, "split": "test"}, "split must be one of"),
    ],
)
def test_window_arguments_are_validated(small, kwargs, message):
    with pytest.raises(ValueError, match=message):
        WindowDataset(small, **kwargs)


def test_clip_length_is_validated(small):
    with pytest.raises(ValueError, match="length must be > 0"):
        ClipDataset(small, length=0)


def test_a_dataset_named_twice_is_refused(tmp_path: Path) -> None:
    """``dmo-train-world-model syn ./syn`` (or a folder of datasets beside one of them) trained on the dataset
    twice as often, silently, its validation windows counted twice."""
    make_dataset(tmp_path / "all/a", [6])
    make_dataset(tmp_path / "all/b", [6])
    assert loaders.find_datasets([tmp_path / "all"]) == [tmp_path / "all/a", tmp_path / "all/b"]
    with pytest.raises(DatasetError, match="the dataset is named twice .*give each dataset once"):
        loaders.find_datasets([tmp_path / "all", tmp_path / "all/b"])
    with pytest.raises(DatasetError, match="named twice"):
        loaders.find_datasets([tmp_path / "all/a", tmp_path / "all/../all/a"])


def robot_dataset(folder: Path, robot: str, action_size: int, size: int = 16) -> Path:
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(24, size, size, 3), dtype=np.uint8)
    return write_dataset(folder, frames, np.zeros((24, action_size), np.float32), [12, 12], validation_fraction=0.5,
                         extra_meta={"robot": robot})


TRAINERS = {  # every trainer that takes several datasets; its main and the model its message names
    "dmo-train-world-model": ("dmo_ros.world_model.train", "main", [], "world model"),
    "dmo-train-tokenizer": ("dmo_ros.world_model_v4.train", "tokenizer_main", [], "tokenizer"),
    "dmo-train-dynamics": ("dmo_ros.world_model_v4.train", "dynamics_main", [], "world model"),
    "dmo-train-reward": ("dmo_ros.reward.train", "main", ["--no-gate"], "reward model"),
    "dmo-train-local-model": ("dmo_ros.local_model.train", "main", [], "local model"),
    "dmo-train-act": ("dmo_ros.baselines.act_train", "main", [], "ACT policy"),
    "dmo-train-policy": ("dmo_ros.dmo.train", "main", ["ppo"], "policy"),
}


@pytest.mark.parametrize("trainer", TRAINERS)
@pytest.mark.parametrize(("other", "action_size", "size"), [("go2", 3, 16), ("pusht", 2, 24)],
                         ids=["other-robot", "other-frame-size"])
def test_every_trainer_refuses_a_mix_of_datasets_with_one_message(tmp_path, capsys, trainer, other, action_size,
                                                                   size):
    """dmo-train-reward trained one model on a Go2 and a Push-T dataset (the robot taken from the first one)."""
    import importlib

    module, function, head, model = TRAINERS[trainer]
    main = getattr(importlib.import_module(module), function)
    first = robot_dataset(tmp_path / "ds_a", "pusht", 2)
    second = robot_dataset(tmp_path / "ds_b", other, action_size, size)
    assert main([*head, str(first), str(second), "--run-dir", str(tmp_path / "run"), "--preset", "tiny"]) == 2
    err = capsys.readouterr().err
    assert err.endswith(
        f"error: the datasets differ in robot, frame size or action size, and one {model} trains on one kind: "
        f"{first}: robot pusht, 16x16 frames, 2 action components; "
        f"{second}: robot {other}, {size}x{size} frames, {action_size} action components\n"), err
    assert len(err.splitlines()) == 1 and not (tmp_path / "run").exists()
