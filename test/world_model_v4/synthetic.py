"""Synthetic latent videos for the dynamics tests: a point in the plane moved by the actions."""

from __future__ import annotations

import torch

from dmo_ros.world_model_v4.dynamics import LatentWindow

GAIN = 0.3
"""Displacement per step per unit action."""

LIMIT = 0.8
"""The point stays in [-LIMIT, LIMIT]^2."""


def point_latents(state: torch.Tensor, tokens: int, dim: int) -> torch.Tensor:
    """States (..., 2) -> latents (..., tokens, dim): channel j of every token is state[j % 2]."""
    index = torch.arange(dim) % 2
    return state[..., None, :][..., index].expand(*state.shape[:-1], tokens, dim).contiguous()


def point_video(batch: int, length: int, tokens: int = 4, dim: int = 8, generator: torch.Generator | None = None
                ) -> tuple[LatentWindow, torch.Tensor]:
    """Windows where action a_t in [-1, 1]^2 moves the point: s_{t+1} = clip(s_t + GAIN a_t); also the states."""
    actions = torch.rand(batch, length, 2, generator=generator) * 2 - 1
    states = [torch.rand(batch, 2, generator=generator) * 2 * LIMIT - LIMIT]
    for t in range(length - 1):
        states.append((states[-1] + GAIN * actions[:, t]).clamp(-LIMIT, LIMIT))
    state = torch.stack(states, 1)
    window = LatentWindow(latents=point_latents(state, tokens, dim), actions=actions,
                          intent=torch.zeros(batch, length, dtype=torch.bool), milestone=torch.zeros(batch, length))
    return window, state


def train_steps(model: torch.nn.Module, make_batch, steps: int, lr: float = 3e-3) -> None:
    """A plain AdamW loop over ``model(make_batch()) -> (loss, logs)``."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    for _ in range(steps):
        loss, _ = model(make_batch())
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    model.eval()
