"""``dmo-train-act``: the ACT behaviour-cloning baseline, trained on the demonstrations (intent on) of a dataset.

    dmo-collect-fast --robot go2 --samples 16000 --demo-probability 1.0 --output bags/go2
    dmo-convert bags/go2/<session> -o datasets/go2 --robot go2
    dmo-train-act datasets/go2 --run-dir runs/go2/act --preset cpu

Training items are the samples whose intent label is on (the operator was demonstrating the task: the gamepad's
intent button, or the scripted operator's demonstrations): the frame at step t and the demonstrated actions
t .. t + chunk_size - 1, cut at the end of the demonstration (the remaining steps are padding, masked out of the
loss). Play (intent off) is not imitated. Validation: the same items of the validation episodes.

The network and loss are :class:`dmo_ros.policy.act.ACTModel`'s; the shared training loop
(:func:`dmo_ros.training.train`) gives presets, resume (re-running the command continues the run), TensorBoard and a
progress bar. The run folder is a policy run (``config.json`` ``kind`` policy, ``method`` act): ``load_policy``,
the policy node (``dmo-launch deploy_go2 checkpoint:=RUN``) and ``dmo-eval-policy`` load it. At the end a Go2 run
is evaluated on the stand-in's Push Cube task (:mod:`dmo_ros.policy.push_cube_eval`) beside the ceilings:
``final_eval.json`` / ``final_eval.md`` and one ``eval.jsonl`` line, which ``dmo-compare`` reads.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from dmo_ros.dataset.format import DatasetError, open_arrays, read_meta
from dmo_ros.dataset.loaders import SPLITS, action_statistics, dataset_shape, find_datasets
from dmo_ros.policy.act import METHOD, PRESETS, ACTConfig, ActionChunks, ACTModel
from dmo_ros.policy.base import POLICY_KIND
from dmo_ros.training import (
    CheckpointError,
    ConfigError,
    TrainConfig,
    TrainingError,
    add_dataclass_options,
    apply_options,
    given_options,
    seed_everything,
    train,
)
from dmo_ros.training.checkpoint import read_run_config, recorded_path
from dmo_ros.training.loop import exit_on_interrupt
from dmo_ros.training.options import finite_float

TRAIN_PRESETS: dict[str, TrainConfig] = {
    # Tests: a few seconds on one CPU core.
    "tiny": TrainConfig(steps=40, batch_size=8, lr=1e-3, warmup_steps=5, log_every=10, val_every=20, val_batches=2,
                        checkpoint_every=20, weight_decay=1e-4),
    # The Push Cube baseline on a laptop: ~8 CPU-minutes (3000 batches of 32, ~16 passes over 6k demonstration steps).
    "cpu": TrainConfig(steps=3000, batch_size=32, lr=5e-4, warmup_steps=200, log_every=50, val_every=500,
                       val_batches=8, checkpoint_every=500, weight_decay=1e-4),
    # The ACT authors' optimiser (lr 1e-5 with a ResNet backbone; 1e-4 for the transformer), batch 8 -> 64 on a GPU.
    "gpu": TrainConfig(steps=50_000, batch_size=64, lr=1e-4, warmup_steps=500, log_every=100, val_every=2000,
                       val_batches=16, checkpoint_every=2000, weight_decay=1e-4, num_workers=4),
}
"""Training schedules per preset; the network sizes are :data:`dmo_ros.policy.act.PRESETS`."""

MODEL_OPTIONS_SKIP = ("image_size", "action_size", "action_mean", "action_std")
"""Network fields that come from the data, not from the command line."""


class DemonstrationChunks(Dataset):
    """Every sample with intent on in the selected split of ``folders``, as an :class:`ActionChunks` item.

    Item i: the frame of demonstration sample t (3, H, W) uint8, the actions t .. t + K - 1 (K, A) float32 within the
    same run of intent-on samples of the same episode, zero-padded past its end, and the (K,) mask of real actions.
    """

    def __init__(self, folders: Sequence[Path | str], chunk_size: int, split: str = "train") -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
        self.folders, self.chunk_size, self.split = [Path(f) for f in folders], int(chunk_size), split
        self.items: list[tuple[int, int, int]] = []
        """(folder index, sample t, end of its demonstration run (exclusive))."""
        for number, folder in enumerate(self.folders):
            meta, arrays = read_meta(folder), open_arrays(folder)
            intent = np.asarray(arrays["intent"], dtype=bool)
            for episode in meta.get("episodes", []):
                if split != "all" and episode.get("split") != split:
                    continue
                first, length = int(episode["start"]), int(episode["length"])
                flags = intent[first:first + length]
                edges = np.diff(np.concatenate([[0], flags.astype(np.int8), [0]]))
                for begin, end in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True):
                    self.items += [(number, first + t, first + int(end)) for t in range(int(begin), int(end))]
        self._arrays: list[dict[str, np.ndarray]] | None = None
        self._pid: int | None = None

    def _maps(self) -> list[dict[str, np.ndarray]]:
        if self._arrays is None or self._pid != os.getpid():  # each DataLoader worker opens its own maps
            self._arrays, self._pid = [open_arrays(folder) for folder in self.folders], os.getpid()
        return self._arrays

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_arrays": None, "_pid": None}

    def __len__(self) -> int:
        return len(self.items)

    def actions(self) -> np.ndarray:
        """(N, A) float64: the action of every item (the normalisation statistics)."""
        maps = self._maps()
        return np.array([maps[f]["actions"][t] for f, t, _ in self.items], dtype=np.float64).reshape(len(self), -1)

    def __getitem__(self, index: int) -> ActionChunks:
        folder, t, end = self.items[index]
        arrays = self._maps()[folder]
        real = min(self.chunk_size, end - t)
        actions = np.zeros((self.chunk_size, arrays["actions"].shape[1]), dtype=np.float32)
        actions[:real] = arrays["actions"][t:t + real]
        valid = np.zeros(self.chunk_size, dtype=bool)
        valid[:real] = True
        frame = torch.from_numpy(np.array(arrays["frames"][t])).permute(2, 0, 1).contiguous()
        return ActionChunks(frame, torch.from_numpy(actions), torch.from_numpy(valid))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dmo-train-act",
        description="Train the ACT baseline (CVAE + transformer action chunking, temporal ensembling at run time) on "
                    "the demonstrations (intent on) of datasets. Re-running the same command resumes the run. A Go2 "
                    "run is evaluated on the stand-in's Push Cube task at the end.",
        epilog="Example: dmo-train-act datasets/go2 --run-dir runs/go2/act --preset cpu. "
               "Exit code: 0 trained, 1 training failed, 2 bad arguments or data.")
    parser.add_argument("datasets", nargs="+", type=Path, help="dataset folders (from dmo-convert), or folders of them")
    parser.add_argument("--run-dir", type=Path, default=Path("runs/act"),
                        help="run folder: config.json, checkpoints, tensorboard, final_eval.*; an existing run is "
                             "resumed (default: runs/act)")
    parser.add_argument("--preset", default="cpu", choices=sorted(TRAIN_PRESETS),
                        help="network size and training schedule (default: cpu)")
    parser.add_argument("--temporal-ensembling", action=argparse.BooleanOptionalAction, default=True,
                        help="at run time average every chunk's prediction of the current step (ACT's temporal "
                             "ensembling, default); --no-temporal-ensembling executes each chunk open loop")
    parser.add_argument("--ensemble-decay", type=finite_float, default=0.01,
                        help="m of the ensembling weights exp(-m i), i = 0 the oldest prediction (default 0.01)")
    parser.add_argument("--eval-episodes", type=int, default=None,
                        help="Push Cube episodes of the final evaluation of a Go2 run (default: 50; tiny preset 2; "
                             "0: no evaluation)")
    parser.add_argument("--eval-max-steps", type=int, default=None,
                        help="control steps per evaluation episode at most (default: 200 = 40 s; tiny preset 10)")
    train_options = add_dataclass_options(parser, TrainConfig, title="training (overrides the preset)")
    model_options = add_dataclass_options(parser, ACTConfig, title="network (overrides the preset)",
                                          skip=MODEL_OPTIONS_SKIP)
    parser.set_defaults(train_options=train_options, model_options=model_options)
    return parser


def _saved(run_dir: Path) -> dict[str, Any] | None:
    try:
        saved = read_run_config(run_dir)
    except CheckpointError:
        return None
    if saved.get("kind") != POLICY_KIND or saved.get("method") != METHOD:
        raise CheckpointError(f"{run_dir} holds a run that is not an ACT policy (kind {saved.get('kind')!r}, method "
                              f"{saved.get('method')!r}); choose another --run-dir")
    return saved


@exit_on_interrupt
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    prog = parser.prog
    try:
        folders = find_datasets(args.datasets)
        image_size, action_size, robot = dataset_shape(folders, "ACT policy")
        train_config = apply_options(TRAIN_PRESETS[args.preset], args, args.train_options)
        saved = _saved(args.run_dir)
        if args.ensemble_decay < 0:
            raise ValueError(f"--ensemble-decay must be >= 0, got {args.ensemble_decay}")
        overrides = given_options(args, args.model_options)
        chunk_size = overrides.get("chunk_size") or ((saved or {}).get("model") or {}).get("chunk_size") \
            or PRESETS[args.preset].chunk_size
        train_set = DemonstrationChunks(folders, chunk_size, "train")
        val_set = DemonstrationChunks(folders, chunk_size, "val")
        if len(train_set) == 0:
            raise DatasetError(f"{', '.join(map(str, folders))} hold no demonstration (intent on) in the training "
                               "episodes; record demonstrations with the intent button (or dmo-collect-fast "
                               "--demo-probability > 0)")
        if saved is not None and not overrides:
            model_config = ACTConfig(**saved["model"])  # re-running resumes the run as configured
        else:
            demonstrated = train_set.actions()
            model_config = ACTConfig.preset(args.preset, image_size=image_size, action_size=action_size,
                                            action_mean=demonstrated.mean(0).tolist(),
                                            action_std=np.maximum(demonstrated.std(0), 1e-3).tolist(), **overrides)
        if model_config.image_size != image_size or model_config.action_size != action_size:
            raise DatasetError(f"{args.run_dir} was trained on {model_config.image_size} px frames and "
                               f"{model_config.action_size}-D actions, these datasets have {image_size} px and "
                               f"{action_size}-D; train into a new --run-dir")
        limit = action_statistics(folders)["max_abs"]
    except (DatasetError, ConfigError, CheckpointError, ValueError, OSError) as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    seed_everything(train_config.seed)
    model = ACTModel(model_config)
    meta = read_meta(folders[0])
    print(f"ACT: {model.num_parameters / 1e6:.2f} M parameters ({args.preset} preset), robot {robot}, "
          f"{image_size}x{image_size} frames, chunk {model_config.chunk_size} steps "
          f"({model_config.chunk_size / float(meta.get('rate_hz') or 5.0):.1f} s), temporal ensembling "
          f"{'on (m = ' + str(args.ensemble_decay) + ')' if args.temporal_ensembling else 'off'}", flush=True)
    print(f"data: {len(train_set)} training / {len(val_set)} validation demonstration samples (intent on) from "
          f"{len(folders)} dataset(s); demonstrated action mean {np.round(model_config.action_mean, 3).tolist()}, "
          f"std {np.round(model_config.action_std, 3).tolist()}", flush=True)
    run_config = {
        "kind": POLICY_KIND, "method": METHOD, "task": "push_cube" if robot == "go2" else "push_t",
        "preset": args.preset, "model": asdict(model_config),
        "policy": {"action_limit": [float(v) for v in limit], "image_size": [image_size, image_size],
                   "temporal_ensembling": bool(args.temporal_ensembling), "ensemble_decay": float(args.ensemble_decay)},
        "deployment": {key: meta.get(key) for key in ("robot", "rate_hz", "image", "action")},
        "datasets": [recorded_path(folder) for folder in folders], "demonstration_samples": len(train_set),
    }
    began = time.perf_counter()
    try:
        result = train(model, train_set, val_set if len(val_set) >= train_config.batch_size else None, train_config,
                       args.run_dir, run_config)
    except TrainingError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 1
    wall_s = time.perf_counter() - began
    logs = result.val_logs or result.train_logs
    print(f"trained to step {result.step} in {result.seconds:.0f} s ({result.samples} items); "
          + ", ".join(f"{'val' if result.val_logs else 'train'} {k} {v:.4g}" for k, v in sorted(logs.items())
                      if k in ("l1", "kl")) + f"; run folder {args.run_dir}", flush=True)
    episodes = args.eval_episodes if args.eval_episodes is not None else (2 if args.preset == "tiny" else 50)
    if robot == "go2" and episodes > 0:
        print(final_evaluation(args.run_dir, episodes, args.eval_max_steps or (10 if args.preset == "tiny" else None),
                               result.step * train_config.batch_size, wall_s), flush=True)
    elif episodes > 0:
        print(f"no stand-in evaluation for robot {robot} here (evaluate with dmo-eval-policy {args.run_dir})")
    return 0


def final_evaluation(run_dir: Path, episodes: int, max_steps: int | None, samples: int, wall_s: float) -> str:
    """Evaluate the run's policy on ``episodes`` Push Cube episodes beside the ceilings; write ``final_eval.*`` and an
    ``eval.jsonl`` line (``samples``: demonstration items the run trained on, counted with repeats)."""
    from dmo_ros.policy.api import load_policy
    from dmo_ros.policy.episodes import final_stem
    from dmo_ros.policy.push_cube_eval import PolicyController, PushCubeEvalConfig, write_final_evaluation

    config = PushCubeEvalConfig(episodes=episodes, **({"max_steps": max_steps} if max_steps else {}))
    policy = load_policy(run_dir)
    stem = final_stem(run_dir, config)
    table = write_final_evaluation(PolicyController(policy, config.aspect), f"ACT ({run_dir})", run_dir, samples,
                                   wall_s, config)
    final = json.loads((run_dir / f"{stem}.json").read_text())["policy"]
    from dmo_ros.policy.push_cube_eval import result_from_dict

    record = {"epoch": 0, "samples": samples, "wall_s": wall_s, "method": METHOD, "task": "push_cube",
              **result_from_dict(final).record()}
    with open(run_dir / "eval.jsonl", "a") as stream:
        stream.write(json.dumps(record) + "\n")
    return table


if __name__ == "__main__":
    sys.exit(main())
