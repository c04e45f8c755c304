"""``dmo-train-tokenizer`` and ``dmo-train-dynamics``: the two training stages of the DreamerV4-style model.

    dmo-train-tokenizer datasets/go2 --run-dir runs/v4_tokenizer --preset cpu
    dmo-train-dynamics datasets/go2 --tokenizer runs/v4_tokenizer --run-dir runs/v4_dynamics --preset cpu
    torchrun --nproc-per-node 4 $(which dmo-train-dynamics) datasets/go2 --tokenizer ... --preset gpu

Stage 1 trains the tokenizer on single frames (masked-patch autoencoding). Stage 2 encodes every frame of
the datasets once with the frozen tokenizer, then trains the dynamics transformer and its reward token on
windows of ``context`` latent frames (shortcut forcing + the intent / milestone labels); its checkpoint
holds the tokenizer too, so the dynamics run folder is the whole world model
(:func:`dmo_ros.world_model_v4.model.load_world_model_v4`).

Both use the shared loop (:func:`dmo_ros.training.train`): resume by re-running the same command,
TensorBoard, progress bar, torchrun. A preset sets the network and the schedule; options override it.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import ConcatDataset, Dataset

from dmo_ros.dataset.format import DatasetError, open_arrays
from dmo_ros.dataset.loaders import ClipDataset, WindowDataset, action_statistics, dataset_shape, find_datasets
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
from dmo_ros.training.distributed import World, resolve_device
from dmo_ros.training.loop import exit_on_interrupt
from dmo_ros.world_model_v4.config import DynamicsConfig, TokenizerConfig
from dmo_ros.world_model_v4.dynamics import LatentWindow
from dmo_ros.world_model_v4.model import (
    DYNAMICS_KIND,
    TOKENIZER_KIND,
    RewardPostTraining,
    WorldModelV4,
    load_tokenizer,
)
from dmo_ros.world_model_v4.tokenizer import FrameBatch, Tokenizer

TOKENIZER_TRAIN_PRESETS: dict[str, TrainConfig] = {
    "tiny": TrainConfig(steps=40, batch_size=8, lr=2e-3, warmup_steps=5, log_every=10, val_every=20, val_batches=2,
                        checkpoint_every=20),
    # The laptop demo at 64 x 64: ~1.7 s per step on one core shared with other jobs (docs/world_models.md, Push Cube
    # world model).
    "cpu": TrainConfig(steps=800, batch_size=32, lr=1e-3, warmup_steps=50, log_every=25, val_every=400,
                       val_batches=8, checkpoint_every=200),
    "gpu": TrainConfig(steps=100_000, batch_size=64, lr=3e-4, warmup_steps=1000, log_every=50, val_every=2000,
                       val_batches=16, checkpoint_every=2000, num_workers=4),
}
"""Tokenizer training schedules per preset (network sizes: :data:`~dmo_ros.world_model_v4.config.TOKENIZER_PRESETS`)."""

DYNAMICS_TRAIN_PRESETS: dict[str, TrainConfig] = {
    "tiny": TrainConfig(steps=40, batch_size=4, lr=2e-3, warmup_steps=5, log_every=10, val_every=20, val_batches=2,
                        checkpoint_every=20),
    # ~1.8 s per step on one shared core: the run of docs/world_models.md stopped at step 604 (--time-limit-s 1080).
    "cpu": TrainConfig(steps=3000, batch_size=8, lr=5e-4, warmup_steps=100, log_every=25, val_every=500,
                       val_batches=8, checkpoint_every=500),
    "gpu": TrainConfig(steps=100_000, batch_size=16, lr=1e-4, warmup_steps=1000, log_every=50, val_every=2000,
                       val_batches=16, checkpoint_every=2000, num_workers=4),
}
"""Dynamics training schedules per preset (network sizes: :data:`~dmo_ros.world_model_v4.config.DYNAMICS_PRESETS`)."""

TOKENIZER_SKIP = ("image_size", "image_channels")
DYNAMICS_SKIP = ("action_size", "action_scale", "image_size", "latent_tokens", "latent_dim")
"""Model fields that come from the data or the tokenizer, not from the command line."""


# -- datasets ------------------------------------------------------------------------------------------


class SingleFrames(Dataset):
    """Every frame of a dataset split as a :class:`FrameBatch` item (frames (3, H, W) uint8)."""

    def __init__(self, folder: Path, split: str) -> None:
        self.clips = ClipDataset(folder, length=1, split=split)

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> FrameBatch:
        return FrameBatch(frames=self.clips[index].frames[0])


class LatentWindows(Dataset):
    """Every window of ``length`` samples of one episode, with frames replaced by precomputed latents.

    Args:
        folder: the dataset (actions, intent, milestone and the episode tables come from it).
        latents: (N, N_z, D_z) float, the latents of all N samples of the dataset, in dataset order.
        length: T, samples per window.
        split: "train", "val" or "all".
    """

    def __init__(self, folder: Path, latents: torch.Tensor, length: int, split: str) -> None:
        self.windows = WindowDataset(folder, context=length, horizon=0, split=split)
        if len(latents) != len(self.windows.arrays["actions"]):
            raise DatasetError(f"{folder}: {len(latents)} latents for {len(self.windows.arrays['actions'])} samples")
        self.latents, self.length = latents, int(length)

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> LatentWindow:
        start = int(self.windows.starts[index])
        span = slice(start, start + self.length)
        arrays = self.windows.arrays
        return LatentWindow(
            latents=self.latents[span],
            actions=torch.from_numpy(np.array(arrays["actions"][span], dtype=np.float32)),
            intent=torch.from_numpy(np.array(arrays["intent"][span], dtype=bool)),
            milestone=torch.from_numpy(np.array(arrays["milestone"][span], dtype=np.float32)),
        )


@torch.no_grad()
def encode_dataset(tokenizer: Tokenizer, folder: Path, batch_size: int = 256) -> torch.Tensor:
    """The latents (N, N_z, D_z) of every frame of ``folder`` (on the CPU), in dataset order."""
    frames = open_arrays(folder)["frames"]
    parts = []
    for start in range(0, len(frames), batch_size):
        chunk = torch.from_numpy(np.array(frames[start:start + batch_size])).permute(0, 3, 1, 2)
        parts.append(tokenizer.encode(chunk.to(tokenizer.device)).cpu())
    return torch.cat(parts)


def _concat(parts: list[Dataset]) -> Dataset | None:
    parts = [part for part in parts if len(part)]
    return ConcatDataset(parts) if parts else None


def _latent_windows(tokenizer: Tokenizer, folders: list[Path], context: int) -> tuple[Dataset | None, Dataset | None]:
    """Training and validation windows of ``context`` frames of the datasets, encoded once with ``tokenizer``."""
    latents = {folder: encode_dataset(tokenizer, folder) for folder in folders}
    print(f"encoded {sum(len(v) for v in latents.values())} frames with the tokenizer", flush=True)
    return tuple(_concat([LatentWindows(folder, latents[folder], context, split) for folder in folders])
                 for split in ("train", "val"))


def refuse_tokenizer_of_other_data(tokenizer_run: Path, folders: list[Path], image_size: int, action_size: int,
                                   robot: str) -> None:
    """Refuse a tokenizer trained on another kind of data than ``folders``: another robot, frame size or action
    size (one kind per model, as :func:`~dmo_ros.dataset.loaders.dataset_shape` holds datasets to). Its latents
    describe the other robot's scenes, so a dynamics model trained on them fits neither; before, a Push-T run took
    a Go2 tokenizer without a word.

    The tokenizer run's ``config.json`` records its robot and action size; for a run that predates the action size,
    both are read from its recorded datasets where they still exist (what cannot be known is not checked).

    Raises:
        ConfigError: naming the tokenizer's data and the datasets', and the fix.
    """
    from dmo_ros.training import read_run_config

    recorded = read_run_config(tokenizer_run)
    held = {"robot": recorded.get("robot"), "image_size": TokenizerConfig.from_dict(recorded["model"]).image_size,
            "action_size": recorded.get("action_size")}
    if held["action_size"] is None and recorded.get("datasets"):
        try:
            _, held["action_size"], robot_of_datasets = dataset_shape(recorded["datasets"], "tokenizer")
            held["robot"] = held["robot"] or robot_of_datasets
        except DatasetError:  # moved or deleted since: the frame size is still checked
            pass
    given = {"robot": robot, "image_size": image_size, "action_size": action_size}
    for values in (held, given):  # a dataset without a robot in its meta.json reads as "None": unknown
        values["robot"] = None if values["robot"] in (None, "None") else values["robot"]
    names = {"robot": "robot", "image_size": "frame size", "action_size": "action size"}
    differ = [names[key] for key in given if None not in (held[key], given[key]) and held[key] != given[key]]
    if not differ:
        return
    differ_text = differ[0] if len(differ) == 1 else f"{', '.join(differ[:-1])} and {differ[-1]}"

    def kind(values: dict) -> str:
        parts = [f"robot {values['robot']}" if values["robot"] is not None else "",
                 f"{values['image_size']}x{values['image_size']} frames",
                 f"{values['action_size']} action components" if values["action_size"] is not None else ""]
        return ", ".join(part for part in parts if part)

    new_run = f"runs/v4_tokenizer_{given['robot'] or 'new'}"
    raise ConfigError(f"the tokenizer {tokenizer_run} was trained on other data ({kind(held)}) than "
                      f"{', '.join(map(str, folders))} ({kind(given)}): another {differ_text}; "
                      f"train a tokenizer on these datasets (dmo-train-tokenizer {' '.join(map(str, folders))} "
                      f"--run-dir {new_run}) and give its run folder as --tokenizer")


def _train_and_report(prog: str, model: torch.nn.Module, train_set: Dataset, val_set: Dataset | None,
                      train_config: TrainConfig, run_dir: Path, run_config: dict, done: str = "trained") -> int:
    """Run the shared loop and print where it ended; exit code 0, or 1 when training failed."""
    try:
        result = train(model, train_set, val_set, train_config, run_dir, run_config)
    except TrainingError as error:
        return _error(prog, error, 1)
    summary = ", ".join(f"{key} {value:.4g}" for key, value in sorted(result.val_logs.items()))
    print(f"{done} to step {result.step} in {result.seconds:.0f} s" + (f"; val {summary}" if summary else "")
          + f"; run folder {run_dir}", flush=True)
    return 0


def _error(prog: str, error: Exception, code: int = 2) -> int:
    print(f"{prog}: error: {error}", file=sys.stderr)
    return code


def _base_parser(prog: str, description: str, presets: dict[str, TrainConfig], default_run: str
                 ) -> tuple[argparse.ArgumentParser, list[str]]:
    parser = argparse.ArgumentParser(prog=prog, description=description + " Re-running the same command resumes "
                                     "the run.", epilog="Exit code: 0 trained, 1 training failed, 2 bad arguments "
                                     "or data.")
    parser.add_argument("datasets", nargs="+", type=Path, help="dataset folders (from dmo-convert), or folders of them")
    parser.add_argument("--run-dir", type=Path, default=Path(default_run),
                        help=f"run folder: config.json, checkpoints, tensorboard; an existing run is resumed "
                             f"(default: {default_run})")
    parser.add_argument("--preset", default="cpu", choices=sorted(presets),
                        help="network size and training schedule (default: cpu)")
    train_options = add_dataclass_options(parser, TrainConfig, title="training (overrides the preset)")
    return parser, train_options


# -- stage 1: tokenizer ------------------------------------------------------------------------------------


def build_tokenizer_parser() -> argparse.ArgumentParser:
    parser, train_options = _base_parser(
        "dmo-train-tokenizer", "Train the DreamerV4-style world model's causal tokenizer (masked-patch autoencoder "
        "to tanh latent tokens) on the datasets' frames.", TOKENIZER_TRAIN_PRESETS, "runs/v4_tokenizer")
    model_options = add_dataclass_options(parser, TokenizerConfig, title="tokenizer (overrides the preset)",
                                          skip=TOKENIZER_SKIP)
    parser.set_defaults(train_options=train_options, model_options=model_options)
    return parser


@exit_on_interrupt
def tokenizer_main(argv: list[str] | None = None) -> int:
    prog = "dmo-train-tokenizer"
    args = build_tokenizer_parser().parse_args(argv)
    try:
        folders = find_datasets(args.datasets)
        image_size, action_size, robot = dataset_shape(folders, "tokenizer")
        train_config = apply_options(TOKENIZER_TRAIN_PRESETS[args.preset], args, args.train_options)
        overrides = given_options(args, args.model_options)
        saved = saved_run(args.run_dir, TOKENIZER_KIND, "tokenizer")
        if saved is not None and not overrides:
            config = TokenizerConfig.from_dict(saved["model"])
        else:
            config = TokenizerConfig.preset(args.preset, image_size=image_size, **overrides)
        if config.image_size != image_size:
            raise ConfigError(f"{args.run_dir} was trained on {config.image_size} px frames, the data has {image_size}")
        train_set = _concat([SingleFrames(folder, "train") for folder in folders])
        val_set = _concat([SingleFrames(folder, "val") for folder in folders])
    except (DatasetError, ConfigError, CheckpointError, ValueError) as error:
        return _error(prog, error)
    if train_set is None:
        return _error(prog, ValueError(f"no training frame in {', '.join(map(str, folders))}"))
    seed_everything(train_config.seed)
    model = Tokenizer(config)
    print(f"tokenizer: {model.num_parameters / 1e6:.2f} M parameters ({args.preset} preset), robot {robot}, "
          f"{image_size}x{image_size} frames -> {config.latent_tokens} x {config.latent_dim} latents; "
          f"{len(train_set)} training / {len(val_set) if val_set else 0} validation frames", flush=True)
    run_config = {"kind": TOKENIZER_KIND, "preset": args.preset, "model": asdict(config),
                  "datasets": [recorded_path(folder) for folder in folders], "robot": robot,
                  "action_size": action_size}
    return _train_and_report(prog, model, train_set, val_set, train_config, args.run_dir, run_config)


# -- stage 2: dynamics + reward ----------------------------------------------------------------------------


def build_dynamics_parser() -> argparse.ArgumentParser:
    parser, train_options = _base_parser(
        "dmo-train-dynamics", "Train the DreamerV4-style dynamics transformer (axial attention, shortcut forcing) "
        "and its reward token (intent + milestone labels) on the frozen tokenizer's latents.",
        DYNAMICS_TRAIN_PRESETS, "runs/v4_dynamics")
    parser.add_argument("--tokenizer", type=Path, default=None,
                        help="run folder of dmo-train-tokenizer (required for a new run; a resumed run uses its own "
                             "copy of the tokenizer)")
    parser.add_argument("--post-train-reward", type=Path, default=None, metavar="PRETRAINED_RUN",
                        help="reward post-training stage: start from this dmo-train-dynamics run and train only its "
                             "reward token and head on the datasets' intent/milestone labels, at the context noise "
                             "level imagination reads rewards from (the rest frozen: frames unchanged); the result "
                             "is a whole world model run in --run-dir. Schedules as the presets; set --steps")
    model_options = add_dataclass_options(parser, DynamicsConfig, title="dynamics (overrides the preset)",
                                          skip=DYNAMICS_SKIP)
    parser.set_defaults(train_options=train_options, model_options=model_options)
    return parser


@exit_on_interrupt
def dynamics_main(argv: list[str] | None = None) -> int:
    prog = "dmo-train-dynamics"
    args = build_dynamics_parser().parse_args(argv)
    try:
        folders = find_datasets(args.datasets)
        image_size, action_size, robot = dataset_shape(folders, "world model")
        train_config = apply_options(DYNAMICS_TRAIN_PRESETS[args.preset], args, args.train_options)
        overrides = given_options(args, args.model_options)
        saved = saved_run(args.run_dir, DYNAMICS_KIND, "DreamerV4-style world model")
        device = resolve_device(train_config.device, World())
        post_from = args.post_train_reward or (saved or {}).get("post_trained_from")
        if post_from is not None:
            return _post_train_reward(prog, args, folders, train_config, saved, Path(post_from), image_size,
                                      action_size, robot, device)
        if saved is not None and args.tokenizer is None:
            from dmo_ros.training import load_model_weights

            tokenizer_config = TokenizerConfig.from_dict(saved["tokenizer"])
            tokenizer = Tokenizer(tokenizer_config)
            weights = load_model_weights(args.run_dir)
            tokenizer.load_state_dict({k[len("tokenizer."):]: v for k, v in weights.items()
                                       if k.startswith("tokenizer.")})
            tokenizer_run = saved.get("tokenizer_run")
        elif args.tokenizer is not None:
            tokenizer = load_tokenizer(args.tokenizer)
            tokenizer_config, tokenizer_run = tokenizer.config, recorded_path(args.tokenizer)
            refuse_tokenizer_of_other_data(args.tokenizer, folders, image_size, action_size, robot)
        else:
            raise ConfigError("--tokenizer is required for a new run (a dmo-train-tokenizer run folder)")
        problem = changed_inputs(args.run_dir, {"tokenizer_run": tokenizer_run})  # before frames are encoded
        if problem:
            raise ConfigError(problem)
        if tokenizer_config.image_size != image_size:  # the run's own copy of its tokenizer
            raise ConfigError(f"the tokenizer takes {tokenizer_config.image_size} px frames, the data has {image_size}")
        if saved is not None and not overrides:
            config = DynamicsConfig.from_dict(saved["model"])
        else:
            scale = [max(value, 1e-3) for value in action_statistics(folders)["max_abs"]]
            config = DynamicsConfig.preset(args.preset, action_size=action_size, action_scale=scale,
                                           image_size=image_size, latent_tokens=tokenizer_config.latent_tokens,
                                           latent_dim=tokenizer_config.latent_dim, **overrides)
        if config.action_size != action_size:
            raise ConfigError(f"{args.run_dir} was trained on {config.action_size}-D actions, the data has "
                              f"{action_size}-D")
    except (DatasetError, ConfigError, CheckpointError, ValueError) as error:
        return _error(prog, error)
    tokenizer.to(device).eval()
    train_set, val_set = _latent_windows(tokenizer, folders, config.context)
    if train_set is None:
        return _error(prog, ValueError(f"no training window of {config.context} samples in "
                                       f"{', '.join(map(str, folders))}; record longer episodes or lower --context"))
    seed_everything(train_config.seed)
    model = WorldModelV4(tokenizer_config, config)
    model.tokenizer.load_state_dict(tokenizer.state_dict())
    print(f"dynamics: {model.num_parameters / 1e6:.2f} M parameters ({args.preset} preset), robot {robot}, "
          f"context {config.context}, {config.tokens_per_frame} tokens per frame, action scale "
          f"{[round(s, 4) for s in config.action_scale]}; {len(train_set)} training / "
          f"{len(val_set) if val_set else 0} validation windows", flush=True)
    run_config = {"kind": DYNAMICS_KIND, "preset": args.preset, "model": asdict(config),
                  "tokenizer": asdict(tokenizer_config), "tokenizer_run": tokenizer_run,
                  "datasets": [recorded_path(folder) for folder in folders], "robot": robot}
    return _train_and_report(prog, model, train_set, val_set, train_config, args.run_dir, run_config)


def _post_train_reward(prog: str, args: argparse.Namespace, folders: list[Path], train_config: TrainConfig,
                       saved: dict | None, source: Path, image_size: int, action_size: int, robot: str,
                       device: torch.device) -> int:
    """``dmo-train-dynamics --post-train-reward PRETRAINED_RUN``: see :class:`RewardPostTraining`."""
    from dmo_ros.training import load_model_weights, read_run_config

    if args.tokenizer is not None or given_options(args, args.model_options):
        raise ConfigError("--post-train-reward keeps the pretrained run's tokenizer and network: drop --tokenizer "
                          "and the network options")
    if saved is not None and Path(saved.get("post_trained_from") or "") != source:
        raise ConfigError(f"{args.run_dir} holds a run that was not post-trained from {source}; choose another "
                          "--run-dir")
    pretrained = read_run_config(source)
    if pretrained.get("kind") != DYNAMICS_KIND or "model" not in pretrained or "tokenizer" not in pretrained:
        raise ConfigError(f"{source}: not a dmo-train-dynamics run (kind {pretrained.get('kind')!r})")
    tokenizer_config = TokenizerConfig.from_dict(pretrained["tokenizer"])
    config = DynamicsConfig.from_dict(pretrained["model"])
    if (config.image_size, config.action_size) != (image_size, action_size):
        raise ConfigError(f"{source} was trained on {config.image_size} px frames and {config.action_size}-D actions; "
                          f"the datasets have {image_size} px, {action_size}-D")
    # Same sizes, another robot: its frames mean other scenes. A robot unknown on either side ("None") is not checked.
    if "None" not in (str(pretrained.get("robot")), robot) and pretrained["robot"] != robot:
        raise ConfigError(f"{source} was trained on robot {pretrained['robot']}'s data; the datasets are of robot "
                          f"{robot}: post-train a dmo-train-dynamics run of robot {robot}")
    model = RewardPostTraining(tokenizer_config, config)
    if saved is None:  # a resumed run loads its own checkpoint in the loop
        model.load_state_dict(load_model_weights(source))
    model.tokenizer.to(device).eval()
    train_set, val_set = _latent_windows(model.tokenizer, folders, config.context)
    if train_set is None:
        return _error(prog, ValueError(f"no training window of {config.context} samples in "
                                       f"{', '.join(map(str, folders))}"))
    seed_everything(train_config.seed)
    print(f"reward post-training of {source}: {model.num_parameters} trained parameters (reward token and head), "
          f"the rest frozen; {len(train_set)} training / {len(val_set) if val_set else 0} validation windows",
          flush=True)
    run_config = {"kind": DYNAMICS_KIND, "preset": args.preset, "model": pretrained["model"],
                  "tokenizer": pretrained["tokenizer"], "tokenizer_run": pretrained.get("tokenizer_run"),
                  "post_trained_from": recorded_path(source),
                  "datasets": [recorded_path(folder) for folder in folders], "robot": robot}
    return _train_and_report(prog, model, train_set, val_set, train_config, args.run_dir, run_config,
                             done="post-trained the reward")


if __name__ == "__main__":
    sys.exit(dynamics_main())
