"""The intent reward (P(intent | frame) + milestone bonus): it learns the operator's intent from frames with the
tiny preset through dmo-train-reward, loads as a reward with GoalReward's interface and no goal, and refuses bad
runs and data with clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dmo_ros.dataset.format import write_dataset
from dmo_ros.reward.config import RewardConfig
from dmo_ros.reward.energy import EnergyNet, GoalReward, frame_reward, load_reward_model, needs_goal
from dmo_ros.reward.evaluate import spearman
from dmo_ros.reward.intent import (
    IntentFrames,
    IntentReward,
    IntentRewardConfig,
    IntentRewardNet,
    LabelledFrames,
    demonstration_progress,
)
from dmo_ros.reward.train import main as train_reward_main

SIZE = 32


def intent_video(episodes: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[int]]:
    """(frames, intent, milestone, lengths): each episode plays (a red square wanders on a random grey) and then
    demonstrates (intent on: a blue disc, the task's object, is in view and grows toward the end, where the
    milestone key is pressed on the last frame)."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:SIZE, 0:SIZE] + 0.5
    frames, intent, milestone, lengths = [], [], [], []
    for _ in range(episodes):
        play, demo = int(rng.integers(6, 14)), int(rng.integers(6, 14))
        background = rng.uniform(0.4, 0.8)
        square = rng.uniform(4, SIZE - 4, 2)
        centre = rng.uniform(8, SIZE - 8, 2)
        for t in range(play + demo):
            image = np.full((SIZE, SIZE, 3), background)
            square = np.clip(square + rng.normal(0, 2.0, 2), 3, SIZE - 3)
            image[(np.abs(xs - square[0]) < 3) & (np.abs(ys - square[1]) < 3)] = [0.9, 0.1, 0.1]
            on = t >= play
            if on:
                radius = 3 + 4 * (t - play) / max(demo - 1, 1)
                image[np.hypot(xs - centre[0], ys - centre[1]) < radius] = [0.1, 0.2, 0.9]
            frames.append((image * 255).round().astype(np.uint8))
            intent.append(on)
            milestone.append(1.0 if t == play + demo - 1 else 0.0)
        lengths.append(play + demo)
    return np.stack(frames), np.array(intent), np.array(milestone, np.float32), lengths


def write_intent_dataset(folder: Path, episodes: int = 30, seed: int = 0, intent_on: bool | None = None) -> Path:
    frames, intent, milestone, lengths = intent_video(episodes, seed)
    if intent_on is not None:
        intent[:] = intent_on
    return write_dataset(folder, frames, np.zeros((len(frames), 2), np.float32), lengths, intent=intent,
                         milestone=milestone, validation_fraction=0.25, seed=seed)


@pytest.fixture(scope="module")
def intent_run(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("intent")
    folder = write_intent_dataset(root / "video")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        code = train_reward_main([str(folder), "--objective", "intent", "--run-dir", str(root / "run"),
                                  "--preset", "tiny", "--device", "cpu", "--progress", "false"])
    finally:
        torch.set_num_threads(threads)
    assert code == 0
    return folder, root / "run"


def test_the_tiny_preset_learns_the_operators_intent(intent_run) -> None:
    """On held-out episodes the reward separates demonstration frames from play (AUC > 0.95, a gap > 0.5) and
    the milestone frame scores highest of its demonstration on average."""
    folder, run = intent_run
    assert json.loads((run / "config.json").read_text())["objective"] == "intent"
    model = load_reward_model(run)
    assert isinstance(model, IntentRewardNet) and not needs_goal(run)
    reward = frame_reward(model, None)
    assert isinstance(reward, IntentReward)
    held_out = IntentFrames(folder, "val")
    batch = LabelledFrames.collate([held_out[k] for k in range(len(held_out))])
    r = reward(batch.frame).numpy()
    on = batch.intent.numpy() > 0.5
    ranks = np.argsort(np.argsort(r)) + 1.0
    auc = (ranks[on].sum() - on.sum() * (on.sum() + 1) / 2) / (on.sum() * (~on).sum())
    assert auc > 0.95, f"held-out AUC {auc:.3f}"
    assert r[on].mean() - r[~on].mean() > 0.5, (r[on].mean(), r[~on].mean())
    # Along each held-out demonstration the reward does not fall toward the milestone (the disc grows in view).
    frames = np.load(folder / "frames.npy")
    intent = np.load(folder / "intent.npy")
    correlations = []
    for episode in held_out.sources[0].episodes:
        first, length = int(episode["start"]), int(episode["length"])
        demo = np.flatnonzero(intent[first: first + length]) + first
        correlations.append(spearman(reward(frames[demo]).numpy(), np.arange(len(demo))))
    assert np.nanmean(correlations) > 0.0, correlations


def test_progress_labels_count_each_demonstration_stretch_inside_its_episode(tmp_path: Path) -> None:
    # Two episodes: off off on on on | on on off on (a stretch at the start, and two stretches in one episode).
    intent = np.array([0, 0, 1, 1, 1, 1, 1, 0, 1], bool)
    folder = write_dataset(tmp_path / "d", np.zeros((9, SIZE, SIZE, 3), np.uint8), np.zeros((9, 2), np.float32),
                           [5, 4], intent=intent, milestone=np.zeros(9, np.float32), validation_fraction=0.0)
    from dmo_ros.dataset.loaders import ClipDataset

    progress = demonstration_progress(ClipDataset(folder, 1, "train"))
    expected = [np.nan, np.nan, 1 / 3, 2 / 3, 1, 1 / 2, 1, np.nan, 1]
    np.testing.assert_allclose(progress, expected, equal_nan=True)
    item = IntentFrames(folder)[0]
    assert torch.isnan(item.progress) and item.intent == 0


def test_the_progress_head_learns_how_far_into_a_demonstration_a_frame_is(intent_run, tmp_path: Path) -> None:
    """With --progress-weight the head tells how far into a held-out demonstration a frame is (the disc grows toward
    the end), the reward rises along them, and still separates demonstrations from play."""
    folder, run = intent_run
    progress_run = tmp_path / "progress"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert train_reward_main([str(folder), "--objective", "intent", "--progress-weight", "2", "--run-dir",
                                  str(progress_run), "--preset", "tiny", "--device", "cpu", "--progress",
                                  "false"]) == 0
    finally:
        torch.set_num_threads(threads)
    model = load_reward_model(progress_run)
    assert model.config.progress_weight == 2
    with_progress, intent_only = frame_reward(model, None), frame_reward(load_reward_model(run), None)
    frames, intent = np.load(folder / "frames.npy"), np.load(folder / "intent.npy")
    correlations: dict[str, list[float]] = {"progress": [], "intent": []}
    for episode in IntentFrames(folder, "val").sources[0].episodes:
        first, length = int(episode["start"]), int(episode["length"])
        demo = np.flatnonzero(intent[first: first + length]) + first
        for name, reward in (("progress", with_progress), ("intent", intent_only)):
            correlations[name].append(spearman(reward(frames[demo]).numpy(), np.arange(len(demo))))
    assert np.mean(correlations["progress"]) >= max(0.9, np.mean(correlations["intent"])), correlations
    # The head itself: on held-out demonstration frames its error is under half the best constant's.
    held_out = IntentFrames(folder, "val")
    batch = LabelledFrames.collate([held_out[k] for k in range(len(held_out))])
    labelled = torch.isfinite(batch.progress)
    with torch.no_grad():
        predicted = torch.sigmoid(model.outputs(with_progress.images(batch.frame))[:, 2])[labelled]
    target = batch.progress[labelled]
    error, constant = (predicted - target).abs().mean(), (target - target.median()).abs().mean()
    assert error < 0.5 * constant, (error, constant)
    r = with_progress(frames).numpy()
    assert r[intent].mean() - r[~intent].mean() > 0.5


def test_the_reward_has_goal_rewards_interface() -> None:
    model = IntentRewardNet(IntentRewardConfig.preset("tiny", image_size=SIZE))
    reward = frame_reward(model, None)
    frames = torch.randint(0, 255, (2, 5, 3, SIZE, SIZE), dtype=torch.uint8)
    with pytest.raises(RuntimeError, match="set_start"):
        _ = reward.start
    reward.set_start(frames[:, 0])
    out = reward(frames)
    assert out.shape == (2, 5) and not out.requires_grad and torch.isfinite(out).all()
    assert torch.allclose(reward(frames[:, :1], start=frames[:, 3]), out[:, :1])  # Markov: the start is not read
    assert reward.start.shape == (2, 3, SIZE, SIZE)
    with pytest.raises(ValueError, match="resize"):
        reward(torch.zeros(1, 3, 16, 16, dtype=torch.uint8))
    with pytest.raises(ValueError, match="goal picture"):
        frame_reward(EnergyNet(RewardConfig.preset("tiny", image_size=SIZE)), None)
    assert isinstance(frame_reward(EnergyNet(RewardConfig.preset("tiny", image_size=SIZE)),
                                   torch.zeros(3, SIZE, SIZE, dtype=torch.uint8)), GoalReward)
    with pytest.raises(ValueError, match="unknown IntentRewardConfig"):
        IntentRewardConfig.from_dict({"colour": 3})
    for bad in ({"image_size": 4}, {"channels": []}, {"milestone_weight": -1.0}, {"progress_weight": -1.0},
                {"shift_augment": -1}):
        with pytest.raises(ValueError):
            IntentRewardConfig(**bad)


def test_bad_runs_and_data_are_refused(tmp_path: Path, intent_run, capsys) -> None:
    folder, run = intent_run
    common = ["--preset", "tiny", "--device", "cpu", "--progress", "false"]
    assert train_reward_main([str(folder), "--objective", "intent", "--negative-fraction", "0.2",
                              "--run-dir", str(tmp_path / "a"), *common]) == 2
    assert "--negative-fraction" in capsys.readouterr().err
    assert train_reward_main([str(folder), "--run-dir", str(run), *common]) == 2  # an intent run, resumed as BT
    assert "objective 'intent'" in capsys.readouterr().err
    assert train_reward_main([str(folder), "--progress-weight", "1", "--run-dir", str(tmp_path / "c"), *common]) == 2
    assert "--progress-weight: an option of --objective intent" in capsys.readouterr().err
    assert train_reward_main([str(folder), "--objective", "intent", "--progress-weight", "-1", "--run-dir",
                              str(tmp_path / "d"), *common]) == 2
    assert "progress_weight must be >= 0" in capsys.readouterr().err
    play_only = write_intent_dataset(tmp_path / "play", episodes=8, intent_on=False)
    assert train_reward_main([str(play_only), "--objective", "intent", "--run-dir", str(tmp_path / "b"),
                              *common]) == 2
    assert "intent button" in capsys.readouterr().err


def test_reward_eval_measures_an_intent_run(intent_run, tmp_path: Path, capsys) -> None:
    """dmo-reward-eval on an intent run: ROC AUC against the held-out intent labels, and the Push Cube expert's
    episodes scored without a goal picture."""
    from dmo_ros.reward.evaluate import main as reward_eval_main

    folder, run = intent_run
    out = tmp_path / "eval"
    assert reward_eval_main([str(run), "--dataset", str(folder), "--episodes", "1", "--steps", "4", "--robot", "go2",
                             "--out", str(out), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "reward_eval.json").read_text())
    assert report["intent"]["auc"] > 0.95 and "ROC AUC" in printed
    assert report["oracle"]["goal_image"] == "none (intent)" and len(report["oracle"]["episodes"]) == 1
    assert "pairs" not in report
