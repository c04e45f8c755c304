"""B imagined episodes in the global world model, rewarded by the global reward model.

The one environment every policy trainer acts in (DMO-SAPO, No Diffusion's pretraining data,
PPO): the same start states, the same world model, the same reward, the same sample counter.
Training never reads the simulator: start states are *real dataset windows* (context frames
and the actions between them), frames come from the diffusion world model, rewards from the
goal-conditioned energy of :mod:`dmo_ros.reward`.

    env = ImaginedEnv(world_model, reward_model, goal, StartWindows(folders, context=4), batch_size=16)
    obs = env.reset()                           # (B, 3, H, W) in [-1, 1]: the windows' last frames
    obs, reward = env.step(actions)             # actions (B, A) in robot units; reward (B,)
    env.samples                                 # world-model transitions generated so far

``reward[b]`` is ``r(o_{t+1})`` of the frame just reached, measured from the first frame of the
recorded episode the start window comes from (0 there, about 1 at the goal;
:class:`dmo_ros.reward.GoalReward`) — the same reference the local model's reward labels use.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from dmo_ros.dataset.format import DatasetError
from dmo_ros.dataset.loaders import Window, WindowDataset, collate
from dmo_ros.reward.energy import EnergyNet, frame_reward
from dmo_ros.reward.intent import IntentRewardNet
from dmo_ros.world_model.config import SamplerConfig
from dmo_ros.world_model.denoiser import Denoiser
from dmo_ros.world_model.imagination import WorldModelEnv


class StartWindows:
    """Real context windows (``context`` samples of one episode) to start imagined episodes from.

    Drawn uniformly from the given split of every dataset, with their own generator (reproducible
    from ``seed``, independent of the models' RNG).
    """

    def __init__(self, folders: Sequence[Path | str], context: int, split: str = "train", seed: int = 0) -> None:
        self.parts = [WindowDataset(folder, context=context, horizon=0, split=split) for folder in folders]
        self.sizes = np.array([len(part) for part in self.parts])
        if not len(self.parts) or self.sizes.sum() == 0:
            raise DatasetError(f"no {split} episode of {', '.join(map(str, folders))} holds {context} samples: "
                               "nothing to start imagined episodes from")
        self.context = int(context)
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return int(self.sizes.sum())

    def sample(self, batch_size: int) -> Window:
        """``batch_size`` windows, collated: frames (B, L, 3, H, W) uint8, actions (B, L, A)."""
        return self.sample_with_episode_starts(batch_size)[0]

    def sample_with_episode_starts(self, batch_size: int) -> tuple[Window, Tensor]:
        """Windows as :meth:`sample`, and the first frame (B, 3, H, W) uint8 of each window's recorded episode.

        The first frame is the start the reward model measures progress from: the local model's reward labels
        (:func:`dmo_ros.local_model.train.label_rewards`) are relative to it too, so imagined rewards and the
        labels the local reward head was pretrained on are the same function of the frame.
        """
        offsets = np.cumsum(np.concatenate([[0], self.sizes]))
        picks = self.rng.integers(0, len(self), size=batch_size)
        items, firsts = [], []
        for pick in picks:
            part = int(np.searchsorted(offsets, pick, side="right") - 1)
            windows = self.parts[part]
            item = windows[int(pick - offsets[part])]
            items.append(item)
            firsts.append(self._episode_first_frame(part, int(item.episode)))
        return collate(items), torch.stack(firsts)

    def _episode_first_frame(self, part: int, episode: int) -> Tensor:
        windows = self.parts[part]
        first = next(int(ep["start"]) for ep in windows.episodes if int(ep["index"]) == episode)
        return torch.from_numpy(np.array(windows.arrays["frames"][first])).permute(2, 0, 1)

    def state_dict(self) -> dict:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]


class ImaginedEnv:
    """B imagined episodes stepped together in the world model; see the module doc.

    Args:
        world_model: the trained diffusion world model (frames in [-1, 1]).
        reward_model: the trained energy; rewards are taken relative to each episode's first frame.
        goal: the goal picture (H, W, 3) or (3, H, W) uint8, at the reward model's size, or a goal set of K
            such pictures (each frame rewarded by its best goal; :class:`~dmo_ros.reward.energy.GoalReward`);
            None with an intent reward model (:mod:`dmo_ros.reward.intent`), which takes no goal.
        starts: where episodes start (real windows of the world model's context length).
        batch_size: B, episodes stepped in parallel.
        sampler_config: the world model's sampler (default: 3 deterministic Euler steps).
        device: where the models run.
        generator: the sampler's noise (reproducible rollouts).
    """

    def __init__(self, world_model: Denoiser, reward_model: EnergyNet | IntentRewardNet,
                 goal: Tensor | np.ndarray | None,
                 starts: StartWindows, batch_size: int, sampler_config: SamplerConfig | None = None,
                 device: torch.device | str | None = None, generator: torch.Generator | None = None) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if starts.context != world_model.config.context:
            raise ValueError(f"start windows hold {starts.context} frames, the world model's context is "
                             f"{world_model.config.context}")
        self.world = WorldModelEnv(world_model, sampler_config, device=device, generator=generator)
        self.device = self.world.device
        self.reward = frame_reward(reward_model.to(self.device), goal)
        self.starts = starts
        self.batch_size = int(batch_size)
        self.action_size = int(world_model.config.action_size)
        self.samples = 0
        """World-model transitions generated so far (one per episode per step)."""
        self.steps = torch.zeros(self.batch_size, dtype=torch.long)
        """Steps since each episode's start."""
        self.start_window: Window | None = None
        """The real windows the current episodes started from (on the CPU)."""

    @property
    def observation(self) -> Tensor:
        """(B, 3, H, W) in [-1, 1]: the latest frame of every episode."""
        return self.world.observation

    def _sample(self, batch_size: int) -> tuple[Window, Tensor | None]:
        """New start windows and, when the start source knows them, their recorded episodes' first frames (the
        reward's start); otherwise None: the reward is measured from the window's last frame."""
        if hasattr(self.starts, "sample_with_episode_starts"):
            return self.starts.sample_with_episode_starts(batch_size)
        return self.starts.sample(batch_size), None

    @property
    def context(self) -> tuple[Tensor, Tensor]:
        """The episodes' current context: frames (B, L, 3, H, W) in [-1, 1] and the actions (B, L - 1, A)
        between them (what a latent model filters to get each episode's state)."""
        return self.world.frames, self.world.actions

    def reset(self) -> Tensor:
        """Start B new episodes from freshly drawn real windows; returns their observations (B, 3, H, W)."""
        window, episode_starts = self._sample(self.batch_size)
        self.start_window = window
        observation = self.world.reset_from_windows(window)
        self.reward.set_start(observation if episode_starts is None else episode_starts)
        self.steps.zero_()
        return observation

    def reset_some(self, done: Tensor) -> Tensor:
        """Restart the episodes where ``done`` (B,) bool is true from new real windows; returns all observations.

        The world model keeps one context per episode, so the others continue untouched.
        """
        done = done.to("cpu", torch.bool)
        if done.shape != (self.batch_size,):
            raise ValueError(f"done must be ({self.batch_size},), got {tuple(done.shape)}")
        if not done.any():
            return self.observation
        if self.start_window is None or done.all():
            return self.reset()
        window, episode_starts = self._sample(int(done.sum()))
        index = done.nonzero().squeeze(1).to(self.device)
        observation = self.world.restart(index, window.context_frames, window.context_actions)
        start = self.reward.start.clone()
        fresh = observation[index] if episode_starts is None else self.reward.images(episode_starts)
        start[index] = fresh.to(start.dtype)
        self.reward.set_start(start)
        self.steps[done] = 0
        return observation

    def step(self, actions: Tensor) -> tuple[Tensor, Tensor]:
        """Apply ``actions`` (B, A) in robot units (detached); returns (next observations (B, 3, H, W), rewards (B,)).
        """
        if actions.shape != (self.batch_size, self.action_size):
            raise ValueError(f"actions must be ({self.batch_size}, {self.action_size}), got {tuple(actions.shape)}")
        if not torch.isfinite(actions).all():
            raise ValueError("non-finite action given to the imagined environment")
        with torch.no_grad():
            observation = self.world.step(actions.detach())
            rewards = self.reward(observation)
        self.samples += self.batch_size
        self.steps += 1
        return observation, rewards

    def state_dict(self) -> dict:
        """The counters and the start sampler's RNG (the episodes themselves restart on resume)."""
        return {"samples": self.samples, "starts": self.starts.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.samples = int(state["samples"])
        self.starts.load_state_dict(state["starts"])


__all__ = ["ImaginedEnv", "StartWindows"]
