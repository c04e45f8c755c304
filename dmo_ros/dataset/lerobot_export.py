"""Export a dmo_ros dataset to the LeRobotDataset layout: codebase version v3.0 (default) or v2.1.

The output is a folder that LeRobot's ``LeRobotDataset(repo_id, root=OUT)`` reads. **v3.0** (LeRobot
>= 0.4; checked by loading with LeRobot 0.4.4, ``scripts/check_lerobot_load.py``; layout from its
``lerobot/datasets/utils.py`` and ``v30/convert_dataset_v21_to_v30.py``)::

    meta/info.json                 codebase_version "v3.0", totals, chunks_size, data_files_size_in_mb,
                                   video_files_size_in_mb, fps, splits, data_path, features (each with fps)
    meta/episodes/chunk-000/file-000.parquet   a row per episode: episode_index, tasks, length,
                                   data/chunk_index, data/file_index, dataset_from_index, dataset_to_index,
                                   stats/<feature>/<stat>, meta/episodes/chunk_index, meta/episodes/file_index
    meta/tasks.parquet             task_index, indexed by the task string (a pandas frame)
    meta/stats.json                dataset statistics: min, max, mean, std, count, q01, q10, q50, q90, q99
                                   (quantiles exact: inverted CDF; images over LeRobot's frame sample)
    meta/dmo_ros.json              ours, as below
    data/chunk-000/file-000.parquet   every episode's rows, a new file after 100 MB (an episode stays whole)
    images/{image_key}/episode-000000/frame-000000.png   (optional)

The columns of the data files, the per-episode statistics, tasks and splits are those of v2.1,
described next. **v2.1** (``codebase_version="v2.1"``, LeRobot < 0.4; 0.4+ refuses it with
``BackwardCompatibilityError``), as written by LeRobot's ``lerobot/common/datasets/lerobot_dataset.py``
and ``utils.py``::

    meta/info.json                 codebase_version "v2.1", totals, fps, splits, data_path, features
    meta/episodes.jsonl            {"episode_index", "tasks": [task, ...], "length"} per episode
    meta/tasks.jsonl               {"task_index", "task"} per task
    meta/episodes_stats.jsonl      {"episode_index", "stats": {feature: {min, max, mean, std, count}}}
    meta/dmo_ros.json              ours, not LeRobot's: provenance, task mapping, our train/val split
    data/chunk-000/episode_000000.parquet       one file per episode (1000 episodes per chunk)
    images/observation.images.camera/episode_000000/frame_000000.png   (optional, see below)

Columns of each parquet file, in this order (``info.json`` declares each as a feature with its
``dtype`` / ``shape`` / ``names``):

    observation.images.camera  image    struct<bytes: binary, path: string>, the PNG of the frame
                                        (the name is ``image_key``; Push-T recipes use observation.image)
    action                     float32  fixed-size list of A, the robot's units (names from meta.json)
    intent                     bool     (1,) operator intent (ours, an extra feature)
    milestone                  float32  (1,) milestone key value (ours, an extra feature)
    timestamp                  float32  (1,) frame_index / fps (LeRobot's grid; real stamps stay in our dataset)
    frame_index                int64    (1,) index within the episode
    episode_index              int64    (1,)
    index                      int64    (1,) index over the whole dataset
    task_index                 int64    (1,) from intent: see below

No ``observation.state`` (we record no proprioception) and no ``next.done``: LeRobot v2.1's
default features are only timestamp / frame_index / episode_index / index / task_index.

Frames. LeRobot stores a camera either as ``dtype: "video"`` (MP4 files under ``video_path``;
encoding needs ffmpeg / PyAV, which this project does not depend on) or as ``dtype: "image"``.
We use ``"image"``. For image features LeRobot v2.1 embeds each frame's encoded bytes in the
parquet file (``datasets.Image`` → struct ``{bytes, path}``; ``embed_images`` before
``to_parquet``) and its loader reads them from there, so that is where the frames are. The same
PNGs are also written, by default, under LeRobot's image path ``DEFAULT_IMAGE_PATH`` =
``images/{image_key}/episode_{episode_index:06d}/frame_{frame_index:06d}.png`` (LeRobot uses that
folder while recording and leaves it out of uploads); pass ``image_files=False`` to skip them.
PNG is lossless: every file decodes to exactly the source RGB frame.

Tasks. LeRobot gives every frame a ``task_index`` into ``tasks.jsonl``. Ours come from the intent
flag, fixed: task 0 = ``task_by_intent[False]`` (default "play": intent off), task 1 =
``task_by_intent[True]`` (the demonstration: intent on). Both tasks are always listed (when the
two strings are equal there is one task, index 0). An episode's ``tasks`` are the tasks of its
frames, in task-index order.

Splits. LeRobot's ``splits`` is ``{"train": "0:N"}`` (episode ranges as "start:end" strings).
Our train/val split is a seeded shuffle of episodes, not a range, so ``info.json`` carries
LeRobot's convention and ``meta/dmo_ros.json`` lists our ``train`` / ``val`` episode indices.

Statistics. As LeRobot v2.1's ``compute_episode_stats``: for every non-image feature, min / max /
mean / std over the episode's frames (axis 0; shape (1,) for scalars, (A,) for the action) and
``count`` = [frames]. ``intent`` is counted as 0 / 1 floats (LeRobot would write booleans for
min / max). For the image: per-channel stats over LeRobot's sample of the episode's frames
(``sample_indices``: all frames below 100, then ~length**0.75), frames larger than 300 px
downsampled by striding (``auto_downsample_height_width``), values divided by 255, shape
(3, 1, 1); ``count`` = [sampled frames].

Memory. The source arrays are memory-mapped; episodes are written one at a time, and frames in
blocks of ``BLOCK`` rows (one parquet row group each), so no more than a block of frames is ever
in memory. The output goes to ``<out>.partial`` and is renamed into place when complete.

Core code: no ROS imports.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from dmo_ros.dataset.format import DatasetError, open_arrays, read_meta
from dmo_ros.interrupt import stop_on_interrupt
from dmo_ros.output_paths import output_folder

CODEBASE_VERSIONS = ("v3.0", "v2.1")
DEFAULT_CODEBASE_VERSION = "v3.0"
CHUNKS_SIZE = 1000  # LeRobot's DEFAULT_CHUNK_SIZE: files per data/chunk-XXX folder
DATA_FILE_SIZE_MB = 100  # LeRobot's DEFAULT_DATA_FILE_SIZE_IN_MB (v3.0)
VIDEO_FILE_SIZE_MB = 200  # LeRobot's DEFAULT_VIDEO_FILE_SIZE_IN_MB (v3.0; we write no video)
QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)  # LeRobot's DEFAULT_QUANTILES (v3.0 stats.json)
INFO_PATH = "meta/info.json"
EPISODES_PATH = "meta/episodes.jsonl"
TASKS_PATH = "meta/tasks.jsonl"
EPISODES_STATS_PATH = "meta/episodes_stats.jsonl"
SIDECAR_PATH = "meta/dmo_ros.json"
DATA_PATH = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
IMAGE_PATH = "images/{image_key}/episode_{episode_index:06d}/frame_{frame_index:06d}.png"
V30_DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
V30_EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
V30_TASKS_PATH = "meta/tasks.parquet"
STATS_PATH = "meta/stats.json"
V30_IMAGE_PATH = "images/{image_key}/episode-{episode_index:06d}/frame-{frame_index:06d}.png"
IMAGE_KEY = "observation.images.camera"
DEFAULT_TASKS: dict[bool, str] = {False: "play", True: "demonstration"}
BLOCK = 64  # frames per parquet row group / per encoding step

_IMAGE_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


# -- LeRobot's statistics -----------------------------------------------------------------------

def sample_indices(length: int) -> list[int]:
    """The frames LeRobot v2.1 samples from an episode for image statistics (``sample_indices``)."""
    min_samples, max_samples, power = 100, 10_000, 0.75
    min_samples = min(min_samples, length)
    count = max(min_samples, min(int(length**power), max_samples))
    return np.round(np.linspace(0, length - 1, count)).astype(int).tolist()


def downsample(image_chw: np.ndarray, target: int = 150, threshold: int = 300) -> np.ndarray:
    """LeRobot's ``auto_downsample_height_width``: stride large images down to about ``target`` px."""
    _, height, width = image_chw.shape
    if max(width, height) < threshold:
        return image_chw
    factor = int(width / target) if width > height else int(height / target)
    return image_chw[:, ::factor, ::factor]


def quantile_key(q: float) -> str:
    """LeRobot's name of a quantile statistic: 0.01 → 'q01', 0.5 → 'q50'."""
    return f"q{int(round(q * 100)):02d}"


def feature_stats(values: np.ndarray, quantiles: tuple[float, ...] = ()) -> dict[str, list]:
    """min / max / mean / std over axis 0 (kept as shape (1,) for a 1-D array), the count, and the
    given quantiles (``q01`` ...; exact, the inverted CDF)."""
    keep = values.ndim == 1
    stats = {
        "min": np.min(values, axis=0, keepdims=keep).tolist(),
        "max": np.max(values, axis=0, keepdims=keep).tolist(),
        "mean": np.mean(values, axis=0, keepdims=keep).tolist(),
        "std": np.std(values, axis=0, keepdims=keep).tolist(),
        "count": [int(len(values))],
    }
    for q in quantiles:
        stats[quantile_key(q)] = np.quantile(values, q, axis=0, keepdims=keep, method="inverted_cdf").tolist()
    return stats


class ImageStats:
    """Per-channel statistics of uint8 RGB frames, accumulated frame by frame (exact integer sums)."""

    def __init__(self) -> None:
        self.count = 0
        self.pixels = 0
        self.total = np.zeros(3, np.float64)
        self.squares = np.zeros(3, np.float64)
        self.low = np.full(3, 255, np.int64)
        self.high = np.zeros(3, np.int64)
        self.histogram = np.zeros((3, 256), np.int64)  # uint8 levels: exact quantiles

    def add(self, frame_hwc: np.ndarray) -> None:
        image = downsample(np.transpose(frame_hwc, (2, 0, 1))).reshape(3, -1).astype(np.int64)
        self.count += 1
        self.pixels += image.shape[1]
        self.total += image.sum(axis=1)
        self.squares += (image * image).sum(axis=1)
        self.low = np.minimum(self.low, image.min(axis=1))
        self.high = np.maximum(self.high, image.max(axis=1))
        for channel in range(3):
            self.histogram[channel] += np.bincount(image[channel], minlength=256)

    def merge(self, other: ImageStats) -> None:
        """Add another episode's statistics (for the dataset-wide ``stats.json``)."""
        self.count += other.count
        self.pixels += other.pixels
        self.total += other.total
        self.squares += other.squares
        self.low = np.minimum(self.low, other.low)
        self.high = np.maximum(self.high, other.high)
        self.histogram += other.histogram

    def result(self, quantiles: tuple[float, ...] = ()) -> dict[str, list]:
        mean = self.total / self.pixels
        std = np.sqrt(np.maximum(self.squares / self.pixels - mean * mean, 0.0))

        def shaped(values: np.ndarray) -> list:
            return (np.asarray(values, np.float64) / 255.0).reshape(3, 1, 1).tolist()

        stats = {"min": shaped(self.low), "max": shaped(self.high), "mean": shaped(mean), "std": shaped(std),
                 "count": [self.count]}
        cumulative = np.cumsum(self.histogram, axis=1)
        for q in quantiles:  # the inverted CDF: the smallest level with at least q of the pixels at or below it
            levels = [int(np.searchsorted(cumulative[c], q * cumulative[c, -1])) for c in range(3)]
            stats[quantile_key(q)] = shaped(np.asarray(levels))
        return stats


# -- schema --------------------------------------------------------------------------------------

def _features(height: int, width: int, action_names: list[str], image_key: str) -> dict[str, dict[str, Any]]:
    """The ``features`` of info.json: LeRobot's ``{**features, **DEFAULT_FEATURES}``."""
    return {
        image_key: {"dtype": "image", "shape": [height, width, 3], "names": ["height", "width", "channels"]},
        "action": {"dtype": "float32", "shape": [len(action_names)], "names": list(action_names)},
        "intent": {"dtype": "bool", "shape": [1], "names": None},
        "milestone": {"dtype": "float32", "shape": [1], "names": None},
        "timestamp": {"dtype": "float32", "shape": [1], "names": None},
        "frame_index": {"dtype": "int64", "shape": [1], "names": None},
        "episode_index": {"dtype": "int64", "shape": [1], "names": None},
        "index": {"dtype": "int64", "shape": [1], "names": None},
        "task_index": {"dtype": "int64", "shape": [1], "names": None},
    }


def _arrow_schema(features: dict[str, dict[str, Any]]) -> pa.Schema:
    """The parquet schema Hugging Face ``datasets`` writes for these features, with its metadata.

    LeRobot loads the files with ``datasets.load_dataset("parquet")``, which takes the feature types
    (``Image`` in particular) from the schema's ``huggingface`` metadata when they match the columns.
    """
    fields, hf_features = [], {}
    for key, feature in features.items():
        if feature["dtype"] == "image":
            fields.append(pa.field(key, _IMAGE_TYPE))
            hf_features[key] = {"_type": "Image"}
        elif feature["shape"] == [1]:
            fields.append(pa.field(key, pa.from_numpy_dtype(np.dtype(feature["dtype"]))))
            hf_features[key] = {"dtype": feature["dtype"], "_type": "Value"}
        else:
            item = pa.from_numpy_dtype(np.dtype(feature["dtype"]))
            fields.append(pa.field(key, pa.list_(item, feature["shape"][0])))
            hf_features[key] = {"feature": {"dtype": feature["dtype"], "_type": "Value"},
                                "length": feature["shape"][0], "_type": "Sequence"}
    metadata = {"huggingface": json.dumps({"info": {"features": hf_features}})}
    return pa.schema(fields, metadata=metadata)


def _robot_type(meta: dict[str, Any]) -> str:
    robot = meta.get("robot")
    if isinstance(robot, str) and robot:
        return robot
    if isinstance(robot, dict):
        for key in ("type", "robot_type", "name"):
            if isinstance(robot.get(key), str) and robot[key]:
                return robot[key]
    return "unknown"


def _tasks(task_by_intent: dict[bool, str] | None) -> tuple[list[str], dict[bool, int]]:
    """The task list and the task index of each intent value (0 = intent off, 1 = intent on)."""
    by_intent = {**DEFAULT_TASKS, **(task_by_intent or {})}
    off, on = str(by_intent[False]), str(by_intent[True])
    if off == on:
        return [off], {False: 0, True: 0}
    return [off, on], {False: 0, True: 1}


def _png(frame_rgb: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(frame_rgb), cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return encoded.tobytes()


# -- export --------------------------------------------------------------------------------------

def export_lerobot(dataset_folder: Path | str, output_folder: Path | str, repo_id: str = "local/dmo_ros",
                   task_by_intent: dict[bool, str] | None = None, image_format: str = "png",
                   image_files: bool = True, codebase_version: str = DEFAULT_CODEBASE_VERSION,
                   image_key: str = IMAGE_KEY) -> Path:
    """Write the dataset at ``dataset_folder`` as a LeRobotDataset folder ``output_folder``.

    ``codebase_version``: "v3.0" (LeRobot >= 0.4) or "v2.1" (LeRobot < 0.4). ``task_by_intent``
    names the task of frames with intent off (task 0) and on (task 1); missing entries default to
    ``DEFAULT_TASKS``. ``image_format`` must be "png" (LeRobot's image files are PNG; no video).
    ``image_files`` also writes each PNG under ``images/`` besides embedding it in the parquet
    files. ``image_key`` is the camera's feature name (Push-T recipes expect ``observation.image``).
    ``repo_id`` is recorded in ``meta/dmo_ros.json`` (LeRobot's info.json has no field for it; it is
    the name to give ``LeRobotDataset``). Returns the output folder. Raises ``DatasetError`` for an
    existing output or an inconsistent source, ``ValueError`` for unsupported options.
    """
    if image_format != "png":
        raise ValueError(f"image_format {image_format!r}: only 'png' is supported (videos need ffmpeg)")
    if codebase_version not in CODEBASE_VERSIONS:
        raise ValueError(f"codebase_version {codebase_version!r}: one of {', '.join(CODEBASE_VERSIONS)}")
    if not image_key or "/" in image_key:
        raise ValueError(f"image_key {image_key!r}: a feature name such as observation.image")
    source, output = Path(dataset_folder), Path(output_folder)
    meta = read_meta(source)
    arrays = open_arrays(source)
    if output.exists():
        raise DatasetError(f"{output} already exists; choose another output or remove it")
    partial = output.with_name(output.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    (partial / "meta").mkdir(parents=True)

    height, width = int(arrays["frames"].shape[1]), int(arrays["frames"].shape[2])
    action_size = int(arrays["actions"].shape[1])
    names = list(meta.get("action", {}).get("names") or [f"a{i}" for i in range(action_size)])
    if len(names) != action_size:
        raise DatasetError(f"{source}: {len(names)} action names for actions of size {action_size}")
    features = _features(height, width, names, image_key)
    schema = _arrow_schema(features)
    tasks, task_of_intent = _tasks(task_by_intent)
    episodes = sorted(meta["episodes"], key=lambda e: e["start"])
    rate = float(meta["rate_hz"])
    v30 = codebase_version == "v3.0"
    layout = _V30Layout(partial, schema) if v30 else _V21Layout(partial, schema)

    try:
        episode_rows, total = [], 0
        all_stats = _DatasetStats(image_key)
        for episode_index, episode in enumerate(episodes):
            location = layout.start_episode(episode_index)
            length, stats = _write_episode(layout, arrays, episode, episode_index, total, task_of_intent,
                                           image_files, rate, image_key, all_stats)
            used = sorted({task_of_intent[bool(v)] for v in np.unique(_slice(arrays["intent"], episode))})
            episode_rows.append({"episode_index": episode_index, "tasks": [tasks[i] for i in used],
                                 "length": length, **location, "dataset_from_index": total,
                                 "dataset_to_index": total + length, "stats": stats})
            total += length
        layout.close()

        info = {
            "codebase_version": codebase_version,
            "robot_type": _robot_type(meta),
            "total_episodes": len(episodes),
            "total_frames": total,
            "total_tasks": len(tasks),
            **({"total_videos": 0, "total_chunks": (len(episodes) + CHUNKS_SIZE - 1) // CHUNKS_SIZE}
               if not v30 else {}),
            "chunks_size": CHUNKS_SIZE,
            **({"data_files_size_in_mb": DATA_FILE_SIZE_MB, "video_files_size_in_mb": VIDEO_FILE_SIZE_MB}
               if v30 else {}),
            "fps": int(rate) if rate.is_integer() or v30 else rate,
            "splits": {"train": f"0:{len(episodes)}"},
            "data_path": V30_DATA_PATH if v30 else DATA_PATH,
            "video_path": None,
            "features": {k: {**f, "fps": int(rate)} for k, f in features.items()} if v30 else features,
        }
        _write_json(partial / INFO_PATH, info)
        if v30:
            _write_v30_meta(partial, episode_rows, tasks, all_stats.result())
        else:
            _write_jsonl(partial / EPISODES_PATH, [{k: r[k] for k in ("episode_index", "tasks", "length")}
                                                   for r in episode_rows])
            _write_jsonl(partial / TASKS_PATH, [{"task_index": i, "task": task} for i, task in enumerate(tasks)])
            _write_jsonl(partial / EPISODES_STATS_PATH, [{"episode_index": r["episode_index"], "stats": r["stats"]}
                                                         for r in episode_rows])
        splits: dict[str, list[int]] = {}
        for episode_index, episode in enumerate(episodes):
            splits.setdefault(str(episode.get("split", "train")), []).append(episode_index)
        _write_json(partial / SIDECAR_PATH, {
            "repo_id": repo_id,
            "source": str(source.resolve()),
            "source_format": {"format": meta.get("format"), "version": meta.get("version")},
            "task_index_by_intent": {"false": task_of_intent[False], "true": task_of_intent[True]},
            "splits": splits,
            "source_episodes": [{"episode_index": i, "source_index": e.get("index"), "split": e.get("split"),
                                 "source": e.get("source")} for i, e in enumerate(episodes)],
            "action": meta.get("action", {}),
            "image_key": image_key,
            "image_files": image_files,
        })
        partial.rename(output)
    except BaseException:
        layout.close()
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return output


class _V21Layout:
    """v2.1: one parquet file per episode, ``data/chunk-XXX/episode_YYYYYY.parquet``."""

    image_path = IMAGE_PATH

    def __init__(self, root: Path, schema: pa.Schema) -> None:
        self.root, self.schema = root, schema
        self.writer: pq.ParquetWriter | None = None

    def start_episode(self, episode_index: int) -> dict[str, int]:
        self.close()
        path = self.root / DATA_PATH.format(episode_chunk=episode_index // CHUNKS_SIZE, episode_index=episode_index)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.writer = pq.ParquetWriter(path, self.schema)
        return {}

    def write(self, table: pa.Table, nbytes: int) -> None:
        assert self.writer is not None
        self.writer.write_table(table)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class _V30Layout(_V21Layout):
    """v3.0: episodes appended to ``data/chunk-XXX/file-YYY.parquet``; a new file once one holds
    ``DATA_FILE_SIZE_MB`` (an episode never spans two files), ``CHUNKS_SIZE`` files per chunk."""

    image_path = V30_IMAGE_PATH

    def __init__(self, root: Path, schema: pa.Schema) -> None:
        super().__init__(root, schema)
        self.chunk_index, self.file_index, self.bytes = 0, -1, 0

    def start_episode(self, episode_index: int) -> dict[str, int]:
        if self.writer is None or self.bytes >= DATA_FILE_SIZE_MB * 1e6:
            self.close()
            self.file_index += 1
            if self.file_index == CHUNKS_SIZE:
                self.chunk_index, self.file_index = self.chunk_index + 1, 0
            path = self.root / V30_DATA_PATH.format(chunk_index=self.chunk_index, file_index=self.file_index)
            path.parent.mkdir(parents=True, exist_ok=True)
            self.writer, self.bytes = pq.ParquetWriter(path, self.schema), 0
        return {"data/chunk_index": self.chunk_index, "data/file_index": self.file_index}

    def write(self, table: pa.Table, nbytes: int) -> None:
        super().write(table, nbytes)
        self.bytes += nbytes


class _DatasetStats:
    """The dataset-wide statistics of ``meta/stats.json`` (v3.0), with quantiles, gathered episode by episode."""

    def __init__(self, image_key: str) -> None:
        self.image_key = image_key
        self.image = ImageStats()
        self.columns: dict[str, list[np.ndarray]] = {}

    def add(self, image: ImageStats, columns: dict[str, np.ndarray]) -> None:
        self.image.merge(image)
        for key, values in columns.items():
            self.columns.setdefault(key, []).append(values)

    def result(self) -> dict[str, dict[str, list]]:
        stats = {self.image_key: self.image.result(QUANTILES)}
        for key, parts in self.columns.items():
            stats[key] = feature_stats(np.concatenate(parts), QUANTILES)
        return stats


def _write_v30_meta(root: Path, episode_rows: list[dict[str, Any]], tasks: list[str],
                    stats: dict[str, dict[str, list]]) -> None:
    """``meta/episodes/chunk-000/file-000.parquet``, ``meta/tasks.parquet`` and ``meta/stats.json``."""
    rows = []
    for row in episode_rows:
        flat = {k: v for k, v in row.items() if k != "stats"}
        for feature, values in row["stats"].items():
            for stat, value in values.items():
                flat[f"stats/{feature}/{stat}"] = value
        flat["meta/episodes/chunk_index"] = 0
        flat["meta/episodes/file_index"] = 0
        rows.append(flat)
    path = root / V30_EPISODES_PATH.format(chunk_index=0, file_index=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    # LeRobot reads tasks with pandas: the task string is the index (pandas' metadata says so).
    index_name = "__index_level_0__"
    pandas_meta = {
        "index_columns": [index_name],
        "column_indexes": [{"name": None, "field_name": None, "pandas_type": "unicode", "numpy_type": "object",
                            "metadata": {"encoding": "UTF-8"}}],
        "columns": [
            {"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64",
             "metadata": None},
            {"name": None, "field_name": index_name, "pandas_type": "unicode", "numpy_type": "object",
             "metadata": None},
        ],
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": "2.2.3",
    }
    table = pa.table({"task_index": pa.array(range(len(tasks)), pa.int64()), index_name: pa.array(tasks, pa.string())})
    pq.write_table(table.replace_schema_metadata({"pandas": json.dumps(pandas_meta)}), root / V30_TASKS_PATH)
    _write_json(root / STATS_PATH, stats)


def _slice(array: np.ndarray, episode: dict[str, Any]) -> np.ndarray:
    return array[episode["start"]:episode["start"] + episode["length"]]


def _write_episode(layout: _V21Layout, arrays: dict[str, np.ndarray], episode: dict[str, Any], episode_index: int,
                   first_index: int, task_of_intent: dict[bool, int], image_files: bool, fps: float,
                   image_key: str, all_stats: _DatasetStats) -> tuple[int, dict[str, Any]]:
    """An episode's rows (and PNGs) through ``layout``; returns its length and its statistics."""
    schema = layout.schema
    length = int(episode["length"])
    start = int(episode["start"])
    actions = np.asarray(_slice(arrays["actions"], episode), np.float32)
    intent = np.asarray(_slice(arrays["intent"], episode), bool)
    milestone = np.asarray(_slice(arrays["milestone"], episode), np.float32)
    frame_index = np.arange(length, dtype=np.int64)
    # LeRobot's convention (and its check_timestamps_sync): samples sit on the 1/fps grid.
    # The recorded stamps stay in our dataset (timestamps.npy); the converter's samples are
    # one control period apart up to the recording's jitter.
    timestamp = (frame_index / fps).astype(np.float32)
    episode_column = np.full(length, episode_index, np.int64)
    index = np.arange(first_index, first_index + length, dtype=np.int64)
    task_index = np.where(intent, task_of_intent[True], task_of_intent[False]).astype(np.int64)

    image_dir = layout.root / layout.image_path.format(image_key=image_key, episode_index=episode_index,
                                                       frame_index=0)
    if image_files:
        image_dir.parent.mkdir(parents=True, exist_ok=True)
    sampled = set(sample_indices(length))
    image_stats = ImageStats()
    action_type = schema.field("action").type
    for lo in range(0, length, BLOCK):
        hi = min(lo + BLOCK, length)
        frames = np.asarray(arrays["frames"][start + lo:start + hi])  # one block in memory
        images, nbytes = [], 0
        for offset, frame in enumerate(frames):
            number = lo + offset
            name = Path(layout.image_path.format(image_key=image_key, episode_index=episode_index,
                                                 frame_index=number)).name
            data = _png(frame)
            nbytes += len(data) + 64
            if image_files:
                (image_dir.parent / name).write_bytes(data)
            if number in sampled:
                image_stats.add(frame)
            images.append({"bytes": data, "path": name})
        columns = {
            image_key: pa.array(images, type=_IMAGE_TYPE),
            "action": pa.FixedSizeListArray.from_arrays(pa.array(actions[lo:hi].reshape(-1)),
                                                        action_type.list_size),
            "intent": pa.array(intent[lo:hi]),
            "milestone": pa.array(milestone[lo:hi]),
            "timestamp": pa.array(timestamp[lo:hi]),
            "frame_index": pa.array(frame_index[lo:hi]),
            "episode_index": pa.array(episode_column[lo:hi]),
            "index": pa.array(index[lo:hi]),
            "task_index": pa.array(task_index[lo:hi]),
        }
        layout.write(pa.table([columns[f.name] for f in schema], schema=schema), nbytes)

    values = {"action": actions, "intent": intent.astype(np.float64), "milestone": milestone,
              "timestamp": timestamp, "frame_index": frame_index, "episode_index": episode_column,
              "index": index, "task_index": task_index}
    stats = {image_key: image_stats.result(), **{key: feature_stats(v) for key, v in values.items()}}
    all_stats.add(image_stats, values)
    return length, stats


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=4, ensure_ascii=False))


def _write_jsonl(path: Path, lines: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines))


# -- command line --------------------------------------------------------------------------------

@stop_on_interrupt
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="dmo-export-lerobot",
        description="Export a dmo_ros dataset to the LeRobotDataset layout (frames as PNG images).",
        epilog="v3.0 loads in LeRobot >= 0.4 (checked with 0.4.4); v2.1 in LeRobot < 0.4 (0.3.3).")
    parser.add_argument("dataset", type=Path, help="dmo_ros dataset folder (with meta.json)")
    parser.add_argument("out", type=output_folder, help="output folder (must not exist)")
    parser.add_argument("--repo-id", default="local/dmo_ros", help="dataset name for LeRobotDataset (recorded)")
    parser.add_argument("--task", default=DEFAULT_TASKS[True], help="task of frames with intent on (task 1)")
    parser.add_argument("--play-task", default=DEFAULT_TASKS[False], help="task of frames with intent off (task 0)")
    parser.add_argument("--codebase-version", choices=CODEBASE_VERSIONS, default=DEFAULT_CODEBASE_VERSION,
                        help="LeRobot dataset format: v3.0 (default, LeRobot >= 0.4) or v2.1 (LeRobot < 0.4)")
    parser.add_argument("--image-key", default=IMAGE_KEY,
                        help=f"feature name of the camera (default {IMAGE_KEY}; Push-T recipes use observation.image)")
    parser.add_argument("--no-image-files", action="store_true",
                        help="only embed the PNGs in the parquet files, no images/ folder")
    args = parser.parse_args(argv)
    try:
        out = export_lerobot(args.dataset, args.out, repo_id=args.repo_id,
                             task_by_intent={False: args.play_task, True: args.task},
                             image_files=not args.no_image_files, codebase_version=args.codebase_version,
                             image_key=args.image_key)
    except (DatasetError, ValueError) as error:
        print(f"dmo-export-lerobot: {error}", file=sys.stderr)
        return 2
    info = json.loads((out / INFO_PATH).read_text())
    print(f"wrote {out} (LeRobotDataset {info['codebase_version']}): {info['total_episodes']} episodes, "
          f"{info['total_frames']} frames, "
          f"{info['total_tasks']} tasks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
