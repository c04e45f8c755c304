"""``dmo-train-world-model``: train the DIAMOND-style world model on one or more datasets.

    dmo-train-world-model datasets/demo --run-dir runs/world_model --preset cpu
    torchrun --nproc-per-node 4 $(which dmo-train-world-model) datasets/ --preset gpu   # multi-GPU

A preset sets both the network size (:data:`~dmo_ros.world_model.config.PRESETS`) and the
training schedule (:data:`TRAIN_PRESETS`); any option given on the command line overrides the
preset. Running the same command again resumes from the run folder's newest checkpoint.
Actions are scaled per component by their largest magnitude in the data (saved with the
model), so the action embedding sees values in [-1, 1] whatever the robot's units.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path

from torch.utils.data import ConcatDataset, Dataset

from dmo_ros.dataset.format import DatasetError
from dmo_ros.dataset.loaders import WindowDataset, action_statistics, dataset_shape, find_datasets
from dmo_ros.training import (
    CheckpointError,
    ConfigError,
    TrainConfig,
    TrainingError,
    add_dataclass_options,
    apply_options,
    given_options,
    saved_run,
    seed_everything,
    train,
)
from dmo_ros.training.checkpoint import changed_inputs, recorded_path
from dmo_ros.training.distributed import World, is_main_process, resolve_device
from dmo_ros.training.loop import exit_on_interrupt
from dmo_ros.world_model.config import WorldModelConfig
from dmo_ros.world_model.denoiser import Denoiser

TRAIN_PRESETS: dict[str, TrainConfig] = {
    # Tests: a few seconds on one CPU core.
    "tiny": TrainConfig(steps=60, batch_size=8, lr=1e-3, warmup_steps=10, log_every=10, val_every=30,
                        val_batches=2, checkpoint_every=30),
    # The laptop demo: about 30-38 minutes on 2 idle CPU cores with the cpu network (patch 2 stem; see the README).
    # 2000 / 4000 / 6000 steps: agent visible 0.74 / 0.84 / 0.87 in the action-response gate.
    "cpu": TrainConfig(steps=6000, batch_size=16, lr=5e-4, warmup_steps=100, log_every=25, val_every=1000,
                       val_batches=8, checkpoint_every=500),
    # DIAMOND's settings (AdamW 1e-4, weight decay 1e-2, warm-up 100, batch 32, clip 1.0) on one GPU.
    "gpu": TrainConfig(steps=50_000, batch_size=32, lr=1e-4, warmup_steps=100, log_every=50, val_every=2000,
                       val_batches=16, checkpoint_every=2000, num_workers=4),
}
"""Training schedules per preset; the network sizes are in :data:`dmo_ros.world_model.config.PRESETS`."""

KIND = "world_model"
"""``config.json`` ``kind`` of a world-model run."""

MODEL_OPTIONS_SKIP = ("action_size", "action_scale", "image_size", "image_channels")
"""Model fields that come from the data, not from the command line."""


def _windows(folders: list[Path], context: int, split: str, horizon: int = 1) -> Dataset | None:
    parts = [WindowDataset(folder, context=context, horizon=horizon, split=split) for folder in folders]
    parts = [part for part in parts if len(part)]
    return ConcatDataset(parts) if parts else None




def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dmo-train-world-model",
        description="Train the DIAMOND-style world model (EDM diffusion, 4 context frames) on datasets. "
                    "Re-running the same command resumes the run.")
    parser.add_argument("datasets", nargs="+", type=Path,
                        help="dataset folders (from dmo-convert), or folders of them")
    parser.add_argument("--run-dir", type=Path, default=Path("runs/world_model"),
                        help="run folder: config.json, checkpoints, tensorboard; an existing run is resumed "
                             "(default: runs/world_model)")
    parser.add_argument("--preset", default="cpu", choices=sorted(TRAIN_PRESETS),
                        help="network size and training schedule (default: cpu)")
    train_options = add_dataclass_options(parser, TrainConfig, title="training (overrides the preset)")
    model_options = add_dataclass_options(parser, WorldModelConfig, title="network (overrides the preset)",
                                          skip=MODEL_OPTIONS_SKIP)
    parser.add_argument("--gate", action=argparse.BooleanOptionalAction, default=True,
                        help="measure the action-response gate at the end (Push-T; as dmo-gate world-model)")
    parser.set_defaults(train_options=train_options, model_options=model_options)
    return parser


@exit_on_interrupt
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        folders = find_datasets(args.datasets)
        image_size, action_size, robot = dataset_shape(folders, "world model")
        train_config = apply_options(TRAIN_PRESETS[args.preset], args, args.train_options)
        overrides = given_options(args, args.model_options)
        saved = saved_run(args.run_dir, KIND, "world model")
        if saved is not None and not overrides:
            model_config = WorldModelConfig.from_dict(saved["model"])  # re-running resumes the run as configured
        else:
            scale = [max(value, 1e-3) for value in action_statistics(folders)["max_abs"]]
            model_config = WorldModelConfig.preset(args.preset, action_size, scale, image_size=image_size,
                                                   **overrides)
        # rollout_context trains on windows that run on past the real context (validation stays one step)
        train_set = _windows(folders, model_config.context, "train", horizon=model_config.rollout_context + 1)
        val_set = _windows(folders, model_config.context, "val")
        run_config = {"kind": KIND, "preset": args.preset, "model": asdict(model_config),
                      "datasets": [recorded_path(folder) for folder in folders], "robot": robot}
        # Refused here, before the model line: that line named the preset given now ("cpu preset") beside the
        # size of the saved run's model it was not going to train.
        problem = changed_inputs(args.run_dir, run_config)
        if problem:
            raise CheckpointError(problem)
    except (DatasetError, ConfigError, CheckpointError, ValueError) as error:
        print(f"dmo-train-world-model: error: {error}", file=sys.stderr)
        return 2
    if train_set is None:
        print(f"dmo-train-world-model: error: no training window of {model_config.context + 1} samples in "
              f"{', '.join(map(str, folders))}; record longer episodes", file=sys.stderr)
        return 2
    seed_everything(train_config.seed)
    model = Denoiser(model_config)
    print(f"world model: {model.num_parameters / 1e6:.2f} M parameters ({args.preset} preset), robot {robot}, "
          f"{image_size}x{image_size} frames, context {model_config.context}, action scale "
          f"{[round(s, 4) for s in model_config.action_scale]}", flush=True)
    print(f"data: {len(train_set)} training windows, {len(val_set) if val_set else 0} validation windows from "
          f"{len(folders)} dataset(s)" + ("" if val_set else " (no validation episodes: validation skipped)"),
          flush=True)
    try:
        result = train(model, train_set, val_set, train_config, args.run_dir, run_config)
    except TrainingError as error:
        print(f"dmo-train-world-model: error: {error}", file=sys.stderr)
        return 1
    summary = ", ".join(f"{key} {value:.4g}" for key, value in sorted(result.val_logs.items()))
    print(f"trained to step {result.step} in {result.seconds:.0f} s ({result.samples} samples"
          + (f"; val {summary}" if summary else "") + f"); run folder {args.run_dir}", flush=True)
    if args.gate and robot == "pusht" and is_main_process():
        from dmo_ros.gates.cli import world_model_run_gate

        small = {"windows": 4, "horizon": 3} if args.preset == "tiny" else {}
        report = world_model_run_gate(args.run_dir, folders[0], resolve_device(train_config.device, World()), **small)
        print(report.format(), flush=True)
    return 0




if __name__ == "__main__":
    sys.exit(main())
