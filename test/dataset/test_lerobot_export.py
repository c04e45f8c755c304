"""Export to the LeRobotDataset v2.1 layout (``--codebase-version v2.1``), read back without our code.

LeRobot's own loader is not used here (see test_lerobot_export_v30.py and
scripts/check_lerobot_load.py for the check with the real library). The
export is instead read with pyarrow, json and cv2 and checked against LeRobot's documented v2.1
schema (``lerobot/common/datasets/utils.py``: INFO_PATH, EPISODES_PATH, TASKS_PATH,
EPISODES_STATS_PATH, DEFAULT_PARQUET_PATH, DEFAULT_IMAGE_PATH, DEFAULT_FEATURES,
DEFAULT_CHUNK_SIZE; ``lerobot_dataset.py``: CODEBASE_VERSION "v2.1", image features embedded in
the parquet files as ``{bytes, path}``; ``compute_stats.py``: per-episode statistics).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dmo_ros.dataset.format import write_dataset
from dmo_ros.dataset.lerobot_export import export_lerobot, main

LENGTHS = [5, 7, 4]
HEIGHT, WIDTH, RATE = 12, 16, 5.0
TASKS = {False: "play", True: "push the cube to the goal"}
IMAGE_KEY = "observation.images.camera"


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[Path, dict[str, np.ndarray]]:
    root = tmp_path_factory.mktemp("lerobot")
    rng = np.random.default_rng(7)
    n = sum(LENGTHS)
    frames = rng.integers(0, 256, size=(n, HEIGHT, WIDTH, 3), dtype=np.uint8)
    frames[:, 0, 0] = [255, 0, 0]  # a pure red pixel: catches an RGB/BGR swap
    actions = rng.normal(size=(n, 2)).astype(np.float32)
    intent = (np.arange(n) // 3) % 2 == 1  # toggles inside episodes
    intent[:5] = False  # episode 0: play only
    milestone = rng.random(n).astype(np.float32)
    source = write_dataset(root / "source", frames, actions, LENGTHS, intent=intent, milestone=milestone,
                           rate_hz=RATE, extra_meta={"robot": "pusht"})
    out = export_lerobot(source, root / "out", repo_id="test/dmo", task_by_intent=TASKS, codebase_version="v2.1")
    return out, {"frames": frames, "actions": actions, "intent": intent, "milestone": milestone}


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_info_json(exported):
    out, _ = exported
    info = json.loads((out / "meta/info.json").read_text())
    assert info["codebase_version"] == "v2.1"
    assert info["robot_type"] == "pusht"
    assert info["total_episodes"] == 3 and info["total_frames"] == sum(LENGTHS)
    assert info["total_tasks"] == 2 and info["total_chunks"] == 1 and info["chunks_size"] == 1000
    assert info["total_videos"] == 0 and info["video_path"] is None
    assert info["fps"] == 5
    assert info["splits"] == {"train": "0:3"}
    assert info["data_path"] == "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
    features = info["features"]
    assert features[IMAGE_KEY] == {"dtype": "image", "shape": [HEIGHT, WIDTH, 3],
                                   "names": ["height", "width", "channels"]}
    assert features["action"] == {"dtype": "float32", "shape": [2], "names": ["a0", "a1"]}
    assert features["intent"]["dtype"] == "bool" and features["milestone"]["dtype"] == "float32"
    for key, dtype in (("timestamp", "float32"), ("frame_index", "int64"), ("episode_index", "int64"),
                       ("index", "int64"), ("task_index", "int64")):
        assert features[key] == {"dtype": dtype, "shape": [1], "names": None}


def test_tasks_and_episodes(exported):
    out, _ = exported
    tasks = read_jsonl(out / "meta/tasks.jsonl")
    assert tasks == [{"task_index": 0, "task": "play"}, {"task_index": 1, "task": TASKS[True]}]
    episodes = read_jsonl(out / "meta/episodes.jsonl")
    assert [e["episode_index"] for e in episodes] == [0, 1, 2]
    assert [e["length"] for e in episodes] == LENGTHS
    assert episodes[0]["tasks"] == ["play"]
    assert episodes[1]["tasks"] == ["play", TASKS[True]]
    sidecar = json.loads((out / "meta/dmo_ros.json").read_text())
    assert sidecar["repo_id"] == "test/dmo"
    assert sorted(sidecar["splits"]["train"] + sidecar["splits"]["val"]) == [0, 1, 2]


def test_parquet_files_match_the_source(exported):
    out, source = exported
    info = json.loads((out / "meta/info.json").read_text())
    columns = list(info["features"])
    start = 0
    for episode, length in enumerate(LENGTHS):
        path = out / info["data_path"].format(episode_chunk=0, episode_index=episode)
        table = pq.read_table(path)
        assert table.column_names == columns
        schema = table.schema
        assert schema.field("action").type == pa.list_(pa.float32(), 2)
        assert schema.field(IMAGE_KEY).type == pa.struct([("bytes", pa.binary()), ("path", pa.string())])
        assert schema.field("intent").type == pa.bool_()
        assert schema.field("milestone").type == pa.float32()
        assert schema.field("timestamp").type == pa.float32()
        for key in ("frame_index", "episode_index", "index", "task_index"):
            assert schema.field(key).type == pa.int64()
        hf = json.loads(schema.metadata[b"huggingface"])["info"]["features"]
        assert hf[IMAGE_KEY] == {"_type": "Image"}
        assert hf["action"]["_type"] == "Sequence" and hf["action"]["length"] == 2

        rows = slice(start, start + length)
        data = table.to_pydict()
        np.testing.assert_array_equal(np.array(data["action"], np.float32), source["actions"][rows])
        np.testing.assert_array_equal(np.array(data["intent"]), source["intent"][rows])
        np.testing.assert_array_equal(np.array(data["milestone"], np.float32), source["milestone"][rows])
        assert data["task_index"] == source["intent"][rows].astype(int).tolist()
        assert data["frame_index"] == list(range(length))
        assert data["episode_index"] == [episode] * length
        assert data["index"] == list(range(start, start + length))
        np.testing.assert_allclose(data["timestamp"], np.arange(length) / RATE, atol=1e-6)

        for frame_index, image in enumerate(data[IMAGE_KEY]):
            expected = source["frames"][start + frame_index]
            name = f"frame_{frame_index:06d}.png"
            assert image["path"] == name
            embedded = cv2.imdecode(np.frombuffer(image["bytes"], np.uint8), cv2.IMREAD_UNCHANGED)
            file = out / f"images/{IMAGE_KEY}/episode_{episode:06d}/{name}"
            on_disk = cv2.imread(str(file), cv2.IMREAD_UNCHANGED)
            for decoded in (embedded, on_disk):
                np.testing.assert_array_equal(cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB), expected)
        start += length


def test_episode_stats(exported):
    out, source = exported
    lines = read_jsonl(out / "meta/episodes_stats.jsonl")
    assert [line["episode_index"] for line in lines] == [0, 1, 2]
    stats = lines[1]["stats"]
    rows = slice(LENGTHS[0], LENGTHS[0] + LENGTHS[1])
    action = source["actions"][rows]
    np.testing.assert_allclose(stats["action"]["min"], action.min(axis=0))
    np.testing.assert_allclose(stats["action"]["max"], action.max(axis=0))
    np.testing.assert_allclose(stats["action"]["mean"], action.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(stats["action"]["std"], action.std(axis=0), rtol=1e-5)
    assert stats["action"]["count"] == [LENGTHS[1]]
    assert stats["frame_index"] == {"min": [0], "max": [LENGTHS[1] - 1], "mean": [3.0],
                                    "std": [float(np.std(np.arange(LENGTHS[1])))], "count": [LENGTHS[1]]}
    # Image: per channel over all frames (fewer than 100), in [0, 1], shape (3, 1, 1).
    pixels = source["frames"][rows].reshape(-1, 3).astype(np.float64) / 255.0
    image = stats[IMAGE_KEY]
    assert np.array(image["mean"]).shape == (3, 1, 1)
    np.testing.assert_allclose(np.array(image["mean"]).ravel(), pixels.mean(axis=0), rtol=1e-9)
    np.testing.assert_allclose(np.array(image["std"]).ravel(), pixels.std(axis=0), rtol=1e-9)
    np.testing.assert_allclose(np.array(image["min"]).ravel(), pixels.min(axis=0))
    np.testing.assert_allclose(np.array(image["max"]).ravel(), pixels.max(axis=0))
    assert image["count"] == [LENGTHS[1]]
    for line in lines:
        assert set(line["stats"]) == set(json.loads((out / "meta/info.json").read_text())["features"])


def test_cli_and_refusals(exported, tmp_path, capsys):
    out, _ = exported
    source = out.parent / "source"
    assert main([str(source), str(tmp_path / "cli"), "--repo-id", "x/y", "--no-image-files",
                 "--codebase-version", "v2.1"]) == 0
    assert "3 episodes" in capsys.readouterr().out
    assert not (tmp_path / "cli" / "images").exists()
    assert len(list((tmp_path / "cli" / "data" / "chunk-000").glob("*.parquet"))) == 3
    assert main([str(source), str(tmp_path / "cli")]) == 2  # the output exists
    with pytest.raises(ValueError, match="png"):
        export_lerobot(source, tmp_path / "jpeg", image_format="jpg")


def test_image_sampling_follows_lerobot():
    from dmo_ros.dataset.lerobot_export import downsample, sample_indices

    # compute_stats.estimate_num_samples: every frame below 100, 177 at 1000, capped at 10 000.
    assert sample_indices(7) == list(range(7))
    assert len(sample_indices(1000)) == 177 and sample_indices(1000)[0] == 0 and sample_indices(1000)[-1] == 999
    assert len(sample_indices(10_000_000)) == 10_000
    # auto_downsample_height_width: below 300 px untouched, above strided to about 150 px.
    small = np.zeros((3, 240, 299), np.uint8)
    assert downsample(small) is small
    assert downsample(np.zeros((3, 480, 640), np.uint8)).shape == (3, 120, 160)  # stride int(640 / 150) = 4
