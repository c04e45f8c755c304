"""Reading a dataset folder: a damaged one is a DatasetError that names the file, never a bare numpy/json error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dmo_ros.dataset.format import DatasetError, open_arrays, read_meta, write_dataset


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (12, 8, 8, 3), dtype=np.uint8)
    actions = rng.uniform(-0.2, 0.2, (12, 2)).astype(np.float32)
    return write_dataset(tmp_path / "ds", frames, actions, [6, 6], validation_fraction=0.5)


def test_an_intact_dataset_opens(dataset: Path) -> None:
    arrays = open_arrays(dataset)
    assert arrays["frames"].shape == (12, 8, 8, 3) and read_meta(dataset)["samples"] == 12


@pytest.mark.parametrize(("text", "message"), [('{"format": ', r"meta.json: unreadable \(Expecting value"),
                                               ("[1, 2]", "meta.json: holds a list")])
def test_a_damaged_meta_json_is_named(dataset: Path, text: str, message: str) -> None:
    """Was a bare 'Expecting value: line 2 column 1' (or an AttributeError on a list) from every tool."""
    (dataset / "meta.json").write_text(text)
    with pytest.raises(DatasetError, match=message + ".*convert its recordings again"):
        read_meta(dataset)


def test_a_truncated_array_is_named(dataset: Path) -> None:
    """Was a bare 'mmap length is greater than file size' from every trainer and dmo-export-lerobot."""
    path = dataset / "frames.npy"
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(DatasetError, match=r"frames.npy: unreadable \(mmap length"):
        open_arrays(dataset)


def test_a_missing_array_is_named(dataset: Path) -> None:
    (dataset / "intent.npy").unlink()
    with pytest.raises(DatasetError, match="intent.npy: unreadable"):
        open_arrays(dataset)


def test_an_array_shorter_than_meta_json_says_is_refused(dataset: Path) -> None:
    np.save(dataset / "actions.npy", np.zeros((5, 2), np.float32))
    with pytest.raises(DatasetError, match="the length of actions.npy is not meta.json's 12 samples"):
        open_arrays(dataset)
