"""The whole DreamerV4-style world model (frozen tokenizer + dynamics) and how a run folder is loaded.

``dmo-train-dynamics`` trains :class:`WorldModelV4`: the tokenizer of a ``dmo-train-tokenizer`` run, frozen,
plus the dynamics transformer; its checkpoint holds both, so one run folder is the whole model::

    model = load_world_model_v4("runs/v4_dynamics")        # safetensors + config.json: no code runs
    latents = model.encode(frames)                           # (B, T, 3, H, W) -> (B, T, N_z, D_z)
    frames = model.decode(latents)                           # and back, in [-1, 1]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from dmo_ros.world_model_v4.config import DynamicsConfig, TokenizerConfig
from dmo_ros.world_model_v4.dynamics import Dynamics, KVCache, LatentWindow
from dmo_ros.world_model_v4.tokenizer import Tokenizer

TOKENIZER_KIND = "world_model_v4_tokenizer"
"""``config.json`` ``kind`` of a tokenizer run."""

DYNAMICS_KIND = "world_model_v4"
"""``config.json`` ``kind`` of a dynamics run (the whole world model)."""


class WorldModelV4(nn.Module):
    """Tokenizer (frozen: no gradient) + dynamics; ``forward(LatentWindow) -> (loss, logs)`` trains the dynamics.

    ``config`` is the dynamics config (it carries ``image_size``, ``action_size`` and ``context``, what users
    of a world model check).
    """

    def __init__(self, tokenizer_config: TokenizerConfig, dynamics_config: DynamicsConfig) -> None:
        super().__init__()
        if (tokenizer_config.latent_tokens, tokenizer_config.latent_dim, tokenizer_config.image_size) != (
                dynamics_config.latent_tokens, dynamics_config.latent_dim, dynamics_config.image_size):
            raise ValueError("the dynamics' latent_tokens, latent_dim and image_size must be the tokenizer's: "
                             f"{tokenizer_config.latent_tokens}, {tokenizer_config.latent_dim}, "
                             f"{tokenizer_config.image_size}")
        self.tokenizer = Tokenizer(tokenizer_config).requires_grad_(False)
        self.dynamics = Dynamics(dynamics_config)
        self.config = dynamics_config
        self.tokenizer_config = tokenizer_config

    def train(self, mode: bool = True) -> WorldModelV4:
        super().train(mode)
        self.tokenizer.eval()  # frozen: no masking, no dropout-like behaviour while the dynamics trains
        return self

    @property
    def device(self) -> torch.device:
        return self.dynamics.device

    @property
    def num_parameters(self) -> int:
        """Parameters of the dynamics (the trained part)."""
        return sum(p.numel() for p in self.dynamics.parameters())

    @torch.no_grad()
    def encode(self, frames: Tensor, batch_size: int = 256) -> Tensor:
        """Frames (..., 3, H, W) uint8 or float in [-1, 1] -> latents (..., N_z, D_z), in chunks of ``batch_size``."""
        lead = frames.shape[:-3]
        flat = frames.reshape(-1, *frames.shape[-3:])
        parts = [self.tokenizer.encode(flat[i:i + batch_size].to(self.device)) for i in range(0, len(flat), batch_size)]
        return torch.cat(parts).reshape(*lead, *parts[0].shape[1:])

    def decode(self, latents: Tensor) -> Tensor:
        """Latents (..., N_z, D_z) -> frames (..., 3, H, W) in [-1, 1] (clamped)."""
        lead = latents.shape[:-2]
        frames = self.tokenizer.decode(latents.reshape(-1, *latents.shape[-2:]))
        return frames.clamp(-1, 1).reshape(*lead, *frames.shape[1:])

    def forward(self, batch: LatentWindow) -> tuple[Tensor, dict[str, Any]]:
        return self.dynamics(batch)


class RewardPostTraining(WorldModelV4):
    """The reward post-training stage: a pretrained world model whose reward token alone trains on the labelled
    play data (intent + milestone), on frames at the context noise level that imagination reads rewards from.

    DreamerV4 (Hafner et al. 2025, "agent finetuning") adds task heads to the pretrained world model and trains
    them on labelled data. Here the tokenizer and the whole transformer stay frozen and only the reward token's
    input vector and its head train, so the latent predictions stay exactly the pretrained model's (the latent
    tokens never read the reward token). Same parameters as :class:`WorldModelV4`: the run folder loads with
    :func:`load_world_model_v4`.
    """

    TRAINED = ("dynamics.reward_token", "dynamics.reward_head.")

    def __init__(self, tokenizer_config: TokenizerConfig, dynamics_config: DynamicsConfig) -> None:
        super().__init__(tokenizer_config, dynamics_config)
        for name, parameter in self.named_parameters():
            parameter.requires_grad_(name.startswith(self.TRAINED))

    @property
    def num_parameters(self) -> int:
        """Parameters that train in this stage (the reward token and its head)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def forward(self, batch: LatentWindow) -> tuple[Tensor, dict[str, Any]]:
        return self.dynamics.reward_loss(batch)


def load_tokenizer(run_dir: Path | str, device: torch.device | str = "cpu", checkpoint: str = "last") -> Tokenizer:
    """The tokenizer trained in ``run_dir`` (config.json + safetensors; loading runs no code)."""
    from dmo_ros.training import load_model_weights, read_run_config

    run_config = read_run_config(run_dir)
    if run_config.get("kind") != TOKENIZER_KIND or "model" not in run_config:
        raise ValueError(f"{run_dir}: not a dmo-train-tokenizer run (kind {run_config.get('kind')!r})")
    tokenizer = Tokenizer(TokenizerConfig.from_dict(run_config["model"]))
    tokenizer.load_state_dict(load_model_weights(run_dir, checkpoint))
    return tokenizer.to(device).eval()


def is_world_model_v4(run_dir: Path | str) -> bool:
    """True when ``run_dir`` is a ``dmo-train-dynamics`` run (so callers pick this model's environment)."""
    from dmo_ros.training import CheckpointError, read_run_config

    try:
        return read_run_config(run_dir).get("kind") == DYNAMICS_KIND
    except CheckpointError:
        return False


def load_world_model_v4(run_dir: Path | str, device: torch.device | str = "cpu",
                        checkpoint: str = "last") -> WorldModelV4:
    """The world model of a ``dmo-train-dynamics`` run: tokenizer and dynamics from its one checkpoint."""
    from dmo_ros.training import load_model_weights, read_run_config

    run_config = read_run_config(run_dir)
    if run_config.get("kind") != DYNAMICS_KIND or "model" not in run_config or "tokenizer" not in run_config:
        raise ValueError(f"{run_dir}: not a dmo-train-dynamics run (kind {run_config.get('kind')!r})")
    model = WorldModelV4(TokenizerConfig.from_dict(run_config["tokenizer"]),
                         DynamicsConfig.from_dict(run_config["model"]))
    model.load_state_dict(load_model_weights(run_dir, checkpoint))
    return model.to(device).eval()


@torch.no_grad()
def reward_head_on_episodes(model: WorldModelV4, folder: Path | str, split: str = "all",
                            seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The reward token's head on every frame of a dataset's recorded episodes, teacher-forced.

    Each episode's real frames and recorded actions are committed to the KV cache in chunks of up to
    ``context - 1`` frames, re-noised to the context level as imagination commits frames, so the head reads each
    frame as it would in an imagined rollout (an episode's first frame has no action into it). ``split``: "train",
    "val" or "all" (meta.json's episodes). Returns the dataset sample indices (n,) int64 in order and the head
    outputs (n, 2) float32 (intent logit, milestone); :meth:`Dynamics.reward` turns them into rewards. Used for the
    reward token's AUC (``dmo-world-model-v4-report``) and to label the local model's rewards (DESIGN §6: the
    local RSSM learns the global reward of the DreamerV4-style model).
    """
    from dmo_ros.dataset.loaders import WindowDataset

    dataset = WindowDataset(folder, context=1, horizon=0, split=split)
    arrays, dynamics, device = dataset.arrays, model.dynamics, model.device
    chunk = model.config.context - 1
    generator = torch.Generator(device=device).manual_seed(seed)
    indices, heads = [], []
    for episode in dataset.episodes:
        first, length = int(episode["start"]), int(episode["length"])
        for begin in range(first, first + length, chunk):
            end = min(begin + chunk, first + length)
            frames = torch.from_numpy(np.array(arrays["frames"][begin:end])).permute(0, 3, 1, 2)[None]
            actions = torch.from_numpy(np.array(arrays["actions"][begin:end], dtype=np.float32))[None].to(device)
            latents = dynamics.renoise(model.encode(frames.to(device)), generator)
            actions_in = torch.cat([torch.zeros_like(actions[:, :1]), actions[:, :-1]], 1)
            has_action = torch.ones(1, end - begin, dtype=torch.bool, device=device)
            has_action[:, 0] = begin > first
            heads.append(dynamics.commit(KVCache(chunk), latents, actions_in, has_action)[0].float().cpu().numpy())
            indices.append(np.arange(begin, end))
    if not heads:
        return np.zeros(0, np.int64), np.zeros((0, 2), np.float32)
    return np.concatenate(indices).astype(np.int64), np.concatenate(heads).astype(np.float32)


__all__ = ["DYNAMICS_KIND", "TOKENIZER_KIND", "RewardPostTraining", "WorldModelV4", "is_world_model_v4",
           "load_tokenizer", "load_world_model_v4",
           "reward_head_on_episodes"]
