"""The energy learns temporal progress: a toy video, the tiny preset, the real training loop, held-out pairs.

Synthetic video, 32 x 32 px: on a plain background (a random light colour per episode), a
dark disc moves from a random start to a random goal along a curved path (a quadratic Bezier
curve bowed sideways by a random amount) with a random speed profile (t^p, p in [0.6, 1.6]:
accelerating or decelerating), while a red square distractor wanders at random. Only the
disc's progress toward its goal tells the time order. The tiny preset trains for ~150 steps
(seconds on one core); on the pairs of held-out episodes the ranking must be right > 90 % of
the time (chance: 50 %), and the reward must rise along held-out episodes.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from dmo_ros.dataset.format import write_dataset
from dmo_ros.reward.config import RewardConfig
from dmo_ros.reward.energy import EnergyNet, GoalReward
from dmo_ros.reward.evaluate import pairwise_accuracy, spearman
from dmo_ros.reward.pairs import PairDataset
from dmo_ros.reward.train import TRAIN_PRESETS
from dmo_ros.training import seed_everything, train

SIZE = 32


def _disc(image: np.ndarray, centre: np.ndarray, radius: float, colour: np.ndarray) -> np.ndarray:
    """The image with an anti-aliased disc drawn in (sub-pixel motion changes the pixels)."""
    ys, xs = np.mgrid[0:SIZE, 0:SIZE] + 0.5
    alpha = np.clip(radius + 0.5 - np.hypot(xs - centre[0], ys - centre[1]), 0.0, 1.0)[..., None]
    return image * (1 - alpha) + colour * alpha


def moving_object_video(episodes: int, seed: int) -> tuple[np.ndarray, list[int]]:
    """(frames (N, 32, 32, 3) uint8, episode lengths): a disc travelling to a goal, plus a distractor."""
    rng = np.random.default_rng(seed)
    frames, lengths = [], []
    ys, xs = np.mgrid[0:SIZE, 0:SIZE] + 0.5
    for _ in range(episodes):
        length = int(rng.integers(16, 33))
        start, goal = rng.uniform(5, SIZE - 5, 2), rng.uniform(5, SIZE - 5, 2)
        while np.hypot(*(goal - start)) < 0.4 * SIZE:
            goal = rng.uniform(5, SIZE - 5, 2)
        sideways = np.array([start[1] - goal[1], goal[0] - start[0]])
        bend = (start + goal) / 2 + sideways * rng.uniform(-0.3, 0.3)
        power = rng.uniform(0.6, 1.6)
        background, colour = rng.uniform(0.6, 0.9, 3), rng.uniform(0.0, 0.3, 3)
        distractor = rng.uniform(3, SIZE - 3, 2)
        for t in range(length):
            s = (t / (length - 1)) ** power
            centre = (1 - s) ** 2 * start + 2 * (1 - s) * s * bend + s**2 * goal
            image = _disc(np.broadcast_to(background, (SIZE, SIZE, 3)), centre, 3.0, colour)
            distractor = np.clip(distractor + rng.normal(0, 1.5, 2), 2, SIZE - 2)
            square = (np.abs(xs - distractor[0]) < 2) & (np.abs(ys - distractor[1]) < 2)
            image = np.where(square[..., None], np.array([0.9, 0.1, 0.1]), image)
            frames.append((image * 255).round().astype(np.uint8))
        lengths.append(length)
    return np.stack(frames), lengths


def write_moving_object_dataset(folder: Path, episodes: int = 40, seed: int = 0) -> Path:
    frames, lengths = moving_object_video(episodes, seed)
    actions = np.zeros((len(frames), 2), np.float32)  # unused by the reward model
    return write_dataset(folder, frames, actions, lengths, validation_fraction=0.25, seed=seed)


@pytest.fixture
def one_thread():
    """One intra-op thread: the fastest on a small shared CPU (two threads contend), and reproducible."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_tiny_preset_learns_to_rank_held_out_episodes(tmp_path: Path, one_thread) -> None:
    folder = write_moving_object_dataset(tmp_path / "video")
    config = RewardConfig.preset("tiny", image_size=SIZE)
    train_set = PairDataset(folder, "train", config.max_span, config.min_span, seed=0)
    held_out = PairDataset(folder, "val", config.max_span, config.min_span, seed=1)
    assert len(held_out) > 150 and not set(held_out.segments[:, 1]) & set(train_set.segments[:, 1])

    seed_everything(0)
    model = EnergyNet(config)
    untrained, _ = pairwise_accuracy(model, held_out)
    schedule = replace(TRAIN_PRESETS["tiny"], steps=150, device="cpu", progress=False, val_every=0)
    result = train(model, train_set, None, schedule, tmp_path / "run", {"model": {}})
    assert result.step == 150

    accuracy, count = pairwise_accuracy(model.eval(), held_out)
    assert count == len(held_out)
    assert accuracy > 0.9, f"held-out pairwise accuracy {accuracy:.3f} (untrained {untrained:.3f})"

    # The reward along each held-out episode (goal = its last frame) rises with time, and the normalisation
    # makes the start-to-goal gain about 1. (The default reward is Markov: it does not look at the start.)
    frames = np.load(folder / "frames.npy")
    correlations, last = [], []
    for first, length in held_out.segments[:, 2:4]:
        episode = frames[first: first + length]
        reward = GoalReward(model, episode[-1], start=episode[0])(episode).numpy()
        correlations.append(spearman(reward, np.arange(length)))
        last.append(reward[-1] - reward[0])
    assert np.mean(correlations) > 0.9, correlations
    assert 0.3 < np.mean(last) < 3.0, last


def test_negatives_teach_frames_off_the_way_to_score_low(tmp_path: Path, one_thread) -> None:
    """With negative_fraction, a frame of another episode (off every way to this goal) scores below the frames
    of the goal's own episode, on held-out episodes, and the in-episode ranking is kept."""
    folder = write_moving_object_dataset(tmp_path / "video")
    config = RewardConfig.preset("tiny", image_size=SIZE, negative_fraction=0.3)
    train_set = PairDataset(folder, "train", config.max_span, config.min_span, seed=0,
                            negative_fraction=config.negative_fraction)
    held_out = PairDataset(folder, "val", config.max_span, config.min_span, seed=1)
    seed_everything(0)
    model = EnergyNet(config)
    schedule = replace(TRAIN_PRESETS["tiny"], steps=150, device="cpu", progress=False, val_every=0)
    train(model, train_set, None, schedule, tmp_path / "run", {"model": {}})
    model.eval()
    accuracy, _ = pairwise_accuracy(model, held_out)
    assert accuracy > 0.85, f"held-out pairwise accuracy {accuracy:.3f}"

    frames = np.load(folder / "frames.npy")
    episodes = [frames[first: first + length] for first, length in held_out.segments[:, 2:4]]
    wins = []
    for index, episode in enumerate(episodes):
        reward = GoalReward(model, episode[-1])
        own = reward(episode[len(episode) // 2:]).numpy()  # the second half: on the way, near the goal
        others = np.concatenate([reward(other).numpy() for k, other in enumerate(episodes) if k != index])
        wins.append((own[:, None] > others[None, :]).mean())
    assert np.mean(wins) > 0.9, f"own frames above other episodes' in {np.mean(wins):.3f} of the comparisons"


AGENT_CORNER = np.array([4.0, 4.0])
"""Where the toy's agent goes before the object moves: its place alone says "later" without ties."""


def agent_then_object_video(episodes: int, seed: int) -> tuple[np.ndarray, list[int], list[dict]]:
    """(frames, lengths, poses): a small blue agent walks from a random place to the top-left corner while the
    dark object stands still, then the object moves to a random goal (the agent waits). Like Push-T play, the
    agent's place alone correlates with time in the first phase. Poses: the object's start and the agent's."""
    rng = np.random.default_rng(seed)
    frames, lengths, poses = [], [], []
    background, colour, agent_colour = np.full(3, 0.85), np.full(3, 0.15), np.array([0.25, 0.4, 0.9])
    for _ in range(episodes):
        walk, push = int(rng.integers(6, 11)), int(rng.integers(8, 13))
        start, goal = rng.uniform(10, SIZE - 5, (2, 2))
        while np.hypot(*(goal - start)) < 0.3 * SIZE:  # both redrawn: some starts have no goal this far
            start, goal = rng.uniform(10, SIZE - 5, (2, 2))
        agent_start = rng.uniform(4, SIZE - 4, 2)
        for t in range(walk + push):
            agent = agent_start + (AGENT_CORNER - agent_start) * min(t / (walk - 1), 1.0)
            centre = start + (goal - start) * max(0.0, (t - walk + 1) / push)
            image = _disc(np.broadcast_to(background, (SIZE, SIZE, 3)), centre, 3.0, colour)
            frames.append((_disc(image, agent, 1.5, agent_colour) * 255).round().astype(np.uint8))
        lengths.append(walk + push)
        poses.append({"start": start, "goal": goal, "agent": agent_start})
    return np.stack(frames), lengths, poses


@pytest.mark.parametrize("ties", [False, True])
def test_ties_remove_the_agent_only_term_the_time_order_teaches(tmp_path: Path, one_thread, ties: bool) -> None:
    """In a video where the agent walks to a corner before the object moves, the time order alone teaches the
    energy to pay for the agent's place (without ties: the agent in the corner scores well above the agent at
    its start, the object unmoved). With tie_changed_share, pairs in which only the small agent moved are ties,
    and that agent-only gain shrinks to a fraction of it while the object's progress is still ranked."""
    frames, lengths, poses = agent_then_object_video(48, seed=0)
    folder = write_dataset(tmp_path / "video", frames, np.zeros((len(frames), 2), np.float32), lengths,
                           validation_fraction=0.25, seed=0)
    config = RewardConfig.preset("tiny", image_size=SIZE, max_span=0, tie_changed_share=0.03 if ties else 0.0)
    train_set = PairDataset(folder, "train", config.max_span, config.min_span, seed=0,
                            tie_changed_share=config.tie_changed_share)
    seed_everything(0)
    model = EnergyNet(config)
    schedule = replace(TRAIN_PRESETS["tiny"], steps=200, device="cpu", progress=False, val_every=0)
    train(model, train_set, None, schedule, tmp_path / "run", {"model": {}})
    model.eval()

    held_out = PairDataset(folder, "val", config.max_span, config.min_span, seed=1)
    agent_gain, object_gain = [], []
    background, colour, agent_colour = np.full(3, 0.85), np.full(3, 0.15), np.array([0.25, 0.4, 0.9])
    for episode in sorted(set(held_out.segments[:, 1])):
        pose = poses[episode]
        scene = _disc(np.broadcast_to(background, (SIZE, SIZE, 3)), pose["start"], 3.0, colour)
        done = _disc(np.broadcast_to(background, (SIZE, SIZE, 3)), pose["goal"], 3.0, colour)
        pictures = [_disc(scene, pose["agent"], 1.5, agent_colour), _disc(scene, AGENT_CORNER, 1.5, agent_colour),
                    _disc(done, AGENT_CORNER, 1.5, agent_colour)]
        pictures = np.stack([(p * 255).round().astype(np.uint8) for p in pictures])
        reward = GoalReward(model, pictures[-1])(pictures).numpy()
        agent_gain.append(reward[1] - reward[0])
        object_gain.append(reward[2] - reward[1])
    ratio = np.mean(agent_gain) / np.mean(object_gain)
    assert np.mean(object_gain) > 0.5, f"object gain {np.mean(object_gain):.3f}"
    if ties:
        assert abs(ratio) < 0.15, f"agent-only gain / object gain {ratio:.3f} with ties"
    else:
        assert ratio > 0.3, f"agent-only gain / object gain {ratio:.3f} without ties"
