"""The one training-loop config shared by every trainer (world model, reward model, local model)."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

LR_SCHEDULES = ("constant", "cosine")
"""The learning-rate schedules after warm-up (:attr:`TrainConfig.lr_schedule`)."""


@dataclass
class TrainConfig:
    """How to train a component with :func:`dmo_ros.training.train` (the model's own config is separate)."""

    steps: int = 10_000
    """Optimizer steps to train for in total (a resumed run continues up to this)."""
    batch_size: int = 32
    """Items per optimizer step per process (with torchrun, the global batch is this x processes)."""
    lr: float = 1e-4
    """AdamW learning rate after warm-up."""
    weight_decay: float = 1e-2
    """AdamW decoupled weight decay."""
    betas: tuple[float, float] = (0.9, 0.999)
    """AdamW betas."""
    warmup_steps: int = 100
    """Steps of linear learning-rate warm-up from 0; then as ``lr_schedule`` says."""
    lr_schedule: str = "constant"
    """After warm-up: ``constant`` (DIAMOND's), or ``cosine``: a half cosine from ``lr`` down to 0 at ``steps``
    (Loshchilov & Hutter 2017, SGDR without restarts), so the weights a run ends with are not those of one noisy
    step at the full rate."""
    ema_decay: float = 0.0
    """Keep an exponential moving average of the weights with this decay per step (0: off; EDM's practice for
    diffusion models, Karras et al. 2022). With it on, the average is what checkpoints hold as the model's weights
    (what every loader and the validation use); the raw weights the optimizer steps are kept in the trainer state
    for resuming. Turned on for a run that had it off, the average starts from the resumed weights."""
    grad_clip: float = 1.0
    """Gradient-norm clipping threshold (0: no clipping)."""
    mixed_precision: bool = True
    """bfloat16 autocast on CUDA (ignored on CPU, where it is slower than float32)."""
    log_every: int = 25
    """Steps between TensorBoard scalar writes (averages over the interval)."""
    val_every: int = 500
    """Steps between validations (and sample images); 0: only at the end."""
    val_batches: int = 8
    """Batches per validation (the same batches every time)."""
    checkpoint_every: int = 500
    """Steps between checkpoints; one is always written at the end."""
    keep_checkpoints: int = 2
    """Newest checkpoints kept on disk (older ones are deleted)."""
    time_limit_s: float = 0.0
    """Stop (with a checkpoint) after this many seconds of training in this call; 0: no limit. Re-run to resume."""
    max_bad_steps: int = 10
    """Consecutive steps with a non-finite loss or gradient (skipped) before training stops with an error."""
    seed: int = 0
    """Seeds the batch order and the training randomness (noise levels, sampling)."""
    num_workers: int = 0
    """DataLoader worker processes per training process."""
    device: str = "auto"
    """auto (CUDA when available, else CPU), cpu, cuda or cuda:N."""
    progress: bool = True
    """Show a progress bar (on the main process only)."""

    def __post_init__(self) -> None:
        self.betas = tuple(float(b) for b in self.betas)
        for field in fields(self):  # nan passes every comparison below, inf trains garbage: refuse both first
            values = getattr(self, field.name)
            for value in values if isinstance(values, tuple) else (values,):
                if isinstance(value, float) and not math.isfinite(value):
                    raise ValueError(f"{field.name} must be a finite number, got {value}")
        for name in ("steps", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        for name in ("warmup_steps", "grad_clip", "val_every", "val_batches", "num_workers", "time_limit_s",
                     "weight_decay"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("log_every", "checkpoint_every", "keep_checkpoints", "max_bad_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")


__all__ = ["TrainConfig"]
