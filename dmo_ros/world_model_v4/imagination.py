"""The DreamerV4-style world model as a batched environment: real history in, imagined frames and rewards out.

The contract of the DIAMOND env (:class:`dmo_ros.world_model.imagination.WorldModelEnv`), with rewards:

    env = WorldModelV4Env(load_world_model_v4("runs/v4_dynamics"))
    obs = env.reset(frames, actions)        # frames (B, L, 3, H, W), actions (B, L, A) or (B, L - 1, A)
    frames, rewards = env.step(actions)     # (B, 3, H, W) in [-1, 1], (B,) the reward token's reward
    frames, rewards = env.rollout(actions)  # (B, T, A) -> (B, T, 3, H, W), (B, T)

Time convention (that of :class:`dmo_ros.dataset.loaders.Window`): ``actions[:, i]`` is taken at frame i and
leads to frame i + 1. :meth:`reset` prefills the KV cache with the L real frames (the paper prefills
L_init = 32 frames before RL starts) and the L - 1 actions between them; a window's last context action,
which leads out of the context, is not applied: the first :meth:`step` gives it. So replaying the recorded
actions open-loop is ``rollout(window.actions[:, L - 1 : L - 1 + H])``, predicting
``window.frames[:, L : L + H]``.

Each step samples the next frame's latents in ``steps`` shortcut steps against the cache (or, with
``use_cache=False``, recomputing the whole window each step: the reference the cache is tested against),
decodes them, and commits them (re-noised to tau_ctx) to the cache; the commit pass's reward token gives the
reward of the frame just reached. The model keeps at most ``context - 1`` past frames (a sliding window).

:meth:`restart` of some episodes re-prefills the cache of the whole batch (one batch shares one cache
length): the restarted episodes from their new real history, the others from their own latest committed
frames, cut to the same length.
"""

from __future__ import annotations

import contextlib

import torch
from torch import Tensor

from dmo_ros.dataset.loaders import Window
from dmo_ros.world_model_v4.dynamics import KVCache
from dmo_ros.world_model_v4.model import WorldModelV4
from dmo_ros.world_model_v4.tokenizer import to_model_range


class WorldModelV4Env:
    """B imagined episodes stepped in lock-step by the DreamerV4-style world model; see the module doc.

    Args:
        model: the trained world model (tokenizer + dynamics).
        steps: denoising steps per frame (default: the model's ``sampling_steps``, 4).
        device: where to run (default: the model's device; another one moves the model).
        generator: source of the sampling and re-noising noise, for reproducible rollouts.
        use_cache: step against the KV cache (default) or recompute the window every denoising step.
        context: frames the model attends over at most (default: the model's ``context``; smaller truncates
            the memory, e.g. 4 for the short-context comparison of the object-permanence test).
        frames_kept: decoded frames kept for :attr:`frames` (what a local model filters; default 4).
    """

    def __init__(self, model: WorldModelV4, steps: int | None = None, device: torch.device | str | None = None,
                 generator: torch.Generator | None = None, use_cache: bool = True, context: int | None = None,
                 frames_kept: int = 4) -> None:
        self.device = torch.device(device) if device is not None else model.device
        self.model = model.to(self.device).eval()
        self.dynamics = self.model.dynamics
        self.config = model.config
        self.steps = int(steps or self.config.sampling_steps)
        self.generator = generator
        self.use_cache = use_cache
        self.context = int(context or self.config.context)
        if not 2 <= self.context <= self.config.context:
            raise ValueError(f"context must be in [2, {self.config.context}], got {self.context}")
        if frames_kept < 1:
            raise ValueError(f"frames_kept must be at least 1, got {frames_kept}")
        self.frames_kept = int(frames_kept)
        self.cache: KVCache | None = None
        self._history: dict[str, Tensor] | None = None  # the committed inputs (B, T, ...): for re-prefill / no cache
        self._frames: Tensor | None = None
        self._actions: Tensor | None = None
        self.rewards: Tensor | None = None
        """(B,) the reward of the latest frame of each episode."""

    # -- state -------------------------------------------------------------------------------------

    def _require_reset(self) -> None:
        if self._history is None or self._frames is None:
            raise RuntimeError("call reset() or reset_from_windows() before stepping the world model")

    @property
    def frames(self) -> Tensor:
        """(B, K, 3, H, W) float in [-1, 1]: the latest K = ``frames_kept`` frames, oldest first."""
        self._require_reset()
        return self._frames

    @property
    def actions(self) -> Tensor:
        """(B, K - 1, A): the actions between :attr:`frames`."""
        self._require_reset()
        return self._actions

    @property
    def observation(self) -> Tensor:
        """(B, 3, H, W) float in [-1, 1]: the latest frame."""
        return self.frames[:, -1]

    @property
    def batch_size(self) -> int:
        return self.frames.shape[0]

    def _autograd(self) -> contextlib.AbstractContextManager:
        return torch.no_grad()

    # -- reset ---------------------------------------------------------------------------------------

    def _prefill(self, history: dict[str, Tensor]) -> Tensor:
        """Rebuild the cache from committed inputs (B, T, ...); returns the reward head outputs (B, T, 2)."""
        keep = self.context - 1
        history = {key: value[:, -keep:] for key, value in history.items()}
        self._history = history
        self.cache = KVCache(keep)
        return self.dynamics.commit(self.cache, history["latents"], history["actions_in"], history["has_action"])

    def reset(self, context_frames: Tensor, context_actions: Tensor) -> Tensor:
        """Start B episodes from real history; returns the observation (B, 3, H, W) in [-1, 1].

        Args:
            context_frames: (B, L, 3, H, W) uint8 or float in [-1, 1], oldest first (1 <= L; only the latest
                ``context - 1`` enter the cache).
            context_actions: (B, L, A) as in a :class:`Window` (the last, leading out of the context, is
                dropped: the next :meth:`step` gives it) or (B, L - 1, A), the actions between the frames.
        """
        cfg = self.config
        if context_frames.ndim != 5 or context_frames.shape[2:] != (3, cfg.image_size, cfg.image_size):
            raise ValueError(f"context frames must be (B, L, 3, {cfg.image_size}, {cfg.image_size}), "
                             f"got {tuple(context_frames.shape)}")
        b, length = context_frames.shape[:2]
        if (context_actions.ndim != 3 or context_actions.shape[0] != b
                or context_actions.shape[1] not in (length, length - 1) or context_actions.shape[2] != cfg.action_size):
            raise ValueError(f"context actions must be ({b}, {length}, {cfg.action_size}) or "
                             f"({b}, {length - 1}, {cfg.action_size}), got {tuple(context_actions.shape)}")
        with self._autograd():
            frames = to_model_range(context_frames.to(self.device))
            between = context_actions[:, : length - 1].to(self.device, torch.float32)
            latents = self.model.encode(frames)
            actions_in = torch.cat([between.new_zeros(b, 1, cfg.action_size), between], dim=1)
            has_action = torch.ones(b, length, dtype=torch.bool, device=self.device)
            has_action[:, 0] = False
            head = self._prefill({"latents": self.dynamics.renoise(latents, self.generator),
                                  "actions_in": actions_in, "has_action": has_action})
            self.rewards = self.dynamics.reward(head[:, -1])
            kept = min(self.frames_kept, length)
            self._frames = frames[:, -kept:]
            self._actions = between[:, length - kept:]
        return self.observation

    def reset_from_windows(self, window: Window) -> Tensor:
        """Start from a batch of real windows (their context frames and actions); returns the observation."""
        return self.reset(window.context_frames, window.context_actions)

    def restart(self, index: Tensor, context_frames: Tensor, context_actions: Tensor) -> Tensor:
        """Restart the episodes ``index`` (B',) from new real history (B', L, ...); the others go on.

        The cache is re-prefilled for all: the others keep their latest committed frames, cut to the length the
        restarted ones have. Returns the observations of all B episodes.
        """
        self._require_reset()
        old = {"history": self._history, "frames": self._frames, "actions": self._actions, "rewards": self.rewards}
        fresh_b = context_frames.shape[0]
        length = min(context_frames.shape[1], self.context - 1)
        # reset() on the new episodes only, to encode and validate them (its cache is rebuilt below).
        self.reset(context_frames, context_actions)
        new = {"history": self._history, "frames": self._frames, "actions": self._actions, "rewards": self.rewards}
        index = index.to(self.device)
        if index.shape != (fresh_b,):
            raise ValueError(f"index must be ({fresh_b},) for {fresh_b} new episodes, got {tuple(index.shape)}")
        history = {}
        for key, value in old["history"].items():
            merged = value[:, -length:].clone()
            if merged.shape[1] < length:  # the others have fewer committed frames: pad by repeating the oldest
                pad = merged[:, :1].expand(-1, length - merged.shape[1], *merged.shape[2:])
                merged = torch.cat([pad, merged], dim=1)
            merged[index] = new["history"][key][:, -length:]
            history[key] = merged
        history["has_action"][:, 0] = False
        with self._autograd():
            head = self._prefill(history)
        rewards = old["rewards"].clone()
        rewards[index] = self.dynamics.reward(head[index, -1])
        self.rewards = rewards
        kept = min(old["frames"].shape[1], new["frames"].shape[1])
        frames = old["frames"][:, -kept:].clone()
        actions = old["actions"][:, old["actions"].shape[1] - kept + 1:].clone()
        frames[index] = new["frames"][:, -kept:]
        actions[index] = new["actions"][:, new["actions"].shape[1] - kept + 1:]
        self._frames, self._actions = frames, actions
        return self.observation

    # -- stepping --------------------------------------------------------------------------------------

    def step(self, actions: Tensor) -> tuple[Tensor, Tensor]:
        """Apply ``actions`` (B, A) (robot units) at the latest frame; returns the next frames (B, 3, H, W) in
        [-1, 1] and their rewards (B,)."""
        return self.step_samples(actions, 1)[:, 0], self.rewards

    def step_samples(self, actions: Tensor, samples: int) -> Tensor:
        """Apply ``actions`` (B, A) and sample the next frame ``samples`` (K) times, each from its own noise.

        Returns (B, K, 3, H, W) in [-1, 1]; the episodes continue from sample 0 (the others show how much the
        model's answer depends on the noise: the dream node's hallucination flag), whose reward is in
        :attr:`rewards`. K = 1 is exactly :meth:`step`.
        """
        self._require_reset()
        b = self.batch_size
        if samples < 1:
            raise ValueError(f"samples must be at least 1, got {samples}")
        actions = actions.to(self.device, torch.float32)
        if actions.shape != (b, self.config.action_size):
            raise ValueError(f"actions must be ({b}, {self.config.action_size}), got {tuple(actions.shape)}")
        with self._autograd():
            drawn = []
            for _ in range(samples):  # each draw reads the same cache; only the first is committed
                if self.use_cache:
                    drawn.append(self.dynamics.denoise(actions, self.steps, self.generator, cache=self.cache))
                else:
                    start = self.cache.next_position - self._history["latents"].shape[1]
                    window = {**self._history,
                              "positions": torch.arange(start, self.cache.next_position + 1, device=self.device)}
                    drawn.append(self.dynamics.denoise(actions, self.steps, self.generator, window=window))
            latents = drawn[0]
            committed = {"latents": self.dynamics.renoise(latents[:, None], self.generator),
                         "actions_in": actions[:, None],
                         "has_action": torch.ones(b, 1, dtype=torch.bool, device=self.device)}
            if self.use_cache:
                head = self.dynamics.commit(self.cache, committed["latents"], committed["actions_in"],
                                            committed["has_action"])
            else:  # the same pass without the cache: the whole window, the new frame last
                window = {key: torch.cat([self._history[key], value], 1) for key, value in committed.items()}
                tau_index, step_index = self.dynamics.context_levels(b, window["latents"].shape[1], self.device)
                start = self.cache.next_position - self._history["latents"].shape[1]
                positions = torch.arange(start, start + window["latents"].shape[1], device=self.device)
                head = self.dynamics.predict(window["latents"], tau_index, step_index, window["actions_in"],
                                             window["has_action"], positions=positions)[1][:, -1:]
                self.cache.next_position += 1
            keep = self.context - 1
            self._history = {key: torch.cat([self._history[key], value], 1)[:, -keep:]
                             for key, value in committed.items()}
            frames = self.model.decode(torch.stack(drawn, dim=1))  # (B, K, 3, H, W)
            self.rewards = self.dynamics.reward(head[:, -1])
            self._frames = torch.cat([self._frames, frames[:, :1]], dim=1)[:, -self.frames_kept:]
            if self.frames_kept > 1:
                self._actions = torch.cat([self._actions, actions[:, None]], dim=1)[:, -(self.frames_kept - 1):]
        return frames

    def rollout(self, actions: Tensor) -> tuple[Tensor, Tensor]:
        """Step through ``actions`` (B, T, A) open-loop; returns frames (B, T, 3, H, W) and rewards (B, T)."""
        if actions.ndim != 3:
            raise ValueError(f"rollout actions must be (B, T, A), got {tuple(actions.shape)}")
        frames, rewards = zip(*(self.step(actions[:, t]) for t in range(actions.shape[1])), strict=True)
        return torch.stack(frames, dim=1), torch.stack(rewards, dim=1)


__all__ = ["WorldModelV4Env"]
