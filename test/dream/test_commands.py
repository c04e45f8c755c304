"""The dream commands with a tiny world model run: dmo-dream-strip (PNG strip + GIF) and dmo-dream-flags."""

from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import pytest
import torch
from PIL import Image

from dmo_ros.dataset.format import write_dataset
from dmo_ros.dream.flags import main as flags_main
from dmo_ros.dream.strip import LABEL_WIDTH
from dmo_ros.dream.strip import main as strip_main
from dmo_ros.training.checkpoint import save_checkpoint, write_run_config
from dmo_ros.world_model.config import WorldModelConfig
from dmo_ros.world_model.denoiser import Denoiser

SIZE = 16


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("dream_commands")
    rng = np.random.default_rng(0)
    lengths = [30, 28, 26, 30]
    frames = rng.integers(0, 255, size=(sum(lengths), SIZE, SIZE, 3), dtype=np.uint8)
    actions = rng.uniform(-0.2, 0.2, size=(sum(lengths), 2)).astype(np.float32)
    dataset = write_dataset(root / "dataset", frames, actions, lengths, validation_fraction=0.25)
    torch.manual_seed(0)
    config = WorldModelConfig.preset("tiny", 2, [0.2, 0.2], image_size=SIZE)
    model = Denoiser(config)
    with torch.no_grad():  # untrained but not zero: the seeds disagree
        for parameter in model.parameters():
            if parameter.ndim > 1 and not parameter.any():
                parameter.normal_(std=0.1)
    write_run_config(root / "wm", {"kind": "world_model", "model": asdict(config)})
    save_checkpoint(root / "wm", 1, model.state_dict(), {}, {})
    return root / "wm", dataset


def test_dream_strip_writes_a_png_strip_and_a_gif(run, tmp_path, capsys):
    world_model, dataset = run
    out = tmp_path / "strip"
    code = strip_main([str(world_model), "--dataset", str(dataset), "--horizon", "10", "--every", "5",
                       "--scale", "2", "--seeds", "2", "--out", str(out)])
    assert code == 0, capsys.readouterr()
    strip = Image.open(out / "strip.png")
    columns, rows = 3, 3  # t=0, +5, +10; real, imagined, spread
    assert strip.size == (LABEL_WIDTH + columns * (2 * SIZE + 2), 14 + rows * (2 * SIZE + 2))
    gif = Image.open(out / "strip.gif")
    assert gif.n_frames == 4 + 10  # the context, then every imagined step
    report = json.loads((out / "strip.json").read_text())
    assert report["actions"] == "recorded" and len(report["spread"]) == 10 and len(report["real_mse"]) == 10
    assert "wrote" in capsys.readouterr().out


def test_dream_strip_refuses_bad_options(run, tmp_path, capsys):
    world_model, dataset = run
    assert strip_main([str(world_model), "--dataset", str(dataset), "--horizon", "5", "--every", "6",
                       "--out", str(tmp_path)]) == 2
    assert "--every" in capsys.readouterr().err
    assert strip_main([str(tmp_path / "nothing"), "--dataset", str(dataset), "--out", str(tmp_path)]) == 2


def test_dream_flags_measures_spread_versus_horizon_and_error(run, tmp_path, capsys):
    world_model, dataset = run
    out = tmp_path / "flags"
    code = flags_main([str(world_model), "--dataset", str(dataset), "--horizon", "4", "--windows", "6",
                       "--seeds", "3", "--batch-size", "4", "--out", str(out)])
    assert code == 0, capsys.readouterr()
    report = json.loads((out / "flags.json").read_text())
    assert report["windows"] == 6 and report["steps"] == [1, 2, 3, 4]
    for key in ("spread_mean", "spread_p99", "error"):
        assert len(report[key]) == 4 and all(v >= 0 for v in report[key])
    for key in ("rho_step_spread_mean", "rho_spread_error_mean", "rho_spread_error_within_step_mean"):
        assert -1 <= report[key] <= 1
    assert (out / "flags.png").stat().st_size > 0
    assert "Spearman" in capsys.readouterr().out
