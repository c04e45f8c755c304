"""The dynamics model: an axial-attention transformer over latent, action, register and reward tokens, trained
by shortcut forcing, sampled in a few steps with a KV cache on its temporal layers.

Tokens of frame t (S = N_z + R + 2 of them, in this order)::

    N_z latent tokens    the tokenizer's latents of frame t, noised to level tau_t (+ tau, d embeddings)
    1 action token       the action a_{t-1} that led *into* frame t (a learned "no action" for a window's first)
    R register tokens    scratch tokens
    1 reward token       reads the frame; its head predicts frame t's intent (logit) and milestone

Layers alternate axially: a *spatial* layer attends among the S tokens of one frame; every
``temporal_every``-th layer is *temporal*: each token slot attends causally to the same slot in the
current and earlier frames (rotary positions over the frame index). Information flows into the reward token
but never out of it: in spatial layers no other token may attend to it (masked), in temporal layers the
reward slot only meets earlier reward slots. So the latent tokens' outputs do not depend on the reward
token at all, while the reward token sees its frame's and (through the temporal layers) past frames' latents
and actions — it must, or it has zero action sensitivity (the failure of a port whose reward token attended
only to itself).

Shortcut forcing (DreamerV4; Frans et al. 2024 shortcut models) with x-prediction: a frame at noise level tau
in [0, 1] is ``x_tau = (1 - tau) noise + tau x`` (tau = 1 clean); the network predicts x from (x_tau, tau,
d) for step size d in {1, 1/2, ..., d_min = 1 / k_max}. Per frame, tau lies on the grid of its sequence's d.

- d = d_min: loss ``|f(x_tau, tau, d_min) - x|^2``;
- d > d_min (``bootstrap_fraction`` of the batch): two half steps of the model itself (no gradient) give the
  velocity target ``v = (b' + b'') / 2`` with ``b = (f - x_tau) / (1 - tau)``; the loss
  ``(1 - tau)^2 |v_model - v|^2`` is, in x space, ``|f(x_tau, tau, d) - (x_tau + (1 - tau) v)|^2``;
- each frame's loss is weighted by ``0.9 tau + 0.1``. Every frame of a window is a target (diffusion forcing:
  independent noise levels per frame); half the frames sit at the context level ``tau_ctx`` so that the
  model sees the context it gets at use time.

Sampling a frame: from pure noise (tau = 0), ``sampling_steps`` steps of size d = 1 / steps,
``x <- x + (f - x) d / (1 - tau)`` (the last step returns f). The frame is then *committed*: re-noised to
``tau_ctx`` and run once more to append its keys and values to the cache of every temporal layer; that pass
also gives the frame's reward.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dmo_ros.world_model_v4.config import DynamicsConfig
from dmo_ros.world_model_v4.layers import Block, RMSNorm

CONTEXT_FRAME_PROBABILITY = 0.5
"""Share of training frames put at the context level tau_ctx (the rest at a uniform grid level)."""


@dataclass
class LatentWindow:
    """T consecutive samples of one episode in latent form (or a batch of them, leading dimension B).

    Time alignment as in :class:`dmo_ros.dataset.loaders.Window`: ``actions[t]`` is taken at frame t and leads
    to frame t + 1; ``intent[t]`` / ``milestone[t]`` label frame t.
    """

    latents: Tensor
    """(T, N_z, D_z) float: the tokenizer's latents of the frames, in [-1, 1]."""
    actions: Tensor
    """(T, A) float32 in robot units."""
    intent: Tensor
    """(T,) bool: operator intent at each sample."""
    milestone: Tensor
    """(T,) float32: milestone key value at each sample (0 where unused)."""

    def to(self, device: torch.device | str, non_blocking: bool = False) -> LatentWindow:
        return replace(self, **{f.name: getattr(self, f.name).to(device, non_blocking=non_blocking)
                                for f in fields(self)})

    def pin_memory(self) -> LatentWindow:
        return replace(self, **{f.name: getattr(self, f.name).pin_memory() for f in fields(self)})

    @classmethod
    def collate(cls, items: list[LatentWindow]) -> LatentWindow:
        return cls(**{f.name: torch.stack([getattr(item, f.name) for item in items]) for f in fields(cls)})


class KVCache:
    """Keys and values of the committed frames for every temporal layer, at most ``capacity`` frames.

    ``layers[i]`` is (keys, values), each (B * S, heads, L, head_dim), rotated at their absolute frame index;
    ``next_position`` is the frame index the next frame takes. Appending beyond ``capacity`` drops the oldest
    frames (a sliding window; rotary positions keep the kept keys valid).
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = int(capacity)
        self.layers: list[tuple[Tensor, Tensor]] | None = None
        self.next_position = 0

    @property
    def length(self) -> int:
        """Frames held."""
        return 0 if self.layers is None else self.layers[0][0].shape[2]

    def past(self, index: int) -> tuple[Tensor, Tensor] | None:
        return None if self.layers is None else self.layers[index]

    def append(self, new: list[tuple[Tensor, Tensor]], frames: int) -> None:
        """Add ``frames`` frames' keys and values (one (k, v) per temporal layer); trim to ``capacity``."""
        if self.layers is None:
            merged = new
        else:
            merged = [(torch.cat([k0, k1], dim=2), torch.cat([v0, v1], dim=2))
                      for (k0, v0), (k1, v1) in zip(self.layers, new, strict=True)]
        self.layers = [(k[:, :, -self.capacity:], v[:, :, -self.capacity:]) for k, v in merged]
        self.next_position += frames


class Dynamics(nn.Module):
    """The dynamics transformer with its reward token; see the module doc for tokens, masks and the loss."""

    def __init__(self, config: DynamicsConfig) -> None:
        super().__init__()
        self.config = c = config
        self.latent_in = nn.Linear(c.latent_dim, c.width)
        self.slot_pos = nn.Parameter(torch.randn(c.latent_tokens, c.width) * 0.02)
        self.tau_embed = nn.Embedding(c.k_max + 1, c.width)
        self.step_embed = nn.Embedding(c.step_levels, c.width)
        self.action_in = nn.Sequential(nn.Linear(c.action_size, c.width), nn.GELU(), nn.Linear(c.width, c.width))
        self.no_action = nn.Parameter(torch.randn(c.width) * 0.02)
        self.action_pos = nn.Parameter(torch.randn(c.width) * 0.02)
        self.register_tokens = nn.Parameter(torch.randn(c.registers, c.width) * 0.02)
        self.reward_token = nn.Parameter(torch.randn(c.width) * 0.02)
        self.temporal = [(i + 1) % c.temporal_every == 0 for i in range(c.depth)]
        """Per layer: True for a temporal (across frames) layer, False for a spatial one."""
        self.blocks = nn.ModuleList(Block(c.width, c.heads, rope=t) for t in self.temporal)
        self.out_norm = RMSNorm(c.width)
        self.to_latent = nn.Linear(c.width, c.latent_dim)
        self.reward_head = nn.Sequential(RMSNorm(c.width), nn.Linear(c.width, c.width), nn.GELU(),
                                         nn.Linear(c.width, 2))
        self.register_buffer("action_scale", torch.tensor(c.action_scale, dtype=torch.float32), persistent=False)
        s = c.tokens_per_frame
        spatial = torch.ones(s, s, dtype=torch.bool)
        spatial[: s - 1, s - 1] = False  # nothing but the reward token itself reads the reward token
        self.register_buffer("spatial_mask", spatial, persistent=False)

    @property
    def device(self) -> torch.device:
        return self.slot_pos.device

    @property
    def temporal_layers(self) -> int:
        return sum(self.temporal)

    # -- the network -----------------------------------------------------------------------------

    def tokens(self, latents: Tensor, tau_index: Tensor, step_index: Tensor, actions_in: Tensor,
               has_action: Tensor, reward_input: Tensor | None = None) -> Tensor:
        """Input tokens (B, T, S, W) of frames with latents (B, T, N, D) at grid levels (B, T)."""
        b, t = latents.shape[:2]
        noise = (self.tau_embed(tau_index) + self.step_embed(step_index))[:, :, None]  # (B, T, 1, W)
        latent_tokens = self.latent_in(latents) + self.slot_pos + noise
        action = self.action_in(actions_in.float() / self.action_scale)
        action = torch.where(has_action[..., None], action, self.no_action) + self.action_pos
        registers = self.register_tokens.expand(b, t, -1, -1) + noise
        reward = self.reward_token.expand(b, t, 1, -1) if reward_input is None else reward_input[:, :, None]
        return torch.cat([latent_tokens, action[:, :, None], registers, reward.to(latent_tokens.dtype)], dim=2)

    def run(self, x: Tensor, positions: Tensor, cache: KVCache | None = None
            ) -> tuple[Tensor, Tensor, list[tuple[Tensor, Tensor]]]:
        """Run the layers on tokens (B, T, S, W) of frames at ``positions`` (T,), after the cached frames.

        Returns (latent predictions (B, T, N, D), reward head outputs (B, T, 2), this call's keys and values of
        every temporal layer).
        """
        c = self.config
        b, t, s, w = x.shape
        past_length = cache.length if cache is not None else 0
        causal = (torch.arange(past_length + t, device=x.device)[None, :]
                  <= past_length + torch.arange(t, device=x.device)[:, None])  # (T, P + T)
        new_kv: list[tuple[Tensor, Tensor]] = []
        for block, temporal in zip(self.blocks, self.temporal, strict=True):
            if temporal:
                seq = x.permute(0, 2, 1, 3).reshape(b * s, t, w)
                past = cache.past(len(new_kv)) if cache is not None else None
                seq, kv = block(seq, causal, positions, past)
                new_kv.append(kv)
                x = seq.view(b, s, t, w).permute(0, 2, 1, 3)
            else:
                x = block(x.reshape(b * t, s, w), self.spatial_mask)[0].view(b, t, s, w)
        x = self.out_norm(x)
        return self.to_latent(x[:, :, : c.latent_tokens]), self.reward_head(x[:, :, -1]), new_kv

    def predict(self, latents: Tensor, tau_index: Tensor, step_index: Tensor, actions_in: Tensor,
                has_action: Tensor, positions: Tensor | None = None, cache: KVCache | None = None,
                reward_input: Tensor | None = None) -> tuple[Tensor, Tensor, list[tuple[Tensor, Tensor]]]:
        """The clean-latent prediction (B, T, N, D), reward outputs (B, T, 2) and new keys/values of T frames.

        Args:
            latents: (B, T, N, D) noisy latents x_tau.
            tau_index: (B, T) long, tau * k_max.
            step_index: (B, T) long, log2(1 / d).
            actions_in: (B, T, A) the action that led into each frame (robot units).
            has_action: (B, T) bool, False where no action led in (an episode's first known frame).
            positions: (T,) frame indices (default: after the cache, or 0..T-1).
            cache: earlier frames' keys and values (read, not changed).
            reward_input: (B, T, W) replaces the learned reward token input (tests of the mask).
        """
        if positions is None:
            start = cache.next_position if cache is not None else 0
            positions = torch.arange(start, start + latents.shape[1], device=latents.device)
        x = self.tokens(latents, tau_index, step_index, actions_in, has_action, reward_input)
        return self.run(x, positions, cache)

    def reward(self, head: Tensor) -> Tensor:
        """Reward (...,) from reward head outputs (..., 2): P(intent) + milestone_weight x milestone."""
        return torch.sigmoid(head[..., 0]) + self.config.milestone_weight * head[..., 1]

    # -- training --------------------------------------------------------------------------------

    def _levels(self, b: int, t: int, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
        """Per frame tau index (B, T), per sequence step index (B, T) and bootstrap flag (B,)."""
        c = self.config
        finest = c.step_levels - 1
        n_boot = int(round(b * c.bootstrap_fraction)) if finest > 0 else 0
        boot = torch.zeros(b, dtype=torch.bool, device=device)
        boot[torch.randperm(b, device=device)[:n_boot]] = True
        step_index = torch.where(boot, torch.randint(0, max(finest, 1), (b,), device=device),
                                 torch.full((b,), finest, device=device))
        grid = 2 ** step_index  # 1 / d: levels on this sequence's grid
        spacing = (c.k_max // grid)[:, None]  # grid spacing in tau-index units
        level = (torch.rand(b, t, device=device) * grid[:, None]).long()
        ctx_level = torch.clamp((c.tau_ctx * grid).long(), max=grid - 1)[:, None].expand(b, t)
        at_ctx = torch.rand(b, t, device=device) < CONTEXT_FRAME_PROBABILITY
        tau_index = torch.where(at_ctx, ctx_level, level) * spacing
        return tau_index, step_index[:, None].expand(b, t), boot

    def forward(self, batch: LatentWindow) -> tuple[Tensor, dict[str, Any]]:
        """Shortcut-forcing loss (+ ``reward_loss_weight`` x the reward token's loss) of a latent window batch."""
        c = self.config
        x = batch.latents.float()
        b, t = x.shape[:2]
        actions_in = torch.cat([torch.zeros_like(batch.actions[:, :1]), batch.actions[:, :-1]], dim=1)
        has_action = torch.ones(b, t, dtype=torch.bool, device=x.device)
        has_action[:, 0] = False
        tau_index, step_index, boot = self._levels(b, t, x.device)
        tau = (tau_index.float() / c.k_max)[..., None, None]
        noise = torch.randn_like(x)
        x_tau = (1 - tau) * noise + tau * x
        pred, head, _ = self.predict(x_tau, tau_index, step_index, actions_in, has_action)

        target = x.clone()
        if boot.any():
            with torch.no_grad():
                xb, taub = x_tau[boot], tau[boot]
                half_index = step_index[boot] + 1
                d = (1.0 / 2 ** step_index[boot].float())[..., None, None]
                a_in, has = actions_in[boot], has_action[boot]
                f1 = self.predict(xb, tau_index[boot], half_index, a_in, has)[0]
                b1 = (f1 - xb) / (1 - taub)
                x_mid = xb + b1 * d / 2
                tau_mid = taub + d / 2
                mid_index = tau_index[boot] + (c.k_max // 2 ** half_index)
                f2 = self.predict(x_mid, mid_index, half_index, a_in, has)[0]
                b2 = (f2 - x_mid) / (1 - tau_mid)
                target[boot] = xb + (1 - taub) * (b1 + b2) / 2
        weight = 0.9 * tau[..., 0, 0] + 0.1  # (B, T): DreamerV4's ramp
        per_frame = (pred - target).pow(2).mean((-1, -2)) * weight
        flow = per_frame[~boot].mean() if (~boot).any() else per_frame.new_zeros(())
        bootstrap = per_frame[boot].mean() if boot.any() else per_frame.new_zeros(())
        dynamics_loss = per_frame.mean()

        intent = batch.intent.float()
        bce = F.binary_cross_entropy_with_logits(head[..., 0], intent)
        milestone = (head[..., 1] - batch.milestone.float()).pow(2).mean()
        loss = dynamics_loss + c.reward_loss_weight * (bce + milestone)
        with torch.no_grad():
            clean = (pred - x).pow(2).mean((-1, -2))
            accuracy = ((head[..., 0] > 0) == (intent > 0.5)).float().mean()
        logs = {"flow": flow.detach(), "bootstrap": bootstrap.detach(), "reward_bce": bce.detach(),
                "milestone_mse": milestone.detach(), "reward_accuracy": accuracy,
                "x_mse": clean.mean(), "x_mse_ctx": clean[tau_index >= int(c.tau_ctx * c.k_max) - 1].mean()}
        return loss, logs

    def reward_loss(self, batch: LatentWindow) -> tuple[Tensor, dict[str, Any]]:
        """The reward token's loss alone, on frames as imagination reads them: clean latents re-noised to the
        context level tau_ctx at the finest step (how :meth:`commit` sees a committed frame), the actions that
        led into them. The reward post-training stage (:class:`~dmo_ros.world_model_v4.model.RewardPostTraining`)
        trains on it."""
        x = batch.latents.float()
        b, t = x.shape[:2]
        actions_in = torch.cat([torch.zeros_like(batch.actions[:, :1]), batch.actions[:, :-1]], dim=1)
        has_action = torch.ones(b, t, dtype=torch.bool, device=x.device)
        has_action[:, 0] = False
        tau_index, step_index = self.context_levels(b, t, x.device)
        head = self.predict(self.renoise(x), tau_index, step_index, actions_in, has_action)[1]
        intent = batch.intent.float()
        bce = F.binary_cross_entropy_with_logits(head[..., 0], intent)
        milestone = (head[..., 1] - batch.milestone.float()).pow(2).mean()
        with torch.no_grad():
            accuracy = ((head[..., 0] > 0) == (intent > 0.5)).float().mean()
        return bce + milestone, {"reward_bce": bce.detach(), "milestone_mse": milestone.detach(),
                                 "reward_accuracy": accuracy}

    # -- generation ------------------------------------------------------------------------------

    def context_levels(self, b: int, t: int, device: torch.device) -> tuple[Tensor, Tensor]:
        """Grid levels (tau index, step index) of committed context frames: tau_ctx at the finest step."""
        c = self.config
        tau_index = min(int(round(c.tau_ctx * c.k_max)), c.k_max)
        return (torch.full((b, t), tau_index, dtype=torch.long, device=device),
                torch.full((b, t), c.step_levels - 1, dtype=torch.long, device=device))

    def renoise(self, latents: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Clean latents (B, T, N, D) re-noised to the context level tau_ctx."""
        c = self.config
        tau = min(round(c.tau_ctx * c.k_max), c.k_max) / c.k_max
        if tau >= 1.0:
            return latents
        noise = torch.randn(latents.shape, generator=generator, device=latents.device, dtype=latents.dtype)
        return (1 - tau) * noise + tau * latents

    def commit(self, cache: KVCache, context: Tensor, actions_in: Tensor, has_action: Tensor) -> Tensor:
        """Append frames to ``cache`` from their context-level latents (B, T, N, D) (see :meth:`renoise`).

        Returns the frames' reward head outputs (B, T, 2).
        """
        b, t = context.shape[:2]
        tau_index, step_index = self.context_levels(b, t, context.device)
        _, head, kv = self.predict(context, tau_index, step_index, actions_in, has_action, cache=cache)
        cache.append(kv, t)
        return head

    def denoise(self, action_in: Tensor, steps: int, generator: torch.Generator | None = None,
                cache: KVCache | None = None, window: dict[str, Tensor] | None = None) -> Tensor:
        """Sample the next frame's latents (B, N, D) from noise in ``steps`` shortcut steps of size 1 / steps.

        Conditioned either on ``cache`` (the KV-cached path) or on ``window`` (the uncached path: the context
        frames' inputs ``latents`` (B, T, N, D), ``actions_in`` (B, T, A), ``has_action`` (B, T) and
        ``positions`` (T,), recomputed through every layer at each step).
        """
        c = self.config
        if steps < 1 or steps & (steps - 1) or steps > c.k_max:
            raise ValueError(f"steps must be a power of two <= k_max {c.k_max}, got {steps}")
        b = action_in.shape[0]
        device = action_in.device
        x = torch.randn((b, 1, c.latent_tokens, c.latent_dim), generator=generator, device=device)
        step_index = torch.full((b, 1), int(math.log2(steps)), dtype=torch.long, device=device)
        has = torch.ones(b, 1, dtype=torch.bool, device=device)
        for i in range(steps):
            tau = i / steps
            tau_index = torch.full((b, 1), i * c.k_max // steps, dtype=torch.long, device=device)
            if window is None:
                pred = self.predict(x, tau_index, step_index, action_in[:, None], has, cache=cache)[0]
            else:
                ctx_tau, ctx_step = self.context_levels(b, window["latents"].shape[1], device)
                pred = self.predict(
                    torch.cat([window["latents"], x], 1), torch.cat([ctx_tau, tau_index], 1),
                    torch.cat([ctx_step, step_index], 1), torch.cat([window["actions_in"], action_in[:, None]], 1),
                    torch.cat([window["has_action"], has], 1), positions=window["positions"])[0][:, -1:]
            x = pred if i == steps - 1 else x + (pred - x) * (1.0 / steps) / (1 - tau)
        return x[:, 0]


__all__ = ["CONTEXT_FRAME_PROBABILITY", "Dynamics", "KVCache", "LatentWindow"]
