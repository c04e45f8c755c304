"""``dmo-train-local-model``: pretrain the local RSSM on play data labelled by the global reward model.

    dmo-train-local-model datasets/play --reward-run runs/reward --goal goal.png --run-dir runs/local_model \\
        --preset cpu
    torchrun --nproc-per-node 4 $(which dmo-train-local-model) datasets/ --reward-run runs/reward \\
        --goal goal.png --preset gpu   # multi-GPU

First every sample of every dataset gets a reward label from the global reward model:
``r(o) = (f(o | o_start, o_goal) - f(o_start | o_start, o_goal)) / scale`` with ``o_start`` the
first frame of the sample's episode and ``o_goal`` the goal picture (see
:class:`dmo_ros.reward.energy.GoalReward`) — or, when ``--reward-run`` is a ``dmo-train-dynamics`` run (the
DreamerV4-style world model of Push Cube), its reward token's reward read along each recorded episode, with no
goal picture (DESIGN §6; ``dmo-train-local-model datasets/go2 --reward-run runs/v4_dynamics``). The labels are
saved in the run folder (``rewards_<dataset>.npy``, listed in ``rewards.json``), so re-running the command resumes
training on the same labels without the reward model (``--relabel`` labels again). Then the
model trains with :func:`dmo_ros.training.train`; at the end the single-step accuracy on the
validation episodes is printed (``next_latent_error``, ``reward_error``, ...).

A preset sets the network size (:data:`~dmo_ros.local_model.config.PRESETS`), the training
schedule (:data:`TRAIN_PRESETS`) and the sequence length (:data:`SEQUENCE_LENGTHS`); options
given on the command line override it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from dmo_ros.dataset.format import DatasetError, open_arrays, read_meta
from dmo_ros.dataset.loaders import action_statistics, dataset_shape, find_datasets
from dmo_ros.local_model.config import LocalModelConfig
from dmo_ros.local_model.model import SEQUENCE_WINDOWS, LocalModel, SequenceDataset
from dmo_ros.reward.energy import needs_goal
from dmo_ros.sims.pusht_tasks import TASKS
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
from dmo_ros.world_model_v4.model import is_world_model_v4

KIND = "local_model"
"""``config.json`` ``kind`` of a local model run."""

GO2_GATE_EPSILON = 0.1
"""Finite-difference step of the end-of-training gate on Go2 data, in m/s and rad/s (the Go2's actions), as the
README's ``dmo-gate local-model ... --epsilon 0.1`` for Push Cube."""

TRAIN_PRESETS: dict[str, TrainConfig] = {
    # Tests: seconds on one CPU core. Gradient clipping at 1000 as DreamerV3: the image loss is summed over
    # pixels, so gradient norms are in the hundreds; AdamW does not care about the loss's scale.
    "tiny": TrainConfig(steps=60, batch_size=8, lr=1e-3, warmup_steps=10, grad_clip=1000.0, log_every=10,
                        val_every=30, val_batches=2, checkpoint_every=30),
    # The laptop demo: minutes on 2 CPU cores.
    "cpu": TrainConfig(steps=1000, batch_size=16, lr=3e-4, warmup_steps=50, grad_clip=1000.0, log_every=25,
                       val_every=250, val_batches=8, checkpoint_every=250),
    # DreamerV3's world-model optimiser (lr 1e-4, clip 1000, batch 16) on one GPU.
    "gpu": TrainConfig(steps=50_000, batch_size=16, lr=1e-4, warmup_steps=500, grad_clip=1000.0, log_every=50,
                       val_every=2000, val_batches=16, checkpoint_every=2000, num_workers=4),
}
"""Training schedules per preset; the network sizes are in :data:`dmo_ros.local_model.config.PRESETS`."""

SEQUENCE_LENGTHS: dict[str, int] = {"tiny": 6, "cpu": 8, "gpu": 32}
"""Samples per training sequence per preset (DreamerV3: 64; single-step accuracy needs less)."""

MODEL_OPTIONS_SKIP = ("action_size", "action_scale", "image_size")
"""Model fields that come from the data, not from the command line."""

LABELS_INDEX = "rewards.json"
"""The run folder's list of reward label files: dataset folder -> file, sample count, source."""

RewardFunction = Callable[[torch.Tensor, torch.Tensor], "torch.Tensor | np.ndarray"]
"""frames (n, 3, H, W) uint8, the episode's first frame (3, H, W) uint8 -> rewards (n,), e.g. a GoalReward."""


# -- reward labels ---------------------------------------------------------------------------


def label_rewards(reward_fn: RewardFunction, folder: Path | str, batch_size: int = 64) -> np.ndarray:
    """The reward of every sample of a dataset, (N,) float32, in dataset sample order (all splits).

    ``reward_fn(frames, start)`` gets up to ``batch_size`` frames (n, 3, H, W) uint8 of one episode
    and that episode's first frame (3, H, W) uint8 — :class:`dmo_ros.reward.energy.GoalReward`'s
    call signature — and returns their n rewards.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    meta, frames = read_meta(folder), open_arrays(folder)["frames"]
    rewards = np.full(len(frames), np.nan, dtype=np.float32)
    for episode in meta["episodes"]:
        first, length = int(episode["start"]), int(episode["length"])
        start = torch.from_numpy(np.array(frames[first])).permute(2, 0, 1)
        for begin in range(first, first + length, batch_size):
            end = min(begin + batch_size, first + length)
            chunk = torch.from_numpy(np.array(frames[begin:end])).permute(0, 3, 1, 2)
            values = reward_fn(chunk, start)
            values = values.detach().float().cpu().numpy() if isinstance(values, torch.Tensor) else values
            rewards[begin:end] = np.asarray(values, dtype=np.float32).reshape(end - begin)
    if not np.isfinite(rewards).all():
        raise DatasetError(f"{folder}: the reward function left {int((~np.isfinite(rewards)).sum())} samples "
                           "without a finite label (episodes in meta.json must cover every sample)")
    return rewards


def goal_reward_function(reward_run: Path, goal: Path | None, image_size: int,
                         device: torch.device) -> RewardFunction:
    """The global reward model of ``reward_run`` with the goal picture ``goal`` (None for an intent reward, which
    takes none), as a :data:`RewardFunction`."""
    from dmo_ros.reward.energy import frame_reward, load_reward_model
    from dmo_ros.reward.goal_image import load_goal_image

    model = load_reward_model(reward_run, device)
    reward = frame_reward(model, None if goal is None else load_goal_image(goal, size=(image_size, image_size)))
    return lambda frames, start: reward(frames, start)


FolderLabeller = Callable[[Path], np.ndarray]
"""dataset folder -> the reward of every sample (N,) float32 in sample order: :func:`frame_labeller` of a goal
reward, or :func:`reward_token_labeller` of a DreamerV4-style world model."""


def frame_labeller(reward_fn: RewardFunction, batch_size: int = 64) -> FolderLabeller:
    """A :data:`FolderLabeller` from a per-frame reward function (:func:`label_rewards`)."""
    return lambda folder: label_rewards(reward_fn, folder, batch_size)


def reward_token_labeller(world_model_run: Path, device: torch.device) -> FolderLabeller:
    """A :data:`FolderLabeller` from the reward token of a ``dmo-train-dynamics`` run (the global reward of
    the DreamerV4-style world model, DESIGN §6): each sample's reward as that model reads it along the recorded
    episode (teacher-forced, :func:`~dmo_ros.world_model_v4.model.reward_head_on_episodes`)."""
    from dmo_ros.world_model_v4.model import load_world_model_v4, reward_head_on_episodes

    model = load_world_model_v4(world_model_run, device)

    def label(folder: Path) -> np.ndarray:
        size = dataset_shape([folder], "reward token")[0]
        if size != model.config.image_size:
            raise DatasetError(f"{folder} has {size} px frames, the world model {world_model_run} was trained on "
                               f"{model.config.image_size} px: label with a world model of this data")
        rewards = np.full(len(open_arrays(folder)["frames"]), np.nan, dtype=np.float32)
        indices, head = reward_head_on_episodes(model, folder, "all")
        rewards[indices] = model.dynamics.reward(torch.from_numpy(head)).numpy()
        if not np.isfinite(rewards).all():
            raise DatasetError(f"{folder}: {int((~np.isfinite(rewards)).sum())} samples lie outside the episodes "
                               "of meta.json and got no reward label")
        return rewards

    return label


def ensure_labels(folders: Sequence[Path], run_dir: Path, make_labeller: Callable[[], FolderLabeller] | None,
                  relabel: bool = False, source: dict | None = None) -> dict[str, np.ndarray]:
    """Reward labels per dataset folder: read from the run folder, or computed and saved there.

    ``make_labeller`` is called only when some dataset has no saved labels (or ``relabel``); None
    then is an error that says what to pass. Labels are saved as ``run_dir/rewards_<name>.npy``
    and listed in ``run_dir/rewards.json`` with the dataset path, sample count and ``source``
    (atomically, and only by the main process under torchrun: the others label for themselves).
    """
    writes = is_main_process()
    index_path = run_dir / LABELS_INDEX
    index: dict = json.loads(index_path.read_text()) if index_path.is_file() else {}
    labels: dict[str, np.ndarray] = {}
    labeller: FolderLabeller | None = None
    for folder in folders:
        key = str(folder.resolve())
        samples = int(len(open_arrays(folder)["frames"]))
        entry = index.get(key)
        if entry and not relabel and (run_dir / entry["file"]).is_file():
            saved = np.load(run_dir / entry["file"])
            if saved.shape == (samples,):
                labels[str(folder)] = saved
                continue
            print(f"reward labels {entry['file']} hold {saved.shape[0]} samples, {folder} has {samples}: "
                  "labelling again", flush=True)
        if labeller is None:
            if make_labeller is None:
                raise ValueError(f"{folder} has no reward labels in {run_dir}; give --reward-run RUN_DIR and "
                                 "--goal IMAGE (the global reward model and its goal picture), or --reward-run "
                                 "with a dmo-train-dynamics run (its reward token), to label it")
            labeller = make_labeller()
        print(f"labelling {samples} samples of {folder} with the reward model ...", flush=True)
        values = labeller(folder)
        name = entry["file"] if entry else _free_name(folder.name, index)
        index[key] = {"file": name, "samples": samples, "source": source or {},
                      "mean": float(values.mean()), "min": float(values.min()), "max": float(values.max())}
        if writes:
            run_dir.mkdir(parents=True, exist_ok=True)
            with open(run_dir / (name + ".tmp"), "wb") as stream:
                np.save(stream, values)
            os.replace(run_dir / (name + ".tmp"), run_dir / name)
            index_path.with_name(LABELS_INDEX + ".tmp").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
            os.replace(index_path.with_name(LABELS_INDEX + ".tmp"), index_path)
        labels[str(folder)] = values
    return labels


def _free_name(name: str, index: dict) -> str:
    taken = {entry["file"] for entry in index.values()}
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "dataset"
    candidate, k = f"rewards_{safe}.npy", 1
    while candidate in taken:
        k += 1
        candidate = f"rewards_{safe}_{k}.npy"
    return candidate


# -- the command line ------------------------------------------------------------------------






def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dmo-train-local-model",
        description="Pretrain the local model (DreamerV3-style RSSM + two-hot reward head) on datasets whose frames "
                    "are labelled by the global reward model. Re-running the same command resumes the run.",
        epilog="Exit code: 0 trained, 1 training failed, 2 bad arguments or data.")
    parser.add_argument("datasets", nargs="+", type=Path, help="dataset folders (from dmo-convert), or folders of them")
    parser.add_argument("--reward-run", type=Path, default=None,
                        help="run folder of the global reward model (dmo-train-reward, with --goal) or of a "
                             "DreamerV4-style world model (dmo-train-dynamics: its reward token) that labels the "
                             "frames; needed unless the run folder already holds labels for every dataset")
    parser.add_argument("--goal", type=Path, default=None,
                        help="goal picture for the reward (PNG/JPEG/.npy, see dmo-goal-image), or a goal set (.npy "
                             "of K pictures: each frame labelled by its best goal); needed with --reward-run")
    parser.add_argument("--relabel", action="store_true",
                        help="label the datasets again even if the run folder holds labels")
    parser.add_argument("--label-batch-size", type=int, default=64,
                        help="frames per reward-model call while labelling (default: 64)")
    parser.add_argument("--run-dir", type=Path, default=Path("runs/local_model"),
                        help="run folder: config.json, reward labels, checkpoints, tensorboard; an existing run is "
                             "resumed (default: runs/local_model)")
    parser.add_argument("--preset", default="cpu", choices=sorted(TRAIN_PRESETS),
                        help="network size, training schedule and sequence length (default: cpu)")
    parser.add_argument("--sequence-length", type=int, default=None,
                        help="samples per training sequence, >= 2 (default: from the preset: "
                             + ", ".join(f"{k} {v}" for k, v in SEQUENCE_LENGTHS.items()) + ")")
    parser.add_argument("--windows", choices=SEQUENCE_WINDOWS, default=None,
                        help="training sequences by the operator's intent label: all (default), play (intent off "
                             "throughout) or demonstrations (intent on throughout); a resumed run keeps its own")
    train_options = add_dataclass_options(parser, TrainConfig, title="training (overrides the preset)")
    model_options = add_dataclass_options(parser, LocalModelConfig, title="network (overrides the preset)",
                                          skip=MODEL_OPTIONS_SKIP)
    parser.set_defaults(train_options=train_options, model_options=model_options)
    parser.add_argument("--gate", action=argparse.BooleanOptionalAction, default=True,
                        help="measure the gate at the end (with --reward-run; as dmo-gate local-model; on Go2 data "
                             "with --epsilon 0.1)")
    parser.add_argument("--gate-task", choices=TASKS, default="push_t",
                        help="the Push-T task the gate probes (the goal picture's; a reach task's probes follow "
                             "reaches; default: push_t)")
    return parser


@exit_on_interrupt
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    prog = parser.prog
    try:
        folders = find_datasets(args.datasets)
        image_size, action_size, robot = dataset_shape(folders, "local model")
        train_config = apply_options(TRAIN_PRESETS[args.preset], args, args.train_options)
        overrides = given_options(args, args.model_options)
        saved = saved_run(args.run_dir, KIND, "local model")
        if saved is not None and not overrides:
            model_config = LocalModelConfig.from_dict(saved["model"])  # re-running resumes the run as configured
        else:
            scale = [max(value, 1e-3) for value in action_statistics(folders)["max_abs"]]
            model_config = LocalModelConfig.preset(args.preset, action_size, scale, image_size=image_size,
                                                   **overrides)
        if model_config.image_size != image_size or model_config.action_size != action_size:
            raise DatasetError(f"{args.run_dir} was trained on {model_config.image_size} px frames and "
                               f"{model_config.action_size}-D actions, these datasets have {image_size} px and "
                               f"{action_size}-D; train into a new --run-dir")
        length = args.sequence_length or (saved or {}).get("sequence_length") or SEQUENCE_LENGTHS[args.preset]
        if length < 2:
            raise ValueError(f"--sequence-length must be at least 2 (one-step predictions), got {length}")
        if args.label_batch_size < 1:
            raise ValueError(f"--label-batch-size must be at least 1, got {args.label_batch_size}")
        make_labeller = None
        reward_token = args.reward_run is not None and is_world_model_v4(args.reward_run)
        goal_free = reward_token or (args.reward_run is not None and not needs_goal(args.reward_run))
        if args.reward_run is not None:
            if args.goal is None and not goal_free:
                raise ValueError("--reward-run needs --goal IMAGE, the goal picture the reward measures progress "
                                 "toward (make one with dmo-goal-image); a dmo-train-dynamics run or an intent "
                                 "reward (dmo-train-reward --objective intent) needs none")
            device = resolve_device(train_config.device, World(local_rank=int(os.environ.get("LOCAL_RANK", "0"))))

            def make_labeller() -> FolderLabeller:
                if reward_token:
                    return reward_token_labeller(args.reward_run, device)
                return frame_labeller(goal_reward_function(args.reward_run, args.goal, image_size, device),
                                      args.label_batch_size)

        source = {"reward_run": recorded_path(args.reward_run),
                  "goal": None if reward_token or args.goal is None else recorded_path(args.goal)}
        labels = ensure_labels(folders, args.run_dir, make_labeller, args.relabel, source)
        windows = args.windows or (saved or {}).get("windows") or "all"
        train_set = SequenceDataset(folders, length, "train", labels, windows)
        val_set = SequenceDataset(folders, length, "val", labels, windows)
    except (DatasetError, ConfigError, CheckpointError, ValueError, OSError) as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    if len(train_set) == 0:
        advice = ("record longer episodes or lower --sequence-length" if windows == "all" else
                  f"--windows {windows} keeps only sequences whose every sample is "
                  f"{'intent off' if windows == 'play' else 'intent on'}: record such episodes or choose other windows")
        print(f"{prog}: error: no training sequence of {length} samples in {', '.join(map(str, folders))}; {advice}",
              file=sys.stderr)
        return 2
    seed_everything(train_config.seed)
    model = LocalModel(model_config)
    latent = (f"{model_config.stoch_size}x{model_config.classes}" if model_config.latent == "categorical"
              else f"{model_config.stoch_size}-d gaussian")
    print(f"local model: {model.num_parameters / 1e6:.2f} M parameters ({args.preset} preset), robot {robot}, "
          f"{image_size}x{image_size} frames, latent {latent} + GRU "
          f"{model_config.deter_size}, action scale {[round(s, 4) for s in model_config.action_scale]}", flush=True)
    all_labels = np.concatenate(list(labels.values()))
    print(f"data: {len(train_set)} training sequences, {len(val_set)} validation sequences of {length} samples"
          f"{'' if windows == 'all' else f' ({windows} only)'} from "
          f"{len(folders)} dataset(s); reward labels mean {all_labels.mean():.3g}, range "
          f"[{all_labels.min():.3g}, {all_labels.max():.3g}]"
          + ("" if len(val_set) else " (no validation episodes: validation skipped)"), flush=True)
    run_config = {"kind": KIND, "preset": args.preset, "model": asdict(model_config), "sequence_length": length,
                  "windows": windows,
                  "datasets": [recorded_path(folder) for folder in folders], "robot": robot,
                  "labels": {"file": LABELS_INDEX, **source}}
    try:
        result = train(model, train_set, val_set if len(val_set) else None, train_config, args.run_dir, run_config)
    except TrainingError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 1
    print(f"trained to step {result.step} in {result.seconds:.0f} s ({result.samples} sequences); run folder "
          f"{args.run_dir}", flush=True)
    metrics, where = (result.val_logs, "validation") if result.val_logs else (result.train_logs, "training")
    if metrics:
        print(format_single_step(metrics, where), flush=True)
    if args.gate and robot in ("pusht", "go2") and is_main_process():  # the robots with a stand-in to probe
        if args.reward_run is None:
            print("gate not measured (it needs --reward-run); measure it with dmo-gate local-model", flush=True)
        elif is_world_model_v4(args.reward_run):
            print("gate not measured: its probes score frames with a reward model run, not a DreamerV4 run's reward "
                  "token; measure it with dmo-gate local-model and a reward model run", flush=True)
        else:
            from dmo_ros.gates.cli import local_model_run_gate

            small = {"sequences": 8, "probes": 4, "state_probe_episodes": 2, "agent_only_episodes": 1,
                     "agent_only_step": 160.0} if args.preset == "tiny" else {}
            if robot == "go2":  # Push Cube's probes: actions in m/s and rad/s, so the README's larger step
                small["epsilon"] = GO2_GATE_EPSILON
            report = local_model_run_gate(args.run_dir, folders[0], args.reward_run, args.goal,
                                          resolve_device(train_config.device, World()), labels, task=args.gate_task,
                                          **small)
            print(report.format(), flush=True)
    return 0


def format_single_step(logs: dict[str, float], where: str = "validation") -> str:
    """The single-step accuracy lines printed after training."""
    lines = [f"single-step accuracy ({where}):"]
    described = {
        "next_latent_error": "fraction of latent categoricals whose predicted class differs from the next frame's "
                             "(Gaussian: mean |difference| of the means, in the next frame's standard deviations)",
        "next_latent_kl": "KL(next posterior || one-step prior), nats",
        "reward_error": "mean |reward predicted one step ahead - label|",
        "reward_error_posterior": "mean |reward of the observed frame's state - label|",
        "next_image_mse": "per-pixel squared error of the decoded one-step prediction ([-1, 1] units)",
    }
    for key, text in described.items():
        if key in logs:
            lines.append(f"  {key:<24} {logs[key]:.4g}   ({text})")
    return "\n".join(lines)




if __name__ == "__main__":
    sys.exit(main())
