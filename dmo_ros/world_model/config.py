"""Configuration of the DIAMOND-style world model (EDM denoiser + UNet) and of its sampler.

Two dataclasses, JSON-able through :func:`dataclasses.asdict`:

- :class:`WorldModelConfig` — the network and the training noise distribution; saved under
  ``"model"`` in a run's ``config.json`` and read back with :meth:`WorldModelConfig.from_dict`.
- :class:`SamplerConfig` — how frames are generated (Karras schedule, Euler / Heun); chosen at
  use time, not stored with the weights.

Presets (:meth:`WorldModelConfig.preset`): ``tiny`` (tests, seconds on a CPU), ``cpu`` (the
laptop-class end-to-end demo), ``gpu`` (the anchor's scale: DIAMOND's Atari UNet, ~4.4 M
parameters at 64 x 64 with 4 context frames).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Any


@dataclass
class WorldModelConfig:
    action_size: int = 2
    """A, components per action (Push-T: 2, end-effector velocity [vx, vy]; Push Cube: 3)."""

    action_scale: list[float] = field(default_factory=list)
    """Per-component divisor that makes raw actions O(1) before the action embedding (e.g. 0.25 for
    Push-T velocities in m/s, |v| <= 0.25). The trainer fills it from the dataset's statistics;
    empty means 1 for every component."""

    image_size: int = 64
    """Side in pixels of the square frames the model is trained on (the dataset's image size)."""

    image_channels: int = 3
    """Colour channels per frame (RGB)."""

    context: int = 4
    """L, past frames (and actions) the next frame is conditioned on (DIAMOND: 4 = 0.8 s at 5 Hz)."""

    patch_size: int = 1
    """Space-to-depth factor of the stem: each patch_size x patch_size block of pixels becomes channels,
    so the UNet runs at 1/patch_size the resolution (1: none, as DIAMOND; 2: ~4x cheaper, for CPUs)."""

    channels: list[int] = field(default_factory=lambda: [64, 64, 64, 64])
    """UNet channels per resolution level; each level after the first halves the resolution."""

    depths: list[int] = field(default_factory=lambda: [2, 2, 2, 2])
    """Residual blocks per level on the way down (the way up has one more, as in DIAMOND)."""

    attention: list[bool] = field(default_factory=list)
    """Self-attention after the residual blocks of each level (DIAMOND: none); empty means none."""

    mid_attention: bool = True
    """Self-attention in the two blocks at the lowest resolution (DIAMOND: yes; cheap at 8 x 8)."""

    cond_channels: int = 256
    """Size of the conditioning vector (noise level + actions) that drives every AdaGN layer."""

    sigma_data: float = 0.5
    """EDM's sigma_data: the standard deviation of the data (frames in [-1, 1])."""

    sigma_loc: float = -0.4
    """Mean of log(sigma) of the training noise levels (log-normal distribution)."""

    sigma_scale: float = 1.2
    """Standard deviation of log(sigma) of the training noise levels."""

    sigma_min: float = 2e-3
    """Training noise levels are clipped to at least this."""

    sigma_max: float = 20.0
    """Training noise levels are clipped to at most this."""

    context_noise: float = 0.0
    """Std of Gaussian noise added to the context frames during training (robustness to the model's
    own imperfect frames in long rollouts); 0 turns it off, as in DIAMOND."""

    rollout_context: int = 0
    """Train on the model's own frames in the context (scheduled sampling, Bengio et al. 2015): each training
    step draws j uniformly from 0..rollout_context, samples j frames autoregressively (no gradient, the
    model's ``sampler_steps``, the recorded actions) from the real context j steps earlier, and learns the
    recorded next frame from that partly imagined context, so the model learns to undo its own errors
    (the trails and haze an open-loop rollout gathers) instead of repeating them. Windows then span
    context + rollout_context + 1 frames. 0: real context only, as DIAMOND."""

    predict_residual: bool = False
    """Diffuse the change from the last context frame instead of the frame itself (False: DIAMOND).
    An untrained model then repeats the last frame, and the network's capacity goes to what moves
    (the ~4 px Push-T agent) rather than to redrawing the static scene. sigma_data and sigma_loc
    should then describe the change (Push-T: std ~0.06), not the frame."""

    change_weight: float = 0.0
    """Extra loss weight on the pixels that change between the last context frame and the target
    (|difference| > 0.1 in any channel): weight 1 + change_weight there, 1 elsewhere. About 1 % of
    Push-T pixels change per step; 0 is DIAMOND's plain mean over pixels."""

    sampler_steps: int = 3
    """Denoising steps this model is sampled with when the caller names no :class:`SamplerConfig`
    (DIAMOND: 3 Euler steps). A model of the change on the Push-T stand-in's deterministic dynamics
    does better with 1: the posterior mean at sigma_max (measured by the action-response gate)."""

    sampler_change_threshold: float = 0.0
    """The sampler's change_threshold this model is sampled with when the caller names no sampler
    (uint8 levels; 0: none, DIAMOND)."""

    def __post_init__(self) -> None:
        if self.action_size < 1:
            raise ValueError(f"action_size must be at least 1, got {self.action_size}")
        self.action_scale = [float(s) for s in self.action_scale] or [1.0] * self.action_size
        if len(self.action_scale) != self.action_size:
            raise ValueError(
                f"action_scale has {len(self.action_scale)} entries for action_size {self.action_size}; "
                "give one scale per action component (or none for all ones)"
            )
        if not all(math.isfinite(s) and s > 0 for s in self.action_scale):
            raise ValueError(f"action_scale entries must be finite and positive, got {self.action_scale}")
        if self.image_size < 1 or self.image_channels < 1:
            raise ValueError(f"image_size and image_channels must be positive, got {self.image_size}, "
                             f"{self.image_channels}")
        if self.context < 1:
            raise ValueError(f"context must be at least 1 frame, got {self.context}")
        if self.patch_size < 1 or self.image_size % self.patch_size:
            raise ValueError(f"patch_size must be >= 1 and divide image_size {self.image_size}, got {self.patch_size}")
        self.channels = [int(c) for c in self.channels]
        self.depths = [int(d) for d in self.depths]
        self.attention = [bool(a) for a in self.attention] or [False] * len(self.channels)
        if not self.channels:
            raise ValueError("channels must name at least one level")
        if not len(self.channels) == len(self.depths) == len(self.attention):
            raise ValueError(
                f"channels ({len(self.channels)}), depths ({len(self.depths)}) and attention "
                f"({len(self.attention)}) need one entry per UNet level"
            )
        if min(self.channels) < 1 or min(self.depths) < 1:
            raise ValueError(f"channels and depths must be positive, got {self.channels}, {self.depths}")
        for c in self.channels:
            if c % 8 and (self.mid_attention or any(self.attention)):
                raise ValueError(f"channels must be multiples of 8 where attention is used (8 per head), got {c}")
        if self.cond_channels < 2 or self.cond_channels % 2:
            raise ValueError(f"cond_channels must be even (cos and sin features), got {self.cond_channels}")
        if self.sigma_data <= 0 or self.sigma_scale <= 0:
            raise ValueError("sigma_data and sigma_scale must be positive")
        if not 0 < self.sigma_min < self.sigma_max:
            raise ValueError(f"need 0 < sigma_min < sigma_max, got {self.sigma_min}, {self.sigma_max}")
        if self.rollout_context < 0:
            raise ValueError(f"rollout_context must be >= 0, got {self.rollout_context}")
        if self.context_noise < 0:
            raise ValueError(f"context_noise must be >= 0, got {self.context_noise}")
        if self.sampler_steps < 1:
            raise ValueError(f"sampler_steps must be at least 1, got {self.sampler_steps}")
        if not (math.isfinite(self.sampler_change_threshold) and 0 <= self.sampler_change_threshold < 255):
            raise ValueError(f"sampler_change_threshold must be in [0, 255) uint8 levels, got "
                             f"{self.sampler_change_threshold}")
        if self.change_weight < 0:
            raise ValueError(f"change_weight must be >= 0, got {self.change_weight}")

    @property
    def levels(self) -> int:
        """Resolution levels of the UNet (len(channels))."""
        return len(self.channels)

    @classmethod
    def preset(cls, name: str, action_size: int, action_scale: list[float] | None = None,
               **overrides: Any) -> WorldModelConfig:
        """The ``tiny`` / ``cpu`` / ``gpu`` configuration for an action space, with optional field overrides."""
        if name not in PRESETS:
            raise ValueError(f"unknown world model preset {name!r}; valid presets: {', '.join(PRESETS)}")
        unknown = sorted(set(overrides) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown WorldModelConfig fields {unknown}")
        if "channels" in overrides:  # a new level count: attention defaults to none per level again
            overrides.setdefault("attention", [])
        return replace(PRESETS[name], action_size=action_size, action_scale=list(action_scale or []), **overrides)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> WorldModelConfig:
        """The config saved in a run's ``config.json`` (no code is run; unknown keys are an error)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown WorldModelConfig keys {unknown}; valid keys: {sorted(known)}")
        return cls(**values)


PRESETS: dict[str, WorldModelConfig] = {
    # Tests: seconds on one CPU core at 16-32 px.
    "tiny": WorldModelConfig(channels=[16, 16], depths=[1, 1], cond_channels=32, mid_attention=False),
    # The laptop demo on 2 CPU cores: 64 x 64 frames folded into 32 x 32 x 12 by the stem (~4x cheaper);
    # the change from the last frame is diffused (Push-T's frame change has std ~0.06) with the changing
    # pixels weighted, and sampled in one step. Measured by the action-response gate (README "Gates").
    "cpu": WorldModelConfig(patch_size=2, channels=[32, 64, 64], depths=[1, 1, 1], cond_channels=128,
                            predict_residual=True, sigma_data=0.1, sigma_loc=-2.0, change_weight=10.0,
                            sampler_steps=1),
    # DIAMOND's Atari configuration (~4.4 M parameters).
    "gpu": WorldModelConfig(channels=[64, 64, 64, 64], depths=[2, 2, 2, 2], cond_channels=256),
}
"""Size presets; action_size and action_scale are filled in by :meth:`WorldModelConfig.preset`."""


@dataclass
class SamplerConfig:
    num_steps: int = 3
    """Denoising steps per generated frame (DIAMOND: 3)."""

    sigma_min: float = 2e-3
    """Smallest noise level of the Karras schedule before the final step to 0."""

    sigma_max: float = 5.0
    """Noise level of the first step; sampling starts from sigma_max x N(0, I)."""

    rho: float = 7.0
    """Karras schedule curvature: larger spends more steps at low noise."""

    order: int = 1
    """1: Euler (DIAMOND's default); 2: Heun (a second denoiser call per step, except the last)."""

    s_churn: float = 0.0
    """EDM stochastic churn; 0 makes sampling deterministic given the initial noise."""

    change_threshold: float = 0.0
    """Soft threshold (uint8 levels) on the sampled frame's change from the last context frame: a pixel
    channel that changed by less than this keeps its old value, larger changes shrink by it (soft
    thresholding, Donoho & Johnstone 1994). Stops the faint haze a model of the change leaves on static pixels
    from building up over an open-loop rollout (Push-T stand-in, cpu preset: 26 levels off white after 32
    steps without, 7 with 4); 0: the sample as the ODE returns it (DIAMOND)."""

    bf16: bool = False
    """Sample under bfloat16 autocast: float32 weights, the convolutions and matrix products in bfloat16. Pays on
    hardware with bfloat16 matrix units (a CPU with AMX: 2.5x the float32 sampler's speed with channels-last and
    the cpu preset's one step, 3.2x with 3 Euler steps; frames within one uint8 level of float32's, the world-model
    gate's numbers within 0.003; docs/world_models.md "Sampling speed"); on a CPU without them (AVX2) it is many
    times slower. Off: float32."""

    def __post_init__(self) -> None:
        if self.num_steps < 1:
            raise ValueError(f"num_steps must be at least 1, got {self.num_steps}")
        if not 0 < self.sigma_min <= self.sigma_max:
            raise ValueError(f"need 0 < sigma_min <= sigma_max, got {self.sigma_min}, {self.sigma_max}")
        if self.rho <= 0:
            raise ValueError(f"rho must be positive, got {self.rho}")
        if self.order not in (1, 2):
            raise ValueError(f"order must be 1 (Euler) or 2 (Heun), got {self.order}")
        if self.s_churn < 0:
            raise ValueError(f"s_churn must be >= 0, got {self.s_churn}")
        if not (math.isfinite(self.change_threshold) and 0 <= self.change_threshold < 255):
            raise ValueError(f"change_threshold must be in [0, 255) uint8 levels, got {self.change_threshold}")
