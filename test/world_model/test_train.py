"""``dmo-train-world-model`` with the tiny preset: trains, checkpoints, resumes exactly, refuses bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dmo_ros.dataset.format import write_dataset
from dmo_ros.training import load_model_weights, read_run_config
from dmo_ros.world_model.denoiser import load_world_model
from dmo_ros.world_model.train import main


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """Four 12-sample episodes of 16x16 noise-free random frames and 2-D actions up to 0.2."""
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (48, 16, 16, 3), dtype=np.uint8)
    actions = rng.uniform(-0.2, 0.2, (48, 2)).astype(np.float32)
    return write_dataset(tmp_path_factory.mktemp("data") / "ds", frames, actions, [12, 12, 12, 12],
                         validation_fraction=0.25)


def _args(dataset: Path, run: Path, *extra: str) -> list[str]:
    return [str(dataset), "--run-dir", str(run), "--preset", "tiny", "--batch-size", "4", "--device", "cpu",
            "--progress", "false", "--checkpoint-every", "4", *extra]


def test_trains_checkpoints_and_loads(dataset: Path, tmp_path: Path, capsys) -> None:
    assert main(_args(dataset, tmp_path / "run", "--steps", "6")) == 0
    out = capsys.readouterr().out
    assert "training windows" in out and "trained to step 6" in out
    config = read_run_config(tmp_path / "run")
    assert config["kind"] == "world_model" and config["model"]["image_size"] == 16
    scale = config["model"]["action_scale"]
    assert len(scale) == 2 and all(0.15 < s <= 0.2 for s in scale)  # the data's largest |action| per component
    model = load_world_model(tmp_path / "run")
    assert not model.training
    with torch.no_grad():
        loss, _ = model(_one_window(dataset))
    assert torch.isfinite(loss)


def _one_window(dataset: Path):
    from dmo_ros.dataset.loaders import WindowDataset, collate

    windows = WindowDataset(dataset, context=4, horizon=1, split="all")
    return collate([windows[0], windows[1]])


def test_resume_continues_exactly(dataset: Path, tmp_path: Path) -> None:
    """4 steps, then the same command to 8, equals 8 steps at once (noise levels and noise included)."""
    assert main(_args(dataset, tmp_path / "whole", "--steps", "8")) == 0
    assert main(_args(dataset, tmp_path / "split", "--steps", "4")) == 0
    assert main(_args(dataset, tmp_path / "split", "--steps", "8")) == 0
    whole, split = load_model_weights(tmp_path / "whole"), load_model_weights(tmp_path / "split")
    for name, value in whole.items():
        torch.testing.assert_close(split[name], value, rtol=0, atol=1e-6)
    meta = json.loads((tmp_path / "split/checkpoints/step_00000008/meta.json").read_text())
    assert meta["step"] == 8


def test_bad_inputs_exit_2_with_a_message(dataset: Path, tmp_path: Path, capsys) -> None:
    assert main([str(tmp_path / "nothing"), "--run-dir", str(tmp_path / "r"), "--preset", "tiny"]) == 2
    assert "no dataset here" in capsys.readouterr().err
    assert main(_args(dataset, tmp_path / "r", "--steps", "0")) == 2
    assert "steps must be at least 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(_args(dataset, tmp_path / "r", "--preset", "huge"))
    # A finished run resumed with a different network is refused, not silently mixed.
    assert main(_args(dataset, tmp_path / "r2", "--steps", "2")) == 0
    assert main(_args(dataset, tmp_path / "r2", "--steps", "4", "--channels", "8", "8")) == 1
    assert "different model" in capsys.readouterr().err


def test_a_resume_with_another_preset_is_refused_before_the_model_line(dataset: Path, tmp_path: Path, capsys) -> None:
    """Before, "0.08 M parameters (cpu preset)" (the tiny run's model under the preset given now) came first."""
    assert main(_args(dataset, tmp_path / "run", "--steps", "2")) == 0
    capsys.readouterr()
    other = [a if a != "tiny" else "cpu" for a in _args(dataset, tmp_path / "run", "--steps", "4")]
    assert main(other) == 2
    captured = capsys.readouterr()
    assert "M parameters" not in captured.out and "cpu preset" not in captured.out, captured.out
    assert "holds a run trained with --preset tiny (given now: cpu)" in captured.err
