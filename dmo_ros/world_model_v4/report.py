"""``dmo-world-model-v4-report``: how faithful the DreamerV4-style world model is on held-out play data.

    dmo-world-model-v4-report runs/v4_dynamics datasets/go2 --windows 64 --horizon 16 --output report.json \
        --out reports/v4

Four measurements on the dataset's *validation* episodes (never trained on):

1. **Open-loop fidelity per horizon**: from real windows (``l_init`` frames prefilled into the KV cache), the
   recorded actions are replayed for ``horizon`` steps; the mean squared error (frames in [-1, 1]) of each
   imagined frame against the real one, beside **copy-last-frame** (the last real context frame repeated) and
   the tokenizer's own reconstruction error of the real frame (the floor the dynamics cannot go under).
2. **Object permanence** (Push Cube): windows where the cube is seen early in the context, is out of view in
   the last 4 context frames and comes back within the horizon. On the frames where it is back: the cube-pixel
   IoU and centroid distance of imagined vs real, for the full-context model and the *same model with its
   context truncated to 4 frames* (a 4-frame model like DIAMOND's; not a separately trained one). The cube is
   found by colour (the stand-in's orange cube), in evaluation only.
3. **Reward token AUC**: the reward token's intent probability on every validation frame (teacher-forced: real
   frames prefilled in chunks of up to ``context - 1``) against the operator's intent label (ROC AUC).
4. **Action-shuffle test**: the rollouts of (1) again with the actions shuffled between windows (same noise):
   how much the imagined frames and rewards change, and the frame error with the wrong actions. A world model
   or reward token blind to the action would not change.

Pictures of what the model imagines, in ``--out`` (default ``RUN/v4_report``), from ``--pictures`` of the
windows of (1) (the same rollouts, not new ones): ``rollout.gif`` (real | imagined side by side, one row per
window; the context plays first, as in ``dmo-world-model-report``), ``rollout.png`` (per window a row of real
frames above a row of imagined ones at every horizon step, the last real context frame first) and
``fidelity.png`` (the MSE of (1) versus the horizon: model, copy-last, tokenizer floor).

Exit code: 0 on success, 2 on bad arguments or data.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from dmo_ros.dataset.format import DatasetError, open_arrays
from dmo_ros.dataset.loaders import Window, WindowDataset, collate
from dmo_ros.interrupt import stop_on_interrupt
from dmo_ros.output_paths import output_file, output_folder
from dmo_ros.sims.push_cube_frames import CUBE_MIN_PIXELS, cube_mask
from dmo_ros.training.rollout_pictures import rollout_strip, write_rollout_gif
from dmo_ros.world_model_v4.imagination import WorldModelV4Env
from dmo_ros.world_model_v4.model import WorldModelV4, load_world_model_v4, reward_head_on_episodes
from dmo_ros.world_model_v4.tokenizer import to_model_range

SHORT_CONTEXT = 4
"""Past frames of the short-context comparison model (DIAMOND's 4)."""

PICTURE_PIXELS = 128
"""The pictures upscale frames (nearest neighbour, by a whole factor) to about this many pixels a side."""


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties); NaN with one class only."""
    labels = labels.astype(bool)
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if positives == 0 or negatives == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):  # average ranks over ties
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def _pick(dataset: WindowDataset, count: int, seed: int) -> list[int]:
    rng = np.random.default_rng(seed)
    return sorted(rng.choice(len(dataset), size=min(count, len(dataset)), replace=False).tolist())


def _rollout(model: WorldModelV4, frames: Tensor, actions: Tensor, context: int, horizon: int, seed: int,
             env_context: int | None = None) -> tuple[Tensor, Tensor]:
    """Imagined frames (B, H, 3, H, W) and rewards (B, H) from windows frames (B, L + H, ...), actions (B, L + H, A)."""
    generator = torch.Generator(device=model.device).manual_seed(seed)
    env = WorldModelV4Env(model, generator=generator, context=env_context)
    env.reset(frames[:, :context], actions[:, :context])
    return env.rollout(actions[:, context - 1: context - 1 + horizon])


def fidelity(model: WorldModelV4, windows: list[Window], context: int, horizon: int,
             seed: int) -> tuple[dict[str, Any], Tensor]:
    """Per-horizon MSE of the open-loop rollout, copy-last and the tokenizer floor; the action-shuffle test.

    Returns the report's section and the imagined frames (B, H, 3, h, w) in [-1, 1] (for the pictures)."""
    batch = collate(windows)
    real = to_model_range(batch.frames[:, context:context + horizon]).to(model.device)
    imagined, rewards = _rollout(model, batch.frames, batch.actions, context, horizon, seed)
    last = to_model_range(batch.frames[:, context - 1]).to(model.device)[:, None]
    with torch.no_grad():
        floor = model.decode(model.encode(real))
    per_h = lambda x: (x - real).pow(2).mean((0, 2, 3, 4)).cpu().tolist()  # noqa: E731
    model_error, copy_error, floor_error = per_h(imagined), per_h(last.expand_as(real)), per_h(floor)
    permutation = torch.roll(torch.arange(len(windows)), 1)  # every window gets another window's actions
    shuffled, shuffled_rewards = _rollout(model, batch.frames, torch.cat(
        [batch.actions[:, :context - 1], batch.actions[permutation, context - 1:]], 1), context, horizon, seed)
    return {
        "windows": len(windows), "context": context, "horizon": horizon,
        "mse_model": model_error, "mse_copy_last": copy_error, "mse_tokenizer_floor": floor_error,
        "mean_mse_model": float(np.mean(model_error)), "mean_mse_copy_last": float(np.mean(copy_error)),
        "mean_mse_tokenizer_floor": float(np.mean(floor_error)),
        "shuffle": {
            "frame_change_mse": float((shuffled - imagined).pow(2).mean()),
            "reward_change_abs": float((shuffled_rewards - rewards).abs().mean()),
            "mse_model_shuffled_actions": float((shuffled - real).pow(2).mean()),
            "mse_model_true_actions": float((imagined - real).pow(2).mean()),
            "reward_abs_mean": float(rewards.abs().mean()),
        },
    }, imagined


def object_permanence(model: WorldModelV4, dataset: WindowDataset, context: int, horizon: int, seed: int,
                      limit: int) -> dict[str, Any]:
    """Cube IoU / centroid distance on the frames where the cube comes back, full vs 4-frame context."""
    if context <= SHORT_CONTEXT:
        return {"windows": 0, "skipped": f"a context of {context} frames is no longer than the short model's"}
    frames = open_arrays(dataset.folder)["frames"]
    visible = []
    for start in range(0, len(frames), 2048):
        chunk = torch.from_numpy(np.array(frames[start:start + 2048])).permute(0, 3, 1, 2)
        visible.append(cube_mask(chunk).sum((-1, -2)) >= CUBE_MIN_PIXELS)
    visible = torch.cat(visible).numpy()
    chosen = []
    for index in range(len(dataset)):
        s = int(dataset.starts[index])
        seen = visible[s:s + context]
        future = visible[s + context:s + context + horizon]
        if seen[:context - SHORT_CONTEXT].any() and not seen[context - SHORT_CONTEXT:].any() and future.any():
            chosen.append(index)
    rng = np.random.default_rng(seed)
    if len(chosen) > limit:
        chosen = sorted(rng.choice(chosen, size=limit, replace=False).tolist())
    result: dict[str, Any] = {"windows": len(chosen)}
    if not chosen:
        return result
    batch = collate([dataset[i] for i in chosen])
    real = batch.frames[:, context:context + horizon].to(model.device)
    real_mask = cube_mask(real)
    back = real_mask.sum((-1, -2)) >= CUBE_MIN_PIXELS  # (B, H): frames where the cube is in view again
    ys, xs = torch.meshgrid(torch.arange(real.shape[-2]), torch.arange(real.shape[-1]), indexing="ij")

    def centroid(mask: Tensor) -> Tensor:
        count = mask.sum((-1, -2)).clamp_min(1)
        return torch.stack([(mask * ys).sum((-1, -2)) / count, (mask * xs).sum((-1, -2)) / count], -1)

    for name, env_context in (("full_context", None), ("context_4", SHORT_CONTEXT + 1)):
        imagined, _ = _rollout(model, batch.frames, batch.actions, context, horizon, seed, env_context)
        mask = cube_mask(imagined)
        inter = (mask & real_mask).sum((-1, -2)).float()
        union = (mask | real_mask).sum((-1, -2)).float().clamp_min(1)
        shown = mask.sum((-1, -2)) >= CUBE_MIN_PIXELS
        both = back & shown
        distance = (centroid(mask) - centroid(real_mask)).norm(dim=-1)
        result[name] = {
            "cube_iou": float((inter / union)[back].mean()),
            "cube_shown_rate": float(shown[back].float().mean()),
            "centroid_distance_px": float(distance[both].mean()) if both.any() else float("nan"),
            "mse_on_return_frames": float((to_model_range(imagined) - to_model_range(real)).pow(2).mean(
                (-1, -2, -3))[back].mean()),
        }
    result["return_frames"] = int(back.sum())
    return result


def write_pictures(out: Path, windows: list[Window], imagined: Tensor, section: dict[str, Any], split: str,
                   count: int) -> list[Path]:
    """``rollout.gif``, ``rollout.png`` and ``fidelity.png`` in ``out`` from ``count`` of the fidelity test's
    windows (evenly spread) and their imagined frames; returns the paths written."""
    context, horizon = section["context"], section["horizon"]
    shown = np.unique(np.linspace(0, len(windows) - 1, min(count, len(windows))).round().astype(int)).tolist()
    frames = to_model_range(collate([windows[i] for i in shown]).frames)
    fake = imagined[shown].float().cpu()
    scale = max(1, PICTURE_PIXELS // frames.shape[-1])
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "rollout.gif", out / "rollout.png", out / "fidelity.png"]
    write_rollout_gif(paths[0], frames[:, :context], frames[:, context:context + horizon], fake, scale=scale)
    rollout_strip(frames[:, context - 1], frames[:, context:context + horizon], fake, scale=scale).save(paths[1])
    _plot(paths[2], section, split)
    return paths


def _plot(path: Path, section: dict[str, Any], split: str) -> None:
    from matplotlib.figure import Figure  # no pyplot: no global backend state, renders with Agg

    steps = range(1, section["horizon"] + 1)
    figure = Figure(figsize=(6, 3.5), layout="constrained")
    axis = figure.subplots()
    axis.plot(steps, section["mse_model"], "o-", label="world model")
    axis.plot(steps, section["mse_copy_last"], "k--", label="last frame repeated")
    axis.plot(steps, section["mse_tokenizer_floor"], ":", color="gray", label="tokenizer floor")
    axis.set_xlabel("open-loop step")
    axis.set_ylabel("MSE (frames in [-1, 1])")
    axis.set_ylim(bottom=0)
    axis.grid(alpha=0.3)
    axis.legend()
    figure.suptitle(f"open-loop fidelity, {section['windows']} {split} windows, {section['context']} real frames "
                    "prefilled")
    figure.savefig(path, dpi=100)


def reward_auc(model: WorldModelV4, folder: Path, split: str = "val") -> dict[str, Any]:
    """ROC AUC of the reward token's intent probability on every frame of the split's episodes."""
    indices, head = reward_head_on_episodes(model, folder, split)
    if not len(indices):
        return {"frames": 0, "auc": float("nan")}
    scores = 1.0 / (1.0 + np.exp(-head[:, 0]))
    labels = np.asarray(open_arrays(folder)["intent"][indices], dtype=bool)
    return {"frames": int(len(scores)), "intent_rate": float(labels.mean()), "auc": roc_auc(scores, labels),
            "accuracy": float(((scores > 0.5) == labels).mean())}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dmo-world-model-v4-report",
        description="Fidelity report of a DreamerV4-style world model (dmo-train-dynamics run) on a dataset's "
                    "validation episodes: per-horizon open-loop error vs copy-last, object permanence vs a "
                    "4-frame context, reward-token AUC, action-shuffle test; pictures of imagined rollouts "
                    "(rollout.gif, rollout.png, fidelity.png in --out).",
        epilog="Exit code: 0 on success, 2 on bad arguments or data.")
    parser.add_argument("run", type=Path, help="run folder of dmo-train-dynamics")
    parser.add_argument("dataset", type=Path, help="dataset folder (dmo-convert); its validation episodes are used")
    parser.add_argument("--windows", type=int, default=64,
                        help="windows for the fidelity and shuffle tests (default 64)")
    parser.add_argument("--horizon", type=int, default=16, help="imagined steps per window (default 16)")
    parser.add_argument("--context", type=int, default=None,
                        help="real frames prefilled before imagining (default: the model's l_init)")
    parser.add_argument("--permanence-windows", type=int, default=64,
                        help="most windows of the object-permanence test (default 64)")
    parser.add_argument("--split", default="val", choices=("val", "train", "all"), help="episodes (default val)")
    parser.add_argument("--seed", type=int, default=0, help="window choice and sampling noise (default 0)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    parser.add_argument("--output", type=output_file, default=None, help="write the report as JSON here")
    parser.add_argument("--out", type=output_folder, default=None,
                        help="folder of the pictures rollout.gif, rollout.png and fidelity.png (default RUN/v4_report)")
    parser.add_argument("--pictures", type=int, default=4,
                        help="windows of the fidelity test shown in the pictures (default 4; 0: no pictures)")
    return parser


@stop_on_interrupt
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    prog = "dmo-world-model-v4-report"
    try:
        model = load_world_model_v4(args.run, args.device)
        context = args.context or model.config.l_init
        if not 2 <= context <= model.config.context - 1:
            raise ValueError(f"--context must be in [2, {model.config.context - 1}], got {context}")
        if args.horizon < 1 or args.windows < 1:
            raise ValueError("--horizon and --windows must be at least 1")
        if args.pictures < 0:
            raise ValueError(f"--pictures must be at least 0, got {args.pictures}")
        dataset = WindowDataset(args.dataset, context=context, horizon=args.horizon, split=args.split)
        if dataset.image_shape != (model.config.image_size,) * 2 or dataset.action_size != model.config.action_size:
            raise DatasetError(f"{args.dataset} has {dataset.image_shape} frames and {dataset.action_size}-D actions; "
                               f"the model takes {model.config.image_size} px and {model.config.action_size}-D")
        if not len(dataset):
            raise DatasetError(f"no {args.split} window of {context + args.horizon} samples in {args.dataset}")
    except (DatasetError, ValueError, OSError) as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    began = time.perf_counter()
    windows = [dataset[i] for i in _pick(dataset, args.windows, args.seed)]
    report: dict[str, Any] = {"run": str(args.run), "dataset": str(args.dataset), "split": args.split}
    with torch.no_grad():
        report["fidelity"], imagined = fidelity(model, windows, context, args.horizon, args.seed)
        report["object_permanence"] = object_permanence(model, dataset, context, args.horizon, args.seed,
                                                        args.permanence_windows)
        report["reward"] = reward_auc(model, args.dataset, args.split)
    report["seconds"] = time.perf_counter() - began
    print(format_report(report))
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(report, indent=2) + "\n")
        print(f"report written to {args.output}")
    if args.pictures:
        out = args.out or args.run / "v4_report"
        gif, *others = write_pictures(out, windows, imagined, report["fidelity"], args.split, args.pictures)
        print(f"wrote {gif}, {', '.join(path.name for path in others)}")
    return 0


def format_report(report: dict[str, Any]) -> str:
    """The report as text: a per-horizon table and one line per test."""
    f = report["fidelity"]
    lines = [f"open-loop fidelity: {f['windows']} {report['split']} windows, {f['context']} real frames prefilled, "
             f"{f['horizon']} imagined steps (MSE of frames in [-1, 1])",
             "  h    model   copy-last  tokenizer-floor"]
    for h, (m, c, t) in enumerate(zip(f["mse_model"], f["mse_copy_last"], f["mse_tokenizer_floor"], strict=True), 1):
        lines.append(f"  {h:<3d} {m:.4f}  {c:.4f}     {t:.4f}")
    lines.append(f"  mean {f['mean_mse_model']:.4f}  {f['mean_mse_copy_last']:.4f}     "
                 f"{f['mean_mse_tokenizer_floor']:.4f}")
    s = f["shuffle"]
    lines.append(f"action shuffle: imagined frames change by MSE {s['frame_change_mse']:.4f}, rewards by "
                 f"{s['reward_change_abs']:.4f} (mean |reward| {s['reward_abs_mean']:.3f}); error vs real with true "
                 f"actions {s['mse_model_true_actions']:.4f}, shuffled {s['mse_model_shuffled_actions']:.4f}")
    p = report["object_permanence"]
    if p["windows"]:
        lines.append(f"object permanence: {p['windows']} windows, {p['return_frames']} frames with the cube back in "
                     "view")
        for name in ("full_context", "context_4"):
            r = p[name]
            lines.append(f"  {name:<13s} cube IoU {r['cube_iou']:.3f}, cube shown {r['cube_shown_rate']:.2f}, "
                         f"centroid error {r['centroid_distance_px']:.1f} px, MSE {r['mse_on_return_frames']:.4f}")
    else:
        lines.append("object permanence: no window where the cube leaves the view and comes back")
    r = report["reward"]
    lines.append(f"reward token: intent AUC {r['auc']:.3f}, accuracy {r.get('accuracy', float('nan')):.3f} on "
                 f"{r['frames']} frames (intent rate {r.get('intent_rate', float('nan')):.2f})")
    lines.append(f"({report['seconds']:.0f} s)")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
