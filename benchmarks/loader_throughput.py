"""Loader throughput: windows/s and clips/s from a memory-mapped dataset through ``make_loader``.

Builds a synthetic dataset (``--samples`` samples of ``--size`` x ``--size`` RGB frames, in
episodes of ``--episode-length``) in a temporary folder, or reads ``--dataset PATH``, then
times one shuffled epoch (or ``--max-batches`` batches) of

- ``WindowDataset(context=4, horizon=1)`` (the DIAMOND world model's input), and
- ``ClipDataset(length=8)`` (the reward model's passive video),

with batch ``--batch-size`` for each ``--workers`` count, for ``--epochs`` epochs of one loader
(workers persist between epochs), and prints items/s and MB/s of frames delivered per epoch.
Epoch 0 includes worker start-up and the first touch of every mapped page in each process;
later epochs show the steady state (indexing, copies, collate) with a warm page cache.

    .venv/bin/python benchmarks/loader_throughput.py
    .venv/bin/python benchmarks/loader_throughput.py --dataset datasets/pusht --workers 0 2 4
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from dmo_ros.dataset.format import write_dataset
from dmo_ros.dataset.loaders import ClipDataset, WindowDataset, make_loader


def build_dataset(folder: Path, samples: int, size: int, episode_length: int, action_size: int = 2) -> Path:
    """A synthetic dataset: smooth random frames (cheap to make), random actions, whole episodes."""
    rng = np.random.default_rng(0)
    lengths = [episode_length] * (samples // episode_length)
    if samples % episode_length:
        lengths.append(samples % episode_length)
    frames = np.empty((samples, size, size, 3), np.uint8)
    base = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
    for i in range(samples):  # shifted copies of one image: distinct frames without 245 MB of RNG calls
        frames[i] = np.roll(base, shift=(i % size, (i // size) % size), axis=(0, 1))
    actions = rng.standard_normal((samples, action_size)).astype(np.float32)
    return write_dataset(folder, frames, actions, lengths)


def measure(loader, max_batches: int | None) -> tuple[float, int, float]:
    """(items/s, items, MB/s of frames) for one shuffled epoch; worker start-up counts in the first."""
    items, frame_bytes = 0, 0
    begin = time.perf_counter()
    for index, batch in enumerate(loader):
        items += batch.frames.shape[0]
        frame_bytes += batch.frames.numel()
        if max_batches is not None and index + 1 >= max_batches:
            break
    seconds = time.perf_counter() - begin
    return items / seconds, items, frame_bytes / seconds / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", type=Path, help="an existing dataset folder (default: build a synthetic one)")
    parser.add_argument("--samples", type=int, default=20_000, help="samples of the synthetic dataset")
    parser.add_argument("--size", type=int, default=64, help="frame height and width of the synthetic dataset")
    parser.add_argument("--episode-length", type=int, default=200, help="samples per synthetic episode")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="num_workers values to time")
    parser.add_argument("--split", default="all", choices=["train", "val", "all"])
    parser.add_argument("--epochs", type=int, default=2, help="epochs per configuration (workers persist)")
    parser.add_argument("--max-batches", type=int, default=None, help="stop each pass after this many batches")
    parser.add_argument("--keep", action="store_true", help="keep the synthetic dataset (its path is printed)")
    args = parser.parse_args()

    temp = None
    folder = args.dataset
    if folder is None:
        temp = Path(tempfile.mkdtemp(prefix="dmo_loader_bench_"))
        begin = time.perf_counter()
        folder = build_dataset(temp / "dataset", args.samples, args.size, args.episode_length)
        seconds = time.perf_counter() - begin
        print(f"built {args.samples} samples of {args.size}x{args.size} in {folder} ({seconds:.1f} s)")
    try:
        datasets = {
            "WindowDataset(context=4, horizon=1)": WindowDataset(folder, context=4, horizon=1, split=args.split),
            "ClipDataset(length=8)": ClipDataset(folder, length=8, split=args.split),
        }
        for name, dataset in datasets.items():
            print(f"{name}: {len(dataset)} items, frames {dataset.image_shape}, batch {args.batch_size}")
            for workers in args.workers:
                loader = make_loader(dataset, args.batch_size, seed=0, num_workers=workers, drop_last=True)
                for epoch in range(args.epochs):
                    rate, items, mb_s = measure(loader, args.max_batches)
                    print(f"  num_workers={workers} epoch {epoch}: {rate:7.0f} items/s"
                          f"  ({items} items, {mb_s:6.1f} MB/s of frames)")
    finally:
        if temp is not None and not args.keep:
            shutil.rmtree(temp, ignore_errors=True)


if __name__ == "__main__":
    main()
