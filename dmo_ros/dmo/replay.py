"""The replay buffer of forward-model transitions the local model is fine-tuned on (Algorithm 1).

Every DMO-SAPO epoch adds B imagined sequences of H + 1 frames (the world model's images as
uint8, the actions between them, the global reward model's label of every frame). Sampling
draws random sub-sequences as :class:`dmo_ros.local_model.SequenceBatch` es, the batches the
local model's own loss takes. A ring of whole sequences: the oldest are overwritten first.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from dmo_ros.local_model.model import SequenceBatch


def to_uint8_frames(frames: Tensor) -> Tensor:
    """Frames in [-1, 1] (any shape) -> uint8 pixels, as a camera would have recorded them."""
    return ((frames.detach().float().clamp(-1.0, 1.0) + 1.0) * 127.5).round().to(torch.uint8)


def _ring_state(ring: ReplayBuffer | GradientProbeBuffer, names: tuple[str, ...]) -> dict[str, Any]:
    """A ring's filled rows, cursor and sampling RNG: what a resume needs to go on as if never stopped (plain
    tensors, ints and the NumPy generator's state dict, all loadable with ``torch.load(weights_only=True)``)."""
    return {"size": ring.size, "cursor": ring.cursor, "rng": ring.rng.bit_generator.state,
            **{name: getattr(ring, name)[: ring.size].clone() for name in names}}


def _load_ring_state(ring: ReplayBuffer | GradientProbeBuffer, state: dict[str, Any], names: tuple[str, ...],
                     what: str) -> None:
    """Put a ring back from :func:`_ring_state`; :class:`ValueError` when the saved rows do not fit this ring (a
    resume with another capacity, history length or image size)."""
    size = int(state["size"])
    for name in names:
        saved, rows = state[name], getattr(ring, name)
        if size > ring.capacity or tuple(saved.shape) != (size, *rows.shape[1:]) or saved.dtype != rows.dtype:
            raise ValueError(f"the checkpoint's {what} holds {name} {tuple(saved.shape)} ({saved.dtype}), which do "
                             f"not fit this run's {tuple(rows.shape)} ({rows.dtype}) (another horizon, capacity or "
                             "image size)")
    for name in names:
        getattr(ring, name)[:size] = state[name]
    ring.size, ring.cursor = size, int(state["cursor"]) % ring.capacity
    ring.rng.bit_generator.state = state["rng"]


class ReplayBuffer:
    """Up to ``capacity`` imagined sequences, each ``length`` frames long, kept on the CPU."""

    def __init__(self, capacity: int, length: int, image_shape: tuple[int, int, int], action_size: int,
                 seed: int = 0) -> None:
        if capacity < 1 or length < 2:
            raise ValueError(f"replay capacity must be >= 1 and sequence length >= 2, got {capacity}, {length}")
        self.capacity, self.length = int(capacity), int(length)
        self.frames = torch.zeros(capacity, length, *image_shape, dtype=torch.uint8)
        self.actions = torch.zeros(capacity, length, action_size)
        self.rewards = torch.zeros(capacity, length)
        self.size = 0
        self.cursor = 0
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return self.size

    def add(self, frames: Tensor, actions: Tensor, rewards: Tensor) -> None:
        """Add B sequences: frames (B, T, 3, H, W) in [-1, 1] or uint8, actions (B, T - 1, A), rewards (B, T).

        ``actions[:, t]`` led from frame t to frame t + 1; the sequence's last action slot is stored as 0
        (it leads out of the sequence; the local model's loss does not use it).
        """
        batch, length = frames.shape[:2]
        if length != self.length or actions.shape[:2] != (batch, length - 1) or rewards.shape != (batch, length):
            raise ValueError(f"replay sequences are {self.length} frames: got frames {tuple(frames.shape)}, actions "
                             f"{tuple(actions.shape)}, rewards {tuple(rewards.shape)}")
        if not (torch.isfinite(actions).all() and torch.isfinite(rewards).all()):
            raise ValueError("non-finite actions or rewards offered to the replay buffer")
        pixels = frames if frames.dtype == torch.uint8 else to_uint8_frames(frames)
        padded = torch.cat([actions.detach().float(), actions.new_zeros(batch, 1, actions.shape[-1])], dim=1)
        for b in range(batch):
            self.frames[self.cursor] = pixels[b].cpu()
            self.actions[self.cursor] = padded[b].cpu()
            self.rewards[self.cursor] = rewards[b].detach().float().cpu()
            self.cursor = (self.cursor + 1) % self.capacity
            self.size = min(self.size + 1, self.capacity)

    def sample(self, batch_size: int, length: int) -> SequenceBatch:
        """``batch_size`` random sub-sequences of ``length`` frames (uniform over sequences and offsets)."""
        if self.size == 0:
            raise ValueError("the replay buffer is empty")
        if not 2 <= length <= self.length:
            raise ValueError(f"sub-sequence length must be in [2, {self.length}], got {length}")
        rows = self.rng.integers(0, self.size, size=batch_size)
        starts = self.rng.integers(0, self.length - length + 1, size=batch_size)
        index = torch.as_tensor(starts)[:, None] + torch.arange(length)[None]
        rows_t = torch.as_tensor(rows)[:, None]
        return SequenceBatch(frames=self.frames[rows_t, index], actions=self.actions[rows_t, index],
                             rewards=self.rewards[rows_t, index])

    _STORED = ("frames", "actions", "rewards")

    def state_dict(self) -> dict[str, Any]:
        """The stored sequences (filled rows only), cursor and sampling RNG, for a checkpoint: a resumed run
        fine-tunes on what the interrupted one had gathered."""
        return _ring_state(self, self._STORED)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; ``ValueError`` when it does not fit this buffer's shape."""
        _load_ring_state(self, state, self._STORED, "replay buffer")


class GradientProbeBuffer:
    """Up to ``capacity`` gradient probes for DMO's gradient matching (``DMOConfig.gradient_matching_scale``), kept on
    the CPU: each a state's recent history (``length`` frames, uint8) with the actions that led through it, the last
    action the one probed, and the forward model's finite-difference reward gradient with respect to that action.
    A ring: the oldest are overwritten first."""

    def __init__(self, capacity: int, length: int, image_shape: tuple[int, int, int], action_size: int,
                 seed: int = 0) -> None:
        if capacity < 1 or length < 1:
            raise ValueError(f"probe capacity and history length must be >= 1, got {capacity}, {length}")
        self.capacity, self.length = int(capacity), int(length)
        self.frames = torch.zeros(capacity, length, *image_shape, dtype=torch.uint8)
        self.actions = torch.zeros(capacity, length, action_size)
        self.gradients = torch.zeros(capacity, action_size)
        self.size = 0
        self.cursor = 0
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return self.size

    def add(self, frames: Tensor, actions: Tensor, gradients: Tensor) -> None:
        """Add B probes: frames (B, L, 3, H, W) in [-1, 1] or uint8, actions (B, L, A) (``actions[:, t]`` led from
        frame t to t + 1; the last is the probed action), gradients (B, A) in reward units per action unit.

        Raises:
            ValueError: shapes that do not match the buffer's, or non-finite actions or gradients."""
        batch = frames.shape[0]
        if (frames.shape[1:] != self.frames.shape[1:] or actions.shape != (batch, *self.actions.shape[1:])
                or gradients.shape != (batch, self.gradients.shape[1])):
            raise ValueError(f"probes hold {self.length} frames: got frames {tuple(frames.shape)}, actions "
                             f"{tuple(actions.shape)}, gradients {tuple(gradients.shape)}")
        if not (torch.isfinite(actions).all() and torch.isfinite(gradients).all()):
            raise ValueError("non-finite actions or gradients offered to the probe buffer")
        pixels = frames if frames.dtype == torch.uint8 else to_uint8_frames(frames)
        for b in range(batch):
            self.frames[self.cursor] = pixels[b].cpu()
            self.actions[self.cursor] = actions[b].detach().float().cpu()
            self.gradients[self.cursor] = gradients[b].detach().float().cpu()
            self.cursor = (self.cursor + 1) % self.capacity
            self.size = min(self.size + 1, self.capacity)

    def sample(self, batch_size: int) -> tuple[Tensor, Tensor, Tensor]:
        """``batch_size`` random probes: frames (N, L, 3, H, W) uint8, actions (N, L, A), gradients (N, A).

        Raises:
            ValueError: the buffer is empty."""
        if self.size == 0:
            raise ValueError("the probe buffer is empty")
        rows = torch.as_tensor(self.rng.integers(0, self.size, size=batch_size))
        return self.frames[rows], self.actions[rows], self.gradients[rows]

    def gradient_scale(self) -> float:
        """The median norm of the stored gradients (at least 1e-6): the unit the matching loss is measured in."""
        if self.size == 0:
            raise ValueError("the probe buffer is empty")
        return max(float(self.gradients[: self.size].norm(dim=-1).median()), 1e-6)

    _STORED = ("frames", "actions", "gradients")

    def state_dict(self) -> dict[str, Any]:
        """The stored probes (filled rows only), cursor and sampling RNG, for a checkpoint: the probes are
        forward-model samples already paid for."""
        return _ring_state(self, self._STORED)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; ``ValueError`` when it does not fit this buffer's shape."""
        _load_ring_state(self, state, self._STORED, "gradient probe buffer")


__all__ = ["GradientProbeBuffer", "ReplayBuffer", "to_uint8_frames"]
