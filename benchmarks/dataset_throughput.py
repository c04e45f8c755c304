"""Dataset throughput: conversion (MB of bag/s, camera frames/s) and loading (windows/s).

Writes synthetic rosbag2 bags (``dmo_ros.dataset.synthetic``) of two kinds — a real camera
(640×480 rgb8 at 30 Hz) and a stand-in (96×96 rgb8 at 10 Hz) — with 5 Hz actions and intent,
as single bags and as recorder sessions of 1 s splits (what the recorder writes),
converts each with ``dmo-convert``'s code into 64×64 datasets, and prints the figures. Then
runs ``benchmarks/loader_throughput.py`` for the loaders.

    .venv/bin/python benchmarks/dataset_throughput.py            # defaults: 20 s and 120 s of data
    .venv/bin/python benchmarks/dataset_throughput.py --skip-loaders

The bags are freshly written, so they are read from the page cache: the figures are the
converter's own speed, not the disk's.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from dmo_ros.dataset.convert import ConvertConfig, convert
from dmo_ros.dataset.synthetic import BagSpec, write_bag

GOAL_MB_S = 200.0
GOAL_SESSION_MB_S = 100.0


def write_session(path: Path, spec: BagSpec, split_s: float = 1.0) -> Path:
    """A recorder session: ``spec.seconds`` of data as consecutive splits of ``split_s`` seconds."""
    path.mkdir()
    for index in range(int(spec.seconds / split_s)):
        write_bag(path / f"split_{index:05d}", replace(spec, seconds=split_s, start_s=index * split_s))
    return path


def convert_once(name: str, spec: BagSpec, workdir: Path, session: bool = False) -> None:
    path = workdir / f"{name}_bag"
    bag = write_session(path, spec) if session else write_bag(path, spec)
    size = sum(f.stat().st_size for f in bag.rglob("*") if f.is_file())
    started = time.perf_counter()
    dataset, [report] = convert([bag], workdir / f"{name}_ds", ConvertConfig(), log=lambda line: None)
    seconds = time.perf_counter() - started
    assert dataset is not None and report.ok, report.error
    mb_s = size / 1e6 / seconds
    print(f"{name:<28} {size / 1e6:8.1f} MB {seconds:7.2f} s {mb_s:8.0f} MB/s "
          f"{report.camera_messages / seconds:9.0f} frames/s {report.samples / seconds:9.0f} samples/s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--camera-seconds", type=float, default=20.0, help="seconds of 640x480 @ 30 Hz data")
    parser.add_argument("--standin-seconds", type=float, default=120.0, help="seconds of 96x96 @ 10 Hz data")
    parser.add_argument("--session-seconds", type=float, default=10.0,
                        help="seconds of 640x480 @ 30 Hz data as a session of 1 s splits (the 96x96 one: 6x as long)")
    parser.add_argument("--skip-loaders", action="store_true", help="conversion figures only")
    options = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="dataset_throughput_"))
    try:
        print(f"{'conversion (to 64x64)':<28} {'bag':>11} {'time':>9} {'rate':>13} {'camera':>16} {'output':>17}")
        convert_once("640x480 rgb8 @ 30 Hz (mcap)",
                     BagSpec(width=640, height=480, image_rate_hz=30.0, seconds=options.camera_seconds), workdir)
        convert_once("96x96 rgb8 @ 10 Hz (mcap)", BagSpec(seconds=options.standin_seconds), workdir)
        convert_once("96x96 rgb8 @ 10 Hz (sqlite3)", BagSpec(seconds=options.standin_seconds, storage="sqlite3"),
                     workdir)
        convert_once("640x480 @ 30 Hz, 1 s splits", BagSpec(width=640, height=480, image_rate_hz=30.0,
                                                            seconds=options.session_seconds), workdir, session=True)
        convert_once("96x96 @ 10 Hz, 1 s splits", BagSpec(seconds=options.session_seconds * 6), workdir, session=True)
        print(f"goal: >= {GOAL_MB_S:.0f} MB/s of bag on camera-sized data; >= {GOAL_SESSION_MB_S:.0f} MB/s for "
              "sessions of 1 s splits")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if not options.skip_loaders:
        print()
        loader = Path(__file__).with_name("loader_throughput.py")
        return subprocess.run([sys.executable, str(loader)], check=False).returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
