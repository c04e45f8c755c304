"""ACT (Action Chunking with Transformers; Zhao et al., RSS 2023): the behaviour-cloning baseline, deployable.

The network (:class:`ACTModel`) is the ACT authors' CVAE, scaled to a 64 x 64 ego camera and no proprioception:

- **image tokens**: a small strided CNN turns the frame (3, H, W) into an (H/8 x W/8) grid of ``dim``-wide tokens
  with learned position embeddings (ACT: a ResNet-18 feature map);
- **CVAE encoder** (training only): a transformer encoder over [CLS, the ``chunk_size`` target actions] whose CLS
  output gives the mean and log-variance of a ``latent_size`` style variable z (ACT: [CLS, joints, actions]);
- **decoder**: a transformer encoder over [z, image tokens], then a transformer decoder whose ``chunk_size`` learned
  queries attend to it and each give one action: the next ``chunk_size`` actions at once.

Loss: L1 between the predicted and demonstrated actions (normalised per component by the demonstrations' mean and
std; steps past the end of a demonstration are masked) + ``kl_weight`` x KL(q(z | actions, frame) || N(0, I)). At
run time z = 0 (the prior's mean).

The chunk covers about one second of motion (the ACT authors' rule: 5 steps at 5 Hz; LeRobot's default of 100 steps
gives 0 % on small datasets). At run time the policy predicts a chunk at every control step and **temporal
ensembling** averages, for the current step, every chunk's prediction of it with weights exp(-m i), i = 0 for the
oldest prediction (the ACT authors' m = 0.01); without ensembling the chunk is executed open loop, a new one every
``chunk_size`` steps (LeRobot's action queue).

    policy = load_policy("runs/go2/act")   # dmo_ros.policy.api: any policy run, ACT included
    policy.reset(); action = policy.act(frame)   # (64, 64, 3) uint8 -> [vx, vy, yaw rate]

Sources: Zhao et al., "Learning Fine-Grained Bimanual Manipulation with Low-Cost Hardware" (2023), §III and
Algorithms 1-2; LeRobot's ``policies/act`` for the layout (``kl_weight`` 10, dropout 0.1, pre-norm off).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dmo_ros.policy.base import PolicyError, check_frame, clamp_action

METHOD = "act"
"""``config.json`` ``method`` of an ACT policy run."""


@dataclass
class ACTConfig:
    """The ACT network and its loss. ``image_size``, ``action_size``, ``action_mean`` and ``action_std`` come from the
    data; the rest from a preset (:data:`PRESETS`)."""

    image_size: int = 64
    """Side of the square input frames (pixels); a multiple of 8."""
    action_size: int = 3
    """A, the number of action components (Go2: vx, vy, yaw rate)."""
    action_mean: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    """(A,) mean of the demonstrated actions (robot units): the normalisation's offset."""
    action_std: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0])
    """(A,) standard deviation of the demonstrated actions (robot units, >= 1e-3): the normalisation's scale."""
    chunk_size: int = 5
    """Actions predicted at once: about one second of motion (5 steps at 5 Hz, the ACT authors' rule)."""
    dim: int = 128
    """Transformer width (ACT: 512)."""
    heads: int = 4
    """Attention heads (ACT: 8)."""
    encoder_layers: int = 2
    """Transformer encoder layers over [z, image tokens] (ACT: 4)."""
    decoder_layers: int = 2
    """Transformer decoder layers of the action queries (ACT: 7, of which 1 is used in their code; LeRobot: 1)."""
    vae_encoder_layers: int = 2
    """Transformer layers of the CVAE encoder (ACT: 4)."""
    feedforward: int = 512
    """Feed-forward width of every transformer layer (ACT: 3200)."""
    latent_size: int = 32
    """Size of the CVAE style variable z (ACT: 32)."""
    dropout: float = 0.1
    """Dropout in the transformer layers (ACT: 0.1)."""
    kl_weight: float = 10.0
    """Weight of the KL term (ACT: 10)."""
    channels: list[int] = field(default_factory=lambda: [32, 64, 128])
    """Output channels of the three stride-2 convolutions of the image backbone (then a 3 x 3 conv to ``dim``)."""
    random_shift: int = 4
    """Training augmentation: frames padded by this many pixels (edge copies) and randomly cropped back (DrQ);
    0: off."""

    def __post_init__(self) -> None:
        self.action_mean = [float(v) for v in self.action_mean]
        self.action_std = [float(v) for v in self.action_std]
        self.channels = [int(c) for c in self.channels]
        if self.image_size < 8 or self.image_size % 8:
            raise ValueError(f"image_size must be a positive multiple of 8, got {self.image_size}")
        sizes = (len(self.action_mean), len(self.action_std))
        if self.action_size < 1 or sizes != (self.action_size, self.action_size):
            raise ValueError(f"action_mean and action_std must have action_size = {self.action_size} entries, got "
                             f"{len(self.action_mean)} and {len(self.action_std)}")
        if min(self.action_std) < 1e-3:
            raise ValueError(f"action_std must be >= 1e-3 per component, got {self.action_std}")
        for name in ("chunk_size", "dim", "heads", "encoder_layers", "decoder_layers", "vae_encoder_layers",
                     "feedforward", "latent_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.dim % self.heads:
            raise ValueError(f"dim ({self.dim}) must be a multiple of heads ({self.heads})")
        if len(self.channels) != 3 or min(self.channels) < 1:
            raise ValueError(f"channels must be three positive numbers, got {self.channels}")
        if not 0.0 <= self.dropout < 1.0 or self.kl_weight < 0 or self.random_shift < 0:
            raise ValueError("dropout must be in [0, 1), kl_weight and random_shift >= 0")

    @classmethod
    def preset(cls, name: str, **values: Any) -> ACTConfig:
        """The preset ``name`` (tiny, cpu, gpu) with ``values`` (the data's sizes, any overrides) replaced."""
        if name not in PRESETS:
            raise ValueError(f"unknown ACT preset {name!r}; choose one of {', '.join(PRESETS)}")
        return replace(PRESETS[name], **values)


PRESETS: dict[str, ACTConfig] = {
    # Tests: a learning test in seconds on one CPU core.
    "tiny": ACTConfig(dim=32, heads=2, encoder_layers=1, decoder_layers=1, vae_encoder_layers=1, feedforward=64,
                      latent_size=8, channels=[8, 16, 32], dropout=0.0),
    # The laptop baseline: 0.42 M parameters, ~0.16 s per batch of 32 on one CPU core.
    "cpu": ACTConfig(dim=64, heads=4, feedforward=256, channels=[16, 32, 64]),
    # The ACT authors' widths (a ResNet-18 backbone aside).
    "gpu": ACTConfig(dim=512, heads=8, encoder_layers=4, decoder_layers=1, vae_encoder_layers=4, feedforward=3200,
                     channels=[64, 128, 256]),
}
"""Network presets; ``ACTConfig.preset(name, ...)`` returns a copy."""


@dataclass
class ActionChunks:
    """A batch of (frame, the next ``chunk_size`` demonstrated actions) pairs."""

    frames: torch.Tensor
    """(B, 3, H, W) uint8 RGB of the observed frame."""
    actions: torch.Tensor
    """(B, K, A) float32 actions in robot units from the frame's step on (zeros where padded)."""
    valid: torch.Tensor
    """(B, K) bool: the action is part of the demonstration (False past its end: padding)."""

    def to(self, device: torch.device | str, non_blocking: bool = False) -> ActionChunks:
        return ActionChunks(*(t.to(device, non_blocking=non_blocking) for t in (self.frames, self.actions, self.valid)))

    def pin_memory(self) -> ActionChunks:
        return ActionChunks(self.frames.pin_memory(), self.actions.pin_memory(), self.valid.pin_memory())

    @classmethod
    def collate(cls, items: list[ActionChunks]) -> ActionChunks:
        return cls(torch.stack([i.frames for i in items]), torch.stack([i.actions for i in items]),
                   torch.stack([i.valid for i in items]))


def _layer(config: ACTConfig) -> dict[str, Any]:
    return {"d_model": config.dim, "nhead": config.heads, "dim_feedforward": config.feedforward,
            "dropout": config.dropout, "batch_first": True}


class ACTModel(nn.Module):
    """The ACT CVAE (see the module doc); ``forward(batch) -> (loss, logs)`` for the shared training loop."""

    def __init__(self, config: ACTConfig) -> None:
        super().__init__()
        self.config = c = config
        c1, c2, c3 = c.channels

        def norm(channels: int) -> nn.GroupNorm:
            return nn.GroupNorm(min(8, channels), channels)

        self.backbone = nn.Sequential(
            nn.Conv2d(3, c1, 4, 2, 1), norm(c1), nn.SiLU(),
            nn.Conv2d(c1, c2, 4, 2, 1), norm(c2), nn.SiLU(),
            nn.Conv2d(c2, c3, 4, 2, 1), norm(c3), nn.SiLU(),
            nn.Conv2d(c3, c.dim, 3, 1, 1),
        )
        tokens = (c.image_size // 8) ** 2
        self.image_position = nn.Parameter(torch.randn(1, tokens, c.dim) * 0.02)
        # CVAE encoder: [CLS, actions].
        self.vae_cls = nn.Parameter(torch.randn(1, 1, c.dim) * 0.02)
        self.vae_action = nn.Linear(c.action_size, c.dim)
        self.vae_position = nn.Parameter(torch.randn(1, 1 + c.chunk_size, c.dim) * 0.02)
        self.vae_encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(**_layer(c)), c.vae_encoder_layers,
                                                 enable_nested_tensor=False)
        self.vae_out = nn.Linear(c.dim, 2 * c.latent_size)
        # Decoder side: [z, image tokens] -> memory; chunk queries -> actions.
        self.latent_in = nn.Linear(c.latent_size, c.dim)
        self.latent_position = nn.Parameter(torch.randn(1, 1, c.dim) * 0.02)
        self.encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(**_layer(c)), c.encoder_layers,
                                             enable_nested_tensor=False)
        self.queries = nn.Parameter(torch.randn(1, c.chunk_size, c.dim) * 0.02)
        self.decoder = nn.TransformerDecoder(nn.TransformerDecoderLayer(**_layer(c)), c.decoder_layers)
        self.action_head = nn.Linear(c.dim, c.action_size)
        self.register_buffer("action_mean", torch.tensor(c.action_mean, dtype=torch.float32), persistent=False)
        self.register_buffer("action_std", torch.tensor(c.action_std, dtype=torch.float32), persistent=False)

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def normalize(self, actions: torch.Tensor) -> torch.Tensor:
        return (actions - self.action_mean) / self.action_std

    def denormalize(self, actions: torch.Tensor) -> torch.Tensor:
        return actions * self.action_std + self.action_mean

    def _image_tokens(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) uint8 -> (B, H/8 * W/8, dim)."""
        if frames.shape[-2:] != (self.config.image_size, self.config.image_size):
            raise ValueError(f"frames must be {self.config.image_size} x {self.config.image_size}, got "
                             f"{tuple(frames.shape[-2:])}")
        features = self.backbone(frames.float() / 127.5 - 1.0)
        return features.flatten(2).transpose(1, 2) + self.image_position

    def _augment(self, frames: torch.Tensor) -> torch.Tensor:
        """Random shift (DrQ): pad by ``random_shift`` pixels with edge copies, crop back at a random offset."""
        pad = self.config.random_shift
        if pad == 0:
            return frames
        size = frames.shape[-1]
        padded = F.pad(frames.float(), (pad, pad, pad, pad), mode="replicate")
        offsets = torch.randint(0, 2 * pad + 1, (frames.shape[0], 2), device=frames.device)
        rows = torch.arange(size, device=frames.device)
        index_y = (offsets[:, 0:1] + rows)[:, None, :, None].expand(-1, 3, -1, size + 2 * pad)
        cropped = padded.gather(2, index_y)
        index_x = (offsets[:, 1:2] + rows)[:, None, None, :].expand(-1, 3, size, -1)
        return cropped.gather(3, index_x)

    def decode(self, frames: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        """Normalised actions (B, K, A) for frames (B, 3, H, W) uint8 and style variables (B, latent_size)."""
        memory = torch.cat([self.latent_in(latent)[:, None] + self.latent_position, self._image_tokens(frames)], 1)
        memory = self.encoder(memory)
        return self.action_head(self.decoder(self.queries.expand(frames.shape[0], -1, -1), memory))

    def forward(self, batch: ActionChunks) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The CVAE loss of a batch: masked L1 on normalised actions + ``kl_weight`` x KL; logs the parts."""
        c = self.config
        target = self.normalize(batch.actions)
        valid = batch.valid.float()
        tokens = torch.cat([self.vae_cls.expand(target.shape[0], -1, -1), self.vae_action(target)], 1)
        padding = torch.cat([torch.zeros_like(batch.valid[:, :1]), ~batch.valid], 1)  # True = ignored
        encoded = self.vae_encoder(tokens + self.vae_position, src_key_padding_mask=padding)[:, 0]
        mean, log_var = self.vae_out(encoded).chunk(2, dim=-1)
        log_var = log_var.clamp(-10.0, 10.0)
        latent = mean + torch.randn_like(mean) * (0.5 * log_var).exp()
        frames = self._augment(batch.frames) if self.training else batch.frames
        predicted = self.decode(frames, latent)
        l1 = ((predicted - target).abs().mean(-1) * valid).sum() / valid.sum().clamp(min=1.0)
        kl = (-0.5 * (1 + log_var - mean.pow(2) - log_var.exp())).sum(-1).mean()
        loss = l1 + c.kl_weight * kl
        return loss, {"loss": loss.detach(), "l1": l1.detach(), "kl": kl.detach()}

    @torch.no_grad()
    def predict(self, frames: torch.Tensor) -> torch.Tensor:
        """Action chunks (B, K, A) in robot units for frames (B, 3, H, W) uint8 (z = 0, the prior's mean)."""
        latent = torch.zeros(frames.shape[0], self.config.latent_size, device=frames.device)
        return self.denormalize(self.decode(frames, latent))


class TemporalEnsemble:
    """ACT's temporal ensembling: the action for step t is the weighted mean of every chunk's prediction for t,
    weights exp(-m i) with i = 0 for the oldest chunk (the ACT authors' m = 0.01)."""

    def __init__(self, chunk_size: int, decay: float = 0.01) -> None:
        if chunk_size < 1 or decay < 0:
            raise ValueError("chunk_size must be >= 1 and decay >= 0")
        self.chunk_size, self.decay = chunk_size, decay
        self.reset()

    def reset(self) -> None:
        self.step = 0
        self.chunks: list[tuple[int, np.ndarray]] = []

    def __call__(self, chunk: np.ndarray) -> np.ndarray:
        """Add the chunk (K, A) predicted at the current step; the ensembled action (A,) for it; advance a step."""
        chunk = np.asarray(chunk, dtype=np.float64)
        if chunk.ndim != 2 or chunk.shape[0] != self.chunk_size:
            raise ValueError(f"a chunk is ({self.chunk_size}, A), got {chunk.shape}")
        self.chunks.append((self.step, chunk))
        self.chunks = [(start, c) for start, c in self.chunks if self.step - start < self.chunk_size]  # oldest first
        predictions = np.stack([c[self.step - start] for start, c in self.chunks])
        weights = np.exp(-self.decay * np.arange(len(predictions)))
        self.step += 1
        return (weights[:, None] * predictions).sum(0) / weights.sum()


class ACTPolicy:
    """An ACT run at deployment: frames in, body velocities out, through the policy API (``reset``/``act``)."""

    def __init__(self, model: ACTModel, action_limit: np.ndarray, image_size: tuple[int, int],
                 temporal_ensembling: bool = True, ensemble_decay: float = 0.01,
                 device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.action_limit = np.asarray(action_limit, dtype=np.float64)
        self.image_size = tuple(image_size)
        self.temporal_ensembling = temporal_ensembling
        self.ensemble = TemporalEnsemble(model.config.chunk_size, ensemble_decay)
        self.queue: list[np.ndarray] = []

    def reset(self) -> None:
        self.ensemble.reset()
        self.queue = []

    def _chunk(self, frame: np.ndarray) -> np.ndarray:
        pixels = torch.from_numpy(check_frame(frame, self.image_size).copy()).permute(2, 0, 1)[None].to(self.device)
        return self.model.predict(pixels)[0].float().cpu().numpy()

    def act(self, frame: np.ndarray) -> np.ndarray:
        if self.temporal_ensembling:
            action = self.ensemble(self._chunk(frame))
        else:
            if not self.queue:
                self.queue = list(self._chunk(frame))
            else:
                check_frame(frame, self.image_size)
            action = self.queue.pop(0)
        return clamp_action(action, self.action_limit)

    def observe_action(self, action: np.ndarray) -> None:
        pass  # ACT conditions on the frame alone


def act_policy_from_state(run_config: dict[str, Any], weights: dict[str, torch.Tensor],
                          device: torch.device | str = "cpu") -> ACTPolicy:
    """The :class:`ACTPolicy` of a ``dmo-train-act`` run's ``config.json`` and weights."""
    from dmo_ros.training.options import ConfigError, config_from_dict

    policy = run_config["policy"]
    try:
        config = config_from_dict(ACTConfig, run_config["model"], where="config.json model")
    except ConfigError as error:
        raise PolicyError(str(error)) from error
    model = ACTModel(config)
    model.load_state_dict(weights)
    return ACTPolicy(model, np.asarray(policy["action_limit"], dtype=np.float64),
                     tuple(int(v) for v in policy["image_size"]), bool(policy.get("temporal_ensembling", True)),
                     float(policy.get("ensemble_decay", 0.01)), device)


__all__ = ["METHOD", "PRESETS", "ACTConfig", "ACTModel", "ACTPolicy", "ActionChunks", "TemporalEnsemble",
           "act_policy_from_state"]
