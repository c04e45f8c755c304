"""Tiny *trained* policy runs for the deployment tests: a 32 px dataset, tiny untrained world/reward/local models,
then one real ``dmo-train-policy dmo --preset tiny`` epoch or two (a few seconds on a CPU)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from dmo_ros.dataset.format import write_dataset
from dmo_ros.dataset.robot_profile import load_robot_profile
from dmo_ros.dmo.train import main as train_policy_main
from dmo_ros.local_model.config import LocalModelConfig
from dmo_ros.local_model.model import LocalModel
from dmo_ros.reward.config import RewardConfig
from dmo_ros.reward.energy import EnergyNet
from dmo_ros.reward.intent import IntentRewardConfig, IntentRewardNet
from dmo_ros.training.checkpoint import checkpoint_dir, save_checkpoint, write_run_config
from dmo_ros.world_model.config import WorldModelConfig
from dmo_ros.world_model.denoiser import Denoiser

IMAGE = 32
CAMERA = (96, 96)
"""(H, W) of the stand-ins' camera: the recorded source size the node checks incoming images against."""


def _save(run: Path, kind: str, model: torch.nn.Module, config: dict, **extra: str) -> Path:
    write_run_config(run, {"kind": kind, "model": config, **extra})
    save_checkpoint(run, 1, model.state_dict(), {}, {})
    return run


def train_tiny_policy(root: Path, robot: str = "pusht", max_samples: int = 32, extra: tuple[str, ...] = (),
                      objective: str = "temporal-distance") -> Path:
    """A DMO-SAPO policy run for ``robot`` (pusht: 2 actions, go2: 3), trained for ``max_samples`` imagined steps;
    ``objective`` "intent" rewards with an intent reward run (``ROOT/ROBOT/intent``, no goal picture)."""
    root = root / robot
    profile = load_robot_profile(robot)
    limit = list(profile.action.limits)
    rng = np.random.default_rng(0)
    lengths = [24] * 5
    frames = rng.integers(0, 255, size=(sum(lengths), IMAGE, IMAGE, 3), dtype=np.uint8)
    actions = (rng.uniform(-1, 1, size=(sum(lengths), len(limit))) * limit).astype(np.float32)
    action = profile.action
    meta = {"robot": robot, "rate_hz": profile.rate_hz,
            "image": {"height": IMAGE, "width": IMAGE, "aspect": "crop",
                      "source_formats": [f"{CAMERA[1]}x{CAMERA[0]} rgb8"]},
            "action": {"message": action.message, "fields": list(action.fields), "names": list(action.names),
                       "units": list(action.units), "scale": list(action.scale), "semantics": action.semantics}}
    dataset = write_dataset(root / "dataset", frames, actions, lengths, extra_meta=meta)
    torch.manual_seed(0)
    wm_config = WorldModelConfig.preset("tiny", len(limit), limit, image_size=IMAGE)
    world_model = _save(root / "world_model", "world_model", Denoiser(wm_config), asdict(wm_config))
    reward_config = RewardConfig.preset("tiny", image_size=IMAGE)
    reward = _save(root / "reward", "reward", EnergyNet(reward_config), asdict(reward_config))
    goal_args = ["--reward-run", str(reward), "--goal", str(root / "goal.png")]
    if objective == "intent":
        intent_config = IntentRewardConfig.preset("tiny", image_size=IMAGE)
        intent = _save(root / "intent", "reward", IntentRewardNet(intent_config), asdict(intent_config),
                       objective="intent")
        goal_args = ["--reward-run", str(intent)]
    local_config = LocalModelConfig.preset("tiny", len(limit), limit, image_size=IMAGE)
    local = _save(root / "local_model", "local_model", LocalModel(local_config), asdict(local_config))
    goal = root / "goal.png"
    Image.fromarray(frames[0]).save(goal)
    run = root / "policy"
    code = train_policy_main(["dmo", str(dataset), "--world-model", str(world_model), *goal_args,
                              "--local-model", str(local), "--run-dir", str(run),
                              "--preset", "tiny", "--device", "cpu", "--progress", "false", "--eval-every", "0",
                              "--max-samples", str(max_samples), "--force-gates", *extra])  # untrained models
    assert code == 0, f"training the tiny {robot} policy failed ({code})"
    assert json.loads((run / "config.json").read_text())["deployment"]["robot"] == robot
    return run


def untrained_reward_run(root: Path, image_size: int = 32) -> tuple[Path, Path]:
    """``(root/reward, root/goal.png)``: an untrained tiny Markov energy (seeded) and a white goal picture."""
    torch.manual_seed(0)
    config = RewardConfig.preset("tiny", image_size=image_size)
    run = root / "reward"
    write_run_config(run, {"kind": "reward", "model": asdict(config)})
    save_checkpoint(run, 1, EnergyNet(config).state_dict(), {}, {})
    goal = root / "goal.png"
    Image.fromarray(np.full((*CAMERA, 3), 255, np.uint8)).save(goal)
    return run, goal


def nan_policy(trained: Path, folder: Path) -> Path:
    """A copy of a trained run whose actor outputs NaN from finite weights (a NaN weight is refused at load): its
    first layer's weights at 3e38 overflow the layer's output to inf, which the LayerNorm after it turns into NaN."""
    import shutil

    shutil.copytree(trained, folder)
    weights_file = checkpoint_dir(folder) / "model.safetensors"
    weights = load_file(str(weights_file))
    key = "actor.trunk.0.weight"
    weights[key] = torch.full_like(weights[key], 3e38)
    save_file(weights, str(weights_file))
    return folder


def write_go2_demonstrations(folder: Path, episodes: int = 4, length: int = 20) -> Path:
    """A tiny Go2 dataset (32 px, 96 x 96 source camera) whose second half of every episode is a demonstration."""
    profile = load_robot_profile("go2")
    limit = np.asarray(profile.action.limits)
    rng = np.random.default_rng(1)
    n = episodes * length
    frames = rng.integers(0, 255, size=(n, IMAGE, IMAGE, 3), dtype=np.uint8)
    actions = (rng.uniform(-1, 1, size=(n, len(limit))) * limit).astype(np.float32)
    intent = np.tile(np.arange(length) >= length // 2, episodes)
    action = profile.action
    meta = {"robot": "go2", "rate_hz": profile.rate_hz,
            "image": {"height": IMAGE, "width": IMAGE, "aspect": "crop",
                      "source_formats": [f"{CAMERA[1]}x{CAMERA[0]} rgb8"]},
            "action": {"message": action.message, "fields": list(action.fields), "names": list(action.names),
                       "units": list(action.units), "scale": list(action.scale), "semantics": action.semantics}}
    return write_dataset(folder, frames, actions, [length] * episodes, intent=intent, extra_meta=meta)


def train_tiny_act(root: Path, steps: int = 20) -> Path:
    """An ACT policy run (``dmo-train-act --preset tiny``) on :func:`write_go2_demonstrations`, no evaluation."""
    from dmo_ros.baselines.act_train import main as train_act_main

    dataset = write_go2_demonstrations(root / "go2_demos")
    run = root / "act"
    code = train_act_main([str(dataset), "--run-dir", str(run), "--preset", "tiny", "--steps", str(steps),
                           "--batch-size", "4", "--device", "cpu", "--progress", "false", "--eval-episodes", "0"])
    assert code == 0, f"training the tiny ACT policy failed ({code})"
    return run


__all__ = ["CAMERA", "IMAGE", "nan_policy", "train_tiny_act", "train_tiny_policy", "write_go2_demonstrations"]
