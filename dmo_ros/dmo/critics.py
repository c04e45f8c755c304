"""SAPO's twin value critics on latent features (training only; the deployable actor is
:mod:`dmo_ros.policy.actor`).

Values are state values V(s) (SAPO, like SHAC, learns V, not Q: the actor's gradient comes through the
dynamics, not through a critic of the action).
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from dmo_ros.policy.actor import mlp


class Critic(nn.Module):
    """V(features): an MLP to one scalar per state."""

    def __init__(self, features: int, hidden: int = 256, layers: int = 2) -> None:
        super().__init__()
        self.trunk = mlp(features, hidden, layers)
        self.head = nn.Linear(hidden if layers else features, 1)
        # Zero output at start: no made-up value bootstraps the first actor steps.
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, features: Tensor) -> Tensor:
        """(..., F) -> (...) values."""
        return self.head(self.trunk(features)).squeeze(-1)


class TwinCritics(nn.Module):
    """Two critics whose values are averaged (SAPO), each with a slowly following target copy.

    Target update (:meth:`update_targets`): Polyak averaging once per training epoch,
    ``target <- ema * target + (1 - ema) * online``, as SHAC does (its ``target_critic_alpha``); ``ema = 0``
    is a plain periodic copy. The targets give the terminal values of the actor objective and the TD-lambda
    bootstrap values, so one epoch's critic regression does not chase its own moving output.
    """

    def __init__(self, features: int, hidden: int = 256, layers: int = 2, count: int = 2) -> None:
        super().__init__()
        if count < 1:
            raise ValueError(f"need at least one critic, got {count}")
        self.online = nn.ModuleList(Critic(features, hidden, layers) for _ in range(count))
        self.targets = copy.deepcopy(self.online)
        self.targets.requires_grad_(False)
        # Different initial trunks but zero heads: both start at V = 0; they diverge as they learn.

    def values(self, features: Tensor) -> Tensor:
        """(count, ...) each online critic's value."""
        return torch.stack([critic(features) for critic in self.online])

    def forward(self, features: Tensor) -> Tensor:
        """(...) the online critics' mean value."""
        return self.values(features).mean(0)

    def target(self, features: Tensor) -> Tensor:
        """(...) the target critics' mean value; differentiable w.r.t. ``features`` (not their parameters)."""
        return torch.stack([critic(features) for critic in self.targets]).mean(0)

    @torch.no_grad()
    def update_targets(self, ema: float) -> None:
        """``target <- ema * target + (1 - ema) * online`` for every parameter and buffer."""
        if not 0.0 <= ema < 1.0:
            raise ValueError(f"ema must be in [0, 1), got {ema}")
        for target, online in zip(self.targets.parameters(), self.online.parameters(), strict=True):
            target.lerp_(online, 1.0 - ema)
        for target, online in zip(self.targets.buffers(), self.online.buffers(), strict=True):
            target.copy_(online)


__all__ = ["Critic", "TwinCritics"]
