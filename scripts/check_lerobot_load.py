"""Load a ``dmo-export-lerobot`` export with the real LeRobot and compare it with the source dataset.

Runs in a Python that has ``lerobot`` (not this project's environment: lerobot pins its own
torch). It does not import dmo_ros: the source dataset is read with numpy and json.

    HF_HUB_OFFLINE=1 /path/to/lerobot-venv/bin/python scripts/check_lerobot_load.py DATASET EXPORT

Checks: ``LeRobotDataset(repo_id, root=EXPORT)`` loads; its length, episodes and fps match; every
frame (uint8 after x255) and every action equal the source's exactly, with the right
episode_index / frame_index / timestamp; ``delta_timestamps`` queries give the neighbouring
actions and frames of the same episode, padded (``*_is_pad``) at its edges. Exit code 0 when all hold.

Beside torch for CPU, LeRobot's PyPI torchvision may be a CUDA build whose C ops cannot load;
its two ops that torchvision registers unconditionally are declared here so the import works
(LeRobot's dataset code uses no torchvision op).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch


def declare_torchvision_ops() -> None:
    try:
        torch.ops.torchvision.nms  # noqa: B018 - present when torchvision's C ops load
    except (AttributeError, RuntimeError):
        library = torch.library.Library("torchvision", "DEF")
        library.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        library.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        declare_torchvision_ops.library = library  # keep it alive


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", type=Path, help="the dmo_ros dataset that was exported")
    parser.add_argument("export", type=Path, help="the LeRobotDataset folder")
    parser.add_argument("--repo-id", default="local/dmo_ros")
    options = parser.parse_args()
    declare_torchvision_ops()
    import lerobot
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    meta = json.loads((options.dataset / "meta.json").read_text())
    frames = np.load(options.dataset / "frames.npy", mmap_mode="r")
    actions = np.load(options.dataset / "actions.npy", mmap_mode="r")
    sidecar = json.loads((options.export / "meta/dmo_ros.json").read_text())
    image_key = sidecar.get("image_key", "observation.images.camera")
    episodes = sorted(meta["episodes"], key=lambda e: e["start"])
    fps = float(meta["rate_hz"])
    version = json.loads((options.export / "meta/info.json").read_text())["codebase_version"]
    print(f"lerobot {lerobot.__version__}, torch {torch.__version__}; export {options.export} ({version})")

    dataset = LeRobotDataset(options.repo_id, root=options.export)
    n = sum(e["length"] for e in episodes)
    assert len(dataset) == n, (len(dataset), n)
    assert dataset.num_episodes == len(episodes) and dataset.fps == fps, (dataset.num_episodes, dataset.fps)
    print(f"loaded: {len(dataset)} frames, {dataset.num_episodes} episodes at {dataset.fps} fps; "
          f"features {sorted(dataset.features)}")
    index = 0
    for episode_index, episode in enumerate(episodes):
        for frame_index in range(episode["length"]):
            item = dataset[index]
            source = episode["start"] + frame_index
            image = (item[image_key].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            assert np.array_equal(image, frames[source]), f"frame {index} differs"
            assert np.array_equal(item["action"].numpy(), actions[source]), f"action {index} differs"
            assert int(item["episode_index"]) == episode_index and int(item["frame_index"]) == frame_index
            assert abs(float(item["timestamp"]) - frame_index / fps) < 1e-4
            index += 1
    print(f"iterated {index} frames: every frame and action equal the source's, episode/frame indices and "
          "timestamps as expected")

    deltas = {"action": [-1 / fps, 0.0, 1 / fps, 2 / fps], image_key: [-1 / fps, 0.0]}
    windowed = LeRobotDataset(options.repo_id, root=options.export, delta_timestamps=deltas)
    checked = 0
    for episode in episodes:
        first, length = episode["start"], episode["length"]
        for frame_index in (0, length // 2, length - 1):
            item = windowed[sum(e["length"] for e in episodes if e["start"] < first) + frame_index]
            for k, offset in enumerate((-1, 0, 1, 2)):
                inside = 0 <= frame_index + offset < length
                assert bool(item["action_is_pad"][k]) == (not inside), (frame_index, offset)
                clamped = first + min(max(frame_index + offset, 0), length - 1)
                assert np.array_equal(item["action"][k].numpy(), actions[clamped]), (frame_index, offset)
            previous = first + max(frame_index - 1, 0)
            image = (item[image_key][0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            assert np.array_equal(image, frames[previous])
            checked += 1
    print(f"delta_timestamps {deltas}: {checked} windows checked (neighbours of the same episode, padded at "
          "its edges)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
