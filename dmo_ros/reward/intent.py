"""The intent reward: P(intent | frame) + a milestone bonus, learned from the operator's intent button.

The paper (Sec. III, "Reward Models") uses goal pictures for Push-T and, for Push Cube, a reward "that encodes
whether a frame belongs to an intended demonstration or to a play behavior": during collection the operator holds
intent on while demonstrating the task and off while playing, and may press a milestone key when a milestone is
met (the dataset's ``intent`` and ``milestone`` arrays). The paper puts that reward into its DreamerV4-style world
model as a reward token (:mod:`dmo_ros.world_model_v4`); this module is the same reward as a model of its own, a
frame classifier, so that the DIAMOND world model, rung 1 of the ladder (the stand-in as the forward model) and
the local model's labels can use it:

    r(o) = P(intent | o) * (1 + progress_weight * progress(o)) + milestone_weight * milestone(o)

in about [0, 1 + progress_weight + milestone_weight]. P(intent) and the milestone are the paper's; the optional
**demonstration progress** head (``progress_weight`` > 0; our addition, docs/push_cube.md "Progress, goal visits ...")
regresses how far into its demonstration a frame lies, (k + 1) / L for the k-th of L frames of a contiguous intent-on
stretch, trained on intent-on frames only: P(intent) alone pays a policy as much for looking at the cube as for pushing
it (the milestone key is pressed once, at success), and the progress inside the demonstrations is what says which
frames come nearer the end. It uses the labels and the frame order only, never the simulator.

as :meth:`~dmo_ros.world_model_v4.dynamics.Dynamics.reward` reads the reward token. It is Markov (a function of the
frame alone) and needs no goal picture. Why here: on Push Cube the goal-picture reward scores a walk into a wall
above the cube in the goal, and DMO finds that walk; P(intent) ranks the scripted expert far above such policies
(docs/push_cube.md "Push Cube one learned part at a time", ``scripts/push_cube_intent_probe.py``).

    model = IntentRewardNet(IntentRewardConfig.preset("cpu"))
    loss, logs = model(batch)                     # batch: LabelledFrames from IntentFrames (training loop contract)
    reward = IntentReward(model)
    r = reward(frames)                            # frames (..., 3, H, W) uint8 or [-1, 1] -> (...,)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from dmo_ros.dataset.format import DatasetError
from dmo_ros.dataset.loaders import ClipDataset
from dmo_ros.reward.config import check_network_size
from dmo_ros.reward.energy import RewardOfModel, conv_encoder, random_shift, to_model_images
from dmo_ros.reward.pairs import true_runs


@dataclass
class IntentRewardConfig:
    """The frame classifier P(intent | frame) and its milestone head."""

    image_size: int = 64
    """Height and width of the frames (the dataset's frame size)."""

    channels: list[int] = field(default_factory=lambda: [32, 64, 128])
    """Convolution widths, one stride-2 stage each: 64 px -> 32 -> 16 -> 8 with three stages."""

    pool_size: int = 4
    """Side of the spatial grid kept before the head (adaptive average pooling): where things are still counts."""

    hidden_size: int = 256
    """Width of the MLP head that maps the pooled features to (intent logit, milestone)."""

    shift_augment: int = 4
    """Training augmentation: pad by this many pixels and crop back at a random offset; 0 turns it off."""

    milestone_weight: float = 1.0
    """Reward = P(intent) + milestone_weight x predicted milestone (the milestone key's bonus; the paper's)."""

    progress_weight: float = 0.0
    """> 0 adds the demonstration-progress head: reward = P(intent) x (1 + progress_weight x progress) + milestone
    term, progress in [0, 1] being how far into its demonstration the frame looks. 0: the paper's reward, no head."""

    def __post_init__(self) -> None:
        self.channels = [int(c) for c in self.channels]
        check_network_size(self.image_size, self.channels, self.pool_size, self.hidden_size, self.shift_augment)
        if self.milestone_weight < 0 or self.progress_weight < 0:
            raise ValueError(f"milestone_weight and progress_weight must be >= 0, got {self.milestone_weight} and "
                             f"{self.progress_weight}")

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> IntentRewardConfig:
        """The named size preset (``tiny``, ``cpu``, ``gpu``), with fields replaced by ``overrides``."""
        if name not in INTENT_PRESETS:
            raise ValueError(f"unknown intent reward preset '{name}'; choose one of {', '.join(INTENT_PRESETS)}")
        return replace(INTENT_PRESETS[name], **overrides)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> IntentRewardConfig:
        """A config from a plain dict (a run's config.json ``model`` section); unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown IntentRewardConfig field(s): {', '.join(unknown)}; known: "
                             f"{', '.join(sorted(known))}")
        return cls(**values)


INTENT_PRESETS: dict[str, IntentRewardConfig] = {
    "tiny": IntentRewardConfig(channels=[16, 32, 32], pool_size=4, hidden_size=64, shift_augment=0),
    "cpu": IntentRewardConfig(channels=[32, 64, 128], pool_size=4, hidden_size=256, shift_augment=4),
    "gpu": IntentRewardConfig(channels=[64, 128, 256, 256], pool_size=4, hidden_size=512, shift_augment=4),
}
"""Size presets (the temporal-distance energy's sizes, :data:`~dmo_ros.reward.config.REWARD_PRESETS`)."""


@dataclass
class LabelledFrames:
    """One frame and its labels (or a batch, with a leading batch dimension B on every tensor)."""

    frame: torch.Tensor
    """(3, H, W) uint8: the camera frame."""
    intent: torch.Tensor
    """() float32: 1 while the operator's intent was on, else 0."""
    milestone: torch.Tensor
    """() float32: the milestone key's value at the sample (0 where unused)."""
    progress: torch.Tensor
    """() float32: (k + 1) / L for the k-th of the L frames of the sample's intent-on stretch; NaN with intent off."""

    def to(self, device: torch.device | str, non_blocking: bool = False) -> LabelledFrames:
        return replace(self, **{f.name: getattr(self, f.name).to(device, non_blocking=non_blocking)
                                for f in fields(self)})

    def pin_memory(self) -> LabelledFrames:
        return replace(self, **{f.name: getattr(self, f.name).pin_memory() for f in fields(self)})

    @property
    def batch_size(self) -> int:
        return self.frame.shape[0] if self.frame.dim() == 4 else 1

    @classmethod
    def collate(cls, items: Sequence[LabelledFrames]) -> LabelledFrames:
        if not items:
            raise ValueError("cannot collate an empty list")
        return cls(**{f.name: torch.stack([getattr(item, f.name) for item in items]) for f in fields(cls)})


class IntentFrames(Dataset):
    """Every sample of a split's episodes, of one or more dataset folders, with its intent and milestone.

    Raises:
        DatasetError: folders of different frame sizes, or no episode in the split.
    """

    def __init__(self, folders: Path | str | Sequence[Path | str], split: str = "train") -> None:
        folder_list = [folders] if isinstance(folders, (str, Path)) else list(folders)
        if not folder_list:
            raise ValueError("IntentFrames needs at least one dataset folder")
        self.sources = [ClipDataset(folder, 1, split) for folder in folder_list]
        shapes = {source.image_shape for source in self.sources}
        if len(shapes) != 1:
            raise DatasetError(f"dataset folders have different frame sizes {sorted(shapes)}; convert them alike")
        self.image_shape: tuple[int, int] = shapes.pop()
        """(H, W) of the frames."""
        rows = [(s, sample) for s, source in enumerate(self.sources) for ep in source.episodes
                for sample in range(int(ep["start"]), int(ep["start"]) + int(ep["length"]))]
        self.samples = np.array(rows, dtype=np.int64).reshape(-1, 2)
        """(N, 2) int64: source and sample index of every item."""
        self.progress = [demonstration_progress(source) for source in self.sources]
        """Per source, (samples,) float32: the progress label of every sample (NaN with intent off)."""

    def __len__(self) -> int:
        return len(self.samples)

    def intent_fraction(self) -> float:
        """Share of the items with intent on (NaN with no items)."""
        if not len(self):
            return float("nan")
        return float(np.mean([bool(self.sources[s].arrays["intent"][i]) for s, i in self.samples]))

    def __getitem__(self, index: int) -> LabelledFrames:
        source, sample = (int(v) for v in self.samples[index])
        arrays = self.sources[source].arrays
        frame = torch.from_numpy(np.array(arrays["frames"][sample])).permute(2, 0, 1).contiguous()
        return LabelledFrames(frame=frame, intent=torch.tensor(float(arrays["intent"][sample])),
                              milestone=torch.tensor(float(arrays["milestone"][sample])),
                              progress=torch.tensor(float(self.progress[source][sample])))

    def __repr__(self) -> str:
        return f"IntentFrames({', '.join(str(s.folder) for s in self.sources)}: {len(self)} frames)"


def demonstration_progress(source: ClipDataset) -> np.ndarray:
    """(samples,) float32: (k + 1) / L for the k-th of the L samples of each contiguous intent-on stretch inside an
    episode (a stretch never crosses an episode boundary), NaN where intent is off."""
    intent = np.asarray(source.arrays["intent"])
    progress = np.full(len(intent), np.nan, dtype=np.float32)
    for episode in source.episodes:
        start, length = int(episode["start"]), int(episode["length"])
        for begin, end in true_runs(intent[start: start + length]):
            progress[start + begin: start + end] = np.arange(1, end - begin + 1, dtype=np.float32) / (end - begin)
    return progress


class IntentRewardNet(nn.Module):
    """(N, 3, H, W) frames -> (N, 2) or (N, 3): the intent logit, the milestone and (with ``progress_weight`` > 0)
    the demonstration-progress logit; :meth:`reward` combines them."""

    def __init__(self, config: IntentRewardConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or IntentRewardConfig()
        self.encoder = conv_encoder(3, config.channels, config.pool_size)  # the energy's encoder, on one frame
        self.head = nn.Sequential(nn.Linear(config.channels[-1] * config.pool_size**2, config.hidden_size), nn.SiLU(),
                                  nn.Linear(config.hidden_size, 3 if config.progress_weight > 0 else 2))

    def outputs(self, frames: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) float in [-1, 1] -> (N, 2 or 3) float32: intent logit, milestone[, progress logit]."""
        features = self.encoder(frames)
        with torch.autocast(device_type=features.device.type, enabled=False):
            return self.head(features.float())

    def reward(self, frames: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) float in [-1, 1] -> (N,): P(intent) x (1 + progress_weight x progress) + milestone_weight x
        milestone."""
        out = self.outputs(frames)
        intent = torch.sigmoid(out[:, 0])
        if self.config.progress_weight > 0:
            intent = intent * (1 + self.config.progress_weight * torch.sigmoid(out[:, 2]))
        return intent + self.config.milestone_weight * out[:, 1]

    def forward(self, batch: LabelledFrames) -> tuple[torch.Tensor, dict[str, float]]:
        """Binary cross-entropy on intent + squared error on the milestone (the reward token's loss) [+ binary
        cross-entropy of the progress logit against the progress label, on intent-on frames]."""
        frames = to_model_images(batch.frame)
        if self.training and self.config.shift_augment:
            frames = random_shift(frames, self.config.shift_augment)
        out = self.outputs(frames)
        bce = F.binary_cross_entropy_with_logits(out[:, 0], batch.intent.float())
        milestone = (out[:, 1] - batch.milestone.float()).pow(2).mean()
        loss = bce + milestone
        logs = {"intent_bce": bce.item(), "milestone_mse": milestone.item(),
                "accuracy": ((out[:, 0] > 0) == (batch.intent > 0.5)).float().mean().item()}
        if self.config.progress_weight > 0:
            labelled = torch.isfinite(batch.progress)
            if labelled.any():
                target = batch.progress[labelled].float()
                progress = F.binary_cross_entropy_with_logits(out[labelled, 2], target)
                loss = loss + progress
                logs["progress_error"] = (torch.sigmoid(out[labelled, 2]) - target).abs().mean().item()
        logs["loss"] = loss.item()
        return loss, logs

    @torch.no_grad()
    def sample_images(self, batch: LabelledFrames) -> dict[str, torch.Tensor]:
        """Up to 8 frames side by side, float in [0, 1], for TensorBoard."""
        return {"frames": torch.cat(list(batch.frame[:8]), dim=-1).float() / 255.0}


class IntentReward(RewardOfModel):
    """The RL reward of an :class:`IntentRewardNet`, with :class:`~dmo_ros.reward.energy.GoalReward`'s interface
    (``set_start``, ``start``, ``images``, ``__call__``) so environments take either; the start is kept but not
    looked at (the reward is Markov), and there is no goal picture.

    Batched and device-aware as GoalReward; no gradient unless ``grad=True``.
    """

    def __init__(self, model: IntentRewardNet, grad: bool = False) -> None:
        self.model, self.grad = model, grad
        self._start: torch.Tensor | None = None

    def set_start(self, start: torch.Tensor | np.ndarray) -> None:
        """Keep the episodes' first observations (environments restart episodes through it; not used)."""
        self._start = self.images(start)

    def __call__(self, frames: torch.Tensor | np.ndarray,
                 start: torch.Tensor | np.ndarray | None = None) -> torch.Tensor:
        """Rewards for frames (..., 3, H, W) -> (...,); ``start`` is accepted for GoalReward's signature."""
        if start is not None:
            self.set_start(start)
        with torch.set_grad_enabled(self.grad):
            x = self.images(frames)
            return self.model.reward(x.reshape(-1, *x.shape[-3:])).reshape(x.shape[:-3])
