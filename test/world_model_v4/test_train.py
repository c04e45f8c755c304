"""``dmo-train-tokenizer``, ``dmo-train-dynamics`` and ``dmo-world-model-v4-report`` with the tiny preset: they
train, checkpoint, resume exactly, load, report (JSON and pictures), and refuse bad input with a message."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dmo_ros.dataset.format import write_dataset
from dmo_ros.training import load_model_weights, read_run_config
from dmo_ros.world_model_v4.imagination import WorldModelV4Env
from dmo_ros.world_model_v4.model import is_world_model_v4, load_tokenizer, load_world_model_v4
from dmo_ros.world_model_v4.report import main as report_main
from dmo_ros.world_model_v4.report import roc_auc
from dmo_ros.world_model_v4.train import dynamics_main, tokenizer_main


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """Five 14-sample episodes of 16 x 16 frames, 3-D Go2-like actions and intent labels."""
    rng = np.random.default_rng(0)
    n = 70
    frames = rng.integers(0, 255, (n, 16, 16, 3), dtype=np.uint8)
    frames[::7, 4:8, 4:8] = (240, 110, 10)  # an orange cube now and then (the permanence test's detector)
    actions = rng.uniform(-0.5, 0.5, (n, 3)).astype(np.float32)
    intent = rng.random(n) < 0.4
    return write_dataset(tmp_path_factory.mktemp("data") / "ds", frames, actions, [14] * 5, intent=intent,
                         validation_fraction=0.4, extra_meta={"robot": "go2"})


def _common(run: Path, *extra: str) -> list[str]:
    return ["--run-dir", str(run), "--preset", "tiny", "--batch-size", "4", "--device", "cpu", "--progress",
            "false", "--checkpoint-every", "4", "--val-every", "4", *extra]


@pytest.fixture(scope="module")
def tokenizer_run(dataset: Path, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("tokenizer") / "run"
    assert tokenizer_main([str(dataset), *_common(run, "--steps", "4")]) == 0
    return run


def test_tokenizer_trains_and_loads(tokenizer_run: Path) -> None:
    config = read_run_config(tokenizer_run)
    assert config["kind"] == "world_model_v4_tokenizer" and config["model"]["image_size"] == 16
    tokenizer = load_tokenizer(tokenizer_run)
    assert tokenizer.encode(torch.zeros(1, 3, 16, 16, dtype=torch.uint8)).shape == (1, 4, 8)
    assert not is_world_model_v4(tokenizer_run)


def test_dynamics_trains_resumes_exactly_loads_and_steps(dataset: Path, tokenizer_run: Path, tmp_path: Path,
                                                         capsys) -> None:
    args = [str(dataset), "--tokenizer", str(tokenizer_run)]
    assert dynamics_main([*args, *_common(tmp_path / "whole", "--steps", "8")]) == 0
    assert "trained to step 8" in capsys.readouterr().out
    assert dynamics_main([*args, *_common(tmp_path / "split", "--steps", "4")]) == 0
    assert dynamics_main([str(dataset), *_common(tmp_path / "split", "--steps", "8")]) == 0  # resumes its own copy
    assert "resuming" in capsys.readouterr().out
    whole, split = load_model_weights(tmp_path / "whole"), load_model_weights(tmp_path / "split")
    assert any(name.startswith("tokenizer.") for name in whole)  # the run holds the whole world model
    for name, value in whole.items():
        torch.testing.assert_close(split[name], value, rtol=0, atol=1e-6)
    config = read_run_config(tmp_path / "whole")
    assert config["kind"] == "world_model_v4" and len(config["model"]["action_scale"]) == 3
    assert is_world_model_v4(tmp_path / "whole")
    model = load_world_model_v4(tmp_path / "whole")
    env = WorldModelV4Env(model)
    env.reset(torch.zeros(2, 3, 3, 16, 16, dtype=torch.uint8), torch.zeros(2, 3, 3))
    frames, rewards = env.step(torch.zeros(2, 3))
    assert frames.shape == (2, 3, 16, 16) and rewards.shape == (2,)

    output, pictures = tmp_path / "report.json", tmp_path / "pictures"
    assert report_main([str(tmp_path / "whole"), str(dataset), "--windows", "3", "--horizon", "2",
                        "--permanence-windows", "2", "--context", "5", "--output", str(output),
                        "--out", str(pictures), "--pictures", "2"]) == 0
    text = capsys.readouterr().out
    assert "copy-last" in text and "reward token: intent AUC" in text and "action shuffle" in text
    assert f"wrote {pictures / 'rollout.gif'}, rollout.png, fidelity.png" in text
    report = json.loads(output.read_text())
    assert len(report["fidelity"]["mse_model"]) == 2 and report["reward"]["frames"] > 0
    check_report_pictures(pictures, windows=2, context=5, horizon=2, side=16 * 8)  # 16 px upscaled to 128
    assert report_main([str(tmp_path / "whole"), str(dataset), "--pictures", "-1"]) == 2
    assert "--pictures must be at least 0" in capsys.readouterr().err


def check_report_pictures(folder: Path, windows: int, context: int, horizon: int, side: int) -> None:
    """The v4 report's pictures: their geometry, and real and imagined frames where they belong."""
    gif = Image.open(folder / "rollout.gif")
    assert gif.n_frames == context + horizon  # the context plays first, then the imagined steps
    assert gif.size == (2 * side + 2, 12 + windows * (side + 2))  # [real | imagined] x windows rows
    for t in range(gif.n_frames):
        gif.seek(t)
        frame = np.asarray(gif.convert("RGB"))[12:]
        left, right = frame[:, :side], frame[:, side + 2:]
        assert (t < context) == np.array_equal(left, right), t  # the context on both sides, then they differ

    strip = np.asarray(Image.open(folder / "rollout.png").convert("RGB"))
    cell, band = side + 2, 2 * (side + 2) + 8
    assert strip.shape == (12 + windows * band, 64 + (horizon + 1) * cell, 3)
    assert strip.std() > 20  # frames, not a blank canvas
    for window in range(windows):
        top = 12 + window * band
        real, imagined = (strip[top + r * cell: top + r * cell + side, 64:] for r in (0, 1))
        assert real[:, :side].std() > 0
        np.testing.assert_array_equal(real[:, :side], imagined[:, :side])  # t=0: the last real context frame
        assert not np.array_equal(real[:, cell:], imagined[:, cell:])  # the horizon: real vs imagined
    assert Image.open(folder / "fidelity.png").size[0] > 300


def test_a_resume_with_another_tokenizer_is_refused(dataset: Path, tokenizer_run: Path, tmp_path: Path,
                                                    capsys) -> None:
    """The run keeps its own copy of the tokenizer; a resume given another --tokenizer swapped it in silently and
    recorded only the new one."""
    import shutil

    assert dynamics_main([str(dataset), "--tokenizer", str(tokenizer_run), *_common(tmp_path / "r", "--steps", "2")]) \
        == 0
    other = tmp_path / "other_tokenizer"
    shutil.copytree(tokenizer_run, other)
    capsys.readouterr()
    assert dynamics_main([str(dataset), "--tokenizer", str(other), *_common(tmp_path / "r", "--steps", "4")]) == 2
    err = capsys.readouterr().err
    assert f"--tokenizer {tokenizer_run.resolve()} (given now: {other.resolve()})" in err and "Traceback" not in err
    assert dynamics_main([str(dataset), "--tokenizer", str(tokenizer_run),
                          *_common(tmp_path / "r", "--steps", "4")]) == 0  # the same one resumes


def test_bad_inputs_exit_2_with_a_message(dataset: Path, tokenizer_run: Path, tmp_path: Path, capsys) -> None:
    assert dynamics_main([str(dataset), *_common(tmp_path / "r", "--steps", "2")]) == 2
    assert "--tokenizer is required" in capsys.readouterr().err
    assert dynamics_main([str(dataset), "--tokenizer", str(tmp_path / "none"), *_common(tmp_path / "r")]) == 2
    assert tokenizer_main([str(tmp_path / "nothing"), *_common(tmp_path / "t")]) == 2
    assert "no dataset here" in capsys.readouterr().err
    assert dynamics_main([str(dataset), "--tokenizer", str(tokenizer_run), *_common(tmp_path / "r"),
                          "--l-init", "99"]) == 2
    assert "l_init" in capsys.readouterr().err
    assert report_main([str(tokenizer_run), str(dataset)]) == 2
    assert "not a dmo-train-dynamics run" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        tokenizer_main([str(dataset), "--preset", "huge"])


def _other_dataset(folder: Path, robot: str, size: int, action_size: int) -> Path:
    """Like ``dataset`` (five 14-sample episodes) with another robot, frame size or action size."""
    rng = np.random.default_rng(1)
    n = 70
    return write_dataset(folder, rng.integers(0, 255, (n, size, size, 3), dtype=np.uint8),
                         rng.uniform(-0.5, 0.5, (n, action_size)).astype(np.float32), [14] * 5,
                         intent=rng.random(n) < 0.4, validation_fraction=0.4, extra_meta={"robot": robot})


# The tokenizer's data: robot go2, 16x16 frames, 3 action components (the `dataset` fixture).
OTHER_DATA = {"robot": ("pusht", 16, 3, "robot"), "image_size": ("go2", 24, 3, "frame size"),
              "action_size": ("go2", 16, 2, "action size"),
              "all": ("pusht", 24, 2, "robot, frame size and action size")}


@pytest.mark.parametrize("variant", sorted(OTHER_DATA))
def test_dynamics_refuses_a_tokenizer_trained_on_other_data(variant: str, tokenizer_run: Path, tmp_path: Path,
                                                           capsys) -> None:
    """Before, `dmo-train-dynamics datasets/t --tokenizer runs/tok` trained a Push-T model on a Go2 tokenizer."""
    robot, size, action_size, differ = OTHER_DATA[variant]
    other = _other_dataset(tmp_path / "other", robot, size, action_size)
    run = tmp_path / "run"
    assert dynamics_main([str(other), "--tokenizer", str(tokenizer_run), *_common(run)]) == 2
    err = capsys.readouterr().err
    assert (f"the tokenizer {tokenizer_run} was trained on other data (robot go2, 16x16 frames, 3 action components) "
            f"than {other} (robot {robot}, {size}x{size} frames, {action_size} action components): another {differ};"
            ) in err, err
    assert f"dmo-train-tokenizer {other} --run-dir runs/v4_tokenizer_{robot}" in err  # the fix
    assert not run.exists()  # refused before anything was trained or written


def test_a_tokenizer_run_without_its_action_size_is_checked_against_its_recorded_datasets(
        tokenizer_run: Path, tmp_path: Path, capsys) -> None:
    """A tokenizer run from before its config recorded the action size (nor, older still, the robot)."""
    old = tmp_path / "old_tokenizer"
    shutil.copytree(tokenizer_run, old)
    config = json.loads((old / "config.json").read_text())
    del config["action_size"], config["robot"]
    (old / "config.json").write_text(json.dumps(config))
    other = _other_dataset(tmp_path / "other", "pusht", 16, 2)
    assert dynamics_main([str(other), "--tokenizer", str(old), *_common(tmp_path / "run")]) == 2
    assert "trained on other data (robot go2, 16x16 frames, 3 action components)" in capsys.readouterr().err


def test_reward_post_training_refuses_a_run_of_another_robot(dataset: Path, tokenizer_run: Path, tmp_path: Path,
                                                             capsys) -> None:
    pretrained = tmp_path / "pretrained"
    assert dynamics_main([str(dataset), "--tokenizer", str(tokenizer_run), *_common(pretrained, "--steps", "2")]) == 0
    other = _other_dataset(tmp_path / "other", "pusht", 16, 3)  # the same sizes as the Go2 data
    post = tmp_path / "post"
    assert dynamics_main([str(other), "--post-train-reward", str(pretrained), *_common(post)]) == 2
    assert "was trained on robot go2's data; the datasets are of robot pusht" in capsys.readouterr().err
    assert not post.exists()


def test_roc_auc() -> None:
    assert roc_auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])) == 0.75
    assert roc_auc(np.array([0.5, 0.5]), np.array([0, 1])) == 0.5
    assert np.isnan(roc_auc(np.array([0.1, 0.2]), np.array([1, 1])))


def test_reward_post_training_trains_only_the_reward_token_and_learns_the_labels(dataset: Path, tokenizer_run: Path,
                                                                                 tmp_path: Path, capsys) -> None:
    """The post-training stage: the reward token and head learn the intent labels at the context noise level,
    everything else (tokenizer, transformer: the imagined frames) stays bitwise the pretrained model's."""
    from dmo_ros.world_model_v4.dynamics import LatentWindow
    from dmo_ros.world_model_v4.train import LatentWindows, encode_dataset

    pretrained = tmp_path / "pretrained"
    assert dynamics_main([str(dataset), "--tokenizer", str(tokenizer_run),
                          *_common(pretrained, "--steps", "4")]) == 0
    post = tmp_path / "post"
    assert dynamics_main([str(dataset), "--post-train-reward", str(pretrained),
                          *_common(post, "--steps", "60", "--lr", "1e-2")]) == 0
    assert "reward post-training of" in capsys.readouterr().out
    before, after = load_model_weights(pretrained), load_model_weights(post)
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert changed and all(n.startswith(("dynamics.reward_token", "dynamics.reward_head.")) for n in changed), changed
    assert read_run_config(post)["post_trained_from"] == str(pretrained)

    def reward_bce(run: Path) -> float:  # the stage's own loss on the training windows (the labels are random)
        model = load_world_model_v4(run)
        latents = encode_dataset(model.tokenizer, dataset)
        windows = LatentWindows(dataset, latents, model.config.context, "train")
        batch = LatentWindow.collate([windows[i] for i in range(len(windows))])
        torch.manual_seed(0)
        with torch.no_grad():
            return float(model.dynamics.reward_loss(batch)[1]["reward_bce"])

    assert reward_bce(post) < 0.8 * reward_bce(pretrained)
    # Resuming continues the same stage; a post-training run cannot be re-pointed at another source.
    assert dynamics_main([str(dataset), *_common(post, "--steps", "64")]) == 0
    assert "resuming" in capsys.readouterr().out
    assert dynamics_main([str(dataset), "--post-train-reward", str(tokenizer_run), *_common(post)]) == 2
    assert "not post-trained from" in capsys.readouterr().err
