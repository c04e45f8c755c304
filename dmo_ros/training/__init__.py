"""The training-loop contract shared by every trainer: ``forward(batch) -> (loss, logs)``.

- :class:`TrainConfig` and :func:`train` — the loop (AdamW, warm-up, clipping, AMP, DDP,
  resume, TensorBoard, progress bar), :mod:`dmo_ros.training.loop`;
- :mod:`dmo_ros.training.checkpoint` — run folders, atomic checkpoints, safe loading;
- :mod:`dmo_ros.training.options` — dataclass configs as command-line options;
- :mod:`dmo_ros.training.distributed` — torchrun / DistributedDataParallel setup;
- :mod:`dmo_ros.training.rollout_pictures` — the world-model reports' real | imagined GIF and strip.
"""

from dmo_ros.training.checkpoint import (
    CheckpointError,
    checkpoint_dir,
    latest_step,
    load_model_weights,
    read_run_config,
    saved_run,
)
from dmo_ros.training.config import TrainConfig
from dmo_ros.training.loop import TrainingError, TrainResult, exit_on_interrupt, seed_everything, train
from dmo_ros.training.options import (
    ConfigError,
    add_dataclass_options,
    apply_options,
    config_from_dict,
    given_options,
)

__all__ = [
    "CheckpointError",
    "ConfigError",
    "TrainConfig",
    "TrainResult",
    "TrainingError",
    "add_dataclass_options",
    "apply_options",
    "checkpoint_dir",
    "config_from_dict",
    "exit_on_interrupt",
    "given_options",
    "latest_step",
    "load_model_weights",
    "read_run_config",
    "saved_run",
    "seed_everything",
    "train",
]
