"""Run folders of tiny, untrained models and a tiny dataset: the inputs of ``dmo-train-policy`` in seconds."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dmo_ros.dataset.format import write_dataset
from dmo_ros.local_model.config import LocalModelConfig
from dmo_ros.local_model.model import LocalModel
from dmo_ros.reward.config import RewardConfig
from dmo_ros.reward.energy import EnergyNet
from dmo_ros.training.checkpoint import save_checkpoint, write_run_config
from dmo_ros.world_model.config import WorldModelConfig
from dmo_ros.world_model.denoiser import Denoiser

IMAGE = 32
LIMIT = [0.25, 0.25]


def _save(run: Path, kind: str, model: torch.nn.Module, config: dict) -> Path:
    write_run_config(run, {"kind": kind, "model": config})
    save_checkpoint(run, 1, model.state_dict(), {}, {})
    return run


@pytest.fixture(scope="session")
def policy_inputs(tmp_path_factory) -> dict[str, Path]:
    """{"dataset", "world_model", "reward", "local_model", "goal"}: a 32 px Push-T-like dataset and untrained models."""
    root = tmp_path_factory.mktemp("policy_inputs")
    rng = np.random.default_rng(0)
    lengths = [24, 24, 24, 24, 24]
    frames = rng.integers(0, 255, size=(sum(lengths), IMAGE, IMAGE, 3), dtype=np.uint8)
    actions = rng.uniform(-0.25, 0.25, size=(sum(lengths), 2)).astype(np.float32)
    dataset = write_dataset(root / "dataset", frames, actions, lengths, extra_meta={"robot": "pusht"})
    torch.manual_seed(0)
    wm_config = WorldModelConfig.preset("tiny", 2, LIMIT, image_size=IMAGE)
    world_model = _save(root / "world_model", "world_model", Denoiser(wm_config), asdict(wm_config))
    reward_config = RewardConfig.preset("tiny", image_size=IMAGE)
    reward = _save(root / "reward", "reward", EnergyNet(reward_config), asdict(reward_config))
    local_config = LocalModelConfig.preset("tiny", 2, LIMIT, image_size=IMAGE)
    local = _save(root / "local_model", "local_model", LocalModel(local_config), asdict(local_config))
    goal = root / "goal.png"
    Image.fromarray(frames[0]).save(goal)
    return {"dataset": dataset, "world_model": world_model, "reward": reward, "local_model": local, "goal": goal}
