"""PSNR / SSIM against known values; the open-loop fidelity report and its command line on a tiny dataset."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dmo_ros.dataset.format import write_dataset
from dmo_ros.world_model.config import SamplerConfig, WorldModelConfig
from dmo_ros.world_model.denoiser import Denoiser
from dmo_ros.world_model.fidelity import fidelity_report, main, psnr, ssim

SIZE, L = 16, 4


# -- metrics ------------------------------------------------------------------------------------


def test_psnr_known_values() -> None:
    a = torch.rand(2, 3, 8, 8)
    assert torch.isinf(psnr(a, a)).all() and psnr(a, a).shape == (2,)
    zeros = torch.zeros(3, 8, 8)
    assert psnr(zeros, zeros + 0.1).item() == pytest.approx(20.0)  # MSE 0.01 -> 10 log10(1 / 0.01)
    assert psnr(zeros, zeros + 0.5).item() == pytest.approx(10 * math.log10(4))
    assert psnr(zeros * 255, zeros + 25.5, data_range=255).item() == pytest.approx(20.0)


def test_ssim_known_values() -> None:
    g = torch.Generator().manual_seed(0)
    a = torch.rand(2, 3, 16, 16, generator=g)
    torch.testing.assert_close(ssim(a, a), torch.ones(2, dtype=torch.float64))
    # Two flat images: no structure, so SSIM is the luminance term (2 mu_a mu_b + C1) / (mu_a^2 + mu_b^2 + C1).
    c1 = 0.01**2
    flat = ssim(torch.full((3, 16, 16), 0.2), torch.full((3, 16, 16), 0.6)).item()
    assert flat == pytest.approx((2 * 0.2 * 0.6 + c1) / (0.2**2 + 0.6**2 + c1), rel=1e-6)  # float32 inputs
    noisy = (a + 0.2 * torch.randn(a.shape, generator=g)).clamp(0, 1)
    worse = (a + 0.5 * torch.randn(a.shape, generator=g)).clamp(0, 1)
    assert (ssim(a, worse) < ssim(a, noisy)).all() and (ssim(a, noisy) < 1).all()
    torch.testing.assert_close(ssim(a, noisy), ssim(noisy, a))  # symmetric
    assert ssim(a[:, :, :6, :6], noisy[:, :, :6, :6]).shape == (2,)  # smaller than the 11-pixel window


# -- report --------------------------------------------------------------------------------------


def moving_square_dataset(folder: Path, validation_fraction: float = 0.3) -> Path:
    """Five 20-sample episodes of a square pushed around by 2-D actions (the report needs real windows)."""
    rng = np.random.default_rng(0)
    lengths = [20] * 5
    n = sum(lengths)
    actions = rng.choice([-0.2, 0.0, 0.2], size=(n, 2)).astype(np.float32)
    frames = np.zeros((n, SIZE, SIZE, 3), np.uint8)
    frames[:] = (20, 30, 60)
    position = np.array([6, 6])
    for i in range(n):
        frames[i, position[1] : position[1] + 4, position[0] : position[0] + 4] = (250, 200, 40)
        position = np.clip(position + np.round(actions[i] / 0.1).astype(int), 0, SIZE - 4)
    return write_dataset(folder, frames, actions, lengths, validation_fraction=validation_fraction)


def untrained() -> Denoiser:
    torch.manual_seed(0)
    return Denoiser(WorldModelConfig.preset("tiny", 2, [0.2, 0.2], image_size=SIZE))


def test_report_writes_json_plot_and_gif(tmp_path: Path, capsys) -> None:
    dataset = moving_square_dataset(tmp_path / "ds")
    report = fidelity_report(untrained(), dataset, tmp_path / "out", horizon=5, windows=6,
                             sampler_config=SamplerConfig(num_steps=2), batch_size=4, gif_rollouts=3)
    saved = json.loads((tmp_path / "out/fidelity.json").read_text())
    assert saved == json.loads(json.dumps(report))
    assert saved["split"] == "val" and saved["windows"] == 6 and saved["steps"] == [1, 2, 3, 4, 5]
    assert saved["counts"] == [6] * 5 and len(saved["psnr"]) == len(saved["ssim"]) == 5
    assert all(math.isfinite(v) for v in saved["psnr"] + saved["ssim"] + saved["baseline_last_frame"]["psnr"])
    assert all(-1 <= v <= 1 for v in saved["ssim"])
    assert len(saved["mse"]) == 5 and all(0 < v < 1 for v in saved["mse"])
    assert all(v <= saved["psnr_cap_db"] for v in saved["psnr"] + saved["baseline_last_frame"]["psnr"])
    assert saved["psnr_cap_db"] == pytest.approx(58.92, abs=0.01)  # uint8 rounding noise alone
    assert Image.open(tmp_path / "out/fidelity.png").size[0] > 300
    gif = Image.open(tmp_path / "out/rollout.gif")
    assert gif.n_frames == L + 5  # the context, then the 5 open-loop steps
    assert gif.size == (2 * 3 * SIZE + 2, 12 + 3 * (3 * SIZE + 2))  # [real | imagined] x 3 rows, upscaled x3
    out = capsys.readouterr().out
    assert "PSNR" in out and "last-frame" in out and "wrote" in out


def test_report_falls_back_to_training_episodes(tmp_path: Path, capsys) -> None:
    dataset = moving_square_dataset(tmp_path / "ds", validation_fraction=0.0)
    report = fidelity_report(untrained(), dataset, tmp_path / "out", horizon=3, windows=2,
                             sampler_config=SamplerConfig(num_steps=1))
    assert report["split"] == "train" and "using training episodes" in capsys.readouterr().out
    with pytest.raises(ValueError, match="lower the horizon"):
        fidelity_report(untrained(), dataset, tmp_path / "out", horizon=30)


def test_command_line_on_a_trained_run(tmp_path: Path, capsys) -> None:
    from dmo_ros.world_model.train import main as train_main

    dataset = moving_square_dataset(tmp_path / "ds")
    run = tmp_path / "run"
    assert train_main([str(dataset), "--run-dir", str(run), "--preset", "tiny", "--steps", "2", "--batch-size", "4",
                       "--device", "cpu", "--progress", "false"]) == 0
    assert main([str(run), "--dataset", str(dataset), "--horizon", "3", "--windows", "2", "--steps", "1",
                 "--device", "cpu"]) == 0
    assert json.loads((run / "fidelity/fidelity.json").read_text())["horizon"] == 3
    assert main([str(run), "--dataset", str(dataset), "--horizon", "3", "--windows", "2", "--steps", "1",
                 "--device", "cpu", "--change-threshold", "4", "--bf16"]) == 0
    sampler = json.loads((run / "fidelity/fidelity.json").read_text())["sampler"]
    assert sampler["change_threshold"] == 4 and sampler["bf16"] is True
    capsys.readouterr()
    assert main([str(tmp_path / "nothing"), "--dataset", str(dataset)]) == 2
    assert "not a training run folder" in capsys.readouterr().err
    assert main([str(run), "--dataset", str(tmp_path / "none")]) == 2
    assert "not a dmo_ros dataset" in capsys.readouterr().err
    # --steps 0 silently ran the model's own sampler_steps; it is refused like --steps -2
    assert main([str(run), "--dataset", str(dataset), "--horizon", "3", "--windows", "2", "--steps", "0",
                 "--device", "cpu"]) == 2
    assert "num_steps must be at least 1, got 0" in capsys.readouterr().err


def orange_cube_dataset(folder: Path, constant_actions: bool = False) -> Path:
    """A go2-labelled dataset: an orange square (the Push Cube stand-in's cube colour) moved by 2-D actions."""
    rng = np.random.default_rng(1)
    lengths = [20] * 5
    n = sum(lengths)
    actions = (np.full((n, 2), 0.2) if constant_actions else rng.choice([-0.2, 0.0, 0.2], size=(n, 2)))
    frames = np.full((n, SIZE, SIZE, 3), (90, 110, 90), np.uint8)
    position = np.array([6, 6])
    for i in range(n):
        frames[i, position[1] : position[1] + 3, position[0] : position[0] + 3] = (242, 115, 25)
        position = (position + np.round(actions[i] / 0.1).astype(int)) % (SIZE - 3)
    return write_dataset(folder, frames, actions.astype(np.float32), lengths, validation_fraction=0.3,
                         extra_meta={"robot": "go2"})


def test_cube_scores_of_known_imagined_frames() -> None:
    from dmo_ros.world_model.fidelity import _position_report, _score_cube

    real = torch.full((1, 3, 3, SIZE, SIZE), -0.3)
    real[0, 0, :, 4:7, 4:7] = torch.tensor([0.9, -0.1, -0.8])[:, None, None]  # step 1: the cube at (5, 5)
    real[0, 1, :, 4:7, 8:11] = torch.tensor([0.9, -0.1, -0.8])[:, None, None]  # step 2: at (9, 5); step 3: none
    imagined = real.clone()
    imagined[0, 1] = -0.3
    imagined[0, 1, :, 4:7, 10:13] = torch.tensor([0.9, -0.1, -0.8])[:, None, None]  # 2 px right of the real one
    imagined[0, 2, :, 0:3, 0:3] = torch.tensor([0.9, -0.1, -0.8])[:, None, None]  # a cube the real frame lacks
    scores: dict[str, list[np.ndarray]] = {"cube_visible": [], "cube_phantom": [], "cube_error": []}
    _score_cube(imagined, real, scores)
    report = _position_report(scores)
    assert report["cube_visible"][:2] == [1.0, 1.0] and math.isnan(report["cube_visible"][2])
    assert report["cube_error"][0] == pytest.approx(0.0) and report["cube_error"][1] == pytest.approx(2.0)
    assert math.isnan(report["cube_phantom"][0]) and report["cube_phantom"][2] == 1.0
    blank = torch.full_like(real, -0.3)
    scores = {"cube_visible": [], "cube_phantom": [], "cube_error": []}
    _score_cube(blank, real, scores)
    assert _position_report(scores)["cube_visible"][:2] == [0.0, 0.0]  # the model lost the cube


def test_report_on_go2_frames_reads_the_cube_and_replays_shuffled_actions(tmp_path: Path, capsys) -> None:
    report = fidelity_report(untrained(), orange_cube_dataset(tmp_path / "ds"), tmp_path / "out", horizon=4,
                             windows=6, sampler_config=SamplerConfig(num_steps=1), batch_size=3)
    assert len(report["cube_visible"]) == len(report["cube_error"]) == len(report["mse_shuffled_actions"]) == 4
    assert all(math.isnan(v) or 0 <= v <= 1 for v in report["cube_visible"] + report["cube_phantom"])
    assert report["shuffled_over_true_mse"] > 0 and "agent_visible" not in report
    out = capsys.readouterr().out
    assert "cube kept" in out and "actions shuffled between windows" in out
    # with every window's actions alike, shuffling changes nothing: the same noise gives the same frames
    same = fidelity_report(untrained(), orange_cube_dataset(tmp_path / "same", constant_actions=True),
                           tmp_path / "out2", horizon=4, windows=6, sampler_config=SamplerConfig(num_steps=2),
                           batch_size=3)
    assert same["shuffled_over_true_mse"] == pytest.approx(1.0, abs=1e-12)
    assert same["mse_shuffled_actions"] == pytest.approx(same["mse"], abs=1e-12)
