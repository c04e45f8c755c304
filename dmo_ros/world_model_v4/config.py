"""Configuration of the DreamerV4-style world model: the causal tokenizer and the dynamics transformer.

Two dataclasses, JSON-able through :func:`dataclasses.asdict`, saved under ``"model"`` in each
run's ``config.json`` and read back strictly (an unknown key is an error naming the valid ones):

- :class:`TokenizerConfig` — patch autoencoder: frame -> ``latent_tokens`` x ``latent_dim`` tanh
  latents -> frame (``dmo-train-tokenizer``).
- :class:`DynamicsConfig` — the axial-attention transformer over (latent tokens, action token,
  register tokens, reward token) per frame, trained by shortcut forcing (``dmo-train-dynamics``).

Presets (``tiny`` / ``cpu`` / ``gpu``): ``tiny`` shrinks everything for tests (seconds on one CPU
core), ``cpu`` is the laptop-class demo on 64 x 64 Push Cube frames, ``gpu`` the anchor's scale
(DreamerV4 / machines-in-motion dreamer-v4: context 96 frames, 4 registers, temporal attention
every 4th layer, 4 sampling steps, K_max 128 noise levels).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Any


def _strict(cls: type, values: dict[str, Any]) -> Any:
    if not isinstance(values, dict):
        raise ValueError(f"expected a mapping for {cls.__name__}, got {type(values).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys {unknown}; valid keys: {sorted(known)}")
    return cls(**values)


def _preset(cls: type, presets: dict[str, Any], name: str, **overrides: Any) -> Any:
    if name not in presets:
        raise ValueError(f"unknown {cls.__name__} preset {name!r}; valid presets: {', '.join(presets)}")
    unknown = sorted(set(overrides) - {f.name for f in fields(cls)})
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields {unknown}")
    return replace(presets[name], **overrides)


@dataclass
class TokenizerConfig:
    """The causal tokenizer: each frame is encoded from itself alone (causal in time by construction)."""

    image_size: int = 64
    """Side in pixels of the square frames (the dataset's image size)."""

    image_channels: int = 3
    """Colour channels per frame (RGB)."""

    patch_size: int = 8
    """Side in pixels of a square patch; a frame is (image_size / patch_size)^2 patch tokens."""

    width: int = 128
    """Transformer width (channels per token) of the encoder and the decoder."""

    encoder_depth: int = 3
    """Transformer layers of the encoder (patch tokens + latent query tokens, full attention in the frame)."""

    decoder_depth: int = 3
    """Transformer layers of the decoder (latent tokens + patch query tokens)."""

    heads: int = 4
    """Attention heads per layer (width must be a multiple)."""

    latent_tokens: int = 16
    """N_z, latent tokens per frame (the dynamics model's tokens per frame)."""

    latent_dim: int = 16
    """D_z, channels per latent token, squashed by tanh into [-1, 1] (the bottleneck)."""

    mask_ratio_max: float = 0.9
    """Masked-patch training: per sample, a ratio r ~ U(0, mask_ratio_max) of the patch tokens is replaced
    by a learned mask token before encoding (MAE-style; DreamerV4 draws the ratio per sample). 0: no masking."""

    mask_probability: float = 0.5
    """Share of training samples that are masked at all (the rest are encoded whole, as at use time)."""

    def __post_init__(self) -> None:
        for name in ("image_size", "image_channels", "patch_size", "width", "encoder_depth", "decoder_depth",
                     "heads", "latent_tokens", "latent_dim"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.image_size % self.patch_size:
            raise ValueError(f"patch_size {self.patch_size} must divide image_size {self.image_size}")
        if self.width % self.heads:
            raise ValueError(f"width {self.width} must be a multiple of heads {self.heads}")
        if not 0.0 <= self.mask_ratio_max < 1.0:
            raise ValueError(f"mask_ratio_max must be in [0, 1), got {self.mask_ratio_max}")
        if not 0.0 <= self.mask_probability <= 1.0:
            raise ValueError(f"mask_probability must be in [0, 1], got {self.mask_probability}")

    @property
    def patches(self) -> int:
        """Patch tokens per frame."""
        return (self.image_size // self.patch_size) ** 2

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> TokenizerConfig:
        """The ``tiny`` / ``cpu`` / ``gpu`` tokenizer with optional field overrides."""
        return _preset(cls, TOKENIZER_PRESETS, name, **overrides)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TokenizerConfig:
        """The config saved in a run's ``config.json`` (no code is run; unknown keys are an error)."""
        return _strict(cls, values)


TOKENIZER_PRESETS: dict[str, TokenizerConfig] = {
    "tiny": TokenizerConfig(image_size=16, patch_size=4, width=32, encoder_depth=1, decoder_depth=1, heads=2,
                            latent_tokens=4, latent_dim=8),
    "cpu": TokenizerConfig(),
    # 64 x 64 frames in 8 x 8 patches; dreamer-v4's Push-T config uses 256 x 256 in 16 x 16 (also 256 patches).
    "gpu": TokenizerConfig(image_size=64, patch_size=4, width=512, encoder_depth=8, decoder_depth=8, heads=8,
                           latent_tokens=64, latent_dim=32),
}
"""Tokenizer sizes per preset; image_size is replaced by the dataset's."""


@dataclass
class DynamicsConfig:
    """The dynamics transformer with its reward token; tokens per frame: latents, action, registers, reward."""

    action_size: int = 3
    """A, components per action (Push Cube: body velocity vx, vy in m/s and yaw rate in rad/s)."""

    action_scale: list[float] = field(default_factory=list)
    """Per-component divisor that makes raw actions O(1) before the action embedding; the trainer fills it
    with the dataset's largest |action| per component. Empty: 1 for every component."""

    image_size: int = 64
    """Frame side in pixels (the tokenizer's; kept here so users of the model see the frame size)."""

    latent_tokens: int = 16
    """N_z, latent tokens per frame (the tokenizer's)."""

    latent_dim: int = 16
    """D_z, channels per latent token (the tokenizer's)."""

    context: int = 32
    """Frames the temporal attention sees at most (the training window and the KV cache's length;
    DreamerV4 / the paper's Push Cube model: 96)."""

    l_init: int = 16
    """Real history frames prefilled into the KV cache before imagination starts (the paper: 32)."""

    width: int = 128
    """Transformer width (channels per token)."""

    depth: int = 4
    """Transformer layers; every ``temporal_every``-th one attends across frames, the others within a frame."""

    heads: int = 4
    """Attention heads per layer (width must be a multiple)."""

    temporal_every: int = 2
    """A temporal (causal, across frames) layer every this many layers (DreamerV4: 4); the rest are spatial."""

    registers: int = 2
    """Register tokens per frame (extra scratch tokens; DreamerV4 / dreamer-v4: 4)."""

    k_max: int = 32
    """Finest noise grid: the smallest step size is d_min = 1 / k_max (a power of two; dreamer-v4: 128)."""

    bootstrap_fraction: float = 0.25
    """Share of each batch trained with a step size d > d_min by the shortcut bootstrap target (the rest with
    d = d_min on the data). 0 trains only the finest step (then few-step sampling is not consistent)."""

    tau_ctx: float = 0.9
    """Noise level tau of context frames when they enter the KV cache (1 = clean; DreamerV4 re-noises the
    context slightly so the model tolerates its own imperfect frames; dreamer-v4 keeps context at 0.9)."""

    sampling_steps: int = 4
    """Denoising steps per generated frame (DreamerV4: 4); a power of two at most k_max."""

    milestone_weight: float = 1.0
    """Reward = P(intent) + milestone_weight x predicted milestone (the milestone key's bonus)."""

    reward_loss_weight: float = 0.1
    """Weight of the reward token's loss (BCE on intent + MSE on milestone) beside the dynamics loss."""

    def __post_init__(self) -> None:
        if self.action_size < 1:
            raise ValueError(f"action_size must be at least 1, got {self.action_size}")
        self.action_scale = [float(s) for s in self.action_scale] or [1.0] * self.action_size
        if len(self.action_scale) != self.action_size:
            raise ValueError(f"action_scale has {len(self.action_scale)} entries for action_size "
                             f"{self.action_size}; give one per component (or none)")
        if not all(math.isfinite(s) and s > 0 for s in self.action_scale):
            raise ValueError(f"action_scale entries must be finite and positive, got {self.action_scale}")
        for name in ("image_size", "latent_tokens", "latent_dim", "context", "l_init", "width", "depth", "heads",
                     "temporal_every", "k_max", "sampling_steps"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.registers < 0:
            raise ValueError(f"registers must be >= 0, got {self.registers}")
        if self.width % self.heads or (self.width // self.heads) % 2:
            raise ValueError(f"width {self.width} / heads {self.heads} must give an even head size (RoPE)")
        if self.temporal_every > self.depth:
            raise ValueError(f"temporal_every {self.temporal_every} exceeds depth {self.depth}: no temporal layer")
        if self.l_init > self.context:
            raise ValueError(f"l_init {self.l_init} exceeds the context {self.context}")
        if self.k_max & (self.k_max - 1):
            raise ValueError(f"k_max must be a power of two, got {self.k_max}")
        if self.sampling_steps & (self.sampling_steps - 1) or self.sampling_steps > self.k_max:
            raise ValueError(f"sampling_steps must be a power of two <= k_max {self.k_max}, got {self.sampling_steps}")
        if not 0.0 <= self.bootstrap_fraction < 1.0:
            raise ValueError(f"bootstrap_fraction must be in [0, 1), got {self.bootstrap_fraction}")
        if not 0.0 < self.tau_ctx <= 1.0:
            raise ValueError(f"tau_ctx must be in (0, 1], got {self.tau_ctx}")
        if self.reward_loss_weight < 0 or self.milestone_weight < 0:
            raise ValueError("reward_loss_weight and milestone_weight must be >= 0")

    @property
    def tokens_per_frame(self) -> int:
        """S = latent_tokens + 1 action token + registers + 1 reward token."""
        return self.latent_tokens + self.registers + 2

    @property
    def step_levels(self) -> int:
        """Step sizes d in {1, 1/2, ..., 1/k_max}: log2(k_max) + 1 of them."""
        return int(math.log2(self.k_max)) + 1

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> DynamicsConfig:
        """The ``tiny`` / ``cpu`` / ``gpu`` dynamics with optional field overrides (action fields included)."""
        if "action_size" in overrides:  # another action space: one scale per component again (default ones)
            overrides.setdefault("action_scale", [])
        return _preset(cls, DYNAMICS_PRESETS, name, **overrides)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> DynamicsConfig:
        """The config saved in a run's ``config.json`` (no code is run; unknown keys are an error)."""
        return _strict(cls, values)


DYNAMICS_PRESETS: dict[str, DynamicsConfig] = {
    "tiny": DynamicsConfig(context=6, l_init=3, width=32, depth=2, heads=2, temporal_every=2, registers=1, k_max=8),
    "cpu": DynamicsConfig(),
    # The anchor's scale: context 96, L_init 32, width 768, a temporal layer every 4th of 12, 4 registers.
    "gpu": DynamicsConfig(context=96, l_init=32, width=768, depth=12, heads=12, temporal_every=4, registers=4,
                          k_max=128),
}
"""Dynamics sizes per preset; the action and latent fields are filled from the data and the tokenizer."""


__all__ = ["DYNAMICS_PRESETS", "TOKENIZER_PRESETS", "DynamicsConfig", "TokenizerConfig"]
