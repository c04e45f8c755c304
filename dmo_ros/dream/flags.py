"""``dmo-dream-flags``: is the hallucination flag worth anything? Measured on validation windows.

For each window the world model replays the recorded actions open-loop from the real context (as the
fidelity report does), sampling every next frame from K noises (:mod:`dmo_ros.dream.rollouts`). Per window
and step it records the flag (the spread of the K samples: the mean and the 99th percentile of the
per-pixel variance) and the real error (MSE of the imagined frame against the recorded one, pixels in
[0, 1]). Two questions, answered with Spearman rank correlations:

1. Does the flag rise with the horizon? ``rho(step, spread)`` over every (window, step).
2. Does it say where the model is wrong? ``rho(spread, error)`` over every (window, step) — pooled, which
   the horizon helps (both grow with it) — and *within* each step (windows ranked at a fixed horizon,
   averaged over the steps): the part the horizon alone does not explain.

Outputs in ``--out`` (default ``RUN_DIR/dream_flags``): ``flags.json`` (per-step means, the correlations,
settings) and ``flags.png`` (flag and error versus horizon), and a table on stdout.

    dmo-dream-flags runs/wm --dataset datasets/pusht --horizon 10 --windows 16 --seeds 4
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dmo_ros.dream.rollouts import DreamConfig, Dreamer, RecordedActions, StartCatalog, summarise_spread
from dmo_ros.interrupt import stop_on_interrupt
from dmo_ros.output_paths import output_folder
from dmo_ros.reward.evaluate import spearman
from dmo_ros.world_model.denoiser import Denoiser, load_world_model


def _rho(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64).reshape(-1), np.asarray(b, np.float64).reshape(-1)
    keep = np.isfinite(a) & np.isfinite(b)
    return spearman(a[keep], b[keep]) if keep.sum() >= 3 else math.nan


def _nanmean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def measure_flags(denoiser: Denoiser, dataset: Path | str, horizon: int = 10, windows: int = 16, seeds: int = 4,
                  batch_size: int = 8, seed: int = 0, sampling_steps: int = 0,
                  device: torch.device | str | None = None) -> dict[str, Any]:
    """The flag-versus-horizon and flag-versus-error measurement on up to ``windows`` evenly spread validation
    windows (all episodes when the dataset has no long enough validation one); returns the report."""
    if seeds < 2:
        raise ValueError("the flag needs at least 2 seeds")
    begin = time.perf_counter()
    catalog = StartCatalog(dataset, context=denoiser.config.context, horizon=horizon)
    picks = np.unique(np.linspace(0, len(catalog) - 1, min(windows, len(catalog))).round().astype(int)).tolist()
    dreamer = Dreamer(denoiser, DreamConfig(horizon=horizon, seeds=seeds, seed=seed, sampling_steps=sampling_steps),
                      device=device)
    spreads: dict[str, list[np.ndarray]] = {"mean": [], "p99": []}
    errors: list[np.ndarray] = []
    for first in range(0, len(picks), batch_size):
        batch = picks[first : first + batch_size]
        starts = [catalog.start(index=i) for i in batch]
        start = type(starts[0])(
            frames=torch.cat([s.frames for s in starts]), actions=torch.cat([s.actions for s in starts]),
            future_frames=torch.cat([s.future_frames for s in starts]),
            future_actions=torch.cat([s.future_actions for s in starts]),
            first_frames=torch.cat([s.first_frames for s in starts]), labels=[s.labels[0] for s in starts])
        dreamer.start(start, RecordedActions())
        rows: dict[str, list[torch.Tensor]] = {"mean": [], "p99": [], "error": []}
        for step in dreamer.rollout():
            rows["mean"].append(summarise_spread(step.spread_map, "mean"))
            rows["p99"].append(summarise_spread(step.spread_map, "p99"))
            fake, real = step.imagined.double() / 255, step.real.double() / 255
            rows["error"].append((fake - real).pow(2).flatten(1).mean(1))
        for name in ("mean", "p99"):
            spreads[name].append(torch.stack(rows[name], dim=1).double().numpy())
        errors.append(torch.stack(rows["error"], dim=1).numpy())
        print(f"  {first + len(batch)}/{len(picks)} windows", flush=True)
    error = np.concatenate(errors)  # (windows, horizon)
    steps = np.broadcast_to(np.arange(1, horizon + 1), error.shape)
    report: dict[str, Any] = {
        "dataset": str(dataset), "split": catalog.split, "windows": len(picks), "horizon": horizon, "seeds": seeds,
        "sampling_steps": sampling_steps or denoiser.config.sampler_steps, "seed": seed,
        "steps": list(range(1, horizon + 1)),
        "error": error.mean(0).tolist(),
        "rho_step_error": _rho(steps, error),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for name, parts in spreads.items():
            spread = np.concatenate(parts)
            report[f"spread_{name}"] = spread.mean(0).tolist()
            report[f"rho_step_spread_{name}"] = _rho(steps, spread)
            report[f"rho_spread_error_{name}"] = _rho(spread, error)
            within = [_rho(spread[:, k], error[:, k]) for k in range(horizon)]
            report[f"rho_spread_error_within_step_{name}"] = _nanmean(within)
            report[f"rho_spread_error_per_step_{name}"] = within
    report["seconds"] = time.perf_counter() - begin
    return report


def format_report(report: dict[str, Any]) -> str:
    lines = [f"hallucination flag: {report['windows']} {report['split']} windows of {report['dataset']}, "
             f"{report['seeds']} seeds, {report['sampling_steps']} sampling steps",
             f"{'step':>5} {'spread mean':>12} {'spread p99':>11} {'real MSE':>9}"]
    for k, step in enumerate(report["steps"]):
        lines.append(f"{step:>5} {report['spread_mean'][k]:>12.3g} {report['spread_p99'][k]:>11.3g} "
                     f"{report['error'][k]:>9.3g}")
    for name in ("mean", "p99"):
        lines.append(f"spread {name}: Spearman with the step {report[f'rho_step_spread_{name}']:+.3f}; with the real "
                     f"error {report[f'rho_spread_error_{name}']:+.3f} pooled, "
                     f"{report[f'rho_spread_error_within_step_{name}']:+.3f} within a step (mean over steps)")
    lines.append(f"(real error vs step: {report['rho_step_error']:+.3f})")
    return "\n".join(lines)


def plot_report(report: dict[str, Any], path: Path) -> None:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9, 3.5), layout="constrained")
    left, right = figure.subplots(1, 2)
    left.plot(report["steps"], report["spread_mean"], "o-", label="spread (mean variance)")
    left.plot(report["steps"], report["spread_p99"], "s-", label="spread (p99 variance)")
    left.set_xlabel("open-loop step")
    left.set_ylabel("variance over seeds")
    left.set_yscale("log")
    left.legend()
    left.grid(alpha=0.3)
    right.plot(report["steps"], report["error"], "o-", color="C3")
    right.set_xlabel("open-loop step")
    right.set_ylabel("real MSE")
    right.grid(alpha=0.3)
    figure.suptitle(f"hallucination flag, {report['windows']} windows, {report['seeds']} seeds: Spearman with the "
                    f"real error {report['rho_spread_error_mean']:+.2f} (pooled)")
    figure.savefig(path, dpi=100)


@stop_on_interrupt
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="dmo-dream-flags",
        description="Measure the dream node's hallucination flag on validation windows: its rise with the horizon "
                    "and its Spearman correlation with the real open-loop error.")
    parser.add_argument("run_dir", type=Path, help="world-model run folder (config.json + safetensors weights)")
    parser.add_argument("--dataset", type=Path, required=True, help="dataset folder the windows come from")
    parser.add_argument("--horizon", type=int, default=10, help="open-loop steps per window (default 10 = 2 s)")
    parser.add_argument("--windows", type=int, default=16, help="windows, evenly spread (default 16)")
    parser.add_argument("--seeds", type=int, default=4, help="K, samples per frame (default 4)")
    parser.add_argument("--sampling-steps", type=int, default=0,
                        help="denoising steps per frame (default 0: the model's own sampler_steps)")
    parser.add_argument("--batch-size", type=int, default=8, help="windows rolled out together (default 8)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampler's noise (default 0)")
    parser.add_argument("--checkpoint", default="last", help="checkpoint of the run (default: last)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--out", type=output_folder, default=None, help="output folder (default RUN_DIR/dream_flags)")
    args = parser.parse_args(argv)
    try:
        denoiser = load_world_model(args.run_dir, args.device, args.checkpoint)
        report = measure_flags(denoiser, args.dataset, args.horizon, args.windows, args.seeds, args.batch_size,
                               args.seed, args.sampling_steps, args.device)
    except (ValueError, FileNotFoundError, RuntimeError) as error:  # DatasetError and CheckpointError included
        print(f"dmo-dream-flags: error: {error}", file=sys.stderr)
        return 2
    out = args.out or args.run_dir / "dream_flags"
    out.mkdir(parents=True, exist_ok=True)
    (out / "flags.json").write_text(json.dumps(report, indent=1))
    plot_report(report, out / "flags.png")
    print(format_report(report))
    print(f"wrote {out / 'flags.json'} and flags.png ({report['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
