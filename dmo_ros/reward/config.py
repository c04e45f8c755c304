"""Configuration of the Bradley-Terry temporal-distance energy (the Push-T global reward model)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any


@dataclass
class RewardConfig:
    """The energy network f(s_t | s_start, s_goal), how its training pairs are drawn, and its reward scale."""

    image_size: int = 64
    """Height and width of the frames (the dataset's frame size); goal images are resized to it."""

    channels: list[int] = field(default_factory=lambda: [32, 64, 128])
    """Convolution widths, one stride-2 stage each: 64 px -> 32 -> 16 -> 8 with three stages."""

    pool_size: int = 4
    """Side of the spatial grid kept before the head (adaptive average pooling): keeps *where* things are."""

    hidden_size: int = 256
    """Width of the MLP head that maps the pooled features to the scalar energy."""

    condition_on_start: bool = False
    """Give the network the episode's first frame s_start (the seed paper's f(s_t | s_start, s_goal)). Off, the
    energy is f(s_t | s_goal) and the reward a function of the frame alone (Markov: the local model's reward
    head can predict it from the state, and imagined and recorded episodes score a frame alike); the
    training pairs still come from (start, goal) segments. Runs saved before this option existed load as on."""

    coord_channels: bool = True
    """Append x/y coordinate planes to the input (CoordConv), so positions are easy to compare."""

    shift_augment: int = 4
    """Training augmentation: pad by this many pixels and crop back at a random offset, the same offset
    for the frame, the start and the goal of an item (keeps their geometry); 0 turns it off."""

    energy_l2: float = 1e-3
    """Weight of a penalty on mean f^2. The Bradley-Terry loss only sees differences, so the energy's
    offset would drift freely; keeping it near 0 keeps bf16 autocast precise."""

    min_span: int = 1
    """Fewest samples between s_start and s_goal when drawing training pairs (>= 1)."""

    max_span: int = 64
    """Most samples between s_start and s_goal (the temporal horizon the energy learns to rank over;
    at 5 Hz, 64 samples = 12.8 s); 0: up to the whole episode."""

    negative_fraction: float = 0.0
    """Share of training pairs whose earlier frame is a **negative**: a frame of another episode, which does not
    lead to this context's goal, ranked below a frame of the context (the later one). In-segment pairs only say
    how frames on the way to a goal rank; a frame off every recorded way (an ego camera walked into a wall) gets
    whatever the network extrapolates, and a policy finds it (measured on Push Cube: the Go2 policy walked into a
    wall that scored like the cube in the goal). Negatives teach the energy to score such frames low. 0: in-segment
    pairs only (the seed paper's sampling)."""

    tie_changed_share: float = 0.0
    """A pair whose two frames differ in at most this share of pixels (any channel by more than
    :data:`~dmo_ros.reward.pairs.TIE_PIXEL_STEP` levels) is a **tie**: the loss asks f(earlier) = f(later) (the
    preference-learning tie, target 1/2; Christiano et al. 2017) instead of f(later) > f(earlier). Frames in which
    only the robot moved while the scene stood still show no progress, whatever their order in time; ranking them
    by time teaches the energy where the robot tends to be, a term that depends on the robot alone and that a policy
    maximises by parking it (measured on Push-T, README "ties"). Found from the frames alone: at 64 px on Push-T,
    0.01 (40 pixels, about two agent discs) separates pairs whose T stood still (median centre shift 0.07 px) from
    pairs whose T moved. 0: every pair is ordered (the seed paper's loss)."""

    calibration_momentum: float = 0.99
    """Momentum of the running reward-scale statistics updated during training (a running mean
    over the first 1 / (1 - momentum) updates, an exponential average after)."""

    calibration_items: int = 16
    """Items per training batch whose f(s_start) and f(s_goal) update the reward scale (no gradient)."""

    def __post_init__(self) -> None:
        self.channels = [int(c) for c in self.channels]
        check_network_size(self.image_size, self.channels, self.pool_size, self.hidden_size, self.shift_augment)
        if self.energy_l2 < 0:
            raise ValueError(f"energy_l2 must be >= 0, got {self.energy_l2}")
        if self.min_span < 1:
            raise ValueError(f"min_span must be >= 1 (a pair needs two distinct frames), got {self.min_span}")
        if self.max_span != 0 and self.max_span < self.min_span:
            raise ValueError(f"max_span ({self.max_span}) must be 0 (whole episodes) or >= min_span ({self.min_span})")
        if not 0.0 <= self.negative_fraction < 1.0:
            raise ValueError(f"negative_fraction must be in [0, 1), got {self.negative_fraction}")
        if not 0.0 <= self.tie_changed_share < 1.0:
            raise ValueError(f"tie_changed_share must be in [0, 1), got {self.tie_changed_share}")
        if not 0.0 <= self.calibration_momentum < 1.0:
            raise ValueError(f"calibration_momentum must be in [0, 1), got {self.calibration_momentum}")
        if self.calibration_items < 1:
            raise ValueError(f"calibration_items must be >= 1, got {self.calibration_items}")

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> RewardConfig:
        """The named size preset (``tiny``, ``cpu``, ``gpu``), with fields replaced by ``overrides``."""
        if name not in REWARD_PRESETS:
            raise ValueError(f"unknown reward preset '{name}'; choose one of {', '.join(REWARD_PRESETS)}")
        return replace(REWARD_PRESETS[name], **overrides)  # a copy: __post_init__ makes a fresh channels list

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RewardConfig:
        """A config from a plain dict (e.g. a run's config.json ``model`` section); unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown RewardConfig field(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**{"condition_on_start": True, **values})  # runs saved before the option were conditioned


def check_network_size(image_size: int, channels: list[int], pool_size: int, hidden_size: int,
                       shift_augment: int) -> None:
    """The checks every reward network's size passes (the energy's and the intent classifier's).

    Raises:
        ValueError: naming the field that is out of range.
    """
    if image_size < 8:
        raise ValueError(f"image_size must be at least 8 pixels, got {image_size}")
    if not channels or min(channels) < 1:
        raise ValueError(f"channels must be a non-empty list of positive widths, got {channels}")
    if image_size >> len(channels) < 1:
        raise ValueError(f"{len(channels)} stride-2 stages shrink {image_size} px to nothing; "
                         "use fewer channels entries or a larger image_size")
    if pool_size < 1 or hidden_size < 1:
        raise ValueError("pool_size and hidden_size must be positive")
    if shift_augment < 0:
        raise ValueError(f"shift_augment must be >= 0 pixels, got {shift_augment}")


REWARD_PRESETS: dict[str, RewardConfig] = {
    # Tests: seconds on one CPU core (0.08 M parameters; learns a moving-object toy video to > 90 % pair accuracy).
    "tiny": RewardConfig(channels=[16, 32, 32], pool_size=4, hidden_size=64, shift_augment=0, max_span=32),
    # The laptop demo: 0.9 M parameters, minutes on a few cores.
    "cpu": RewardConfig(channels=[32, 64, 128], pool_size=4, hidden_size=256, shift_augment=4, max_span=64),
    # One GPU: 5.2 M parameters (about the DIAMOND world model's size), for hours of play data.
    "gpu": RewardConfig(channels=[64, 128, 256, 256], pool_size=4, hidden_size=512, shift_augment=4, max_span=100),
}
"""Size presets; ``RewardConfig.preset(name)`` returns a fresh copy."""
