"""The local model's reward head read on single frames, and the gradient it hands DMO's actor there.

For looking at what DMO differentiates (``scripts/reward_agent_map.py``, ``scripts/pushing_reward_agent_spots.py``):
each frame is held for :data:`HOLD_STEPS` filter steps with a zero action so the deterministic state has seen it,
then the reward head (DreamerV3's symlog two-hot head, :class:`~dmo_ros.local_model.model.LocalModel`) is read
on that posterior.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from dmo_ros.local_model.model import LocalModel
from dmo_ros.local_model.rssm import RSSMState, features

HOLD_STEPS = 4
"""Filter steps of the local model on each held frame before its reward head is read."""


def _held_posterior(model: LocalModel, frames: torch.Tensor):
    state = model.rssm.initial(len(frames), frames.device)
    embed = model.encode(frames)
    zero = torch.zeros(len(frames), model.config.action_size, device=frames.device, dtype=embed.dtype)
    for _ in range(HOLD_STEPS):
        state = model.rssm.posterior(model.rssm.prior_step(state, zero, sample=False), embed, sample=False)
    return state


def local_reward_of_frames(model: LocalModel):
    """The local model's reward head as a frame reward: ``(frames (N, 3, H, W) uint8, start) -> (N,)``, on the
    posterior after :data:`HOLD_STEPS` filter steps of each frame with a zero action (``start`` is not used; it
    is there to match :class:`~dmo_ros.gates.local_model.RewardOfFrames`)."""

    @torch.no_grad()
    def reward(frames: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
        model.eval()
        return model.reward(_held_posterior(model, frames))

    return reward


def _held_action_gradient(model: LocalModel, frames: torch.Tensor, steps: int,
                          reward_of_state: Callable[[RSSMState], torch.Tensor]) -> torch.Tensor:
    """(N, A) ``d/da sum_k reward_of_state(s_k)`` at a = 0, ``s_k`` the prior after k of ``steps`` steps with the
    action a held from the held posterior of each frame."""
    model.eval()
    with torch.no_grad():
        state = _held_posterior(model, frames)
    action = torch.zeros(len(frames), model.config.action_size, device=frames.device, dtype=state.deter.dtype,
                         requires_grad=True)
    total = torch.zeros((), device=frames.device, dtype=state.deter.dtype)
    for _ in range(steps):
        state = model.rssm.prior_step(state, action, sample=False)
        total = total + reward_of_state(state).sum()
    (gradient,) = torch.autograd.grad(total, action)
    return gradient


def local_reward_gradients(model: LocalModel, frames: torch.Tensor, steps: int = 1) -> torch.Tensor:
    """(N, A) ``d/da sum_k r̂(s_k)`` at a = 0 of the local model (per unit of the raw action), ``s_k``
    its prior after k of ``steps`` steps with the action a held from the posterior of each frame (filtered as
    :func:`local_reward_of_frames` does). ``steps`` 1 is the local gate's one-step gradient."""
    return _held_action_gradient(model, frames, steps, model.reward)


def decoded_reward_gradients(model: LocalModel, reward: Callable[[torch.Tensor], torch.Tensor], frames: torch.Tensor,
                             steps: int = 1) -> torch.Tensor:
    """(N, A) ``d/da sum_k R(D(s_k))`` at a = 0: as :func:`local_reward_gradients`, but each prior state ``s_k`` is
    decoded to a frame by the local model's decoder ``D`` (clamped to [-1, 1]) and scored by ``reward``, a global
    frame reward that differentiates (:func:`~dmo_ros.reward.energy.frame_reward` with ``grad=True``;
    ``(frames (N, 3, H, W) float in [-1, 1]) -> (N,)``). It takes the reward head out of the gradient: when this
    drifts like the head's gradient, the latent's dynamics (what the prior does with the action) cause it.

    Raises:
        ValueError: a local model trained without a decoder (``decoder_loss_scale`` 0).
    """
    decoder = model.decoder
    if decoder is None:
        raise ValueError("the local model has no decoder (trained with decoder_loss_scale 0)")
    return _held_action_gradient(model, frames, steps,
                                 lambda state: reward(decoder(features(state)).clamp(-1.0, 1.0)))


def cosine_toward(points: np.ndarray, gradients: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(N,) cosine of each gradient (N, 2) with the direction from its point (N, 2) to ``target`` ((2,) or (N, 2));
    points and target in the same units (arena units)."""
    toward = target - points
    return (gradients * toward).sum(1) / (np.linalg.norm(gradients, axis=1) * np.linalg.norm(toward, axis=1) + 1e-12)


def gradient_drift(gradients: np.ndarray) -> tuple[float, np.ndarray]:
    """How much a field of gradients (N, 2) is one direction everywhere: ``(resultant length, mean direction (2,))``
    of their unit vectors. 1: the same direction at every state (a state-independent drift, which drives a policy
    into a wall); near 0: directions that depend on the state."""
    units = gradients / (np.linalg.norm(gradients, axis=1, keepdims=True) + 1e-12)
    mean = units.mean(0)
    return float(np.linalg.norm(mean)), mean / (np.linalg.norm(mean) + 1e-12)
