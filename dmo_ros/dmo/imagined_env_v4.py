"""B imagined episodes in the DreamerV4-style world model, rewarded by its own reward token.

The same contract as :class:`dmo_ros.dmo.imagined_env.ImaginedEnv` (DMO-SAPO, PPO and the dream node drive
either), for a ``dmo-train-dynamics`` run:

    env = ImaginedEnvV4(load_world_model_v4("runs/v4_dynamics"), StartWindows(folders, context=32), batch_size=16)
    obs = env.reset()                   # (B, 3, H, W) in [-1, 1]: the last of L_init real frames prefilled
    obs, reward = env.step(actions)     # actions (B, A) in robot units; reward (B,) from the reward token
    env.samples                         # world-model transitions generated so far

Start states are real dataset windows of ``l_init`` frames (the paper prefills L_init = 32 frames into the
KV cache before RL starts); the reward of a frame is the reward token's P(intent) + milestone bonus, read in
the pass that commits the frame to the cache. There is no goal picture and no separate reward model.
"""

from __future__ import annotations

import torch
from torch import Tensor

from dmo_ros.dataset.loaders import Window
from dmo_ros.dmo.imagined_env import StartWindows
from dmo_ros.world_model_v4.imagination import WorldModelV4Env
from dmo_ros.world_model_v4.model import WorldModelV4


class TokenReward:
    """``reward(observation)`` of :class:`ImaginedEnvV4`: the reward token's reward of each episode's latest frame.

    The reward token reads the model's own state (frames and actions so far), not the picture passed in; the
    argument is there for the interface every imagined environment shares and only its batch size is checked.
    """

    def __init__(self, world: WorldModelV4Env) -> None:
        self.world = world

    def __call__(self, observation: Tensor) -> Tensor:
        rewards = self.world.rewards
        if rewards is None:
            raise RuntimeError("no episode yet: reset the environment first")
        if observation.shape[0] != rewards.shape[0]:
            raise ValueError(f"observation batch {observation.shape[0]} differs from the {rewards.shape[0]} episodes")
        return rewards


class ImaginedEnvV4:
    """B imagined episodes stepped together in the DreamerV4-style model; see the module doc.

    Args:
        world_model: the trained world model (tokenizer + dynamics + reward token).
        starts: real windows (``world_model.config.l_init`` frames) the episodes start from.
        batch_size: B, episodes stepped in parallel.
        device: where the model runs.
        generator: the sampler's noise (reproducible rollouts).
    """

    def __init__(self, world_model: WorldModelV4, starts: StartWindows, batch_size: int,
                 device: torch.device | str | None = None, generator: torch.Generator | None = None) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if not 2 <= starts.context <= world_model.config.context:
            raise ValueError(f"start windows hold {starts.context} frames; the world model takes 2 to "
                             f"{world_model.config.context}")
        self.world = WorldModelV4Env(world_model, device=device, generator=generator)
        self.device = self.world.device
        self.reward = TokenReward(self.world)
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

    @property
    def context(self) -> tuple[Tensor, Tensor]:
        """The latest frames (B, K, 3, H, W) in [-1, 1] and the actions (B, K - 1, A) between them."""
        return self.world.frames, self.world.actions

    def reset(self) -> Tensor:
        """Start B new episodes from freshly drawn real windows; returns their observations (B, 3, H, W)."""
        window = self.starts.sample(self.batch_size)
        self.start_window = window
        observation = self.world.reset_from_windows(window)
        self.steps.zero_()
        return observation

    def reset_some(self, done: Tensor) -> Tensor:
        """Restart the episodes where ``done`` (B,) bool is true from new real windows; returns all observations."""
        done = done.to("cpu", torch.bool)
        if done.shape != (self.batch_size,):
            raise ValueError(f"done must be ({self.batch_size},), got {tuple(done.shape)}")
        if not done.any():
            return self.observation
        if self.start_window is None or done.all():
            return self.reset()
        window = self.starts.sample(int(done.sum()))
        observation = self.world.restart(done.nonzero().squeeze(1), window.context_frames, window.context_actions)
        self.steps[done] = 0
        return observation

    def step(self, actions: Tensor) -> tuple[Tensor, Tensor]:
        """Apply ``actions`` (B, A) in robot units (detached); returns (observations (B, 3, H, W), rewards (B,))."""
        if actions.shape != (self.batch_size, self.action_size):
            raise ValueError(f"actions must be ({self.batch_size}, {self.action_size}), got {tuple(actions.shape)}")
        if not torch.isfinite(actions).all():
            raise ValueError("non-finite action given to the imagined environment")
        observation, rewards = self.world.step(actions.detach())
        self.samples += self.batch_size
        self.steps += 1
        return observation, rewards

    def state_dict(self) -> dict:
        """The counters and the start sampler's RNG (the episodes themselves restart on resume)."""
        return {"samples": self.samples, "starts": self.starts.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.samples = int(state["samples"])
        self.starts.load_state_dict(state["starts"])


__all__ = ["ImaginedEnvV4", "TokenReward"]
