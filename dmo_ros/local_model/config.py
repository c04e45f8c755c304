"""Configuration of the local model: a DreamerV3-style RSSM with an image encoder, a decoder and a reward head.

:class:`LocalModelConfig` is JSON-able through :func:`dataclasses.asdict`; a run saves it under
``"model"`` in ``config.json`` and :meth:`LocalModelConfig.from_dict` reads it back.

Presets (:meth:`LocalModelConfig.preset`): ``tiny`` (tests, seconds on a CPU), ``cpu`` (the
laptop-class demo), ``gpu`` (between DreamerV3's S and M sizes: 512-unit GRU, 32 x 32 latents).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Any


@dataclass
class LocalModelConfig:
    """The local model's networks, latent sizes and loss weights (DreamerV3's world model, minus continue head)."""

    action_size: int = 2
    """A, components per action (Push-T: 2, end-effector velocity [vx, vy]; Push Cube: 3)."""

    action_scale: list[float] = field(default_factory=list)
    """Per-component divisor that makes raw actions O(1) before the RSSM sees them (e.g. 0.25 for Push-T
    velocities in m/s). The trainer fills it from the dataset's statistics; empty means 1 for every component."""

    image_size: int = 64
    """Side in pixels of the square frames (the dataset's image size)."""

    encoder_channels: list[int] = field(default_factory=lambda: [32, 64, 128, 256])
    """Convolution widths, one stride-2 stage each (64 px -> 32 -> 16 -> 8 -> 4 with four stages, DreamerV3's
    depth-32 encoder); the decoder mirrors them. image_size must be divisible by 2 ** len(encoder_channels)."""

    embed_size: int = 512
    """E, size of the image embedding (a linear projection of the flattened last feature map)."""

    deter_size: int = 256
    """D, size of the GRU's deterministic state h."""

    latent: str = "categorical"
    """Kind of stochastic state z. ``"categorical"``: S categoricals of K classes, one-hot draws with
    straight-through gradients (DreamerV2/V3). ``"gaussian"``: S dimensions of a diagonal Gaussian,
    reparameterised draws (PlaNet, DreamerV1); ``classes`` is then unused. Why the option: on Push-T frames the
    cpu preset's encoder and decoder carry the few-pixel agent through a Gaussian bottleneck sooner than through
    categorical draws (``scripts/latent_bottleneck_speed.py``, docs/gates.md "A Gaussian latent"), and the gradient DMO
    hands the actor through a Gaussian prior's mean is exact where a categorical's is straight-through."""

    stoch_size: int = 32
    """S, number of categorical variables (or Gaussian dimensions) in the stochastic state z (DreamerV3: 32)."""

    classes: int = 32
    """K, classes per categorical variable (DreamerV3: 32); unused with a Gaussian latent."""

    min_std: float = 0.1
    """Gaussian latent only: floor of every standard deviation, ``softplus(raw) + min_std`` (DreamerV1: 0.1)."""

    prior_residual: bool = False
    """Gaussian latent only: the prior's mean is the previous z plus the prior head's output, so the head predicts
    the *change* one step brings (as PETS and MBPO predict state differences) and "nothing moved" is its zero.
    Most of a Push-T frame does not change in a step; what the action changes is a small delta of a few latents."""

    hidden_size: int = 256
    """Width of the MLP layers (RSSM input / prior / posterior layers and the reward head)."""

    head_layers: int = 2
    """Hidden layers of the reward head's MLP."""

    unimix: float = 0.01
    """Fraction of the uniform distribution mixed into every categorical (DreamerV3: 0.01): keeps every
    probability >= unimix / K, so KL terms and log-probabilities stay finite."""

    kl_dyn_scale: float = 0.5
    """Weight of the dynamics KL, KL(sg(posterior) || prior): trains the prior toward the posterior."""

    kl_rep_scale: float = 0.1
    """Weight of the representation KL, KL(posterior || sg(prior)): keeps the posterior predictable."""

    free_bits: float = 1.0
    """Each KL term (summed over the categoricals) is clipped below at this many nats, so an already
    well-predicted step adds no gradient (DreamerV3: 1 nat)."""

    reward_bins: int = 255
    """Bins of the two-hot reward distribution (DreamerV3: 255)."""

    reward_low: float = -20.0
    """Lowest bin, in symlog space (symexp(-20) = -4.9e8: any real reward fits)."""

    reward_high: float = 20.0
    """Highest bin, in symlog space."""

    reward_loss_scale: float = 1.0
    """Weight of the reward head's cross-entropy (two-hot of symlog(reward))."""

    decoder_loss_scale: float = 1.0
    """Weight of the image reconstruction loss (squared error summed over pixels, as DreamerV3); 0 builds no
    decoder. Why a decoder: without it only the reward (one number) and the KL shape the latent, and the
    latent need not carry where things are, which the policy gradient through the dynamics needs."""

    inverse_dynamics_scale: float = 1.0
    """Weight of an inverse-dynamics loss: an MLP predicts action t (scaled, squared error) from the posterior
    features of frames t and t + 1. It makes the latent carry what the action changes (the agent's position,
    a few pixels of a 64 x 64 frame that the summed reconstruction loss barely sees), so the prior has to use
    the action to predict it; 0 builds no head (DreamerV3 has none). Runs saved before the option load as 0."""

    foreground_weight: float = 10.0
    """Reconstruction weight of foreground pixels relative to background: pixels that differ from the batch's
    median colour by more than 0.1 (in [-1, 1] units) count ``1 + foreground_weight``. On a mostly white table
    the few pixels of the agent and the T otherwise weigh almost nothing. Runs saved before the option: 0."""

    difference_weight: float = 0.0
    """Extra reconstruction weight of pixels that change between consecutive frames (by more than 0.1 in [-1, 1]
    units, in either neighbour): such a pixel counts ``difference_weight`` more. What an action changes is a few
    pixels around the agent (and the T when pushed); this makes the latent carry exactly those. 0: none."""

    agent_position_scale: float = 0.0
    """**Oracle** (the ladder's, never for a robot's own data): weight of a loss that makes the latent hold the
    Push-T agent's position. A head regresses the agent's [x, y] (scaled to [-1, 1]) from the posterior features of
    every frame and from the one-step prior features (what DMO differentiates), the target found in each frame by
    the stand-in's known colours (:func:`dmo_ros.sims.pusht_frames.locate_agent`; frames where the agent is not
    visible do not count). It asks whether a latent that knows where the arm is gives a gradient that depends on
    contact (docs/ladder.md, "An oracle latent that knows where the agent is"); on a real arm its reported position
    would stand in. Squared error summed over x and y, averaged over visible frames. 0: none."""

    prior_action_input: bool = False
    """Feed the (scaled) action to the prior head as well as to the GRU: ``p(z' | h', a)``. Through the GRU alone
    the 2 action inputs are 2 of ~1000 (beside the one-hot z) and their effect on z' is easily washed out; a
    direct path lets the prior move z' with the action. Runs saved before the option: false."""

    prior_reward_scale: float = 0.0
    """Weight of a second reward loss on the *one-step prior* of frame t + 1 (made from the posterior of frame t
    and action t) against frame t + 1's label. DMO differentiates the reward head at exactly such a prior state
    (d r̂(prior(h, z, a)) / d a), while the posterior loss alone trains the head only on states filtered from
    frames. 0: the posterior loss only (DreamerV3). The prior is taken at its mode, as DMO and the gate take it."""

    reward_difference_scale: float = 0.0
    """Weight of a loss on the reward *change* one step brings: ``r̂(prior_{t+1}) - sg(r̂(posterior_t))`` against
    ``r_{t+1} - r_t`` (in symlog space, the head's), both in units of the batch's RMS change, Huber (quadratic
    within one RMS change). The
    action moves the reward by ~0.01 a step where rewards span ~1.5, so an absolute reward loss barely sees the
    part of r̂ that d r̂ / d a is made of; this loss sees nothing else. 0: none."""

    keypoints: int = 0
    """Spatial-softmax keypoints in the encoder (Levine et al. 2016, "End-to-End Training of Deep Visuomotor
    Policies"; robomimic's ``SpatialSoftmax``): a 1x1 convolution of the second convolution's map (16 x 16 at
    64 x 64 frames) gives ``keypoints`` heat maps, each turned by a softmax over its pixels into an expected
    (x, y) in [-1, 1], appended to the flattened features before the projection. A flattened 4 x 4 map carries a
    4-pixel agent's position only through learned channel patterns; a keypoint is a position. 0: none (DreamerV3);
    runs saved before the option load as 0."""

    train_sample: bool = True
    """Training filters with categorical *draws* for z (DreamerV3); false: each categorical's mode (straight-through
    gradients either way). DMO and the gates take modes. On Push-T frames a draw-fed decoder learns slowly: the cpu
    preset's encoder and decoder as an autoencoder reached a reconstruction error of 0.0135 after 600 steps through
    draws (agent in 0 % of the frames), 0.0093 through modes (13 %), 0.0057 with no categorical bottleneck (43 %);
    but a local model trained on modes did no better at the gate (docs/gates.md "What the local model's latent
    holds")."""

    def __post_init__(self) -> None:
        if self.action_size < 1:
            raise ValueError(f"action_size must be at least 1, got {self.action_size}")
        self.action_scale = [float(s) for s in self.action_scale] or [1.0] * self.action_size
        if len(self.action_scale) != self.action_size:
            raise ValueError(f"action_scale has {len(self.action_scale)} entries for action_size {self.action_size}; "
                             "give one scale per action component (or none for all ones)")
        if not all(math.isfinite(s) and s > 0 for s in self.action_scale):
            raise ValueError(f"action_scale entries must be finite and positive, got {self.action_scale}")
        self.encoder_channels = [int(c) for c in self.encoder_channels]
        if not self.encoder_channels or min(self.encoder_channels) < 1:
            raise ValueError(f"encoder_channels must be a non-empty list of positive widths, got "
                             f"{self.encoder_channels}")
        stride = 2 ** len(self.encoder_channels)
        if self.image_size < stride or self.image_size % stride:
            raise ValueError(f"image_size {self.image_size} is not divisible by 2 ** {len(self.encoder_channels)} "
                             f"(one halving per encoder_channels entry); use fewer stages or another image size")
        for name in ("embed_size", "deter_size", "stoch_size", "hidden_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.keypoints < 0:
            raise ValueError(f"keypoints must be >= 0, got {self.keypoints}")
        if self.keypoints and len(self.encoder_channels) < 2:
            raise ValueError("keypoints read the second convolution's map: encoder_channels needs >= 2 stages")
        if self.latent not in LATENTS:
            raise ValueError(f"unknown latent {self.latent!r}; choose one of {', '.join(LATENTS)}")
        if not (math.isfinite(self.min_std) and self.min_std > 0):
            raise ValueError(f"min_std must be finite and > 0, got {self.min_std}")
        if self.prior_residual and self.latent != "gaussian":
            raise ValueError("prior_residual needs latent 'gaussian' (a categorical's mode cannot be added to)")
        if self.classes < 2:
            raise ValueError(f"classes must be at least 2 per categorical, got {self.classes}")
        if self.head_layers < 0:
            raise ValueError(f"head_layers must be >= 0, got {self.head_layers}")
        if not 0.0 <= self.unimix < 1.0:
            raise ValueError(f"unimix must be in [0, 1), got {self.unimix}")
        for name in ("kl_dyn_scale", "kl_rep_scale", "free_bits", "reward_loss_scale", "decoder_loss_scale",
                     "inverse_dynamics_scale", "foreground_weight", "difference_weight", "prior_reward_scale",
                     "reward_difference_scale", "agent_position_scale"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.reward_bins < 2:
            raise ValueError(f"reward_bins must be at least 2, got {self.reward_bins}")
        if not self.reward_low < self.reward_high:
            raise ValueError(f"need reward_low < reward_high (symlog space), got {self.reward_low}, "
                             f"{self.reward_high}")

    @property
    def stoch_width(self) -> int:
        """K for a categorical latent (one-hot per variable), 1 for a Gaussian one: z is (..., S, stoch_width)."""
        return self.classes if self.latent == "categorical" else 1

    @property
    def feature_size(self) -> int:
        """D + S x K (categorical) or D + S (Gaussian), the size of :func:`dmo_ros.local_model.rssm.features`."""
        return self.deter_size + self.stoch_size * self.stoch_width

    @classmethod
    def preset(cls, name: str, action_size: int, action_scale: list[float] | None = None,
               **overrides: Any) -> LocalModelConfig:
        """The ``tiny`` / ``cpu`` / ``gpu`` configuration for an action space, with optional field overrides."""
        if name not in PRESETS:
            raise ValueError(f"unknown local model preset {name!r}; valid presets: {', '.join(PRESETS)}")
        unknown = sorted(set(overrides) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown LocalModelConfig fields {unknown}; valid fields: "
                             f"{', '.join(f.name for f in fields(cls))}")
        return replace(PRESETS[name], action_size=action_size, action_scale=list(action_scale or []), **overrides)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> LocalModelConfig:
        """The config saved in a run's ``config.json`` (no code is run; unknown keys are an error)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown LocalModelConfig keys {unknown}; valid keys: {sorted(known)}")
        # Runs saved before these options existed trained (and saved weights) without them.
        return cls(**{"inverse_dynamics_scale": 0.0, "foreground_weight": 0.0, "difference_weight": 0.0,
                      "prior_action_input": False, "prior_reward_scale": 0.0, "reward_difference_scale": 0.0,
                      **values})


LATENTS = ("categorical", "gaussian")
"""The kinds of stochastic state :attr:`LocalModelConfig.latent` takes."""

PRESETS: dict[str, LocalModelConfig] = {
    # Tests: seconds on one CPU core at 16-32 px; 8 categoricals of 8 classes.
    "tiny": LocalModelConfig(encoder_channels=[8, 16, 32], embed_size=64, deter_size=32, stoch_size=8, classes=8,
                             hidden_size=64, head_layers=1),
    # The laptop demo: a depth-16 encoder at 64 x 64 (half DreamerV3's: a quarter of the convolution cost, so
    # pretraining fits the demo's hour on 2 cores), a 256-unit GRU, DreamerV3's 32 x 32 latents. The action also
    # feeds the prior head, moved pixels weigh 10 more, and the reward losses (posterior and one-step prior) weigh
    # 10: on Push-T's 10k samples this lifts the local gate's shuffled / true KL from 1.09 to 1.14 at 1000 steps
    # (docs/gates.md, "Where the cpu presets stand").
    "cpu": LocalModelConfig(encoder_channels=[16, 32, 64, 128], embed_size=256, deter_size=256, stoch_size=32,
                            classes=32, hidden_size=256, head_layers=2, prior_action_input=True, difference_weight=10.0,
                            reward_loss_scale=10.0, prior_reward_scale=10.0),
    # One GPU: about DreamerV3's S size (512-unit GRU and MLPs) with a depth-48 encoder.
    "gpu": LocalModelConfig(encoder_channels=[48, 96, 192, 384], embed_size=1024, deter_size=512, stoch_size=32,
                            classes=32, hidden_size=512, head_layers=2),
}
"""Size presets; action_size and action_scale are filled in by :meth:`LocalModelConfig.preset`."""


__all__ = ["LATENTS", "PRESETS", "LocalModelConfig"]
