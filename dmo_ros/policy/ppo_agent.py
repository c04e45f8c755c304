"""The PPO agent and its run-time policy: CleanRL's Atari CNN with a Gaussian head, on one frame.

Trained by :mod:`dmo_ros.dmo.ppo` (the trainer imports this module, never the reverse). At run time the
policy is the Gaussian's mean, clamped to [-1, 1] and scaled to robot units; it keeps no history.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.distributions import Normal

from dmo_ros.policy.base import PolicyError, check_frame, clamp_action

# -- the network -----------------------------------------------------------------------------------


def layer_init(layer: nn.Module, std: float = math.sqrt(2.0), bias: float = 0.0) -> nn.Module:
    """CleanRL's orthogonal initialisation: weights orthogonal with gain ``std``, biases constant."""
    nn.init.orthogonal_(layer.weight, std)
    nn.init.constant_(layer.bias, bias)
    return layer


class PPOAgent(nn.Module):
    """Shared CNN encoder, a Gaussian actor head and a value head (CleanRL's Atari agent, continuous actions).

    Frames (B, 3, H, W) in [-1, 1] -> convolutions (4x4, stride 2, ReLU) -> one linear layer (ReLU) to the
    shared features -> action mean (B, A) and value (B). The log-std is one learned vector, the same for
    every state. Output layers as CleanRL: actor mean gain 0.01 (actions start near 0), critic gain 1.
    """

    def __init__(self, image_size: tuple[int, int], action_size: int, encoder_channels: tuple[int, ...] = (16, 32, 32),
                 feature_size: int = 256, init_log_std: float = -0.5) -> None:
        super().__init__()
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.action_size = int(action_size)
        if min(self.image_size) < 2 ** len(encoder_channels):
            raise ValueError(f"{len(encoder_channels)} stride-2 convolutions need images of at least "
                             f"{2 ** len(encoder_channels)} pixels a side, got {self.image_size}")
        layers: list[nn.Module] = []
        channels_in = 3
        for channels in encoder_channels:
            layers += [layer_init(nn.Conv2d(channels_in, channels, 4, stride=2, padding=1)), nn.ReLU()]
            channels_in = channels
        layers.append(nn.Flatten())
        convolutions = nn.Sequential(*layers)
        with torch.no_grad():
            flat_size = convolutions(torch.zeros(1, 3, *self.image_size)).shape[1]
        self.encoder = nn.Sequential(*layers, layer_init(nn.Linear(flat_size, feature_size)), nn.ReLU())
        self.actor_mean = layer_init(nn.Linear(feature_size, self.action_size), std=0.01)
        self.critic = layer_init(nn.Linear(feature_size, 1), std=1.0)
        self.actor_log_std = nn.Parameter(torch.full((1, self.action_size), float(init_log_std)))

    def features(self, observation: Tensor) -> Tensor:
        """(B, 3, H, W) in [-1, 1] -> (B, feature_size)."""
        if observation.ndim != 4 or tuple(observation.shape[1:]) != (3, *self.image_size):
            raise ValueError(f"the PPO agent takes frames (B, 3, {self.image_size[0]}, {self.image_size[1]}), "
                             f"got {tuple(observation.shape)}")
        return self.encoder(observation)

    def distribution(self, features: Tensor) -> Normal:
        mean = self.actor_mean(features)
        return Normal(mean, self.actor_log_std.expand_as(mean).exp(), validate_args=False)

    def value(self, observation: Tensor) -> Tensor:
        """(B) V(observation)."""
        return self.critic(self.features(observation)).squeeze(-1)

    def act(self, observation: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """A sampled (unclamped) action (B, A), its log-probability (B) and the value (B)."""
        features = self.features(observation)
        distribution = self.distribution(features)
        noise = torch.randn(distribution.mean.shape, generator=generator, device=observation.device)
        action = distribution.mean + distribution.stddev * noise
        return action, distribution.log_prob(action).sum(-1), self.critic(features).squeeze(-1)

    def evaluate(self, observation: Tensor, action: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Log-probability (B) and entropy (B) of ``action`` (B, A) under the current policy, and the value (B)."""
        features = self.features(observation)
        distribution = self.distribution(features)
        return (distribution.log_prob(action).sum(-1), distribution.entropy().sum(-1),
                self.critic(features).squeeze(-1))

    def deterministic(self, observation: Tensor) -> Tensor:
        """The mean action (B, A), clamped to [-1, 1] (what the robot runs)."""
        return self.actor_mean(self.features(observation)).clamp(-1.0, 1.0)


def quantize_frames(frames: Tensor) -> Tensor:
    """Frames in [-1, 1] (float) -> uint8 levels, as the camera delivers them (``(x + 1) 127.5``, rounded)."""
    return ((frames.detach().float().clamp(-1.0, 1.0) + 1.0) * 127.5).round().to(torch.uint8)


def frames_to_model_range(frames: Tensor) -> Tensor:
    """uint8 frames -> float32 in [-1, 1] (``x / 127.5 - 1``, the world model's convention)."""
    return frames.float() / 127.5 - 1.0


# -- the run-time policy ---------------------------------------------------------------------------


class PPOPolicy:
    """The trained PPO agent as a :class:`dmo_ros.policy.api.Policy`: the mean action, clamped, in robot units.

    Holds no history (one frame is the whole observation); :meth:`reset` has nothing to forget.
    """

    def __init__(self, agent: PPOAgent, action_limit: np.ndarray, image_size: tuple[int, int],
                 device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.agent = agent.to(self.device).eval()
        self.action_limit = np.asarray(action_limit, dtype=np.float64)
        self.image_size = (int(image_size[0]), int(image_size[1]))
        if self.action_limit.shape != (agent.action_size,):
            raise PolicyError(f"action_limit must hold {agent.action_size} components, got {self.action_limit.shape}")
        if self.image_size != agent.image_size:
            raise PolicyError(f"the agent was built for {agent.image_size} frames, "
                              f"the policy is given {self.image_size}")
        self._limit = torch.as_tensor(self.action_limit, dtype=torch.float32, device=self.device)

    def reset(self) -> None:
        pass

    def observe_action(self, action: np.ndarray) -> None:
        pass  # one frame is the whole observation: nothing to filter

    @torch.no_grad()
    def act(self, frame: np.ndarray) -> np.ndarray:
        pixels = torch.from_numpy(check_frame(frame, self.image_size).copy()).permute(2, 0, 1)[None]
        action = self.agent.deterministic(frames_to_model_range(pixels.to(self.device))) * self._limit
        return clamp_action(action[0].double().cpu().numpy(), self.action_limit)


def ppo_policy_from_state(policy_config: dict[str, Any], agent_state: dict[str, Tensor], action_limit: np.ndarray,
                          image_size: tuple[int, int], device: torch.device | str = "cpu") -> PPOPolicy:
    """A :class:`PPOPolicy` from a run's ``config.json["policy"]`` and the ``agent.*`` weights (prefix stripped)."""
    missing = [key for key in ("encoder_channels", "feature_size") if key not in policy_config]
    if missing:
        raise PolicyError(f"the PPO policy config lacks {missing} (written by PPOAlgorithm.policy_config); "
                          "the run folder is not a PPO run or is damaged")
    limit = np.asarray(action_limit, dtype=np.float64)
    agent = PPOAgent(tuple(image_size), len(limit), tuple(policy_config["encoder_channels"]),
                     int(policy_config["feature_size"]))
    agent.load_state_dict(agent_state)
    return PPOPolicy(agent, limit, image_size, device)


__all__ = ["PPOAgent", "PPOPolicy", "frames_to_model_range", "layer_init", "ppo_policy_from_state",
           "quantize_frames"]
