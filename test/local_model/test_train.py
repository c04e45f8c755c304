"""``dmo-train-local-model``: the real CLI, tiny preset — labels, trains, checkpoints, resumes, refuses bad input."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch

from dmo_ros.dataset.format import write_dataset
from dmo_ros.local_model.model import load_local_model
from dmo_ros.local_model.train import label_rewards, main
from dmo_ros.reward.config import RewardConfig
from dmo_ros.reward.energy import EnergyNet, GoalReward, load_reward_model
from dmo_ros.training import load_model_weights, read_run_config
from dmo_ros.training.checkpoint import save_checkpoint, write_run_config

SAMPLES = 48


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: on a busy shared machine a second one mostly spins (tens of times slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """Four 12-sample episodes of 16x16 frames (a bright column sweeping right) and 2-D actions up to 0.2."""
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 60, (SAMPLES, 16, 16, 3), dtype=np.uint8)
    for k in range(SAMPLES):
        frames[k, :, k % 12 : k % 12 + 3] = 220
    actions = rng.uniform(-0.2, 0.2, (SAMPLES, 2)).astype(np.float32)
    return write_dataset(tmp_path_factory.mktemp("data") / "ds", frames, actions, [12] * 4, validation_fraction=0.25)


@pytest.fixture(scope="module")
def reward_run(tmp_path_factory) -> tuple[Path, Path]:
    """An (untrained, randomly initialised) tiny reward model run and a goal picture: labels need not be good."""
    torch.manual_seed(0)
    run = tmp_path_factory.mktemp("reward")
    model = EnergyNet(RewardConfig.preset("tiny", image_size=16))
    write_run_config(run, {"kind": "reward", "model": asdict(model.config)})
    save_checkpoint(run, 1, model.state_dict(), {"step": 1}, {})
    goal = run / "goal.npy"
    np.save(goal, np.full((16, 16, 3), 200, np.uint8))
    return run, goal


def _args(dataset: Path, run: Path, *extra: str) -> list[str]:
    return [str(dataset), "--run-dir", str(run), "--preset", "tiny", "--batch-size", "4", "--device", "cpu",
            "--progress", "false", "--checkpoint-every", "3", *extra]


def _intent_reward_run(folder: Path) -> Path:
    """An (untrained) tiny ``dmo-train-reward --objective intent`` run of 16 px frames."""
    from dmo_ros.reward.intent import IntentRewardConfig, IntentRewardNet

    torch.manual_seed(0)
    model = IntentRewardNet(IntentRewardConfig.preset("tiny", image_size=16))
    write_run_config(folder, {"kind": "reward", "objective": "intent", "model": asdict(model.config)})
    save_checkpoint(folder, 1, model.state_dict(), {"step": 1}, {})
    return folder


def _labelled(dataset: Path, run: Path, reward_run: tuple[Path, Path], *extra: str) -> list[str]:
    return _args(dataset, run, "--reward-run", str(reward_run[0]), "--goal", str(reward_run[1]), *extra)


def test_labels_trains_checkpoints_and_loads(dataset: Path, reward_run, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    assert main(_labelled(dataset, run, reward_run, "--steps", "4")) == 0
    out = capsys.readouterr().out
    assert "labelling 48 samples" in out and "trained to step 4" in out
    assert "single-step accuracy (validation)" in out and "next_latent_error" in out and "reward_error" in out
    config = read_run_config(run)
    assert config["kind"] == "local_model" and config["model"]["image_size"] == 16
    assert config["sequence_length"] == 6 and config["train"]["steps"] == 4
    assert all(0.15 < s <= 0.2 for s in config["model"]["action_scale"])  # from the data's largest |action|
    # The labels are the global reward of each frame (a function of the frame and the goal), saved in the run.
    index = json.loads((run / "rewards.json").read_text())
    entry = index[str(dataset.resolve())]
    labels = np.load(run / entry["file"])
    assert entry["file"] == "rewards_ds.npy" and labels.shape == (SAMPLES,) and entry["samples"] == SAMPLES
    goal_reward = GoalReward(load_reward_model(reward_run[0]), np.load(reward_run[1]))
    np.testing.assert_allclose(labels, label_rewards(goal_reward, dataset, batch_size=5), rtol=1e-4, atol=1e-5)
    model = load_local_model(run)
    assert not model.training and model.config.stoch_size == 8


def test_an_intent_reward_labels_without_a_goal_picture(dataset: Path, tmp_path: Path, capsys) -> None:
    """A ``dmo-train-reward --objective intent`` run labels each frame with P(intent) + milestone; no --goal."""
    from dmo_ros.reward.intent import IntentReward

    reward = _intent_reward_run(tmp_path / "intent")
    run = tmp_path / "run"
    assert main(_args(dataset, run, "--reward-run", str(reward), "--steps", "2")) == 0
    assert "labelling 48 samples" in capsys.readouterr().out
    assert read_run_config(run)["labels"]["goal"] is None
    labels = np.load(run / json.loads((run / "rewards.json").read_text())[str(dataset.resolve())]["file"])
    np.testing.assert_allclose(labels, label_rewards(IntentReward(load_reward_model(reward)), dataset, batch_size=7),
                               rtol=1e-4, atol=1e-5)


def test_resume_continues_exactly_without_relabelling(dataset: Path, reward_run, tmp_path: Path, capsys) -> None:
    """3 steps, then to 6 (with no reward model given: the saved labels are used), equals 6 steps at once."""
    assert main(_labelled(dataset, tmp_path / "whole", reward_run, "--steps", "6")) == 0
    assert main(_labelled(dataset, tmp_path / "split", reward_run, "--steps", "3")) == 0
    capsys.readouterr()
    assert main(_args(dataset, tmp_path / "split", "--steps", "6")) == 0
    out = capsys.readouterr().out
    assert "labelling" not in out and "trained to step 6" in out
    whole, split = load_model_weights(tmp_path / "whole"), load_model_weights(tmp_path / "split")
    assert whole.keys() == split.keys()
    for key in whole:
        torch.testing.assert_close(whole[key], split[key], msg=key)


def test_label_rewards_with_a_stand_in_function(dataset: Path) -> None:
    """Any callable (frames, episode's first frame) -> rewards labels a dataset, batch by batch within episodes."""
    def column(frames: torch.Tensor, start: torch.Tensor) -> np.ndarray:
        assert frames.dtype == torch.uint8 and frames.shape[1:] == (3, 16, 16) and start.shape == (3, 16, 16)
        bright = (frames[:, 0, 0] > 200).float().argmax(-1)  # the column's position
        return (bright - (start[0, 0] > 200).float().argmax()).numpy()

    labels = label_rewards(column, dataset, batch_size=5)
    np.testing.assert_array_equal(labels, np.tile(np.arange(12, dtype=np.float32), 4))


def test_bad_inputs_exit_2_with_a_message(dataset: Path, reward_run, tmp_path: Path, capsys) -> None:
    assert main(_args(dataset, tmp_path / "a", "--steps", "2")) == 2
    assert "give --reward-run" in capsys.readouterr().err
    assert main(_args(dataset, tmp_path / "b", "--reward-run", str(reward_run[0]))) == 2
    assert "needs --goal" in capsys.readouterr().err
    assert main(_labelled(dataset, tmp_path / "c", reward_run, "--sequence-length", "1")) == 2
    assert "at least 2" in capsys.readouterr().err
    assert main(_labelled(dataset, tmp_path / "d", reward_run, "--steps", "0")) == 2
    assert "steps must be at least 1" in capsys.readouterr().err
    assert main(_labelled(tmp_path / "nothing", tmp_path / "e", reward_run)) == 2
    assert "no dataset here" in capsys.readouterr().err
    assert main(_labelled(dataset, tmp_path / "f", reward_run, "--sequence-length", "13")) == 2
    assert "no training sequence of 13 samples" in capsys.readouterr().err
    assert main(_labelled(dataset, reward_run[0], reward_run)) == 2  # a reward run is not resumed as a local model
    assert "not a local model" in capsys.readouterr().err
    assert main(_labelled(dataset, tmp_path / "g", reward_run, "--stoch-size", "0")) == 2
    assert "stoch_size" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(_labelled(dataset, tmp_path / "h", reward_run, "--preset", "huge"))
    assert exit_info.value.code == 2
    with pytest.raises(SystemExit) as exit_info:  # every option's help (the config docstrings) formats
        main(["--help"])
    assert exit_info.value.code == 0 and "--free-bits" in capsys.readouterr().out
    # A run resumed with a different network is refused, not silently mixed.
    assert main(_labelled(dataset, tmp_path / "i", reward_run, "--steps", "2")) == 0
    assert main(_args(dataset, tmp_path / "i", "--steps", "4", "--deter-size", "16")) == 1
    assert "different model" in capsys.readouterr().err


def _v4_run(folder: Path, image_size: int) -> Path:
    """An untrained tiny DreamerV4-style world model run (dmo-train-dynamics's folder layout)."""
    from dmo_ros.world_model_v4.config import DynamicsConfig, TokenizerConfig
    from dmo_ros.world_model_v4.model import WorldModelV4

    torch.manual_seed(0)
    tokenizer = TokenizerConfig.preset("tiny", image_size=image_size, patch_size=8)
    dynamics = DynamicsConfig.preset("tiny", action_size=2, action_scale=[0.2, 0.2], image_size=image_size,
                                     latent_tokens=tokenizer.latent_tokens, latent_dim=tokenizer.latent_dim)
    write_run_config(folder, {"kind": "world_model_v4", "model": asdict(dynamics), "tokenizer": asdict(tokenizer)})
    save_checkpoint(folder, 1, WorldModelV4(tokenizer, dynamics).state_dict(), {}, {})
    return folder


def test_a_dreamerv4_run_labels_with_its_reward_token(dataset: Path, tmp_path: Path, capsys) -> None:
    """Push Cube's local model learns the reward token's reward (DESIGN §6): no goal picture; each sample's label
    is the token's reward along its recorded episode (frames and actions), as imagination would read it."""
    from dmo_ros.world_model_v4.model import load_world_model_v4, reward_head_on_episodes

    v4 = _v4_run(tmp_path / "v4", 16)
    run = tmp_path / "run"
    assert main(_args(dataset, run, "--reward-run", str(v4), "--steps", "2")) == 0
    assert "labelling 48 samples" in capsys.readouterr().out
    entry = json.loads((run / "rewards.json").read_text())[str(dataset.resolve())]
    assert entry["source"] == {"reward_run": str(v4), "goal": None}
    labels = np.load(run / entry["file"])
    model = load_world_model_v4(v4)
    indices, head = reward_head_on_episodes(model, dataset)
    assert indices.tolist() == list(range(SAMPLES)) and head.shape == (SAMPLES, 2)
    np.testing.assert_allclose(labels, model.dynamics.reward(torch.from_numpy(head)).numpy(), rtol=1e-5, atol=1e-6)
    assert labels.std() > 1e-4  # read from each frame, not one constant

    # A world model of other frames is refused with what to do, before anything trains.
    assert main(_args(dataset, tmp_path / "other", "--reward-run", str(_v4_run(tmp_path / "v4_32", 32)))) == 2
    assert "16 px frames, the world model" in capsys.readouterr().err


def go2_dataset(folder: Path) -> Path:
    """A dataset of 4 random 12-sample Go2 episodes (16 x 16 frames, [vx, vy, yaw rate] actions), a quarter held out."""
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 255, (SAMPLES, 16, 16, 3), dtype=np.uint8)
    actions = rng.uniform(-0.3, 0.3, (SAMPLES, 3)).astype(np.float32)
    return write_dataset(folder, frames, actions, [12] * 4, validation_fraction=0.25, extra_meta={"robot": "go2"})


def test_a_go2_model_is_gated_on_the_push_cube_stand_in_at_the_end(tmp_path: Path, capsys) -> None:
    """On Go2 data the trainer ends with the local-model gate as on Push-T: probes on the Go2 stand-in, its step in
    m/s and rad/s (``GO2_GATE_EPSILON``), an intent reward needing no goal picture; written to ``gate.json``."""
    from dmo_ros.local_model.train import GO2_GATE_EPSILON

    data = go2_dataset(tmp_path / "go2")
    reward = _intent_reward_run(tmp_path / "intent")
    run = tmp_path / "run"
    main(_args(data, run, "--reward-run", str(reward), "--steps", "2"))  # exit 0 or 1 (an untrained model fails)
    out = capsys.readouterr().out
    assert "gate local_model:" in out and "(push_cube)" in out
    report = json.loads((run / "gate.json").read_text())
    assert report["metrics"]["robot"] == "go2" and report["metrics"]["epsilon"] == GO2_GATE_EPSILON


def test_windows_play_trains_on_play_alone_and_a_resumed_run_keeps_it(reward_run, tmp_path: Path, capsys) -> None:
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 255, (SAMPLES, 16, 16, 3), dtype=np.uint8)
    actions = rng.uniform(-0.2, 0.2, (SAMPLES, 2)).astype(np.float32)
    intent = np.repeat([True, False, True, False], 12)  # episodes 0 and 2 demonstrations, 1 and 3 play
    dataset = write_dataset(tmp_path / "ds", frames, actions, [12] * 4, intent=intent, validation_fraction=0.0)
    run = tmp_path / "run"
    assert main(_labelled(dataset, run, reward_run, "--steps", "2", "--windows", "play")) == 0
    assert "data: 14 training sequences, 0 validation sequences of 6 samples (play only)" in capsys.readouterr().out
    assert read_run_config(run)["windows"] == "play"
    assert main(_args(dataset, run, "--steps", "3")) == 0  # resumed: its own windows
    assert "(play only)" in capsys.readouterr().out and read_run_config(run)["windows"] == "play"
    play_only = write_dataset(tmp_path / "play", frames, actions, [12] * 4, validation_fraction=0.0)
    assert main(_labelled(play_only, tmp_path / "none", reward_run, "--steps", "2",
                          "--windows", "demonstrations")) == 2
    assert "--windows demonstrations keeps only sequences whose every sample is intent on" in capsys.readouterr().err
