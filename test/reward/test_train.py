"""``dmo-train-reward``: the real CLI with the tiny preset — trains, checkpoints, resumes, refuses bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dmo_ros.dataset.format import write_dataset
from dmo_ros.reward.energy import load_reward_model
from dmo_ros.reward.train import main
from dmo_ros.training import load_model_weights, read_run_config


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """Five 12-sample episodes of 16x16 frames: a dark bar sweeping right over noise; intent on samples 2..9."""
    rng = np.random.default_rng(0)
    frames = rng.integers(120, 140, (60, 16, 16, 3), dtype=np.uint8)
    for k in range(60):
        frames[k, :, (k % 12): (k % 12) + 2] = 10
    intent = np.tile(np.r_[np.zeros(2), np.ones(8), np.zeros(2)].astype(bool), 5)
    return write_dataset(tmp_path_factory.mktemp("data") / "ds", frames, np.zeros((60, 2), np.float32), [12] * 5,
                         intent=intent, validation_fraction=0.2)


def _args(dataset: Path, run: Path, *extra: str) -> list[str]:
    return [str(dataset), "--run-dir", str(run), "--preset", "tiny", "--batch-size", "8", "--device", "cpu",
            "--progress", "false", "--checkpoint-every", "3", *extra]


def test_trains_checkpoints_and_loads(dataset: Path, tmp_path: Path, capsys) -> None:
    assert main(_args(dataset, tmp_path / "run", "--steps", "4")) == 0
    out = capsys.readouterr().out
    assert "reward model:" in out and "trained to step 4" in out and "dmo-reward-eval" in out
    config = read_run_config(tmp_path / "run")
    assert config["kind"] == "reward" and config["preset"] == "tiny" and config["intent_only"] is False
    assert config["model"]["image_size"] == 16  # from the data, not the preset's 64
    assert config["train"]["steps"] == 4 and config["train"]["batch_size"] == 8
    assert (tmp_path / "run" / "checkpoints" / "step_00000004" / "model.safetensors").is_file()
    model = load_reward_model(tmp_path / "run")
    assert int(model.calibration_updates) == 4  # the reward scale travels in the weights file
    assert model.energy_gap.item() != 1.0 and model.reward_scale().item() > 0
    x = torch.zeros(2, 3, 16, 16)
    assert torch.isfinite(model.energy(x, x, x)).all()


def test_the_run_config_records_its_inputs_as_absolute_paths(dataset: Path, tmp_path: Path, monkeypatch) -> None:
    """Given relative to the working directory, the dataset is still named when the record is read elsewhere."""
    monkeypatch.chdir(dataset.parent)
    assert main(_args(Path(dataset.name), tmp_path / "run", "--steps", "1")) == 0
    assert read_run_config(tmp_path / "run")["datasets"] == [str(dataset.resolve())]


def test_resume_continues_exactly(dataset: Path, tmp_path: Path) -> None:
    """3 steps, then the same command to 6, equals 6 steps at once (the fresh pair draws included)."""
    assert main(_args(dataset, tmp_path / "whole", "--steps", "6")) == 0
    assert main(_args(dataset, tmp_path / "split", "--steps", "3")) == 0
    assert main(_args(dataset, tmp_path / "split", "--steps", "6")) == 0
    whole, split = load_model_weights(tmp_path / "whole"), load_model_weights(tmp_path / "split")
    assert whole.keys() == split.keys()
    for key in whole:
        torch.testing.assert_close(whole[key], split[key], msg=key)


def test_a_resume_with_another_preset_is_refused_before_training(dataset: Path, tmp_path: Path, capsys) -> None:
    assert main(_args(dataset, tmp_path / "run", "--steps", "3")) == 0
    other = ["cpu" if arg == "tiny" else arg for arg in _args(dataset, tmp_path / "run", "--steps", "6")]
    assert main(other) == 1
    assert "holds a run trained with --preset tiny (given now: cpu)" in capsys.readouterr().err
    assert read_run_config(tmp_path / "run")["preset"] == "tiny"


def test_options_override_the_preset(dataset: Path, tmp_path: Path) -> None:
    args = _args(dataset, tmp_path / "run", "--steps", "2", "--channels", "8", "8", "--max-span", "5",
                 "--intent-only", "--lr", "0.01")
    assert main(args) == 0
    config = read_run_config(tmp_path / "run")
    assert config["model"]["channels"] == [8, 8] and config["model"]["max_span"] == 5
    assert config["intent_only"] is True and config["train"]["lr"] == 0.01


def test_bad_input_exits_with_2(dataset: Path, tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(_args(dataset, tmp_path / "a", "--preset", "huge"))
    assert exit_info.value.code == 2
    assert main(_args(dataset, tmp_path / "b", "--min-span", "0")) == 2
    assert "min_span" in capsys.readouterr().err
    assert main(_args(tmp_path / "nothing", tmp_path / "c")) == 2
    assert "no dataset here" in capsys.readouterr().err
    assert main(_args(dataset, tmp_path / "d", "--min-span", "12", "--max-span", "20")) == 2
    assert "no training episode of more than 12 samples" in capsys.readouterr().err
    # A run folder of another kind is not resumed as a reward model.
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text('{"kind": "world_model", "model": {}}')
    assert main(_args(dataset, tmp_path / "other")) == 2
    assert "not a reward model" in capsys.readouterr().err
