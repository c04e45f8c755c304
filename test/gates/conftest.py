"""A small Push-T play dataset rendered by the stand-in simulator, with the simulator state of every sample.

The states let tests build *oracle* models (the true simulator as the world model) that a gate must
pass, next to broken ones it must fail.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from dmo_ros.dataset.format import write_dataset
from dmo_ros.dataset.images import resize
from dmo_ros.dataset.loaders import Window
from dmo_ros.sims.pusht import PushTConfig, PushTSim, PushTSnapshot
from dmo_ros.world_model.denoiser import to_model_range

SIZE = 64
EPISODES, LENGTH = 5, 24


@dataclass
class PlayData:
    dataset: Path
    snapshots: list[PushTSnapshot]
    """The simulator state at each dataset sample (before its action)."""
    episode_of: list[int]
    """The simulator episode of each dataset sample."""


def frame(sim: PushTSim) -> np.ndarray:
    return resize(sim.render(), SIZE, SIZE, "crop")


@pytest.fixture(scope="session")
def pusht_play(tmp_path_factory) -> PlayData:
    rng = np.random.default_rng(0)
    sim = PushTSim(PushTConfig(seed=7))
    frames, actions, snapshots, episode_of = [], [], [], []
    for e in range(EPISODES):
        if e:
            sim.reset()
        for _ in range(LENGTH):
            snapshots.append(sim.snapshot())
            episode_of.append(sim.episode)
            frames.append(frame(sim))
            action = rng.uniform(-0.2, 0.2, 2).astype(np.float32)
            actions.append(action)
            sim.step(action * sim.config.control_period_s)
    sim.close()
    folder = write_dataset(tmp_path_factory.mktemp("gates") / "play", np.stack(frames), np.stack(actions),
                           [LENGTH] * EPISODES, validation_fraction=0.4, extra_meta={"robot": "pusht"})
    return PlayData(folder, snapshots, episode_of)


class SimulatorRollout:
    """The true simulator as a world model: restores the state of the window's last context sample."""

    def __init__(self, play: PlayData) -> None:
        self.play = play
        self.sim = PushTSim(PushTConfig(seed=7))

    def _goto(self, sample: int) -> None:
        while self.sim.episode < self.play.episode_of[sample]:
            self.sim.reset()
        self.sim.restore(self.play.snapshots[sample])

    def __call__(self, window: Window, actions: torch.Tensor) -> torch.Tensor:
        out = []
        for b in range(actions.shape[0]):
            if self.sim.episode > self.play.episode_of[int(window.start[b]) + window.context - 1]:
                self.sim = PushTSim(PushTConfig(seed=7))
            self._goto(int(window.start[b]) + window.context - 1)
            frames = []
            for a in actions[b].numpy():
                self.sim.step(a * self.sim.config.control_period_s)
                frames.append(frame(self.sim))
            out.append(np.stack(frames))
        return to_model_range(torch.from_numpy(np.stack(out)).permute(0, 1, 4, 2, 3))
