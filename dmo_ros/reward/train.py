"""``dmo-train-reward``: train the Bradley-Terry temporal-distance energy on passive video.

    dmo-train-reward datasets/demo --run-dir runs/reward --preset cpu
    dmo-train-reward datasets/play datasets/demos --intent-only --preset gpu   # demonstrations only
    torchrun --nproc-per-node 4 $(which dmo-train-reward) datasets/ --preset gpu   # multi-GPU

Only the frames of the datasets are used (no actions, no intent as an input); any mix of play
and demonstration folders works. A preset sets both the network size and pair sampling
(:data:`~dmo_ros.reward.config.REWARD_PRESETS`) and the training schedule
(:data:`TRAIN_PRESETS`); options given on the command line override it. Running the same
command again resumes the run. The reward scale (``energy_gap``, ``energy_std``) is tracked
during training as model buffers, so every checkpoint's weights carry it.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path

import torch
from torch.utils.data import Dataset

from dmo_ros.dataset.format import DatasetError, read_meta
from dmo_ros.dataset.loaders import dataset_shape, find_datasets
from dmo_ros.reward.config import RewardConfig
from dmo_ros.reward.energy import OBJECTIVES, EnergyNet
from dmo_ros.reward.pairs import PairDataset
from dmo_ros.sims.pusht_tasks import REACH_TASKS, TASKS
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
from dmo_ros.training.checkpoint import recorded_path
from dmo_ros.training.distributed import World, is_main_process, resolve_device
from dmo_ros.training.loop import exit_on_interrupt

TRAIN_PRESETS: dict[str, TrainConfig] = {
    # Tests: seconds on one CPU core (the tiny network learns a toy video in ~150 steps of 64).
    "tiny": TrainConfig(steps=150, batch_size=32, lr=3e-3, warmup_steps=10, log_every=10, val_every=50,
                        val_batches=2, checkpoint_every=50),
    # The laptop demo: minutes on 2 CPU cores.
    "cpu": TrainConfig(steps=1000, batch_size=32, lr=1e-3, warmup_steps=100, log_every=25, val_every=250,
                       val_batches=8, checkpoint_every=250),
    # One GPU: larger batches of pairs, many more steps.
    "gpu": TrainConfig(steps=30_000, batch_size=256, lr=5e-4, warmup_steps=500, log_every=50, val_every=2000,
                       val_batches=16, checkpoint_every=2000, num_workers=4),
}
"""Training schedules per preset; the network sizes and pair spans are in :data:`REWARD_PRESETS`."""

MODEL_OPTIONS_SKIP = ("image_size",)
"""Model fields that come from the data, not from the command line."""

KIND = "reward"
"""``config.json`` ``kind`` of a reward run."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dmo-train-reward",
        description="Train the Bradley-Terry temporal-distance energy f(s_t | s_start, s_goal) on the frames of "
                    "datasets (play and/or demonstrations). Re-running the same command resumes the run.",
        epilog="Exit code: 0 trained, 1 training failed, 2 bad arguments or data.")
    parser.add_argument("datasets", nargs="+", type=Path,
                        help="dataset folders (from dmo-convert), or folders of them")
    parser.add_argument("--run-dir", type=Path, default=Path("runs/reward"),
                        help="run folder: config.json, checkpoints, tensorboard; an existing run is resumed "
                             "(default: runs/reward)")
    parser.add_argument("--preset", default="cpu", choices=sorted(TRAIN_PRESETS),
                        help="network size, pair spans and training schedule (default: cpu)")
    parser.add_argument("--objective", choices=OBJECTIVES, default=OBJECTIVES[0],
                        help="what to learn: the temporal-distance energy, rewarded against a goal picture "
                             "(default), or intent: P(intent | frame) + milestone_weight x milestone from the "
                             "operator's intent button and milestone key (the paper's Push Cube reward; no goal "
                             "picture; the network and pair options below do not apply)")
    parser.add_argument("--milestone-weight", type=float, default=1.0,
                        help="with --objective intent: reward = P(intent) + this x the predicted milestone "
                             "(default 1)")
    parser.add_argument("--progress-weight", type=float, default=0.0,
                        help="with --objective intent: > 0 adds the demonstration-progress head, reward = P(intent) "
                             "x (1 + this x progress) + the milestone term, progress in [0, 1] being how far into "
                             "its demonstration a frame looks (default 0: the paper's reward)")
    parser.add_argument("--intent-only", action="store_true",
                        help="draw pairs only inside intent=1 stretches (the demonstrations), not whole episodes")
    train_options = add_dataclass_options(parser, TrainConfig, title="training (overrides the preset)")
    model_options = add_dataclass_options(parser, RewardConfig, title="network and pairs (overrides the preset)",
                                          skip=MODEL_OPTIONS_SKIP)
    parser.set_defaults(train_options=train_options, model_options=model_options)
    parser.add_argument("--goal", type=Path, default=None,
                        help="goal picture (dmo-goal-image): with it the reward-shape gate is measured at the end "
                             "(Push-T; as dmo-gate reward)")
    parser.add_argument("--gate", action=argparse.BooleanOptionalAction, default=True,
                        help="measure the reward-shape gate at the end when --goal is given")
    parser.add_argument("--gate-task", choices=TASKS, default="push_t",
                        help="the Push-T task of the goal picture: a reach task's gate is the agent-to-target map "
                             "(as dmo-gate reward --task), the pushing tasks' the shape gate (default: push_t)")
    return parser


@exit_on_interrupt
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        folders = find_datasets(args.datasets)
        dataset_shape(folders, "reward model")  # a mix of robots (or frame sizes) would train one model on both
        train_config = apply_options(TRAIN_PRESETS[args.preset], args, args.train_options)
        overrides = given_options(args, args.model_options)
        saved = saved_run(args.run_dir, KIND, "reward model")
        if saved is not None and saved.get("objective", OBJECTIVES[0]) != args.objective:
            raise ConfigError(f"{args.run_dir} is a run of objective {saved.get('objective', OBJECTIVES[0])!r}, "
                              f"not {args.objective!r}; train into a new --run-dir")
        if args.objective != "intent" and args.progress_weight:
            raise ConfigError("--progress-weight: an option of --objective intent (the demonstration-progress head)")
        if args.objective == "intent":
            if overrides or args.intent_only:
                given = [f"--{name.replace('_', '-')}" for name in overrides] + (["--intent-only"] * args.intent_only)
                raise ConfigError(f"{', '.join(given)}: options of the temporal-distance energy; --objective intent "
                                  "takes the preset's network, --milestone-weight and --progress-weight")
            return _train_intent(args, folders, train_config, saved)
        if saved is not None and not overrides:
            model_config = RewardConfig.from_dict(saved["model"])  # re-running resumes the run as configured
        else:
            model_config = RewardConfig.preset(args.preset, **overrides)
        sets = {split: PairDataset(folders, split, model_config.max_span, model_config.min_span,
                                   seed=train_config.seed, intent_only=args.intent_only,
                                   negative_fraction=model_config.negative_fraction,
                                   tie_changed_share=model_config.tie_changed_share) for split in ("train", "val")}
        height, width = sets["train"].image_shape
        if height != width:
            raise DatasetError(f"frames are {height}x{width}; the reward model takes square frames "
                               "(convert with --size N N)")
        if model_config.image_size != height:
            if saved is not None and not overrides:
                raise DatasetError(f"{args.run_dir} was trained on {model_config.image_size} px frames, these "
                                   f"datasets have {height} px; train into a new --run-dir")
            model_config = RewardConfig.from_dict({**asdict(model_config), "image_size": height})
    except (DatasetError, ConfigError, CheckpointError, ValueError) as error:
        print(f"dmo-train-reward: error: {error}", file=sys.stderr)
        return 2
    train_set, val_set = sets["train"], sets["val"]
    if len(train_set) == 0:
        what = "intent=1 stretch" if args.intent_only else "training episode"
        print(f"dmo-train-reward: error: no {what} of more than {model_config.min_span} samples in "
              f"{', '.join(map(str, folders))}; record longer episodes", file=sys.stderr)
        return 2
    seed_everything(train_config.seed)
    model = EnergyNet(model_config)
    parameters = sum(p.numel() for p in model.parameters())
    print(f"reward model: {parameters / 1e6:.2f} M parameters ({args.preset} preset), {height}x{width} frames, "
          f"spans {model_config.min_span}..{model_config.max_span or 'episode end'}", flush=True)
    print(f"data: {train_set}\n      {val_set}" + ("" if len(val_set) else " (no validation pairs: skipped)"),
          flush=True)
    run_config = {"kind": KIND, "preset": args.preset, "model": asdict(model_config),
                  "datasets": [recorded_path(folder) for folder in folders], "intent_only": args.intent_only}
    summary = _train_and_summarise(model, train_set, val_set, train_config, args.run_dir, run_config, "pairs")
    if summary is None:
        return 1
    print(f"trained to step {summary}; reward scale {float(model.reward_scale()):.4g} energy units; run "
          f"folder {args.run_dir}\nevaluate: dmo-reward-eval {args.run_dir} --dataset {folders[0]}", flush=True)
    robot = read_meta(folders[0]).get("robot")
    if args.gate and args.goal is not None and robot == "pusht" and is_main_process():
        from dmo_ros.gates.cli import reach_reward_run_gate, reward_run_gate

        device = resolve_device(train_config.device, World())
        if args.gate_task in REACH_TASKS:
            small = {"step": 96.0} if args.preset == "tiny" else {}
            report = reach_reward_run_gate(args.run_dir, args.goal, device, task=args.gate_task, **small)
        else:
            small = {"episodes": 2, "steps": 6, "agent_places": 4, "expert_runs": 1, "expert_steps": 20} \
                if args.preset == "tiny" else {}
            report = reward_run_gate(args.run_dir, args.goal, device, **small)
        print(report.format(), flush=True)
    return 0


def _train_intent(args: argparse.Namespace, folders: list[Path], train_config: TrainConfig,
                  saved: dict | None) -> int:
    """``--objective intent``: the frame classifier of :mod:`dmo_ros.reward.intent` on every sample's labels."""
    from dmo_ros.reward.intent import IntentFrames, IntentRewardConfig, IntentRewardNet

    try:
        sets = {split: IntentFrames(folders, split) for split in ("train", "val")}
        height, width = sets["train"].image_shape
        if height != width:
            raise DatasetError(f"frames are {height}x{width}; the reward model takes square frames "
                               "(convert with --size N N)")
        if saved is not None:
            model_config = IntentRewardConfig.from_dict(saved["model"])
            if model_config.image_size != height:
                raise DatasetError(f"{args.run_dir} was trained on {model_config.image_size} px frames, these "
                                   f"datasets have {height} px; train into a new --run-dir")
        else:
            model_config = IntentRewardConfig.preset(args.preset, image_size=height,
                                                     milestone_weight=args.milestone_weight,
                                                     progress_weight=args.progress_weight)
        if not len(sets["train"]):
            raise DatasetError(f"no training episode in {', '.join(map(str, folders))}")
        share = sets["train"].intent_fraction()
        if not 0.0 < share < 1.0:
            raise DatasetError(f"intent is {'on' if share else 'off'} in every training sample of "
                               f"{', '.join(map(str, folders))}: the intent reward needs demonstrations (intent on) "
                               "and play (intent off); record with the intent button")
    except (DatasetError, ConfigError, ValueError) as error:
        print(f"dmo-train-reward: error: {error}", file=sys.stderr)
        return 2
    seed_everything(train_config.seed)
    model = IntentRewardNet(model_config)
    parameters = sum(p.numel() for p in model.parameters())
    train_set, val_set = sets["train"], sets["val"]
    print(f"intent reward model: {parameters / 1e6:.2f} M parameters ({args.preset} preset), {height}x{width} "
          f"frames; reward = P(intent)"
          + (f" x (1 + {model_config.progress_weight:g} x progress)" if model_config.progress_weight > 0 else "")
          + f" + {model_config.milestone_weight:g} x milestone", flush=True)
    print(f"data: {train_set} ({share:.0%} intent on)\n      {val_set}"
          + ("" if len(val_set) else " (no validation frames: skipped)"), flush=True)
    run_config = {"kind": KIND, "objective": "intent", "preset": args.preset, "model": asdict(model_config),
                  "datasets": [recorded_path(folder) for folder in folders]}
    summary = _train_and_summarise(model, train_set, val_set, train_config, args.run_dir, run_config, "frames")
    if summary is None:
        return 1
    print(f"trained to step {summary}; run folder {args.run_dir}\nevaluate: dmo-reward-eval "
          f"{args.run_dir} --dataset {folders[0]}", flush=True)
    return 0


def _train_and_summarise(model: torch.nn.Module, train_set: Dataset, val_set: Dataset, train_config: TrainConfig,
                         run_dir: Path, run_config: dict, unit: str) -> str | None:
    """The shared training loop on the sets (no validation when ``val_set`` is empty): "STEP in S s (N unit; val
    numbers)" for the final line, or None after printing why training failed."""
    try:
        result = train(model, train_set, val_set if len(val_set) else None, train_config, run_dir, run_config)
    except TrainingError as error:
        print(f"dmo-train-reward: error: {error}", file=sys.stderr)
        return None
    logs = ", ".join(f"{key} {value:.4g}" for key, value in sorted(result.val_logs.items()))
    return f"{result.step} in {result.seconds:.0f} s ({result.samples} {unit}" + (f"; val {logs}" if logs else "") + ")"


if __name__ == "__main__":
    sys.exit(main())
