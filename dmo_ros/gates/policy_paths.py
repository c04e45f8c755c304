"""The world model along a policy's own paths: does it get the walls and contact with the T right where the
policy goes?

The action-response gate (:mod:`dmo_ros.gates.world_model`) holds commands from recorded play windows, mostly
in free space. A policy trained in imagination goes elsewhere: into the arena's walls and through the T, and
there a world model that lets the agent slide along a wall or pass through the T teaches it exactly that
(docs/ladder.md, "Rung 2 with a longer-trained world model"). This check measures the model on the policy's paths:

1. **Paths.** From the evaluation's own starts (``task``, ``seed``: episode e from (seed, e), the episodes
   ``dmo-eval-policy`` runs) the policy drives the stand-in for ``steps`` steps (not stopped at success).
   Each step is classed by what really happened: **wall** (the arena border clipped the commanded target by
   at least ``wall_px``: the real agent stops short), **contact** (the T's centroid moved at least
   ``contact_px``), else **free** (the agent moved at least ``free_px``; steps where nothing moved are not
   scored).
2. **One step** (the model fed the real frames): from each real context along a path (its last ``L`` frames
   and actions; before the start, the start frame at rest, as imagined episodes start), the imagined next
   frame under the policy's real action. Per class: the error (px) of the imagined agent (or, for contact,
   the T's centroid) against the real next frame's, beside a blind baseline's — free: an agent that does not
   move; contact: a T that does not move; wall: an agent that ignores the wall (the real outcome shifted by the
   part the border clipped). At the wall, also how far the imagined agent went *into* the wall beyond the real
   one (along the clipped part): at 64 px the border leaves the agent only ~2.5 px of picture, so a model
   that ignores the wall shows up as a push of 1-2 px, not as the full clipped length. Colours locate the agent
   and the T (:mod:`dmo_ros.sims.pusht_frames`; evaluation-side).
3. **Open loop** (reported, not gated): from the start at rest, the whole path's actions; the imagined
   agent's error and visibility per step, and how far it ends from the real agent.
4. **The policy in the model** (reported, when a policy is given): the same policy from the same start, acting
   on the frames the model imagines — where it believes it goes — and how far its imagined agent ends from
   the real one.

Checks (defaults): free and contact, mean model error <= ``max_error_ratio`` x the blind baseline's; wall, mean
push into the wall <= ``max_wall_push_px`` (scaled to the frame from 64 px); the agent visible in >=
``min_visible`` of the one-step frames. A class with no step is NaN and fails: give a policy, task or episodes
that reach it. The simulator provides the paths and the step
classes; the model sees only frames and actions. Written as ``world_model_paths.json`` + ``world_model_paths.png``
(real path over imagined, per episode) by ``dmo-gate world-model-paths``; it is a report on a world model *and*
a policy, so no trainer reads it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dmo_ros.dataset.images import resize
from dmo_ros.dataset.loaders import Window
from dmo_ros.gates.local_model import RewardOfFrames
from dmo_ros.gates.report import GateCheck, GateReport
from dmo_ros.gates.world_model import Rollout, nanmean
from dmo_ros.policy.api import Policy
from dmo_ros.policy.episodes import Controller
from dmo_ros.sims.pusht import ARENA_UNITS, PushTSim
from dmo_ros.sims.pusht_frames import locate_agent, locate_block
from dmo_ros.sims.pusht_tasks import TASKS
from dmo_ros.world_model.config import SamplerConfig
from dmo_ros.world_model.denoiser import Denoiser, to_uint8

STEP_CLASSES = ("free", "wall", "contact")
"""The classes of a scored step (a step that is both wall and contact counts as contact)."""

REPORT_FILE = "world_model_paths.json"
PICTURE_FILE = "world_model_paths.png"


@dataclass
class PolicyPathConfig:
    """Which paths the world model is measured on, how steps are classed, and what the check requires."""

    task: str = "push_region"
    """The Push-T task whose starts the paths begin from (:mod:`dmo_ros.sims.pusht_tasks`)."""
    episodes: int = 16
    """Paths (evaluation starts 0..episodes-1)."""
    steps: int = 30
    """Steps of each path (6 s at 5 Hz; the policy is not stopped at success)."""
    seed: int = 10_000
    """Base seed of the starts (the evaluation's default, so the paths begin where ``dmo-eval-policy`` does)."""
    wall_px: float = 1.0
    """A step is a wall step when the border clipped at least this much (px of the frame) off the commanded target."""
    contact_px: float = 0.5
    """A step is a contact step when the T's centroid really moved at least this much (px)."""
    free_px: float = 1.0
    """A free step is scored when the real agent moved at least this much (px)."""
    max_error_ratio: float = 0.5
    """Check (free, contact steps): the model's mean error at most this fraction of the blind baseline's."""
    max_wall_push_px: float = 0.5
    """Check (wall steps): mean distance (px at 64 x 64) the imagined agent went into the wall beyond the real one."""
    min_visible: float = 0.95
    """Check: fraction of one-step imagined frames in which the agent is visible."""
    batch_size: int = 32
    """One-step contexts sampled at once."""
    aspect: str = "crop"
    """How the stand-in's camera frame is fitted to the model's size (as the dataset converter did)."""
    input_noise: float = 2.0
    """Std (uint8 levels) of the Gaussian pixel noise put on the real frames for the policy's robustness row
    (``real_noisy``: the same policy on the real frames plus noise a camera could add; 0 leaves them exact)."""

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}; choose one of {', '.join(TASKS)}")
        if self.episodes < 1 or self.steps < 1:
            raise ValueError(f"episodes and steps must be >= 1, got {self.episodes} and {self.steps}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if not (np.isfinite(self.input_noise) and self.input_noise >= 0):
            raise ValueError(f"input_noise must be a number >= 0 (uint8 levels), got {self.input_noise}")
        if self.max_error_ratio <= 0 or self.max_wall_push_px <= 0 or not 0 <= self.min_visible <= 1:
            raise ValueError("max_error_ratio and max_wall_push_px must be > 0, min_visible in [0, 1]")


@dataclass
class PolicyPaths:
    """Stand-in episodes driven by a controller, seen by the camera at the model's size."""

    frames: np.ndarray
    """(N, T + 1, H, W, 3) uint8: the start frame, then the frame after each step."""
    actions: np.ndarray
    """(N, T, A) float32: the commands (m/s) the controller gave at each step."""
    clipped_px: np.ndarray
    """(N, T, 2) float: the part of each step's commanded target the arena border clipped off (px, image axes)."""

    @property
    def image_size(self) -> int:
        return self.frames.shape[2]


def record_paths(controller: Controller, config: PolicyPathConfig, image_size: int) -> PolicyPaths:
    """Drive the stand-in from the first ``config.episodes`` evaluation starts for ``config.steps`` steps each."""
    from dmo_ros.policy.evaluate import EvalConfig

    sim = PushTSim(EvalConfig(seed=config.seed, task=config.task).sim_config())  # the evaluation's stand-in
    px_per_unit = image_size / ARENA_UNITS
    frames, actions, clipped = [], [], []
    try:
        for episode in range(config.episodes):
            if episode:
                sim.reset()
            controller.reset(sim)
            path_frames = [resize(sim.render(), image_size, image_size, config.aspect)]
            path_actions, path_clipped = [], []
            for _ in range(config.steps):
                action = np.asarray(controller.act(sim), dtype=np.float64)
                delta = action * sim.config.control_period_s
                wanted = sim.agent_position() + sim.clamp_delta(delta) * sim.units_per_m
                path_clipped.append((wanted - sim.target_for(delta)) * px_per_unit)
                sim.step(delta)
                path_actions.append(action)
                path_frames.append(resize(sim.render(), image_size, image_size, config.aspect))
            frames.append(np.stack(path_frames))
            actions.append(np.stack(path_actions))
            clipped.append(np.stack(path_clipped))
    finally:
        sim.close()
    return PolicyPaths(np.stack(frames), np.stack(actions).astype(np.float32), np.stack(clipped))


def path_windows(paths: PolicyPaths, context: int, steps: list[tuple[int, int]]) -> Window:
    """Windows (B, context + 1) of real frames ending at path step t for each (path, t) in ``steps``; before the
    start, the start frame at rest (zero actions). ``episode`` is the path, ``start`` the step t (so an oracle
    can look the true future up); the window's last action is step t's."""
    frames, actions = [], []
    action_size = paths.actions.shape[-1]
    for path, t in steps:
        index = np.arange(t - context + 1, t + 1)
        frames.append(paths.frames[path, np.maximum(index, 0)])
        acts = np.zeros((context + 1, action_size), dtype=np.float32)
        for i, k in enumerate(np.arange(t - context + 1, t + 2)):
            if 0 <= k < paths.actions.shape[1]:
                acts[i] = paths.actions[path, k]
        actions.append(acts)
    b = len(steps)
    last = np.array([paths.frames[path, min(t + 1, paths.frames.shape[1] - 1)] for path, t in steps])
    frames_t = torch.from_numpy(np.concatenate([np.stack(frames), last[:, None]], axis=1)).permute(0, 1, 4, 2, 3)
    return Window(frames=frames_t.contiguous(), actions=torch.from_numpy(np.stack(actions)),
                  intent=torch.zeros(b, context + 1, dtype=torch.bool), milestone=torch.zeros(b, context + 1),
                  episode=torch.tensor([p for p, _ in steps]), start=torch.tensor([t for _, t in steps]),
                  context=context)


def classify_steps(paths: PolicyPaths, config: PolicyPathConfig) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Each step's class (N, T) int (-1 not scored, else an index into :data:`STEP_CLASSES`) and the real
    positions located in the frames: ``agent`` and ``block`` (N, T + 1, 2) px."""
    agent, _ = locate_agent(paths.frames)
    block, _ = locate_block(paths.frames)
    agent_moved = np.linalg.norm(np.diff(agent, axis=1), axis=-1)
    block_moved = np.linalg.norm(np.diff(block, axis=1), axis=-1)
    clipped = np.linalg.norm(paths.clipped_px, axis=-1)
    kind = np.full(agent_moved.shape, -1)
    kind[np.nan_to_num(agent_moved) >= config.free_px] = STEP_CLASSES.index("free")
    kind[clipped >= config.wall_px] = STEP_CLASSES.index("wall")
    kind[np.nan_to_num(block_moved) >= config.contact_px] = STEP_CLASSES.index("contact")
    return kind, {"agent": agent, "block": block}


def _mean_px(values: np.ndarray) -> float:
    return float(nanmean(values))


def policy_actions(policy: Policy, frames: np.ndarray, executed: np.ndarray) -> np.ndarray:
    """(N, T, A) the actions ``policy`` proposes on each path's frames (N, T, H, W, 3) uint8, one episode at a
    time, its memory stepped with the ``executed`` actions (N, T, A) of the path (so only the frames differ)."""
    out = np.zeros(executed.shape, dtype=np.float32)
    for e in range(frames.shape[0]):
        policy.reset()
        for t in range(frames.shape[1]):
            out[e, t] = policy.act(frames[e, t])
            policy.observe_action(executed[e, t])
    return out


MIN_DIRECTION_COMMAND = 0.05
"""A command has a direction to compare only when it is at least this fraction of the action limit (norms): an
untrained policy's near-zero commands (1 % of the limit, which do not move the agent a pixel) all point the same
way and gave "direction cosine 0.98" for a policy that does not move."""


def _action_gap(proposed: np.ndarray, real: np.ndarray, limit: np.ndarray) -> dict[str, float]:
    """How far actions proposed on imagined frames are from those on the real frames of the same steps: mean
    |difference| over |action limit|, and the mean cosine of their directions over the steps where both commands
    are at least :data:`MIN_DIRECTION_COMMAND` of the limit (``direction_steps``; NaN, not measured, when none)."""
    scale = float(np.linalg.norm(limit))
    proposed_norm, real_norm = np.linalg.norm(proposed, axis=-1), np.linalg.norm(real, axis=-1)
    moving = (proposed_norm >= MIN_DIRECTION_COMMAND * scale) & (real_norm >= MIN_DIRECTION_COMMAND * scale)
    cosine = (proposed * real).sum(-1)[moving] / (proposed_norm * real_norm)[moving]
    return {"action_gap": float(np.linalg.norm(proposed - real, axis=-1).mean() / scale),
            "direction_cosine": float(cosine.mean()) if moving.any() else float("nan"),
            "direction_steps": int(moving.sum())}


def _cosine_text(value: float | None) -> str:
    """A direction cosine as the notes print it: two decimals, or "not measured" (no step where both commands
    move: :data:`MIN_DIRECTION_COMMAND`)."""
    return "not measured" if value is None or not np.isfinite(value) else f"{value:.2f}"


@torch.no_grad()
def policy_path_report(rollout: Rollout, paths: PolicyPaths, context: int,
                       config: PolicyPathConfig | None = None, picture: Path | None = None,
                       policy_in_model: np.ndarray | None = None, policy: Policy | None = None,
                       reward: RewardOfFrames | None = None) -> GateReport:
    """The check of the module doc for any :data:`Rollout` (``context`` frames) on recorded ``paths``;
    ``policy_in_model``: (N, T, H, W, 3) uint8 frames of the policy acting in the model from the same starts
    (:func:`imagine_policy`), reported and drawn when given. ``policy`` (the one that drove the paths): also
    report how differently it acts on the imagined frames than on the real frames of the same steps
    (:func:`policy_actions`; its input in imagination against its input on the robot). ``reward`` (a learned
    reward of frames): also report it per step on the real frames and on the imagined ones (what imagination pays
    the policy where the real frames would pay it something else)."""
    config = config or PolicyPathConfig()
    begin = time.perf_counter()
    kind, real = classify_steps(paths, config)
    n, steps = kind.shape

    # One step from every real context along the paths.
    scored = [(p, t) for p in range(n) for t in range(steps)]
    imagined = np.zeros((n, steps, paths.image_size, paths.image_size, 3), dtype=np.uint8)
    for first in range(0, len(scored), config.batch_size):
        chunk = scored[first : first + config.batch_size]
        window = path_windows(paths, context, chunk)
        frames = rollout(window, window.actions[:, context - 1 : context])[:, 0]
        pixels = to_uint8(frames.cpu()).permute(0, 2, 3, 1)
        for (p, t), image in zip(chunk, pixels.numpy(), strict=True):
            imagined[p, t] = image
    agent_pred, agent_seen = locate_agent(imagined)
    block_pred, _ = locate_block(imagined)
    agent_next, block_next = real["agent"][:, 1:], real["block"][:, 1:]

    agent_error = np.linalg.norm(agent_pred - agent_next, axis=-1)
    block_error = np.linalg.norm(block_pred - block_next, axis=-1)
    baselines = {
        "free": np.linalg.norm(real["agent"][:, :-1] - agent_next, axis=-1),  # an agent that does not move
        "wall": np.linalg.norm(paths.clipped_px, axis=-1),  # an agent that ignores the wall
        "contact": np.linalg.norm(real["block"][:, :-1] - block_next, axis=-1),  # a T that does not move
    }
    per_class: dict[str, dict[str, Any]] = {}
    checks = []
    unmeasured: list[str] = []  # checks without a scored step, said in the notes instead
    for index, name in enumerate(STEP_CLASSES):
        mask = kind == index
        error = block_error if name == "contact" else agent_error
        # An imagined frame without the agent (or the T) scores as badly as the baseline's twice.
        model = np.where(np.isnan(error), 2 * baselines[name], error)[mask]
        model_mean, baseline_mean = _mean_px(model), _mean_px(baselines[name][mask])
        ratio = model_mean / baseline_mean if mask.any() and baseline_mean > 0 else float("nan")
        per_class[name] = {"steps": int(mask.sum()), "model_error_px": model_mean,
                           "baseline_error_px": baseline_mean, "ratio": ratio,
                           "agent_visible": float(agent_seen[mask].mean()) if mask.any() else float("nan")}
        if name == "wall" and not mask.any():
            unmeasured.append("wall_push_px not measured (0 scored wall steps: the paths never reached a wall)")
            continue
        if name == "wall":
            into = paths.clipped_px / np.maximum(np.linalg.norm(paths.clipped_px, axis=-1, keepdims=True), 1e-9)
            push = _mean_px(((agent_pred - agent_next) * into).sum(-1)[mask])
            per_class[name]["push_into_wall_px"] = push
            bound = config.max_wall_push_px * paths.image_size / 64
            checks.append(GateCheck("wall_push_px", push, bound, "<=",
                                    f"imagined agent's push into the wall beyond the real one ({mask.sum()} steps; "
                                    f"error {model_mean:.2f} px, a wall-blind agent's {baseline_mean:.2f})"))
            continue
        what = {"free": "agent error in free steps vs an agent that does not move",
                "contact": "T error in contact vs a T that does not move"}[name]
        if not mask.any():  # nothing to measure is no failure: a "FAIL ... nan" read as a bad model
            unmeasured.append(f"{name}_error_ratio not measured (0 scored {name} steps: {what})")
            continue
        checks.append(GateCheck(f"{name}_error_ratio", ratio, config.max_error_ratio, "<=",
                                f"{what} ({mask.sum()} steps: {model_mean:.2f} vs {baseline_mean:.2f} px)"))
    visible = float(agent_seen.mean())
    checks.append(GateCheck("agent_visible_one_step", visible, config.min_visible, ">=",
                            "agent visible in one-step imagined frames along the paths"))

    # Open loop from the start at rest, the whole path's actions.
    open_frames = []
    for first in range(0, n, config.batch_size):
        chunk = [(p, 0) for p in range(first, min(n, first + config.batch_size))]
        window = path_windows(paths, context, chunk)
        actions = torch.from_numpy(paths.actions[first : first + len(chunk)])
        open_frames.append(rollout(window, actions).float().cpu())
    open_loop = torch.cat(open_frames)
    open_pixels = to_uint8(open_loop).permute(0, 1, 3, 4, 2).numpy()
    open_agent, open_seen = locate_agent(open_pixels)
    open_error = np.linalg.norm(open_agent - agent_next, axis=-1)
    open_per_step = nanmean(open_error, axis=0)
    haze = table_haze(paths.frames[:, 1:], open_pixels)
    metrics = {
        "task": config.task, "episodes": n, "steps": steps, "seed": config.seed,
        "classes": per_class,
        "step_class_counts": {name: int((kind == i).sum()) for i, name in enumerate(STEP_CLASSES)},
        "unscored_steps": int((kind < 0).sum()),
        "agent_visible_one_step": visible,
        "open_loop": {"agent_error_px_per_step": open_per_step.tolist(),
                      "agent_visible_per_step": open_seen.mean(0).tolist(),
                      "final_agent_error_px": _mean_px(open_error[:, -1]),
                      "final_agent_visible": float(open_seen[:, -1].mean()),
                      "table_haze_levels_per_step": haze.tolist()},
        "px_per_arena_unit": paths.image_size / ARENA_UNITS,
    }
    if policy is not None:
        limit = np.asarray(policy.action_limit, dtype=np.float64)
        real_actions = policy_actions(policy, paths.frames[:, :-1], paths.actions)
        inputs = {"replay_gap": _action_gap(real_actions, paths.actions, limit)["action_gap"]}  # ~0: deterministic
        # En route (a real command of at least half the limit) and settling (smaller: near the goal, where the
        # direction of a small command turns with every pixel) are reported apart.
        en_route = np.linalg.norm(real_actions, axis=-1) >= 0.5 * np.linalg.norm(limit)
        # The real frames plus invisible pixel noise: how much of the gap any perturbation of the input makes.
        noise = np.random.default_rng(config.seed).normal(0.0, config.input_noise, paths.frames.shape)
        noisy = np.clip(np.round(paths.frames + noise), 0, 255).astype(np.uint8)
        # What the policy sees at step t: the real start, then the frame each row puts after step t - 1.
        seen_by_row = {"one_step": np.concatenate([paths.frames[:, :1], imagined[:, :-1]], axis=1),
                       "open_loop": np.concatenate([paths.frames[:, :1], open_pixels[:, :-1]], axis=1),
                       "real_noisy": noisy[:, :-1]}
        for name, seen in seen_by_row.items():
            proposed = policy_actions(policy, seen, paths.actions)
            inputs[name] = {**_action_gap(proposed, real_actions, limit), "en_route_steps": float(en_route.mean())}
            for part, mask in (("en_route", en_route), ("settling", ~en_route)):
                gap = _action_gap(proposed[mask], real_actions[mask], limit) if mask.any() else {}
                inputs[name].update({f"{part}_{key}": value for key, value in gap.items()})
        inputs["real_noisy"]["input_noise"] = config.input_noise
        metrics["policy_on_imagined_frames"] = inputs
    if policy_in_model is not None:
        believed, believed_seen = locate_agent(policy_in_model)
        gap = np.linalg.norm(believed[:, -1] - agent_next[:, -1], axis=-1)
        metrics["policy_in_model"] = {"final_gap_px": _mean_px(gap), "final_gap_px_per_episode": gap.tolist(),
                                      "final_agent_visible": float(believed_seen[:, -1].mean())}
    early = min(4, steps - 1)  # the note's "after 5 steps"
    notes = [*unmeasured,
             f"steps: {', '.join(f'{k} {v}' for k, v in metrics['step_class_counts'].items())}, "
             f"unscored {metrics['unscored_steps']}",
             f"open loop from the start: agent error {_mean_px(open_error[:, early]):.1f} px after "
             f"{early + 1} steps, {metrics['open_loop']['final_agent_error_px']:.1f} px after {steps} "
             f"(visible {metrics['open_loop']['final_agent_visible']:.2f}); haze on the table {haze[early]:.1f} "
             f"and {haze[-1]:.1f} uint8 levels"]
    if reward is not None:
        starts = paths.frames[:, 0]
        on = {"real": paths.frames[:, 1:], "open_loop": open_pixels}
        if policy_in_model is not None:
            on["policy_in_model"] = policy_in_model
        per_step = {name: _reward_per_step(reward, frames, starts) for name, frames in on.items()}
        metrics["reward"] = {f"{name}_per_step": values.tolist() for name, values in per_step.items()}
        gap = per_step["open_loop"] - per_step["real"]
        notes.append(f"the learned reward on the open-loop frames (the real actions) minus on the real frames: "
                     f"{gap[early]:+.3f} after {early + 1} steps, {gap[-1]:+.3f} after {steps} (the real frames' "
                     f"reward goes {per_step['real'][0]:+.3f} -> {per_step['real'][-1]:+.3f})")
    if policy is not None:
        gaps = metrics["policy_on_imagined_frames"]
        notes.append("the policy on imagined frames of the real steps acts off by "
                     + ", ".join(f"{gaps[k]['action_gap']:.2f} of its limit (direction cosine "
                                 f"{_cosine_text(gaps[k]['direction_cosine'])}; en route "
                                 f"{_cosine_text(gaps[k].get('en_route_direction_cosine'))}, settling "
                                 f"{_cosine_text(gaps[k].get('settling_direction_cosine'))}) "
                                 f"{k.replace('_', '-')}" for k in ("one_step", "open_loop"))
                     + f"; on the real frames with pixel noise of std {config.input_noise:g}: "
                     f"{gaps['real_noisy']['action_gap']:.2f} (cosine "
                     f"{_cosine_text(gaps['real_noisy']['direction_cosine'])}; en route "
                     f"{_cosine_text(gaps['real_noisy'].get('en_route_direction_cosine'))}, settling "
                     f"{_cosine_text(gaps['real_noisy'].get('settling_direction_cosine'))})"
                     + ("" if any(gaps[k]["direction_steps"] for k in ("one_step", "open_loop", "real_noisy")) else
                        f" (a direction is compared only where both commands are at least "
                        f"{MIN_DIRECTION_COMMAND:.0%} of the limit: no step here has both)"))
    if policy_in_model is not None:
        notes.append(f"the policy acting in the model ends {metrics['policy_in_model']['final_gap_px']:.1f} px from "
                     f"where it really ends after {steps} steps (the agent visible in "
                     f"{metrics['policy_in_model']['final_agent_visible']:.2f} of its last imagined frames)")
    if picture is not None:
        write_paths_picture(paths, kind, open_pixels, imagined, picture, policy_in_model)
        metrics["picture"] = str(picture)
    return GateReport("world_model_paths", checks, metrics, time.perf_counter() - begin, notes)


def table_haze(real: np.ndarray, imagined: np.ndarray) -> np.ndarray:
    """(T,) mean over episodes of how far (uint8 levels, largest channel) the imagined frames (N, T, H, W, 3) stray
    from the real ones (same shape) where the real frame shows the bare table: its most common colour."""
    colours, counts = np.unique(real.reshape(-1, 3), axis=0, return_counts=True)
    table = np.all(real == colours[counts.argmax()], axis=-1)  # (N, T, H, W)
    off = np.abs(imagined.astype(np.int16) - real.astype(np.int16)).max(-1)
    return (off * table).sum((0, 2, 3)) / np.maximum(table.sum((0, 2, 3)), 1)


def _reward_per_step(reward: RewardOfFrames, frames: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """(T,) mean ``reward`` of frames (N, T, H, W, 3) uint8, each episode's start (N, H, W, 3) as its start."""
    n, steps = frames.shape[:2]
    flat = torch.from_numpy(np.ascontiguousarray(frames.reshape(n * steps, *frames.shape[2:]))).permute(0, 3, 1, 2)
    start = torch.from_numpy(np.repeat(starts, steps, axis=0)).permute(0, 3, 1, 2)
    values = torch.cat([reward(flat[i : i + 256], start[i : i + 256]).float().cpu()
                        for i in range(0, len(flat), 256)])
    return values.numpy().reshape(n, steps).mean(0)


CLASS_COLOURS = {-1: (200, 200, 200), 0: (90, 170, 90), 1: (220, 60, 60), 2: (240, 160, 40)}
"""Bar colour under each step in the picture: unscored grey, free green, wall red, contact orange."""


def write_paths_picture(paths: PolicyPaths, kind: np.ndarray, open_loop: np.ndarray, one_step: np.ndarray,
                        path: Path, policy_in_model: np.ndarray | None = None, episodes: int = 4, every: int = 2,
                        scale: int = 2) -> Path:
    """A PNG: per episode the rows — the real path, the model's one-step frames (fed the real frames), the
    model's open-loop frames (the real actions), and, given ``policy_in_model``, the policy acting in the model —
    every ``every``-th step, a coloured bar under each column for the step's class."""
    from PIL import Image, ImageDraw

    size = paths.image_size
    columns = list(range(0, kind.shape[1], every))
    shown = min(episodes, kind.shape[0])
    bar, gap, label = 4, 6, 64
    row_height = size * scale
    count = 3 if policy_in_model is None else 4
    canvas = Image.new("RGB", (label + len(columns) * size * scale, shown * (count * row_height + bar + gap)), "grey")
    draw = ImageDraw.Draw(canvas)
    for e in range(shown):
        top = e * (count * row_height + bar + gap)
        rows = [("real", paths.frames[e, 1:]), ("1 step", one_step[e]), ("open loop", open_loop[e])]
        if policy_in_model is not None:
            rows.append(("policy in\nmodel", policy_in_model[e]))
        for r, (name, frames) in enumerate(rows):
            strip = np.concatenate([frames[t] for t in columns], axis=1)
            image = Image.fromarray(strip).resize((strip.shape[1] * scale, row_height), Image.NEAREST)
            canvas.paste(image, (label, top + r * row_height))
            draw.multiline_text((2, top + r * row_height + row_height // 2 - 5), f"{e}: {name}", fill="white")
        for c, t in enumerate(columns):
            x = label + c * size * scale
            y = top + count * row_height
            draw.rectangle([x, y, x + size * scale - 1, y + bar - 1],
                           fill=CLASS_COLOURS[int(kind[e, t])])
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path


@torch.no_grad()
def imagine_policy(denoiser: Denoiser, policy: Policy, paths: PolicyPaths, seed: int = 0,
                   sampler_config: SamplerConfig | None = None) -> np.ndarray:
    """(N, T, H, W, 3) uint8: ``policy`` acting on the frames ``denoiser`` imagines (with ``sampler_config``,
    default the model's own), from each path's start at rest (one episode at a time: a policy keeps its own
    memory of the episode)."""
    from dmo_ros.world_model.imagination import WorldModelEnv

    env = WorldModelEnv(denoiser, sampler_config,
                        generator=torch.Generator(device=denoiser.device).manual_seed(seed))
    context = denoiser.config.context
    n, steps = paths.actions.shape[:2]
    out = np.zeros((n, steps, *paths.frames.shape[2:]), dtype=np.uint8)
    for e in range(n):
        env.reset_from_windows(path_windows(paths, context, [(e, 0)]))
        policy.reset()
        frame = paths.frames[e, 0]
        for t in range(steps):
            action = np.asarray(policy.act(frame), dtype=np.float32)
            policy.observe_action(action)
            imagined = env.step(torch.from_numpy(action)[None].to(denoiser.device))[0]
            frame = out[e, t] = to_uint8(imagined.cpu()).permute(1, 2, 0).numpy()
    return out


def world_model_paths_check(world_model_run: Path | str, policy_run: Path | str, out_dir: Path | str | None = None,
                            config: PolicyPathConfig | None = None, device: torch.device | str = "cpu",
                            progress: Callable[[str], None] | None = None,
                            change_threshold: float | None = None, bf16: bool = False,
                            reward_run: Path | str | None = None, goal: Path | str | None = None) -> GateReport:
    """Load a world model and a policy run, record the policy's paths, measure, and write
    ``world_model_paths.json`` and ``.png`` into ``out_dir`` (default: the policy run). ``change_threshold``
    (uint8 levels): sample the world model with that soft threshold on each frame's change instead of its own;
    ``bf16``: under bfloat16 autocast (:attr:`SamplerConfig.bf16`).
    ``reward_run`` and ``goal`` (together): also report that learned reward on the real and imagined frames."""
    from dmo_ros.gates.world_model import denoiser_rollout
    from dmo_ros.policy.api import load_policy_run
    from dmo_ros.policy.episodes import PolicyController
    from dmo_ros.world_model.denoiser import load_world_model

    config = config or PolicyPathConfig()
    denoiser = load_world_model(world_model_run, device)
    run = load_policy_run(policy_run, device)
    size = denoiser.config.image_size
    if tuple(run.policy.image_size) != (size, size):
        raise ValueError(f"{policy_run} sees {run.policy.image_size} frames, {world_model_run} imagines {size} x "
                         f"{size}: not the same camera")
    if denoiser.config.action_size != 2:
        raise ValueError(f"{world_model_run}: the paths check knows the Push-T stand-in (2 actions), got "
                         f"{denoiser.config.action_size}")
    if progress:
        progress(f"driving the stand-in with {policy_run} from {config.episodes} {config.task} starts")
    paths = record_paths(PolicyController(run.policy, run.aspect), config, size)
    if progress:
        progress(f"imagining {config.episodes * config.steps} one-step frames and {config.episodes} open-loop paths")
    if progress:
        progress(f"the policy acting in the world model from the same {config.episodes} starts")
    if (reward_run is None) != (goal is None):
        raise ValueError("the reward on the paths needs both a reward run and its goal picture")
    reward = None
    if reward_run is not None:
        from dmo_ros.local_model.train import goal_reward_function

        reward = goal_reward_function(Path(reward_run), Path(goal), size, torch.device(device))
    sampler = denoiser.sampler_with(change_threshold, bf16=bf16)
    believed = imagine_policy(denoiser, run.policy, paths, sampler_config=sampler)
    out = Path(out_dir or policy_run)
    report = policy_path_report(denoiser_rollout(denoiser, sampler), paths, denoiser.config.context, config,
                                out / PICTURE_FILE, believed, run.policy, reward)
    report.metrics.update(world_model=str(world_model_run), policy=str(policy_run), sampler=asdict(sampler))
    out.mkdir(parents=True, exist_ok=True)
    (out / REPORT_FILE).write_text(json.dumps(report.to_dict(), indent=1, allow_nan=False))
    return report


__all__ = ["PICTURE_FILE", "REPORT_FILE", "STEP_CLASSES", "PolicyPathConfig", "PolicyPaths", "classify_steps",
           "imagine_policy", "path_windows", "policy_actions", "policy_path_report", "record_paths",
           "world_model_paths_check", "write_paths_picture"]
