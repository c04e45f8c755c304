"""The dream node dreams with a DreamerV4-style world model (a dmo-train-dynamics run) chosen by its parameter."""

from __future__ import annotations

import re
from dataclasses import asdict

import pytest
import torch

from conftest import BIN, LiveProcess
from dmo_ros.training.checkpoint import save_checkpoint, write_run_config
from dmo_ros.world_model_v4.config import DynamicsConfig, TokenizerConfig
from dmo_ros.world_model_v4.model import WorldModelV4

pytestmark = pytest.mark.ros


def test_dream_node_runs_a_v4_world_model(ros_env, tiny_policies, tmp_path):
    root = tiny_policies["go2"].parent
    torch.manual_seed(0)
    tokenizer = TokenizerConfig.preset("tiny", image_size=32, patch_size=8)
    dynamics = DynamicsConfig.preset("tiny", action_size=3, image_size=32, latent_tokens=tokenizer.latent_tokens,
                                     latent_dim=tokenizer.latent_dim)
    run = tmp_path / "v4"
    write_run_config(run, {"kind": "world_model_v4", "model": asdict(dynamics), "tokenizer": asdict(tokenizer)})
    save_checkpoint(run, 1, WorldModelV4(tokenizer, dynamics).state_dict(), {}, {})
    node = LiveProcess([str(BIN / "dream"), "--ros-args", "-p", f"world_model:={run}", "-p",
                        f"dataset:={root / 'dataset'}", "-p", "action_source:=recorded", "-p", "horizon:=4",
                        "-p", "rate_hz:=20.0", "-p", "seeds:=2"], ros_env)
    try:
        node.wait_for("dreaming 1 rollout(s)", timeout=60)
        node.wait_for("rollouts from", count=2, timeout=90)  # the first rollout's 4 steps are done: the next starts
    finally:
        code = node.stop()
    assert code == 0, node.output
    assert "Traceback" not in node.output
    published = re.search(r"published (\d+) imagined steps", node.output)  # logged at shutdown
    assert published and int(published.group(1)) >= 4, node.output
