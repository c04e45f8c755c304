"""Export to the LeRobotDataset v3.0 layout (the default), read back with pyarrow and json.

Checked against LeRobot 0.4.4's source (``lerobot/datasets/utils.py``: DEFAULT_DATA_PATH
``data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet``, DEFAULT_EPISODES_PATH under
``meta/episodes/``, DEFAULT_TASKS_PATH ``meta/tasks.parquet`` (a pandas frame indexed by the task
string), STATS_PATH ``meta/stats.json``, ``create_empty_dataset_info``; ``compute_stats.py``:
DEFAULT_QUANTILES; ``v30/convert_dataset_v21_to_v30.py``: the episode columns and info.json
changes). The load with the real library is ``scripts/check_lerobot_load.py``; it runs here when
``LEROBOT_PYTHON`` names a Python with lerobot installed (not in CI: lerobot would replace our torch).
"""

from __future__ import annotations

import json
import os
import subprocess

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest

from conftest import REPO
from dmo_ros.dataset.format import write_dataset
from dmo_ros.dataset.lerobot_export import QUANTILES, export_lerobot, main

LENGTHS = [5, 7, 4]
HEIGHT, WIDTH, RATE = 12, 16, 5.0
TASKS = {False: "play", True: "push the T"}
IMAGE_KEY = "observation.image"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("lerobot_v30")
    rng = np.random.default_rng(3)
    n = sum(LENGTHS)
    frames = rng.integers(0, 256, size=(n, HEIGHT, WIDTH, 3), dtype=np.uint8)
    frames[:, 0, 0] = [255, 0, 0]  # catches an RGB/BGR swap
    actions = rng.normal(size=(n, 2)).astype(np.float32)
    intent = (np.arange(n) // 3) % 2 == 1
    intent[:5] = False
    source = write_dataset(root / "source", frames, actions, LENGTHS, intent=intent,
                           milestone=np.zeros(n, np.float32), rate_hz=RATE, extra_meta={"robot": "pusht"})
    out = export_lerobot(source, root / "out", task_by_intent=TASKS, image_key=IMAGE_KEY)
    return out, {"frames": frames, "actions": actions, "intent": intent}


def test_info_json(exported):
    out, _ = exported
    info = json.loads((out / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["fps"] == 5
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert info["video_path"] is None and "total_chunks" not in info and "total_videos" not in info
    assert info["data_files_size_in_mb"] == 100 and info["video_files_size_in_mb"] == 200
    assert info["chunks_size"] == 1000
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"]) == (3, sum(LENGTHS), 2)
    assert info["features"][IMAGE_KEY] == {"dtype": "image", "shape": [HEIGHT, WIDTH, 3],
                                           "names": ["height", "width", "channels"], "fps": 5}
    assert all(f["fps"] == 5 for f in info["features"].values())


def test_one_data_file_holds_every_frame_exactly(exported):
    out, source = exported
    assert sorted(p.relative_to(out).as_posix() for p in (out / "data").rglob("*.parquet")) == [
        "data/chunk-000/file-000.parquet"]
    table = pq.read_table(out / "data/chunk-000/file-000.parquet").to_pylist()
    assert len(table) == sum(LENGTHS)
    for i, row in enumerate(table):
        decoded = cv2.imdecode(np.frombuffer(row[IMAGE_KEY]["bytes"], np.uint8), cv2.IMREAD_COLOR)
        assert np.array_equal(decoded[:, :, ::-1], source["frames"][i]), i
        np.testing.assert_array_equal(row["action"], source["actions"][i])
        assert row["index"] == i and row["task_index"] == int(source["intent"][i])
    starts = np.cumsum([0, *LENGTHS])
    assert [row["frame_index"] for row in table] == [i - starts[e] for e in range(3) for i in range(starts[e],
                                                                                                     starts[e + 1])]
    assert (out / f"images/{IMAGE_KEY}/episode-000001/frame-000006.png").is_file()


def test_episodes_tasks_and_stats(exported):
    out, source = exported
    episodes = pq.read_table(out / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    starts = np.cumsum([0, *LENGTHS])
    for e, row in enumerate(episodes):
        assert row["episode_index"] == e and row["length"] == LENGTHS[e]
        assert (row["dataset_from_index"], row["dataset_to_index"]) == (starts[e], starts[e + 1])
        assert (row["data/chunk_index"], row["data/file_index"]) == (0, 0)
        assert (row["meta/episodes/chunk_index"], row["meta/episodes/file_index"]) == (0, 0)
        np.testing.assert_allclose(row["stats/action/mean"], source["actions"][starts[e]:starts[e + 1]].mean(0),
                                   rtol=1e-6)
    assert episodes[0]["tasks"] == ["play"] and episodes[1]["tasks"] == ["play", "push the T"]
    tasks = pq.read_table(out / "meta/tasks.parquet")
    assert json.loads(tasks.schema.metadata[b"pandas"])["index_columns"] == ["__index_level_0__"]
    assert tasks.to_pydict() == {"task_index": [0, 1], "__index_level_0__": ["play", "push the T"]}
    stats = json.loads((out / "meta/stats.json").read_text())
    keys = {"min", "max", "mean", "std", "count", "q01", "q10", "q50", "q90", "q99"}
    assert set(stats) == set(json.loads((out / "meta/info.json").read_text())["features"])
    assert all(set(s) == keys for s in stats.values())
    actions = source["actions"]
    np.testing.assert_allclose(stats["action"]["q50"], np.quantile(actions, 0.5, axis=0, method="inverted_cdf"))
    np.testing.assert_allclose(stats["action"]["mean"], actions.mean(0), rtol=1e-6)
    assert stats["action"]["count"] == [sum(LENGTHS)]
    pixels = source["frames"].reshape(-1, 3)
    for q in QUANTILES:
        expected = np.quantile(pixels, q, axis=0, method="inverted_cdf") / 255
        np.testing.assert_allclose(np.ravel(stats[IMAGE_KEY][f"q{int(round(q * 100)):02d}"]), expected)


def test_cli_image_key_and_version(exported, tmp_path, capsys):
    out, _ = exported
    source = out.parent / "source"
    assert main([str(source), str(tmp_path / "a"), "--image-key", "observation.image", "--no-image-files"]) == 0
    assert "(LeRobotDataset v3.0): 3 episodes" in capsys.readouterr().out
    assert not (tmp_path / "a" / "images").exists()
    assert pq.read_schema(tmp_path / "a/data/chunk-000/file-000.parquet").names[0] == "observation.image"
    assert main([str(source), str(tmp_path / "b"), "--image-key", "a/b"]) == 2
    assert "image_key 'a/b'" in capsys.readouterr().err


@pytest.mark.skipif(not os.environ.get("LEROBOT_PYTHON"), reason="set LEROBOT_PYTHON to a Python with lerobot")
def test_the_real_lerobot_loads_it_exactly(exported):
    out, _ = exported
    result = subprocess.run([os.environ["LEROBOT_PYTHON"], str(REPO / "scripts/check_lerobot_load.py"),
                             str(out.parent / "source"), str(out)], capture_output=True, text=True, timeout=600,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "every frame and action equal" in result.stdout

