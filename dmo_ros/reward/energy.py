"""The Bradley-Terry temporal-distance energy f(s_t | s_start, s_goal) and the goal-image reward built on it.

Training (seed paper eq. 3): for frames ``s_i``, ``s_j`` between ``s_start`` and ``s_goal`` of one
video segment with ``i < j`` (so ``s_j`` is temporally closer to the goal), minimise
``-log sigma(f(s_j | .) - f(s_i | .))`` — the Bradley-Terry probability that the later frame is
ranked higher. Only frames are used: no actions, no labels, no simulator state.

Reward (RL time): ``r(o) = (f(o | o_start, o_goal) - f(o_start | o_start, o_goal)) / scale``, see
:class:`GoalReward` and :meth:`EnergyNet.reward`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dmo_ros.reward.config import RewardConfig
from dmo_ros.reward.pairs import RankingPairs

if TYPE_CHECKING:  # intent.py imports this module's helpers
    from dmo_ros.reward.intent import IntentReward, IntentRewardNet


OBJECTIVES = ("temporal-distance", "intent")
"""What a reward run learns (``dmo-train-reward --objective``): the Bradley-Terry temporal-distance energy with a
goal picture (Push-T; the default), or P(intent | frame) + a milestone bonus (the paper's Push Cube reward)."""


def to_model_images(images: torch.Tensor | np.ndarray, device: torch.device | str | None = None) -> torch.Tensor:
    """Images in the models' convention: float32 in [-1, 1], channels first (..., 3, H, W).

    Accepts uint8 (0..255, scaled) or float (taken as already in [-1, 1]), numpy or torch,
    channels first (..., 3, H, W) or channels last (..., H, W, 3).
    """
    x = torch.as_tensor(images)
    if x.dim() < 3:
        raise ValueError(f"expected images (..., 3, H, W) or (..., H, W, 3), got shape {tuple(x.shape)}")
    if x.shape[-3] != 3 and x.shape[-1] == 3:
        x = x.movedim(-1, -3)
    if x.shape[-3] != 3:
        raise ValueError(f"expected 3 colour channels, got images of shape {tuple(x.shape)}")
    x = x.to(device) if device is not None else x
    if x.dtype == torch.uint8:
        return x.float() / 127.5 - 1.0
    if not x.is_floating_point():
        raise ValueError(f"images must be uint8 (0..255) or float in [-1, 1], got {x.dtype}")
    return x.float()


def random_shift(images: torch.Tensor, pad: int) -> torch.Tensor:
    """Each item of (B, C, H, W) translated by a random whole-pixel offset in [-pad, pad] (edges replicated).

    All channels of an item move together, so stacking the frame, start and goal on channels
    shifts them alike (DrQ-style augmentation that keeps their relative geometry).
    """
    if pad == 0:
        return images
    b, _, h, w = images.shape
    padded = F.pad(images, (pad, pad, pad, pad), mode="replicate")
    shifts = torch.randint(0, 2 * pad + 1, (b, 2), device=images.device, dtype=images.dtype)
    # Sample exactly at the padded image's pixel centres: x_src = x + shift, normalised for align_corners=False.
    xs = (torch.arange(w, device=images.device, dtype=images.dtype) + 0.5)[None, :] + shifts[:, :1]
    ys = (torch.arange(h, device=images.device, dtype=images.dtype) + 0.5)[None, :] + shifts[:, 1:]
    xs, ys = 2 * xs / (w + 2 * pad) - 1, 2 * ys / (h + 2 * pad) - 1
    grid = torch.stack([xs[:, None, :].expand(b, h, w), ys[:, :, None].expand(b, h, w)], dim=-1)
    return F.grid_sample(padded, grid, mode="nearest", padding_mode="border", align_corners=False)


class EnergyNet(nn.Module):
    """f(s_t | s_start, s_goal) -> a scalar; higher = temporally closer to the goal.

    Architecture — early fusion: one CNN over the channel concatenation of (s_t, s_start, s_goal)
    (9 channels, plus two coordinate planes), stride-2 stages, adaptive average pooling to a
    small grid (not a global pool: *where* the object is must survive), an MLP head. Why not a
    shared encoder per image fused at the end: ranking progress needs pixel-level comparisons
    (where the block is now against where it is in the goal and start pictures), which the first
    convolution computes directly when the images are stacked; a late-fusion model must first
    squeeze each image's object pose into a vector and compare those, which needs more data and
    capacity. The cost is the same at RL time (one CNN pass per frame either way).

    Reward scale: buffers ``energy_gap`` (running mean of f(s_goal|.) - f(s_start|.) over
    training contexts) and ``energy_std`` (running std of f over training frames) are updated in
    training-mode ``forward`` like BatchNorm statistics, so they are saved with the weights
    (safetensors) and restored on resume. See :meth:`reward`.
    """

    def __init__(self, config: RewardConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or RewardConfig()
        width_in = (9 if config.condition_on_start else 6) + (2 if config.coord_channels else 0)
        self.encoder = conv_encoder(width_in, config.channels, config.pool_size)
        self.head = nn.Sequential(
            nn.Linear(config.channels[-1] * config.pool_size**2, config.hidden_size),
            nn.SiLU(),
            nn.Linear(config.hidden_size, 1),
        )
        self.register_buffer("energy_gap", torch.ones(()))
        self.register_buffer("energy_std", torch.ones(()))
        self.register_buffer("calibration_updates", torch.zeros((), dtype=torch.int64))
        if not config.condition_on_start:  # the reward's fixed reference: the mean energy of training frames
            self.register_buffer("energy_mean", torch.zeros(()))

    # -- the energy ------------------------------------------------------------------------

    def energy(self, frames: torch.Tensor, start: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        """Raw f for (N, 3, H, W) float images in [-1, 1] (frames, their starts and goals) -> (N,).

        Without ``condition_on_start`` the starts are not looked at (f(s_t | s_goal)).
        """
        x = torch.cat([frames, start, goal] if self.config.condition_on_start else [frames, goal], dim=1)
        if self.config.coord_channels:
            n, _, h, w = x.shape
            ys = torch.linspace(-1, 1, h, device=x.device, dtype=x.dtype)[:, None].expand(h, w)
            xs = torch.linspace(-1, 1, w, device=x.device, dtype=x.dtype)[None, :].expand(h, w)
            x = torch.cat([x, torch.stack([xs, ys]).expand(n, 2, h, w)], dim=1)
        features = self.encoder(x)
        # The head in float32 even under bf16 autocast: rankings hinge on small differences of f.
        with torch.autocast(device_type=features.device.type, enabled=False):
            return self.head(features.float()).squeeze(-1)

    def reward_scale(self) -> torch.Tensor:
        """Energy units per reward unit: the mean start-to-goal energy gap (floored by the spread of f)."""
        return torch.maximum(self.energy_gap, self.energy_std).clamp_min(1e-6)

    def reward(self, frames: torch.Tensor, start: torch.Tensor, goal: torch.Tensor,
               start_energy: torch.Tensor | None = None) -> torch.Tensor:
        """Normalised reward for (N, 3, H, W) float images: ``(f(o|s,g) - f(s|s,g)) / scale`` -> (N,).

        Without ``condition_on_start``: ``(f(o|g) - mean f of training frames) / scale``, a function of the
        frame (and the goal) alone; ``start`` and ``start_energy`` are not used.

        Why this normalisation: subtracting the context's own f(start) removes the per-context
        offset (the Bradley-Terry loss constrains only differences), so the reward is 0 at the
        start; dividing by the mean start-to-goal gap over training contexts makes it about 1 at
        the goal. Rewards are O(1) and comparable across starts and goals, with no per-episode
        division that an unlucky (start, goal) could blow up. ``start_energy``: f(s|s,g) if known.
        """
        if not self.config.condition_on_start:
            return (self.energy(frames, start, goal) - self.energy_mean) / self.reward_scale()
        if start_energy is None:
            start_energy = self.energy(start, start, goal)
        return (self.energy(frames, start, goal) - start_energy) / self.reward_scale()

    # -- training --------------------------------------------------------------------------

    def forward(self, batch: RankingPairs) -> tuple[torch.Tensor, dict[str, float]]:
        """Bradley-Terry loss on (earlier, later) pairs; logs include pairwise ranking accuracy.

        Ordered pairs: -log sigma(f(later) - f(earlier)). Tie pairs (``batch.tie``, from ``tie_changed_share``):
        the cross-entropy with target 1/2, smallest when f(later) = f(earlier). ``accuracy`` and ``margin`` count the
        ordered pairs only and ``tie_margin`` (mean |margin|) the ties only, as ``(value, pair count)`` for the
        loop's weighted average (:mod:`dmo_ros.training.loop`); ``tie_share`` and ``tie_margin`` are logged when
        the config has ties.
        """
        images = torch.stack([batch.start, batch.earlier, batch.later, batch.goal], dim=1)  # (B, 4, 3, H, W)
        images = to_model_images(images)
        b, _, c, h, w = images.shape
        if self.training and self.config.shift_augment:
            images = random_shift(images.reshape(b, 4 * c, h, w), self.config.shift_augment).reshape(b, 4, c, h, w)
        start, earlier, later, goal = images.unbind(dim=1)
        f = self.energy(torch.cat([earlier, later]), torch.cat([start, start]), torch.cat([goal, goal]))
        f_earlier, f_later = f[:b], f[b:]
        margin = f_later - f_earlier
        # Ordered pairs: -log sigma(margin). Ties: the cross-entropy with target 1/2, minimal at margin 0.
        tie = batch.tie.to(margin.device)
        ordered_loss = F.softplus(-margin)
        tie_loss = 0.5 * (F.softplus(margin) + F.softplus(-margin))
        bt_loss = torch.where(tie, tie_loss, ordered_loss).mean()
        loss = bt_loss + self.config.energy_l2 * f.pow(2).mean()
        if self.training:
            self._update_calibration(start, goal, f.detach())
        ordered = (~tie).float()
        count = ordered.sum()
        per_ordered = count.clamp_min(1.0)  # no NaN for a batch of ties only (its weight 0 drops it)
        logs = {
            "loss": loss.item(),
            "bt_loss": bt_loss.item(),
            "accuracy": ((((margin > 0).float() * ordered).sum() / per_ordered).item(), count.item()),
            "margin": (((margin * ordered).sum() / per_ordered).item(), count.item()),
            "energy_gap": self.energy_gap.item(),
            "energy_std": self.energy_std.item(),
        }
        if self.config.tie_changed_share > 0:  # every batch logs the same keys (the loop averages per key)
            logs["tie_share"] = tie.float().mean().item()
            logs["tie_margin"] = (margin[tie].abs().mean().item() if tie.any() else 0.0, tie.sum().item())
        return loss, logs

    @torch.no_grad()
    def _update_calibration(self, start: torch.Tensor, goal: torch.Tensor, f_frames: torch.Tensor) -> None:
        k = min(self.config.calibration_items, start.shape[0])
        gap = (self.energy(goal[:k], start[:k], goal[:k]) - self.energy(start[:k], start[:k], goal[:k])).mean()
        spread = f_frames.std() if f_frames.numel() > 1 else torch.zeros_like(gap)
        n = float(self.calibration_updates.item())
        momentum = min(self.config.calibration_momentum, n / (n + 1.0))  # a plain running mean at first
        self.energy_gap.mul_(momentum).add_((1.0 - momentum) * gap.float())
        self.energy_std.mul_(momentum).add_((1.0 - momentum) * spread.float())
        if not self.config.condition_on_start:
            self.energy_mean.mul_(momentum).add_((1.0 - momentum) * f_frames.float().mean())
        self.calibration_updates.add_(1)

    @torch.no_grad()
    def sample_images(self, batch: RankingPairs) -> dict[str, torch.Tensor]:
        """Up to 4 items as rows start | earlier | later | goal, float in [0, 1], for TensorBoard."""
        rows = [torch.cat([batch.start[k], batch.earlier[k], batch.later[k], batch.goal[k]], dim=-1)
                for k in range(min(4, batch.batch_size))]
        return {"pairs": torch.cat(rows, dim=-2).float() / 255.0}


def _groups(width: int) -> int:
    return next(g for g in (8, 4, 2, 1) if width % g == 0)


def conv_encoder(width_in: int, channels: list[int], pool_size: int) -> nn.Sequential:
    """The reward models' image encoder: per width a stride-2 stage (4x4 conv, 3x3 conv, GroupNorm, SiLU), then
    adaptive average pooling to a ``pool_size`` grid, flattened: (N, width_in, H, W) -> (N, channels[-1] x pool^2).
    Module names are those of the energy's saved runs."""
    layers: list[nn.Module] = []
    for width in channels:
        layers += [nn.Conv2d(width_in, width, 4, stride=2, padding=1), nn.GroupNorm(_groups(width), width), nn.SiLU(),
                   nn.Conv2d(width, width, 3, padding=1), nn.GroupNorm(_groups(width), width), nn.SiLU()]
        width_in = width
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(pool_size), nn.Flatten())


def model_images(model: nn.Module, images: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Images as a reward model takes them: float in [-1, 1] on its device, channels first, its size checked.

    Raises:
        ValueError: images of another size than the model's ``config.image_size``.
    """
    x = to_model_images(images, next(model.parameters()).device)
    size = model.config.image_size
    if x.shape[-2:] != (size, size):
        raise ValueError(f"images of {x.shape[-1]}x{x.shape[-2]} px, the reward model takes {size}x{size}; "
                         "resize them as the dataset converter does (dmo_ros.dataset.images.resize)")
    return x


class RewardOfModel:
    """What the RL rewards of a reward model share (:class:`GoalReward`, :class:`~dmo_ros.reward.intent.IntentReward`):
    the model, its device, its images and the episodes' starts (``_start``, set by the subclass's ``set_start``)."""

    model: nn.Module
    _start: torch.Tensor | None = None

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def images(self, images: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Images as the model takes them: float in [-1, 1] on its device, channels first, size checked."""
        return model_images(self.model, images)

    @property
    def start(self) -> torch.Tensor:
        """The episodes' first observations in [-1, 1], as set by ``set_start``."""
        if self._start is None:
            raise RuntimeError(f"{type(self).__name__} has no start yet: call set_start(o_start) first")
        return self._start


class GoalReward(RewardOfModel):
    """The RL reward from a goal image: ``r(o) = (f(o | o_start, o_goal) - f(o_start | o_start, o_goal)) / scale``,
    or, for an energy without ``condition_on_start`` (the default), ``r(o) = (f(o | o_goal) - mean f) / scale``:
    a function of the frame alone, the same for recorded and imagined episodes (the start is then ignored).

    ``o_goal`` is one picture of the scene at the goal (see :mod:`dmo_ros.reward.goal_image`);
    ``o_start`` is each episode's (or imagined rollout's) first observation. Rewards are about 0
    at the start and about 1 at the goal (see :meth:`EnergyNet.reward`).

    A **goal set** — K pictures (K, 3, H, W) of the goal seen in different ways, e.g. the last frames of K
    demonstrations (``dmo-goal-image --from-dataset D --demonstration-ends K``) — rewards each frame by its best
    goal: ``r(o) = max_k r_k(o)``. An ego camera (the Go2's) sees the solved task differently from every place
    it can stand, so one picture rewards only the pushes that end where it was taken (measured on the Push Cube
    stand-in's scripted expert with ``dmo-reward-eval``: Spearman(reward, progress) 0.06 with one picture, 0.76
    with the best of 8 or of 32 demonstration ends; docs/push_cube.md "Push Cube one learned part at a time"). K = 1 is
    the single picture.

    Batched and device-aware: images may be uint8 or float in [-1, 1], numpy or torch, channels
    first or last, on any device (moved to the model's); rewards come back on the model's
    device. No gradient unless ``grad=True``.

        reward = GoalReward(model, load_goal_image("goal.png"))
        reward.set_start(first_frames)        # (B, 3, H, W): one start per environment
        r = reward(frames)                    # (B,) or, for frames (B, T, 3, H, W), (B, T)
    """

    def __init__(self, model: EnergyNet, goal: torch.Tensor | np.ndarray,
                 start: torch.Tensor | np.ndarray | None = None, grad: bool = False) -> None:
        self.model = model
        self.grad = grad
        self.goal = self.images(goal)
        if self.goal.dim() == 4 and len(self.goal) == 1:
            self.goal = self.goal[0]
        if self.goal.dim() not in (3, 4) or self.goal.shape[-3] != 3:
            raise ValueError(f"one goal image (3, H, W) or a goal set (K, 3, H, W) expected, got shape "
                             f"{tuple(self.goal.shape)}")
        if self.goal.min() < -1.01 or self.goal.max() > 1.01:
            raise ValueError("a float goal image must be in [-1, 1]; pass uint8 pixels to have them scaled")
        self._start: torch.Tensor | None = None
        self._start_energy: torch.Tensor | None = None
        if start is not None:
            self.set_start(start)

    @property
    def goals(self) -> torch.Tensor:
        """The goal pictures as a set, (K, 3, H, W) in [-1, 1] (K = 1 for one picture)."""
        return self.goal if self.goal.dim() == 4 else self.goal[None]

    def set_start(self, start: torch.Tensor | np.ndarray) -> None:
        """The episodes' first observations: (3, H, W) for one, (B, 3, H, W) for one per environment."""
        with torch.set_grad_enabled(self.grad):
            s = self.images(start)
            flat = s.reshape(-1, *s.shape[-3:])
            energies = [self.model.energy(flat, flat, goal.expand_as(flat)).reshape(s.shape[:-3])
                        for goal in self.goals]  # one per goal picture: f(s | s, g_k)
            self._start, self._start_energy = s, torch.stack(energies)

    def __call__(self, frames: torch.Tensor | np.ndarray,
                 start: torch.Tensor | np.ndarray | None = None) -> torch.Tensor:
        """Rewards for frames (..., 3, H, W); the start's leading dims must be a prefix of the frames'."""
        if start is not None:
            self.set_start(start)
        if self._start is None and not self.model.config.condition_on_start:
            with torch.set_grad_enabled(self.grad):  # a Markov reward: the frame and the goal are all it needs
                x = self.images(frames)
                flat = x.reshape(-1, *x.shape[-3:])
                rewards = [self.model.reward(flat, g, g) for g in (goal.expand_as(flat) for goal in self.goals)]
                return torch.stack(rewards).amax(0).reshape(x.shape[:-3])
        if self._start is None:
            raise RuntimeError("GoalReward needs the episode's first observation: call set_start(o_start) first")
        with torch.set_grad_enabled(self.grad):
            x = self.images(frames)
            lead, start_lead = x.shape[:-3], self._start.shape[:-3]
            if tuple(lead[: len(start_lead)]) != tuple(start_lead):
                raise ValueError(f"frames of leading shape {tuple(lead)} do not match the starts' {tuple(start_lead)}")
            extra = (1,) * (len(lead) - len(start_lead))
            start = self._start.reshape(*start_lead, *extra, *x.shape[-3:]).expand_as(x)
            flat = x.reshape(-1, *x.shape[-3:])
            rewards = []
            for goal, energy in zip(self.goals, self._start_energy, strict=True):
                start_energy = energy.reshape(*start_lead, *extra).expand(lead)
                rewards.append(self.model.reward(flat, start.reshape(flat.shape), goal.expand_as(flat),
                                                 start_energy.reshape(-1)))
            return torch.stack(rewards).amax(0).reshape(lead)  # the best goal of the set


def load_reward_model(run_dir: Path | str, device: torch.device | str = "cpu",
                      checkpoint: str = "last") -> EnergyNet | IntentRewardNet:
    """The trained reward model of a ``dmo-train-reward`` run: the temporal-distance energy, or the intent
    classifier of a run trained with ``--objective intent`` (:mod:`dmo_ros.reward.intent`); config from
    ``config.json`` ("model"), weights from safetensors (no code runs)."""
    from dmo_ros.reward.intent import IntentRewardConfig, IntentRewardNet
    from dmo_ros.training import load_model_weights, read_run_config

    run = read_run_config(run_dir, kind="reward")
    if run.get("objective", OBJECTIVES[0]) == "intent":
        model: nn.Module = IntentRewardNet(IntentRewardConfig.from_dict(run["model"]))
    else:
        model = EnergyNet(RewardConfig.from_dict(run["model"]))
    model.load_state_dict(load_model_weights(run_dir, checkpoint))
    return model.to(device).eval()


def frame_reward(model: EnergyNet | IntentRewardNet, goal: torch.Tensor | np.ndarray | None,
                 grad: bool = False) -> GoalReward | IntentReward:
    """The RL reward of a loaded reward model: :class:`GoalReward` of an energy and its goal picture (or goal set),
    :class:`~dmo_ros.reward.intent.IntentReward` of an intent classifier (no goal).

    Raises:
        ValueError: an energy without a goal picture.
    """
    from dmo_ros.reward.intent import IntentReward, IntentRewardNet

    if isinstance(model, IntentRewardNet):
        return IntentReward(model, grad=grad)
    if goal is None:
        raise ValueError("a goal-picture reward model needs a goal picture (--goal); an intent reward "
                         "(dmo-train-reward --objective intent) needs none")
    return GoalReward(model, goal, grad=grad)


def needs_goal(run_dir: Path | str) -> bool:
    """Whether the reward run's rewards need a goal picture (the temporal-distance energy) or not (intent)."""
    from dmo_ros.training import read_run_config

    return read_run_config(run_dir, kind="reward").get("objective", OBJECTIVES[0]) != "intent"
