"""The world model as a batched environment: real context in, imagined frames out, one action per step.

Time convention (the same as :class:`dmo_ros.dataset.loaders.Window`): action ``a_t`` is taken
at frame ``f_t`` and leads to ``f_{t+1}``, and ``f_{t+1}`` is generated from the L latest frames
``f_{t-L+1} .. f_t`` and the L latest actions ``a_{t-L+1} .. a_t`` — the last of which is the one
just given to :meth:`WorldModelEnv.step`.

So the environment keeps, per batch element:

- ``frames``: the L latest frames ``f_{t-L+1} .. f_t`` (``observation`` is ``f_t``);
- ``actions``: the L - 1 actions *between* them, ``a_{t-L+1} .. a_{t-1}``: ``actions[:, i]`` led
  from ``frames[:, i]`` to ``frames[:, i + 1]``.

``step(a_t)`` samples ``f_{t+1}`` from (frames, actions + [a_t]) and rolls both: afterwards
``frames[:, -1]`` is the new frame and ``actions[:, -1]`` is ``a_t``, the action that produced it.

Starting from a real window: ``reset_from_windows(window)`` takes its L context frames and the
first L - 1 context actions; the window's last context action (``window.actions[:, L - 1]``,
which leads out of the context) is *not* applied — the first :meth:`step` supplies that action.
Replaying the recorded actions open-loop therefore means
``rollout(window.actions[:, L - 1 : L - 1 + H])``, which predicts ``window.frames[:, L : L + H]``.
"""

from __future__ import annotations

import contextlib

import torch
from torch import Tensor

from dmo_ros.dataset.loaders import Window
from dmo_ros.world_model.config import SamplerConfig
from dmo_ros.world_model.denoiser import Denoiser, to_model_range, to_uint8
from dmo_ros.world_model.sampler import DiffusionSampler

__all__ = ["WorldModelEnv", "to_uint8", "to_model_range"]


class WorldModelEnv:
    """A batch of B imagined episodes stepped in lock-step by a diffusion world model.

    Args:
        denoiser: the trained world model.
        sampler_config: how frames are sampled: steps, solver, change threshold, precision (default: the
            model's own, :attr:`Denoiser.sampler_config`).
        device: where to run; default the denoiser's device. A different device moves the denoiser there.
        grad: keep the autograd graph through sampling (default False: every call runs under ``no_grad``).
        generator: source of the sampler's noise, for reproducible rollouts (on any device).
        channels_last: on a CPU, put the denoiser's weights in channels-last memory format (oneDNN's preferred
            layout: with the sampler's prepared context and conditioning 1.5-1.8x faster sampling than before,
            the same frames up to float rounding; ``benchmarks/sampling_speed.py``,
            docs/world_models.md "Sampling speed").
            It converts ``denoiser`` in place, which changes no result elsewhere.
    """

    def __init__(self, denoiser: Denoiser, sampler_config: SamplerConfig | None = None,
                 device: torch.device | str | None = None, grad: bool = False,
                 generator: torch.Generator | None = None, channels_last: bool = True) -> None:
        self.device = torch.device(device) if device is not None else denoiser.device
        self.denoiser = denoiser.to(self.device)
        if channels_last and self.device.type == "cpu":
            self.denoiser.to(memory_format=torch.channels_last)
        self.sampler = DiffusionSampler(self.denoiser, sampler_config)
        self.bf16 = self.sampler.config.bf16
        """Sampling under bfloat16 autocast (:attr:`SamplerConfig.bf16`)."""
        self.grad = grad
        self.generator = generator
        self.context = denoiser.config.context
        self._frames: Tensor | None = None
        self._actions: Tensor | None = None

    def _autograd(self) -> contextlib.AbstractContextManager:
        stack = contextlib.ExitStack()
        if not self.grad:
            stack.enter_context(torch.no_grad())
        if self.bf16:
            stack.enter_context(torch.autocast(self.device.type, dtype=torch.bfloat16))
        return stack

    # -- state -------------------------------------------------------------------------------

    def _require_reset(self) -> tuple[Tensor, Tensor]:
        if self._frames is None or self._actions is None:
            raise RuntimeError("call reset() or reset_from_windows() before stepping the world model")
        return self._frames, self._actions

    @property
    def frames(self) -> Tensor:
        """(B, L, 3, H, W) float in [-1, 1]: the current context, oldest first; the last is the observation."""
        return self._require_reset()[0]

    @property
    def actions(self) -> Tensor:
        """(B, L - 1, A): the actions between the context frames; ``actions[:, i]`` led to ``frames[:, i + 1]``."""
        return self._require_reset()[1]

    @property
    def observation(self) -> Tensor:
        """(B, 3, H, W) float in [-1, 1]: the latest frame."""
        return self.frames[:, -1]

    @property
    def batch_size(self) -> int:
        return self.frames.shape[0]

    # -- reset ---------------------------------------------------------------------------------

    def reset(self, context_frames: Tensor, context_actions: Tensor) -> Tensor:
        """Start B episodes from real context; returns the observation (B, 3, H, W).

        Args:
            context_frames: (B, L, 3, H, W) uint8 or float in [-1, 1], oldest first.
            context_actions: (B, L, A) as in a :class:`Window` (``[:, i]`` taken at frame i; the last,
                leading out of the context, is dropped: the next :meth:`step` gives it), or (B, L - 1, A),
                just the actions between the frames.
        """
        length, cfg = self.context, self.denoiser.config
        if context_frames.ndim != 5 or context_frames.shape[1] != length:
            raise ValueError(f"context frames must be (B, {length}, C, H, W), got {tuple(context_frames.shape)}")
        if (context_actions.ndim != 3 or context_actions.shape[0] != context_frames.shape[0]
                or context_actions.shape[1] not in (length, length - 1) or context_actions.shape[2] != cfg.action_size):
            raise ValueError(
                f"context actions must be (B, {length}, {cfg.action_size}) or (B, {length - 1}, {cfg.action_size}) "
                f"for {context_frames.shape[0]} context windows, got {tuple(context_actions.shape)}"
            )
        self._frames = to_model_range(context_frames.to(self.device))
        self._actions = context_actions[:, : length - 1].to(self.device, torch.float32)
        return self.observation

    def restart(self, index: Tensor, context_frames: Tensor, context_actions: Tensor) -> Tensor:
        """Restart only the episodes ``index`` (B',) from new real context (B', L, ...); the others go on.

        Returns the observations of all B episodes.
        """
        frames, actions = self._require_reset()
        others = (frames, actions)
        self.reset(context_frames, context_actions)  # validates and converts the new context
        fresh_frames, fresh_actions = self._frames, self._actions
        frames, actions = others[0].clone(), others[1].clone()
        index = index.to(self.device)
        frames[index], actions[index] = fresh_frames, fresh_actions
        self._frames, self._actions = frames, actions
        return self.observation

    def reset_from_windows(self, window: Window) -> Tensor:
        """Start from a batch of real windows (their context frames and actions); returns the observation."""
        if window.context != self.context:
            raise ValueError(f"windows have context {window.context}, the world model {self.context}")
        return self.reset(window.context_frames, window.context_actions)

    # -- stepping ------------------------------------------------------------------------------

    def step(self, actions: Tensor) -> Tensor:
        """Apply ``actions`` (B, A) (raw units) at the latest frame; returns the next frames (B, 3, H, W) in [-1, 1]."""
        return self.step_samples(actions, 1)[:, 0]

    def step_samples(self, actions: Tensor, samples: int) -> Tensor:
        """Apply ``actions`` (B, A) and sample the next frame ``samples`` (K) times, each from its own noise.

        Returns (B, K, 3, H, W) in [-1, 1]; the episodes continue from sample 0 (the others show how much the
        model's answer depends on the noise: the hallucination flag of :mod:`dmo_ros.world_model.dreaming`).
        One batched sampler call of B x K frames; K = 1 is exactly :meth:`step`.
        """
        frames, past_actions = self._require_reset()
        if samples < 1:
            raise ValueError(f"samples must be at least 1, got {samples}")
        actions = actions.to(self.device, torch.float32)
        if actions.shape != (frames.shape[0], self.denoiser.config.action_size):
            raise ValueError(f"actions must be ({frames.shape[0]}, {self.denoiser.config.action_size}), "
                             f"got {tuple(actions.shape)}")
        with self._autograd():
            model_actions = torch.cat([past_actions, actions[:, None]], dim=1)  # L actions, the last leads on
            if samples == 1:
                drawn = self.sampler.sample(frames, model_actions, self.generator).float()[:, None]
            else:
                drawn = self.sampler.sample(frames.repeat_interleave(samples, 0),
                                            model_actions.repeat_interleave(samples, 0), self.generator).float()
                drawn = drawn.unflatten(0, (frames.shape[0], samples))
            self._frames = torch.cat([frames[:, 1:], drawn[:, :1]], dim=1)
            self._actions = model_actions[:, 1:]
        return drawn

    def rollout(self, actions: Tensor) -> Tensor:
        """Step through ``actions`` (B, T, A) open-loop; returns the T imagined frames (B, T, 3, H, W)."""
        if actions.ndim != 3:
            raise ValueError(f"rollout actions must be (B, T, A), got {tuple(actions.shape)}")
        return torch.stack([self.step(actions[:, t]) for t in range(actions.shape[1])], dim=1)
