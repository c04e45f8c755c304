"""How faithful are imagined rollouts? Open-loop PSNR / SSIM versus horizon on held-out windows.

For each evaluation window (context L + horizon H samples of a validation episode) the world
model starts from the L real context frames and replays the *recorded* actions open-loop for H
steps; imagined frame ``k`` is compared with real frame ``L + k``. Errors compound with the
horizon, so the per-step curve shows how far imagination can be trusted (the paper's Fig. 2a
shows such rollouts). As a yardstick the report also scores "nothing moves": the last context
frame repeated — a model that does not beat it has not learned the dynamics.

On Push-T data the report also reads the agent's and the T block's positions off real and imagined
frames by the stand-in's colours (:mod:`dmo_ros.sims.pusht_frames`): agent visibility and agent / T
centroid errors in pixels per step (control needs those, not only PSNR). On Push Cube (Go2) data it reads the
orange cube (:mod:`dmo_ros.sims.push_cube_frames`): how often the imagined frame shows the cube where the real
one does, and the cube's centroid error in pixels.

Every report also replays each window with another window's actions (same sampler noise): the imagined frames'
error against the real ones with the shuffled actions beside the true ones. A model that follows its actions
is clearly worse with the wrong ones; one that ignores them scores the same.

Outputs in ``out_dir``: ``fidelity.json`` (per-step PSNR, SSIM and MSE on [0, 1] images: means, spreads, counts;
settings), ``fidelity.png`` (error versus horizon), ``rollout.gif`` (real | imagined, a few windows stacked
vertically, upscaled with nearest neighbour), and a table on stdout.

    dmo-world-model-report runs/wm --dataset datasets/pusht --horizon 20 --windows 64
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from dmo_ros.dataset.format import DatasetError
from dmo_ros.dataset.loaders import Window, WindowDataset, collate
from dmo_ros.interrupt import stop_on_interrupt
from dmo_ros.output_paths import output_folder
from dmo_ros.training.distributed import World, resolve_device
from dmo_ros.training.rollout_pictures import write_rollout_gif
from dmo_ros.world_model.config import SamplerConfig
from dmo_ros.world_model.denoiser import Denoiser, load_world_model, to_model_range, to_uint8
from dmo_ros.world_model.imagination import WorldModelEnv

PSNR_CAP_DB = 10 * math.log10(12 * 255**2)
"""58.9 dB, the PSNR of uint8 rounding noise alone (variance 1/12 of a step): identical frames (PSNR = inf, e.g.
a robot standing still for the last-frame baseline) count as this in the report's means."""


# -- image metrics ---------------------------------------------------------------------------------


def _as_batch(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    if a.shape != b.shape:
        raise ValueError(f"images must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.ndim == 3:
        a, b = a[None], b[None]
    if a.ndim != 4:
        raise ValueError(f"images must be (C, H, W) or (N, C, H, W), got {tuple(a.shape)}")
    return a.double(), b.double()


def psnr(a: Tensor, b: Tensor, data_range: float = 1.0) -> Tensor:
    """Peak signal-to-noise ratio per image, dB: ``10 log10(range^2 / MSE)``; identical images give inf.

    ``a``, ``b``: (N, C, H, W) or (C, H, W) in [0, data_range]. Returns (N,) float64.
    """
    a, b = _as_batch(a, b)
    mse = (a - b).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(data_range**2 / mse)


def _gaussian_window(size: int, sigma: float, channels: int, like: Tensor) -> Tensor:
    x = torch.arange(size, dtype=like.dtype, device=like.device) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size)


def ssim(a: Tensor, b: Tensor, data_range: float = 1.0, window_size: int = 11, sigma: float = 1.5) -> Tensor:
    """Structural similarity per image (Wang et al. 2004): Gaussian window (11, sigma 1.5), K1 0.01, K2 0.03.

    Local means, variances and covariance are Gaussian-weighted over valid window positions, per
    channel; the SSIM map is averaged over channels and positions. Images smaller than the window
    use a window as large as the image allows. ``a``, ``b``: (N, C, H, W) or (C, H, W) in
    [0, data_range]. Returns (N,) float64; identical images give 1.
    """
    a, b = _as_batch(a, b)
    channels, height, width = a.shape[1:]
    size = min(window_size, height, width)
    window = _gaussian_window(size, sigma, channels, a)

    def local_mean(x: Tensor) -> Tensor:
        return F.conv2d(x, window, groups=channels)

    mu_a, mu_b = local_mean(a), local_mean(b)
    var_a = local_mean(a * a) - mu_a**2
    var_b = local_mean(b * b) - mu_b**2
    cov = local_mean(a * b) - mu_a * mu_b
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return ssim_map.flatten(1).mean(1)


# -- rollouts --------------------------------------------------------------------------------------


def open_loop_rollout(env: WorldModelEnv, window: Window) -> tuple[Tensor, Tensor]:
    """Replay a batch of windows' recorded actions from their real context.

    Returns (imagined, real), both (B, H, 3, h, w) float in [-1, 1], H = ``window.horizon``:
    imagined frame k follows context + actions ``window.actions[:, L - 1 : L + k]``; real is
    ``window.future_frames``.
    """
    if window.horizon < 1:
        raise ValueError("open-loop rollouts need windows with horizon >= 1")
    window = window.to(env.device)
    length = window.context
    env.reset_from_windows(window)
    imagined = env.rollout(window.actions[:, length - 1 : length - 1 + window.horizon])
    return imagined, to_model_range(window.future_frames)


def _score_positions(imagined: Tensor, real: Tensor, out: dict[str, list[np.ndarray]]) -> None:
    """Push-T stand-in frames: agent and T-block position errors (px) per step, read off the colours."""
    from dmo_ros.sims.pusht_frames import locate_agent, locate_block

    fake_u8, real_u8 = (to_uint8(x).permute(0, 1, 3, 4, 2).cpu().numpy() for x in (imagined, real))
    (fake_agent, fake_seen), (real_agent, real_seen) = locate_agent(fake_u8), locate_agent(real_u8)
    (fake_block, _), (real_block, _) = locate_block(fake_u8), locate_block(real_u8)
    out["agent_error"].append(np.where(real_seen, np.linalg.norm(fake_agent - real_agent, axis=-1), np.nan))
    out["agent_visible"].append(np.where(real_seen, fake_seen, np.nan))
    out["block_error"].append(np.linalg.norm(fake_block - real_block, axis=-1))


def _score_cube(imagined: Tensor, real: Tensor, out: dict[str, list[np.ndarray]]) -> None:
    """Push Cube stand-in frames: is the imagined cube in view where the real one is, and how far off (px)."""
    from dmo_ros.sims.push_cube_frames import locate_cube

    (fake_cube, fake_seen), (real_cube, real_seen) = locate_cube(imagined.cpu()), locate_cube(real.cpu())
    real_seen_np = real_seen.numpy()
    out["cube_visible"].append(np.where(real_seen_np, fake_seen.numpy(), np.nan))
    out["cube_phantom"].append(np.where(real_seen_np, np.nan, fake_seen.numpy()))
    out["cube_error"].append((fake_cube - real_cube).norm(dim=-1).numpy())  # NaN unless both show it


def _position_report(positions: dict[str, list[np.ndarray]]) -> dict[str, Any]:
    """Per-step means over windows (NaN-aware: an agent the model lost counts in visibility, not in the error)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return {name: np.nanmean(np.concatenate(values), axis=0).tolist() for name, values in positions.items()}


def _unit(frames: Tensor) -> Tensor:
    """[-1, 1] float -> [0, 1] float, through uint8 (what an image file would hold)."""
    return to_uint8(frames).double() / 255


def _select_windows(dataset_folder: Path, context: int, horizon: int, count: int) -> tuple[WindowDataset, list[int]]:
    dataset = WindowDataset(dataset_folder, context=context, horizon=horizon, split="val")
    if len(dataset) == 0:
        print(f"{dataset_folder}: no validation windows of {context}+{horizon} samples; using training episodes "
              "(the scores then measure fit, not generalisation)")
        dataset = WindowDataset(dataset_folder, context=context, horizon=horizon, split="train")
    if len(dataset) == 0:
        raise DatasetError(f"{dataset_folder}: no episode has {context + horizon} samples; lower the horizon")
    indices = np.unique(np.linspace(0, len(dataset) - 1, min(count, len(dataset))).round().astype(int))
    return dataset, indices.tolist()


def _plot(path: Path, report: dict[str, Any]) -> None:
    from matplotlib.figure import Figure  # no pyplot: no global backend state, renders with Agg

    steps = report["steps"]
    figure = Figure(figsize=(9, 3.5), layout="constrained")
    for axis, metric, unit in zip(figure.subplots(1, 2), ("psnr", "ssim"), ("dB", ""), strict=True):
        mean, std = np.array(report[metric]), np.array(report[f"{metric}_std"])
        axis.plot(steps, mean, "o-", label="world model")
        axis.fill_between(steps, mean - std, mean + std, alpha=0.2)
        axis.plot(steps, report["baseline_last_frame"][metric], "k--", label="last frame repeated")
        if metric == "psnr" and "psnr_shuffled_actions" in report:
            axis.plot(steps, report["psnr_shuffled_actions"], "r:", label="another window's actions")
        axis.set_xlabel("open-loop step")
        axis.set_ylabel(f"{metric.upper()} {unit}".strip())
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle(f"open-loop fidelity, {report['windows']} {report['split']} windows")
    figure.savefig(path, dpi=100)


def fidelity_report(denoiser: Denoiser, dataset_folder: Path | str, out_dir: Path | str, horizon: int = 20,
                    windows: int = 64, sampler_config: SamplerConfig | None = None,
                    device: torch.device | str | None = None, batch_size: int = 32, seed: int = 0,
                    gif_rollouts: int = 4) -> dict[str, Any]:
    """Open-loop PSNR / SSIM per horizon step on up to ``windows`` evenly spread validation windows.

    Writes ``fidelity.json``, ``fidelity.png`` and ``rollout.gif`` into ``out_dir``, prints a table,
    and returns the report (the JSON's content). Falls back to training episodes when the dataset
    has no validation window long enough (and says so in the report's ``split``).
    """
    if horizon < 1 or windows < 1 or batch_size < 1:
        raise ValueError("horizon, windows and batch_size must be at least 1")
    begin = time.perf_counter()
    dataset_folder, out_dir = Path(dataset_folder), Path(out_dir)
    sampler_config = sampler_config or denoiser.sampler_config
    cfg = denoiser.config
    dataset, indices = _select_windows(dataset_folder, cfg.context, horizon, windows)
    if dataset.image_shape != (cfg.image_size, cfg.image_size) or dataset.action_size != cfg.action_size:
        raise ValueError(f"{dataset_folder}: frames {dataset.image_shape} / {dataset.action_size} action components, "
                         f"the model expects {cfg.image_size}x{cfg.image_size} / {cfg.action_size}")
    denoiser.eval()
    device = torch.device(device) if device is not None else denoiser.device
    generator = torch.Generator(device=device).manual_seed(seed)
    env = WorldModelEnv(denoiser, sampler_config, device=device, generator=generator)

    scores: dict[str, list[Tensor]] = {"psnr": [], "ssim": [], "mse": [], "mse_shuffled": [], "psnr_shuffled": [],
                                       "base_psnr": [], "base_ssim": []}
    robot = dataset.meta.get("robot")
    positions: dict[str, list[np.ndarray]] = (
        {"agent_error": [], "agent_visible": [], "block_error": []} if robot == "pusht"
        else {"cube_visible": [], "cube_phantom": [], "cube_error": []} if robot == "go2" else {})
    shown = set(np.linspace(0, len(indices) - 1, min(gif_rollouts, len(indices))).round().astype(int).tolist())
    gif_parts: list[tuple[Tensor, Tensor, Tensor]] = []
    for first in range(0, len(indices), batch_size):
        batch_indices = indices[first : first + batch_size]
        window = collate([dataset[i] for i in batch_indices]).to(device)
        batch_seed = seed * 1_000_003 + first
        generator.manual_seed(batch_seed)
        imagined, real = open_loop_rollout(env, window)
        last = to_model_range(window.context_frames[:, -1:]).expand_as(real)
        b, h = real.shape[:2]
        fake_u, real_u, last_u = (_unit(x).flatten(0, 1) for x in (imagined, real, last))
        scores["psnr"].append(psnr(fake_u, real_u).clamp(max=PSNR_CAP_DB).view(b, h).cpu())
        scores["ssim"].append(ssim(fake_u, real_u).view(b, h).cpu())
        scores["mse"].append((fake_u - real_u).pow(2).flatten(1).mean(1).view(b, h).cpu())
        scores["base_psnr"].append(psnr(last_u, real_u).clamp(max=PSNR_CAP_DB).view(b, h).cpu())
        scores["base_ssim"].append(ssim(last_u, real_u).view(b, h).cpu())
        if len(batch_indices) > 1:  # the same windows and noise, every window driven by another one's actions
            generator.manual_seed(batch_seed)
            shuffled = replace(window, actions=window.actions.roll(1, 0))
            shuffled_imagined, _ = open_loop_rollout(env, shuffled)
            shuffled_u = _unit(shuffled_imagined).flatten(0, 1)
            scores["mse_shuffled"].append((shuffled_u - real_u).pow(2).flatten(1).mean(1).view(b, h).cpu())
            scores["psnr_shuffled"].append(psnr(shuffled_u, real_u).clamp(max=PSNR_CAP_DB).view(b, h).cpu())
        if robot == "pusht":
            _score_positions(imagined, real, positions)
        elif robot == "go2":
            _score_cube(imagined, real, positions)
        keep = [k for k in range(b) if first + k in shown]
        if keep:
            gif_parts.append((to_model_range(window.context_frames[keep]), real[keep], imagined[keep]))
    table = {name: torch.cat(values) for name, values in scores.items() if values}  # (windows, horizon)

    report = {
        "dataset": str(dataset_folder),
        "split": dataset.split,
        "windows": len(indices),
        "context": cfg.context,
        "horizon": horizon,
        "steps": list(range(1, horizon + 1)),
        "counts": [len(indices)] * horizon,
        "psnr": table["psnr"].mean(0).tolist(),
        "psnr_std": table["psnr"].std(0, correction=0).tolist(),
        "ssim": table["ssim"].mean(0).tolist(),
        "ssim_std": table["ssim"].std(0, correction=0).tolist(),
        "mse": table["mse"].mean(0).tolist(),
        **({"mse_shuffled_actions": table["mse_shuffled"].mean(0).tolist(),
            "psnr_shuffled_actions": table["psnr_shuffled"].mean(0).tolist(),
            "shuffled_over_true_mse": (table["mse_shuffled"].mean() / table["mse"].mean().clamp(min=1e-12)).item()}
           if "mse_shuffled" in table else {}),
        "psnr_mean": table["psnr"].mean().item(),
        "ssim_mean": table["ssim"].mean().item(),
        "baseline_last_frame": {"psnr": table["base_psnr"].mean(0).tolist(),
                                "ssim": table["base_ssim"].mean(0).tolist()},
        "sampler": asdict(sampler_config),
        **(_position_report(positions) if positions else {}),
        "psnr_cap_db": PSNR_CAP_DB,
        "seed": seed,
        "device": str(device),
        "seconds": time.perf_counter() - begin,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "fidelity.json").write_text(json.dumps(report, indent=1))
    _plot(out_dir / "fidelity.png", report)
    context, real, imagined = (torch.cat(parts) for parts in zip(*gif_parts, strict=True))
    write_rollout_gif(out_dir / "rollout.gif", context, real, imagined)
    print(format_table(report))
    print(f"wrote {out_dir / 'fidelity.json'}, fidelity.png, rollout.gif")
    return report


def format_table(report: dict[str, Any]) -> str:
    """The per-step table printed by :func:`fidelity_report`."""
    lines = [
        f"open-loop fidelity: {report['windows']} {report['split']} windows of {report['dataset']}, "
        f"{report['sampler']['num_steps']} sampling steps",
        f"{'step':>5} {'PSNR dB':>9} {'SSIM':>7} {'| last-frame PSNR':>18} {'SSIM':>7}",
    ]
    base = report["baseline_last_frame"]
    for k, step in enumerate(report["steps"]):
        lines.append(f"{step:>5} {report['psnr'][k]:>9.2f} {report['ssim'][k]:>7.4f} "
                     f"{'| ' + format(base['psnr'][k], '.2f'):>18} {base['ssim'][k]:>7.4f}")
    lines.append(f"{'mean':>5} {report['psnr_mean']:>9.2f} {report['ssim_mean']:>7.4f}")
    if "mse_shuffled_actions" in report:
        lines.append(f"actions shuffled between windows: MSE {np.mean(report['mse_shuffled_actions']):.5f} against "
                     f"{np.mean(report['mse']):.5f} with the true ones (x{report['shuffled_over_true_mse']:.2f})")
    if "agent_error" in report:  # Push-T: where the agent and the T are, read off the colours
        lines.append(f"{'step':>5} {'agent visible':>14} {'agent error px':>15} {'T error px':>11}")
        for k, step in enumerate(report["steps"]):
            lines.append(f"{step:>5} {report['agent_visible'][k]:>14.2f} {report['agent_error'][k]:>15.2f} "
                         f"{report['block_error'][k]:>11.2f}")
    if "cube_visible" in report:  # Push Cube: the orange cube, read off its colour
        lines.append(f"{'step':>5} {'cube kept':>10} {'cube phantom':>13} {'cube error px':>14}")
        for k, step in enumerate(report["steps"]):
            lines.append(f"{step:>5} {report['cube_visible'][k]:>10.2f} {report['cube_phantom'][k]:>13.2f} "
                         f"{report['cube_error'][k]:>14.2f}")
    return "\n".join(lines)


# -- command line ----------------------------------------------------------------------------------




@stop_on_interrupt
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="dmo-world-model-report",
        description="Open-loop fidelity of a trained world model: PSNR / SSIM versus horizon on validation "
                    "windows, a plot and a real|imagined GIF.",
    )
    parser.add_argument("run_dir", type=Path, help="training run folder of the world model (config.json + weights)")
    parser.add_argument("--dataset", type=Path, required=True, help="dataset folder to take the windows from")
    parser.add_argument("--horizon", type=int, default=20, help="open-loop steps per window (default 20 = 4 s)")
    parser.add_argument("--windows", type=int, default=64, help="windows to evaluate, evenly spread (default 64)")
    parser.add_argument("--steps", type=int, default=None,
                        help="denoising steps per frame (default: the model's sampler_steps)")
    parser.add_argument("--order", type=int, default=1, choices=(1, 2), help="1: Euler (default), 2: Heun")
    parser.add_argument("--change-threshold", type=float, default=None, metavar="LEVELS",
                        help="soft threshold on each frame's change, uint8 levels (default: the model's "
                             "sampler_change_threshold; 0: none)")
    parser.add_argument("--bf16", action="store_true",
                        help="sample under bfloat16 autocast (fast on hardware with bfloat16 matrix units, e.g. a CPU "
                             "with AMX; slow without; SamplerConfig.bf16)")
    parser.add_argument("--batch-size", type=int, default=32, help="windows rolled out together (default 32)")
    parser.add_argument("--checkpoint", default="last", help="checkpoint of the run to load (default: last)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampler's noise (default 0)")
    parser.add_argument("--out", type=output_folder, default=None, help="output folder (default RUN_DIR/fidelity)")
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:1, ...")
    args = parser.parse_args(argv)
    try:
        device = resolve_device(args.device, World())
        denoiser = load_world_model(args.run_dir, device, args.checkpoint)
        fidelity_report(denoiser, args.dataset, args.out or args.run_dir / "fidelity", horizon=args.horizon,
                        windows=args.windows,
                        sampler_config=replace(denoiser.sampler_config, order=args.order,
                                               num_steps=denoiser.config.sampler_steps if args.steps is None
                                               else args.steps,
                                               change_threshold=denoiser.config.sampler_change_threshold
                                               if args.change_threshold is None else args.change_threshold,
                                               bf16=args.bf16),
                        device=device, batch_size=args.batch_size, seed=args.seed)
    except (ValueError, FileNotFoundError, RuntimeError) as error:  # DatasetError is a ValueError
        print(f"dmo-world-model-report: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
