"""World-model gate: does the imagined agent follow the commanded action?

Measured from real validation windows of the dataset (DESIGN.md §8, issue "gates"):

- **one-step error**: mean squared error of the imagined next frame given the recorded action
  (images in [0, 1]), against repeating the last context frame (a model that ignores the action and
  the dynamics does no worse than the copy; a useful one must do better). Squared, not absolute:
  on the stand-in ~99 % of the pixels are static, and a faint ±1/255 haze over them outweighs, in
  mean |error|, an agent drawn in the right place; the mean |error| is reported beside it;
- **action response**: from each window, hold each command of {0, +x, -x, +y, -y} (``speed`` m/s)
  for ``horizon`` steps; locate the agent in every imagined frame by its colour
  (:mod:`dmo_ros.sims.pusht_frames`, evaluation-side knowledge of the stand-in); report the agent's
  visibility per step, its displacement along the command after ``direction_step`` and after
  ``horizon`` steps against the stand-in simulator's for the same held command (free space), and
  the fraction of (window, command) pairs where it moved the right way (at least a quarter of the
  simulator's displacement along the command). A command is skipped for a window where the arena
  border would stop the real agent (the simulator's displacement would not fit).

Gate (defaults): agent visible >= 95 % over steps 1..horizon, right direction >= 80 %, one-step
error <= the copy's. The simulator is used only to get the reference displacement of a held
command; the model never sees it.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dmo_ros.dataset.loaders import Window, WindowDataset, collate
from dmo_ros.gates.config_bounds import check_fields
from dmo_ros.gates.report import GateCheck, GateReport
from dmo_ros.sims.pusht import ARENA_UNITS, PushTConfig, PushTSim
from dmo_ros.sims.pusht_frames import locate_agent
from dmo_ros.world_model.config import SamplerConfig
from dmo_ros.world_model.denoiser import Denoiser, to_model_range
from dmo_ros.world_model.imagination import WorldModelEnv

COMMANDS = {"zero": (0.0, 0.0), "+x": (1.0, 0.0), "-x": (-1.0, 0.0), "+y": (0.0, 1.0), "-y": (0.0, -1.0)}
"""The held commands (unit directions in the action's [vx, vy]; the image's x right, y down)."""


@dataclass
class WorldModelGateConfig:
    """How the world-model gate measures and what it requires."""

    windows: int = 32
    """Validation windows (evenly spread) the commands are held from."""
    horizon: int = 10
    """Steps each command is held (visibility is required at every step 1..horizon)."""
    direction_step: int = 3
    """Step at which the direction of motion is judged (the simulator moves ~9 px at 64 x 64 by then)."""
    speed: float = 0.2
    """Command speed in the action's units (Push-T: m/s; the scripted operator's moves are ~0.2 m/s)."""
    min_visible: float = 0.95
    """Gate: fraction of imagined frames (steps 1..horizon, all commands) in which the agent is visible."""
    min_right_direction: float = 0.8
    """Gate: fraction of moving-command rollouts whose agent moved >= a quarter of the simulator's way."""
    batch_size: int = 32
    """Rollouts sampled at once."""
    seed: int = 0
    """Seed of the sampler's noise."""

    def __post_init__(self) -> None:
        check_fields(self, counts=("windows", "horizon", "direction_step", "batch_size"), positive=("speed",),
                     fractions=("min_visible", "min_right_direction"))


def simulator_displacement(speed: float, horizon: int, image_size: int, sim_config: PushTConfig | None = None,
                           ) -> np.ndarray:
    """(horizon,) px: how far the stand-in's agent moves in free space under a held command of ``speed``.

    Measured on the simulator itself (the block parked in a corner, the agent from rest in the middle),
    converted to pixels of an ``image_size`` frame (the camera spans the 512-unit arena).
    """
    sim = PushTSim(sim_config or PushTConfig())
    try:
        env = sim.env
        env.block.position, env.block.velocity = (60.0, 60.0), (0.0, 0.0)
        env.agent.position, env.agent.velocity = (ARENA_UNITS / 2, ARENA_UNITS / 2), (0.0, 0.0)
        env.space.reindex_shapes_for_body(env.block)
        env.space.reindex_shapes_for_body(env.agent)
        start = sim.agent_position()
        travelled = []
        for _ in range(horizon):
            sim.step(np.array([speed, 0.0]) * sim.config.control_period_s)
            travelled.append(sim.agent_position()[0] - start[0])
    finally:
        sim.close()
    return np.array(travelled) * image_size / ARENA_UNITS


def nanmean(values, axis=None) -> np.ndarray:
    """Mean ignoring NaN (frames where the agent was not found); NaN, without a warning, where all are NaN or none."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(values, axis=axis)


def gate_windows(dataset_folder: Path, context: int, count: int) -> tuple[WindowDataset, list[int]]:
    """Up to ``count`` evenly spread windows (``context`` frames + 1) of the validation split (the training
    split when it has none): the dataset and the chosen indices."""
    dataset = WindowDataset(dataset_folder, context=context, horizon=1, split="val")
    if len(dataset) == 0:
        dataset = WindowDataset(dataset_folder, context=context, horizon=1, split="train")
    if len(dataset) == 0:
        raise ValueError(f"{dataset_folder}: no episode has {context + 1} samples")
    indices = np.unique(np.linspace(0, len(dataset) - 1, min(count, len(dataset))).round().astype(int))
    return dataset, indices.tolist()


Rollout = Callable[[Window, torch.Tensor], torch.Tensor]
"""``rollout(window, actions)``: imagined frames (B, T, 3, H, W) in [-1, 1] after ``window``'s context
frames under ``actions`` (B, T, A) — the first action leads out of the last context frame."""


def denoiser_rollout(denoiser: Denoiser, sampler_config: SamplerConfig | None = None, seed: int = 0) -> Rollout:
    """The diffusion world model as a :data:`Rollout` (its batched imagination env, seeded noise)."""
    denoiser.eval()
    generator = torch.Generator(device=denoiser.device).manual_seed(seed)
    env = WorldModelEnv(denoiser, sampler_config, generator=generator)

    def rollout(window: Window, actions: torch.Tensor) -> torch.Tensor:
        env.reset_from_windows(window.to(denoiser.device))
        return env.rollout(actions.to(denoiser.device))

    return rollout


@torch.no_grad()
def world_model_gate(denoiser: Denoiser, dataset_folder: Path | str, config: WorldModelGateConfig | None = None,
                     sampler_config: SamplerConfig | None = None, picture: Path | None = None) -> GateReport:
    """Measure the world-model gate (see the module doc) on ``dataset_folder``'s validation windows.

    ``picture``: where to write the PNG of held-command rollouts (none by default).
    """
    config = config or WorldModelGateConfig()
    cfg = denoiser.config
    if cfg.action_size != 2:
        raise ValueError(f"the action-response gate knows the Push-T stand-in (2 actions), got {cfg.action_size}")
    dataset, indices = gate_windows(Path(dataset_folder), cfg.context, config.windows)
    report = action_response_gate(denoiser_rollout(denoiser, sampler_config, config.seed), dataset, indices, config,
                                  picture)
    report.metrics.update(dataset=str(dataset_folder), sampler=vars(sampler_config or denoiser.sampler_config))
    return report


@torch.no_grad()
def action_response_gate(rollout: Rollout, dataset: WindowDataset, indices: list[int],
                         config: WorldModelGateConfig | None = None, picture: Path | None = None) -> GateReport:
    """The gate's measurements for any :data:`Rollout` on ``dataset[indices]`` (horizon >= 1 windows).

    ``picture``: also write a PNG of the held-command rollouts of the first windows there (see
    :func:`write_action_response_picture`), to look at what the model imagines.
    """
    config = config or WorldModelGateConfig()
    shown: dict[str, torch.Tensor] = {}
    begin = time.perf_counter()
    context = dataset.context
    size = dataset.image_shape[0]
    reference = simulator_displacement(config.speed, config.horizon, size)
    margin_px = PushTConfig().arena_margin * size / ARENA_UNITS

    pred_error, copy_error, pred_abs, copy_abs = [], [], [], []
    visible = {name: [] for name in COMMANDS}  # (windows, horizon) bool per command
    moved = {name: [] for name in COMMANDS}  # (windows, horizon, 2) px from the start position
    usable = {name: [] for name in COMMANDS}
    start_visible = []
    for first in range(0, len(indices), config.batch_size):
        window = collate([dataset[i] for i in indices[first : first + config.batch_size]])
        b = window.frames.shape[0]
        real_next = to_model_range(window.future_frames[:, 0])
        last = to_model_range(window.context_frames[:, -1])
        predicted = rollout(window, window.actions[:, context - 1 : context])[:, 0].cpu()
        pred_error.append((predicted - real_next).square().flatten(1).mean(1).div(4).cpu())  # [0, 1] units
        copy_error.append((last - real_next).square().flatten(1).mean(1).div(4).cpu())
        pred_abs.append((predicted - real_next).abs().flatten(1).mean(1).div(2).cpu())
        copy_abs.append((last - real_next).abs().flatten(1).mean(1).div(2).cpu())
        start, seen = locate_agent(window.context_frames[:, -1].cpu().numpy())
        start_visible.append(seen)
        for name, direction in COMMANDS.items():
            command = torch.tensor(direction).mul(config.speed).expand(b, config.horizon, 2)
            frames = rollout(window, command)
            if picture is not None and not shown.get(name, torch.empty(0)).numel():
                shown[name] = torch.cat([last[:, None], frames.cpu()], dim=1)[:PICTURE_WINDOWS]
            position, seen_now = locate_agent(frames.cpu().numpy())
            visible[name].append(seen_now)
            moved[name].append(position - start[:, None])
            # Where would the real agent end up? Skip commands the arena border would stop.
            end = start + np.asarray(direction) * reference[-1]
            usable[name].append(seen & np.all((end >= margin_px) & (end <= size - 1 - margin_px), axis=1))

    visible_all = {name: np.concatenate(v) for name, v in visible.items()}
    moved_all = {name: np.concatenate(v) for name, v in moved.items()}
    usable_all = {name: np.concatenate(v) for name, v in usable.items()}
    start_seen = np.concatenate(start_visible)

    per_command, right, judged = {}, 0, 0
    k = min(config.direction_step, config.horizon) - 1
    for name, direction in COMMANDS.items():
        use = usable_all[name] & start_seen
        along = moved_all[name] @ np.asarray(direction, dtype=np.float64) if name != "zero" else None
        vis = visible_all[name][start_seen]
        entry = {"rollouts": int(use.sum()),
                 "visible_per_step": vis.mean(0).tolist() if len(vis) else [],
                 "visible": float(vis.mean()) if vis.size else float("nan"),
                 # Only the rollouts whose real agent stays clear of the arena border (diagnostic, not gated):
                 "visible_clear_of_border": float(visible_all[name][use].mean()) if use.any() else float("nan")}
        if name == "zero":
            drift = np.linalg.norm(moved_all[name][use], axis=-1)
            entry["drift_px_per_step"] = nanmean(drift, axis=0).tolist() if use.any() else []
        else:
            along_use = along[use]
            entry["along_px_per_step"] = nanmean(along_use, axis=0).tolist() if use.any() else []
            ok = np.nan_to_num(along_use[:, k], nan=-np.inf) >= 0.25 * reference[k]
            entry["right_direction"] = float(ok.mean()) if use.any() else float("nan")
            right += int(ok.sum())
            judged += int(use.sum())
        per_command[name] = entry

    visible_fraction = float(np.mean([visible_all[n][start_seen].mean() for n in COMMANDS])) if start_seen.any() \
        else float("nan")
    right_fraction = right / judged if judged else float("nan")
    one_step = float(torch.cat(pred_error).mean())
    copy = float(torch.cat(copy_error).mean())
    along_steps = nanmean([per_command[n]["along_px_per_step"] for n in ("+x", "-x", "+y", "-y")
                              if per_command[n]["along_px_per_step"]], axis=0)
    checks = [
        GateCheck("agent_visible", visible_fraction, config.min_visible, ">=",
                  f"agent visible in imagined frames, steps 1..{config.horizon}, all commands"),
        GateCheck("right_direction", right_fraction, config.min_right_direction, ">=",
                  f"held ±x/±y moved the agent >= 1/4 of the simulator's way by step {config.direction_step}"),
        GateCheck("one_step_error_vs_copy", one_step - copy, 0.0, "<=",
                  f"one-step MSE ({one_step:.5f}) minus copy-last-frame's ({copy:.5f}), images in [0, 1]"),
    ]
    metrics = {
        "split": dataset.split, "windows": len(indices),
        "agent_visible_in_real_context": float(start_seen.mean()),
        "one_step_error": one_step, "copy_last_frame_error": copy, "error_measure": "mean squared error",
        "one_step_abs_error": float(torch.cat(pred_abs).mean()),
        "copy_last_frame_abs_error": float(torch.cat(copy_abs).mean()),
        "simulator_px_per_step": reference.tolist(),
        "imagined_along_px_per_step": along_steps.tolist() if np.ndim(along_steps) else [],
        "commands": per_command, "speed": config.speed, "horizon": config.horizon,
    }
    # Which command loses the agent: the zero command (a policy at its goal) and the walls fail for different reasons.
    notes = ["agent visible per command (all rollouts / those clear of the border): " + ", ".join(
        f"{name} {_fraction(entry['visible'])} / {_fraction(entry['visible_clear_of_border'])}"
        for name, entry in per_command.items())]
    drift = per_command["zero"].get("drift_px_per_step") or []
    if drift:  # the real agent stops under a zero command; a policy settling at its goal relies on that
        def px(value: float) -> str:  # nan: the agent was found in no imagined frame of that step
            return f"{value:.2f} px" if math.isfinite(value) else "? px (the imagined agent not found)"

        notes.append(f"zero command: the imagined agent drifts {px(drift[0])} in one step, {px(drift[-1])} in "
                     f"{len(drift)} (the stand-in's agent stops within a step: ~0.25 px at 64 x 64)")
    if picture is not None and shown:
        write_action_response_picture(shown, picture)
        metrics["picture"] = str(picture)
    return GateReport("world_model", checks, metrics, time.perf_counter() - begin, notes)


def _fraction(value: float) -> str:
    return f"{value:.2f}" if math.isfinite(value) else "?"


PICTURE_WINDOWS = 3
"""Windows shown in the action-response picture."""


def write_action_response_picture(rollouts: dict[str, torch.Tensor], path: Path, scale: int = 2) -> Path:
    """A PNG grid: per window, one row per held command — the last real frame, then the imagined steps.

    ``rollouts``: command name -> (W, 1 + T, 3, H, W) frames in [-1, 1]. Rows are labelled by command;
    a grey gap separates windows. Upscaled ``scale`` x with nearest neighbour.
    """
    from PIL import Image, ImageDraw

    names = list(rollouts)
    windows, steps, _, height, width = rollouts[names[0]].shape
    label, gap = 22, 6
    canvas = Image.new("RGB", (label + steps * width * scale, windows * (len(names) * height * scale + gap)), "grey")
    draw = ImageDraw.Draw(canvas)
    for w in range(windows):
        for r, name in enumerate(names):
            top = w * (len(names) * height * scale + gap) + r * height * scale
            row = ((rollouts[name][w] + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)  # (1 + T, 3, H, W)
            strip = row.permute(2, 0, 3, 1).reshape(height, steps * width, 3).numpy()
            image = Image.fromarray(strip).resize((steps * width * scale, height * scale), Image.NEAREST)
            canvas.paste(image, (label, top))
            draw.text((2, top + height * scale // 2 - 5), name, fill="white")
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path


__all__ = ["COMMANDS", "Rollout", "WorldModelGateConfig", "action_response_gate", "denoiser_rollout", "gate_windows",
           "simulator_displacement", "world_model_gate", "write_action_response_picture"]
