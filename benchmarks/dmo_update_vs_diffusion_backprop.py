"""One DMO-SAPO policy update against backpropagating the same objective through the diffusion sampler.

The paper's claim (DMO vs DreamerV3-style policy learning): differentiating a policy's return
through a diffusion world model's sampler is too costly, DMO avoids it. This command measures
both on the same world model, batch B, horizon H, actor / critics and start state:

- ``dmo``: one :meth:`LatentSAPO.train_epoch` with ``finetune_steps=0`` (no local-model
  fine-tuning): H world-model steps under ``no_grad``, the local posteriors of the frames,
  :func:`decoupled_step` swaps, the local reward head's rewards, :meth:`SAPOLearner.update`
  (actor backward through the local RSSM, alpha, critics), the replay-buffer insert.
- ``backprop``: the same :meth:`SAPOLearner.update` on a trajectory whose every step is
  differentiable end to end: features = the local RSSM posterior of the current frame (the
  local model frozen, the graph through its input kept), ``a ~ pi(features)`` (rsample, scaled
  by the action limit), the next frame *sampled by the world model with the autograd graph
  kept* (:class:`WorldModelEnv` with ``grad=True``, also through the context frames and
  actions it feeds back), reward = :class:`GoalReward` (``grad=True``) of that frame (the
  global reward: the only differentiable reward on images), the target critics' terminal
  value. The actor's gradient runs back through every denoiser call of every step: what
  DreamerV3 would do with a diffusion world model. World, reward and local models are frozen
  (the actor update trains the actor only, as DreamerV3's actor loss).

Measured per variant: wall time per update (median of ``--repeats`` after ``--warmup``
updates) and peak memory. On CUDA: ``max_memory_allocated`` above the memory allocated after
model construction. On the CPU: the growth of the process's resident set (RSS) high-water mark
over the RSS after model construction (Linux: ``VmHWM`` of ``/proc/self/status``, reset through
``/proc/self/clear_refs``; elsewhere ``ru_maxrss``); RSS includes the allocator's caching, so
it over-states live tensors somewhat, alike for both. Each variant runs in its own process
(``--variant dmo|backprop``), so one's memory does not hide the other's; the parent prints both
side by side with the ratios (memory: backprop / DMO, time: backprop / DMO) and whether the
goals (>= 10x less memory, >= 5x faster) are met. A run that exhausts memory is reported as
such (its memory ratio is then a lower bound).

What to expect: backprop keeps the activations of every denoiser call of every step, so its
memory grows linearly with H x B, while DMO's holds only the local RSSM's graph and the
transient activations of one world-model step (nearly flat in H); the memory ratio grows with H
and B (2 CPU cores, cpu preset, B = 16: 18x at H = 4, 58x at H = 16; about 440 MiB per imagined
step against 2 MiB). Time is another matter: both variants pay the same H x B x 3 denoiser
forward calls, which dominate DMO's update, and backprop adds one backward pass through them
(about a forward's worth: the frozen weights need no gradients), so the time ratio stays near
2x (1.6-1.9x there) as long as backprop fits in memory; it grows only where memory forces
backprop into smaller batches or recomputation.

Untrained weights by default (the cost does not depend on the weights; synthetic start windows
and goal, no files needed); ``--world-model RUN --reward-run RUN --local-model RUN --dataset D
--goal G`` use trained ones. The sampler is the world model's default (DIAMOND's 3 Euler steps).

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/dmo_update_vs_diffusion_backprop.py --preset cpu \\
        --batch-size 16 --horizon 16 --repeats 3
    .venv/bin/python benchmarks/dmo_update_vs_diffusion_backprop.py --preset cpu --horizons 4 8 16
    .venv/bin/python benchmarks/dmo_update_vs_diffusion_backprop.py --device cuda --preset gpu --batch-size 32
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dmo_ros.dataset.loaders import Window
from dmo_ros.dmo.algorithm import DMOConfig, LatentSAPO
from dmo_ros.dmo.imagined_env import ImaginedEnv, StartWindows
from dmo_ros.dmo.sapo import PRESETS as SAPO_PRESETS
from dmo_ros.dmo.sapo import SAPOConfig, SAPOLearner, Trajectory
from dmo_ros.local_model.config import LocalModelConfig
from dmo_ros.local_model.model import LocalModel
from dmo_ros.local_model.rssm import RSSMState, features
from dmo_ros.reward.config import RewardConfig
from dmo_ros.reward.energy import EnergyNet, GoalReward
from dmo_ros.world_model.config import SamplerConfig, WorldModelConfig
from dmo_ros.world_model.denoiser import Denoiser
from dmo_ros.world_model.imagination import WorldModelEnv

VARIANTS = ("dmo", "backprop")
"""The two updates compared: DMO-SAPO's, and backpropagation through the diffusion sampler."""

MEMORY_GOAL = 10.0
"""The issue's goal: DMO needs at least this many times less memory than backprop through the sampler."""

TIME_GOAL = 5.0
"""The issue's goal: DMO's update is at least this many times faster."""

PUSHT_ACTION_LIMIT = (0.25, 0.25)
"""Action limit of the untrained default (Push-T: end-effector velocity, |v| <= 0.25 m/s per component)."""


# -- the setting ---------------------------------------------------------------------------------


@dataclass
class TrainedRuns:
    """Trained inputs to measure with instead of untrained models (all five together)."""

    world_model: Path
    """Run folder of dmo-train-world-model."""
    reward_run: Path
    """Run folder of dmo-train-reward."""
    local_model: Path
    """Run folder of dmo-train-local-model."""
    dataset: Path
    """Dataset folder (or a folder of datasets) the start windows and the action limit come from."""
    goal: Path
    """Goal picture (PNG/JPEG/.npy)."""


@dataclass
class Setting:
    """What one measurement runs: model sizes, B, H, repeats, device."""

    preset: str = "cpu"
    """Size preset (tiny / cpu / gpu) of the world, reward and local models (untrained default) and of SAPO."""
    batch_size: int = 16
    """B, imagined episodes per update (the same for both variants)."""
    horizon: int = 16
    """H, imagined steps per update."""
    image_size: int = 64
    """Frame side in pixels of the untrained models (trained runs bring their own)."""
    repeats: int = 3
    """Timed updates; the reported time is their median."""
    warmup: int = 1
    """Untimed updates first (lazy allocations, optimiser states); their memory counts towards the peak."""
    device: str = "cpu"
    """Torch device."""
    seed: int = 0
    """Seeds the models' weights, the start windows and the sampler's noise (the same for both variants)."""
    runs: TrainedRuns | None = field(default=None)
    """Trained inputs; None: untrained models of the preset, synthetic start windows and goal."""

    def __post_init__(self) -> None:
        if self.preset not in SAPO_PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; valid presets: {', '.join(SAPO_PRESETS)}")
        for name in ("batch_size", "horizon", "repeats", "image_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.warmup < 0:
            raise ValueError(f"warmup must be >= 0, got {self.warmup}")


# -- the models and the start state --------------------------------------------------------------


class SyntheticStarts:
    """Start windows made in memory (random frames and actions): :class:`StartWindows`' interface, no dataset.

    Every call returns the same windows (seeded), so both variants start from the same state.
    """

    def __init__(self, context: int, image_size: int, action_limit: np.ndarray, seed: int = 0) -> None:
        self.context = int(context)
        self.image_size = int(image_size)
        self.action_limit = torch.as_tensor(action_limit, dtype=torch.float32)
        self.seed = seed

    def __len__(self) -> int:
        return 1

    def sample(self, batch_size: int) -> Window:
        generator = torch.Generator().manual_seed(self.seed)
        length, size, actions = self.context, self.image_size, len(self.action_limit)
        frames = torch.randint(0, 256, (batch_size, length, 3, size, size), dtype=torch.uint8, generator=generator)
        unit = torch.rand(batch_size, length, actions, generator=generator) * 2.0 - 1.0
        return Window(frames=frames, actions=unit * self.action_limit,
                      intent=torch.zeros(batch_size, length, dtype=torch.bool),
                      milestone=torch.zeros(batch_size, length), episode=torch.zeros(batch_size, dtype=torch.int64),
                      start=torch.zeros(batch_size, dtype=torch.int64), context=length)

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


@dataclass
class Models:
    """Everything both variants share: the three models, the goal, where episodes start, the action limit."""

    world_model: Denoiser
    reward_model: EnergyNet
    local_model: LocalModel
    goal: np.ndarray
    """(H, W, 3) uint8 goal picture at the reward model's size."""
    starts: StartWindows | SyntheticStarts
    action_limit: np.ndarray
    """(A,) the largest |action| per component (the actor's [-1, 1] output is scaled by it)."""


def wake_zero_layers(model: torch.nn.Module, std: float = 0.02) -> None:
    """Small random weights for the weight matrices initialised to zero (DIAMOND's identity-start output layers,
    the reward head's zero output).

    Why: a freshly built world model ignores its actions (its output layer is zero), so no gradient would reach
    the actor through the sampler at all; with every path live, the untrained models carry gradients as trained
    ones do. The cost of an update does not change (autograd runs the same operations either way).
    """
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() >= 2 and not parameter.any():
                parameter.normal_(0.0, std)


def build_models(setting: Setting) -> Models:
    """Untrained models of the preset with synthetic starts and goal, or the trained runs of ``setting.runs``."""
    device = torch.device(setting.device)
    if setting.runs is None:
        limit = np.asarray(PUSHT_ACTION_LIMIT, dtype=np.float64)
        size = setting.image_size
        torch.manual_seed(setting.seed)
        world_model = Denoiser(WorldModelConfig.preset(setting.preset, len(limit), limit.tolist(), image_size=size))
        reward_model = EnergyNet(RewardConfig.preset(setting.preset, image_size=size))
        local_model = LocalModel(LocalModelConfig.preset(setting.preset, len(limit), limit.tolist(), image_size=size))
        for model in (world_model, reward_model, local_model):
            wake_zero_layers(model)
        goal = np.random.default_rng(setting.seed).integers(0, 256, size=(size, size, 3), dtype=np.uint8)
        starts: StartWindows | SyntheticStarts = SyntheticStarts(world_model.config.context, size, limit, setting.seed)
    else:
        from dmo_ros.dataset.loaders import action_statistics, find_datasets
        from dmo_ros.local_model.model import load_local_model
        from dmo_ros.reward.energy import load_reward_model
        from dmo_ros.reward.goal_image import load_goal_image
        from dmo_ros.world_model.denoiser import load_world_model

        runs = setting.runs
        folders = find_datasets([runs.dataset])
        limit = np.maximum(np.asarray(action_statistics(folders)["max_abs"], dtype=np.float64), 1e-3)
        world_model = load_world_model(runs.world_model, device)
        reward_model = load_reward_model(runs.reward_run, device)
        local_model = load_local_model(runs.local_model, device)
        size = reward_model.config.image_size
        goal = load_goal_image(runs.goal, size=(size, size))
        starts = StartWindows(folders, context=world_model.config.context, split="train", seed=setting.seed)
        if world_model.config.image_size != local_model.config.image_size:
            raise ValueError(f"the world model makes {world_model.config.image_size} px frames, the local model "
                             f"takes {local_model.config.image_size} px")
    return Models(world_model.to(device).eval(), reward_model.to(device).eval(), local_model.to(device).eval(),
                  goal, starts, limit)


def dmo_algorithm(models: Models, setting: Setting) -> LatentSAPO:
    """DMO-SAPO as :mod:`dmo_ros.dmo.train` builds it, with no local fine-tuning (``finetune_steps=0``).

    Episodes never restart during the measurement (``episode_steps`` beyond the updates made), and the replay
    buffer holds one epoch (it is only read by the fine-tuning, which is off).
    """
    horizon, batch = setting.horizon, setting.batch_size
    sapo = SAPOConfig.preset(setting.preset, horizon=horizon)
    config = DMOConfig.preset(setting.preset, batch_size=batch, finetune_steps=0, finetune_length=2,
                              replay_capacity=batch, episode_steps=horizon * (setting.warmup + setting.repeats + 1))
    generator = torch.Generator(device=setting.device).manual_seed(setting.seed)
    env = ImaginedEnv(models.world_model, models.reward_model, models.goal, models.starts, batch,
                      device=setting.device, generator=generator)
    torch.manual_seed(setting.seed + 1)  # the same initial actor and critics as the backprop variant's
    return LatentSAPO("dmo", models.local_model, models.starts, config, sapo, models.action_limit, env,
                      setting.device, setting.seed)


class DiffusionBackprop:
    """The SAPO update with the actor's gradient backpropagated through the diffusion world model's sampler.

    See the module doc. Args:
        models: the shared models (moved to ``device``).
        sapo: the learner's settings (``horizon`` is H).
        batch_size: B.
        device: where everything runs.
        seed: the sampler's noise (and, before the learner is built, the actor's and critics' initial weights).
        freeze_models: no parameter gradients for the world, reward and local models (the update trains the actor,
            alpha and the critics only); False leaves their ``requires_grad`` as it is (tests check the graph).
        sample_latent: sample each posterior (True) or take each categorical's mode (False, DMO's default).
    """

    def __init__(self, models: Models, sapo: SAPOConfig, batch_size: int, device: torch.device | str = "cpu",
                 seed: int = 0, freeze_models: bool = True, sample_latent: bool = False) -> None:
        self.device = torch.device(device)
        self.models = models
        self.local = models.local_model.to(self.device).eval()
        if freeze_models:
            for model in (models.world_model, models.reward_model, self.local):
                model.requires_grad_(False)
        self.batch_size = int(batch_size)
        self.horizon = sapo.horizon
        self.sample_latent = sample_latent
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.world = WorldModelEnv(models.world_model, SamplerConfig(), device=self.device, grad=True,
                                   generator=self.generator)
        self.reward = GoalReward(models.reward_model.to(self.device), models.goal, grad=True)
        self.start = models.starts.sample(self.batch_size)
        self._limit = torch.as_tensor(models.action_limit, dtype=torch.float32, device=self.device)
        torch.manual_seed(seed + 1)  # the same initial actor and critics as the DMO variant's
        self.learner = SAPOLearner(self.local.config.feature_size, len(models.action_limit), sapo).to(self.device)

    def _start_state(self) -> RSSMState:
        """Reset the world model to the start windows; the RSSM's filter over their context (no gradient)."""
        first = self.world.reset_from_windows(self.start)
        self.reward.set_start(first)
        frames, actions = self.world.frames, self.world.actions
        with torch.no_grad():
            padded = torch.cat([actions, actions.new_zeros(actions.shape[0], 1, actions.shape[-1])], dim=1)
            posteriors, _ = self.local.observe(frames, padded, sample=self.sample_latent)
        return posteriors.at(-1)

    def rollout(self) -> Trajectory:
        """H differentiable steps from the start windows: the graph runs through every denoiser call."""
        state = self._start_state()
        states, rewards, entropies = [state], [], []
        for _ in range(self.horizon):
            action, log_prob = self.learner.actor(features(state))
            action = action * self._limit
            frame = self.world.step(action)  # sampled with the graph kept (WorldModelEnv(grad=True))
            rewards.append(self.reward(frame))
            entropies.append(-log_prob)
            prior = self.local.rssm.prior_step(state, action, sample=False)
            state = self.local.rssm.posterior(prior, self.local.encode(frame), sample=self.sample_latent)
            states.append(state)
        trajectory_states = RSSMState.stack(states, dim=0)  # (H + 1, B, ...)
        return Trajectory(features=features(trajectory_states), rewards=torch.stack(rewards),
                          entropies=torch.stack(entropies))

    def update(self) -> dict[str, float]:
        """One SAPO step (actor through the sampler, alpha, critics) on a fresh differentiable rollout."""
        logs = self.learner.update(self.rollout())
        self.world.reset_from_windows(self.start)  # drop the rollout's frames (and with them its graph)
        return logs


def make_update(variant: str, models: Models, setting: Setting) -> Callable[[], dict[str, float]]:
    """The update of ``variant`` ("dmo" or "backprop"), ready to be called repeatedly."""
    if variant == "dmo":
        return dmo_algorithm(models, setting).train_epoch
    if variant == "backprop":
        sapo = SAPOConfig.preset(setting.preset, horizon=setting.horizon)
        return DiffusionBackprop(models, sapo, setting.batch_size, setting.device, setting.seed).update
    raise ValueError(f"unknown variant {variant!r}; valid variants: {', '.join(VARIANTS)}")


# -- measuring -----------------------------------------------------------------------------------


def _proc_status_kib(key: str) -> int | None:
    """A ``kB`` field (VmRSS, VmHWM) of /proc/self/status, or None where there is none (not Linux)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _max_rss_bytes() -> int:
    """ru_maxrss in bytes (kilobytes on Linux, bytes on macOS)."""
    value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(value) if sys.platform == "darwin" else int(value) * 1024


class PeakMemory:
    """Peak memory above a baseline taken at :meth:`start` (see the module doc for what is counted where)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.baseline = 0
        self.metric = ""

    def start(self) -> None:
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.baseline = torch.cuda.memory_allocated(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.metric = "CUDA max_memory_allocated above the allocation after model construction"
            return
        try:  # Linux: writing 5 resets the RSS high-water mark (VmHWM) to the current RSS
            with open("/proc/self/clear_refs", "w") as clear_refs:
                clear_refs.write("5")
            reset = True
        except OSError:
            reset = False
        current = _proc_status_kib("VmRSS")
        if reset and current is not None:
            self.baseline = current * 1024
            self.metric = "RSS high-water mark (VmHWM, reset after model construction) above the RSS then"
        else:  # no reset: a high-water mark set before (construction, a parent's fork) may hide a smaller peak
            self.baseline = _max_rss_bytes()
            self.metric = "ru_maxrss growth over its value after model construction"

    def peak(self) -> int:
        """Bytes of the peak above the baseline so far."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            return max(0, torch.cuda.max_memory_allocated(self.device) - self.baseline)
        high_water = _proc_status_kib("VmHWM") if self.metric.startswith("RSS") else None
        peak = high_water * 1024 if high_water is not None else _max_rss_bytes()
        return max(0, peak - self.baseline)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _is_out_of_memory(error: BaseException) -> bool:
    if isinstance(error, MemoryError) or type(error).__name__ == "OutOfMemoryError":
        return True
    return isinstance(error, RuntimeError) and ("out of memory" in str(error) or "can't allocate" in str(error))


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    return f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def measure(variant: str, setting: Setting) -> dict[str, Any]:
    """Time and peak memory of ``variant``'s update in this process: a JSON-able record.

    ``status`` is "ok", or "out_of_memory" (then ``peak_memory_bytes`` is what was reached before failing).
    """
    device = torch.device(setting.device)
    models = build_models(setting)
    update = make_update(variant, models, setting)
    record: dict[str, Any] = {
        "variant": variant, "preset": setting.preset, "batch_size": setting.batch_size, "horizon": setting.horizon,
        "image_size": models.world_model.config.image_size, "device": str(device), "device_name": device_name(device),
        "torch": torch.__version__, "sampler_steps": SamplerConfig().num_steps, "repeats": setting.repeats,
        "warmup": setting.warmup, "trained": setting.runs is not None,
        "parameters": {"world_model": sum(p.numel() for p in models.world_model.parameters()),
                       "local_model": models.local_model.num_parameters,
                       "reward_model": sum(p.numel() for p in models.reward_model.parameters())},
    }
    memory = PeakMemory(device)
    memory.start()
    times: list[float] = []
    try:
        for _ in range(setting.warmup):
            update()
        for _ in range(setting.repeats):
            _synchronize(device)
            begin = time.perf_counter()
            update()
            _synchronize(device)
            times.append(time.perf_counter() - begin)
    except (RuntimeError, MemoryError) as error:
        if not _is_out_of_memory(error):
            raise
        record.update(status="out_of_memory", error=str(error).splitlines()[0][:300], times_s=times,
                      time_s=None, peak_memory_bytes=memory.peak(), memory_metric=memory.metric)
        return record
    record.update(status="ok", times_s=times, time_s=statistics.median(times), peak_memory_bytes=memory.peak(),
                  memory_metric=memory.metric)
    return record


# -- the parent: one process per variant, a table ------------------------------------------------


def _child_command(args: argparse.Namespace, variant: str, horizon: int, out: Path) -> list[str]:
    command = [sys.executable, str(Path(__file__).resolve()), "--variant", variant, "--json", str(out),
               "--preset", args.preset, "--batch-size", str(args.batch_size), "--horizon", str(horizon),
               "--image-size", str(args.image_size), "--repeats", str(args.repeats), "--warmup", str(args.warmup),
               "--device", args.device, "--seed", str(args.seed)]
    for flag in ("world_model", "reward_run", "local_model", "dataset", "goal"):
        if getattr(args, flag) is not None:
            command += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    return command


def run_variant_process(args: argparse.Namespace, variant: str, horizon: int) -> dict[str, Any]:
    """Measure ``variant`` at ``horizon`` in a fresh process; a failed process gives a record saying why."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "result.json"
        process = subprocess.run(_child_command(args, variant, horizon, out), capture_output=True, text=True)
        if process.returncode == 0 and out.is_file():
            return json.loads(out.read_text())
    tail = (process.stderr or process.stdout).strip().splitlines()[-5:]
    killed = process.returncode < 0 or process.returncode == 137
    return {"variant": variant, "horizon": horizon, "batch_size": args.batch_size, "time_s": None,
            "peak_memory_bytes": None, "status": "killed (out of memory?)" if killed else "failed",
            "error": " | ".join(tail), "returncode": process.returncode}


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return numerator / denominator


def compare(dmo: dict[str, Any], backprop: dict[str, Any]) -> dict[str, Any]:
    """Ratios (backprop / DMO) and the goals' verdicts for one horizon; an out-of-memory backprop run's memory
    ratio is a lower bound (``memory_ratio_is_lower_bound``)."""
    memory_ratio = _ratio(backprop.get("peak_memory_bytes"), dmo.get("peak_memory_bytes"))
    time_ratio = _ratio(backprop.get("time_s"), dmo.get("time_s"))
    lower_bound = backprop.get("status") == "out_of_memory"
    return {"horizon": dmo["horizon"], "batch_size": dmo["batch_size"], "dmo": dmo, "backprop": backprop,
            "memory_ratio": memory_ratio, "memory_ratio_is_lower_bound": lower_bound, "time_ratio": time_ratio,
            "memory_goal_met": None if memory_ratio is None else memory_ratio >= MEMORY_GOAL,
            "time_goal_met": None if time_ratio is None else time_ratio >= TIME_GOAL}


def _size(nbytes: float | None) -> str:
    if nbytes is None:
        return "n/a"
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= scale:
            return f"{nbytes / scale:.2f} {unit}"
    return f"{nbytes:.0f} B"


def _seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f} s"


def _times(value: float | None, lower_bound: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{'>=' if lower_bound else ''}{value:.1f}x"


def print_table(rows: list[dict[str, Any]]) -> None:
    first = next((row[v] for row in rows for v in VARIANTS if row[v].get("status") == "ok"), rows[0]["dmo"])
    params = first.get("parameters", {})
    print(f"device: {first.get('device_name', '?')}; torch {first.get('torch', '?')}")
    print(f"models: {first.get('preset')} preset{' (trained runs)' if first.get('trained') else ' (untrained)'}, "
          f"{first.get('image_size')} px; world model {params.get('world_model', 0) / 1e6:.2f} M parameters, "
          f"{first.get('sampler_steps')} Euler steps (denoiser calls) per frame; local model "
          f"{params.get('local_model', 0) / 1e6:.2f} M; reward model {params.get('reward_model', 0) / 1e6:.2f} M")
    print(f"time: median of {first.get('repeats')} updates after {first.get('warmup')} warm-up; "
          f"memory: {first.get('memory_metric', 'n/a')}")
    header = (f"{'H':>4} {'B':>4} | {'DMO time':>10} {'DMO memory':>11} | {'backprop time':>14} "
              f"{'backprop memory':>16} | {'memory ratio':>12} {'time ratio':>10} | goals (mem >= {MEMORY_GOAL:.0f}x, "
              f"time >= {TIME_GOAL:.0f}x)")
    print(header)
    print("-" * len(header))
    for row in rows:
        dmo, backprop = row["dmo"], row["backprop"]
        verdicts = []
        for name, met in (("memory", row["memory_goal_met"]), ("time", row["time_goal_met"])):
            verdicts.append(f"{name} {'n/a' if met is None else ('met' if met else 'NOT met')}")
        notes = [f"{v} {row[v]['status']}" for v in VARIANTS if row[v].get("status") != "ok"]
        print(f"{row['horizon']:>4} {row['batch_size']:>4} | {_seconds(dmo.get('time_s')):>10} "
              f"{_size(dmo.get('peak_memory_bytes')):>11} | {_seconds(backprop.get('time_s')):>14} "
              f"{_size(backprop.get('peak_memory_bytes')):>16} | "
              f"{_times(row['memory_ratio'], row['memory_ratio_is_lower_bound']):>12} "
              f"{_times(row['time_ratio']):>10} | {', '.join(verdicts)}" + (f"  ({'; '.join(notes)})" if notes else ""))
    measured = [row for row in rows if all(row[v].get("status") == "ok" for v in VARIANTS)]
    if len(measured) > 1 and measured[-1]["horizon"] != measured[0]["horizon"]:
        low, high = measured[0], measured[-1]
        steps = high["horizon"] - low["horizon"]
        slopes = {v: (high[v]["peak_memory_bytes"] - low[v]["peak_memory_bytes"]) / steps for v in VARIANTS}
        print(f"memory per extra imagined step (H {low['horizon']} -> {high['horizon']}): "
              f"DMO {_size(slopes['dmo']) if slopes['dmo'] >= 0 else '-' + _size(-slopes['dmo'])}, "
              f"backprop {_size(slopes['backprop']) if slopes['backprop'] >= 0 else '-' + _size(-slopes['backprop'])}")
    for row in rows:
        for variant in VARIANTS:
            if row[variant].get("status") != "ok" and row[variant].get("error"):
                print(f"H={row['horizon']} {variant}: {row[variant]['status']}: {row[variant]['error']}")


# -- command line --------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="Exit code: 0 measured (goals met or not), 1 a variant failed, 2 bad "
                                            "arguments.")
    parser.add_argument("--preset", default="cpu", choices=sorted(SAPO_PRESETS),
                        help="sizes of the world, reward and local models (untrained) and of SAPO's actor / critics "
                             "(default cpu)")
    parser.add_argument("--batch-size", type=int, default=None, help="B (default: the preset's DMO batch size)")
    parser.add_argument("--horizon", type=int, default=None, help="H (default: the preset's SAPO horizon)")
    parser.add_argument("--horizons", type=int, nargs="+", default=None,
                        help="measure each of these horizons instead (how memory scales with H), e.g. 4 8 16")
    parser.add_argument("--image-size", type=int, default=64, help="frame side of the untrained models (default 64)")
    parser.add_argument("--repeats", type=int, default=3, help="timed updates per variant (default 3)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed updates first (default 1)")
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, ...")
    parser.add_argument("--seed", type=int, default=0, help="weights, start windows and noise (default 0)")
    parser.add_argument("--json", type=Path, default=None, metavar="OUT", help="also write the results as JSON here")
    parser.add_argument("--variant", choices=VARIANTS, default=None,
                        help="measure only this variant in this process (what the parent runs per variant)")
    trained = parser.add_argument_group("trained models (all five, or none for untrained ones)")
    trained.add_argument("--world-model", type=Path, default=None, help="run folder of dmo-train-world-model")
    trained.add_argument("--reward-run", type=Path, default=None, help="run folder of dmo-train-reward")
    trained.add_argument("--local-model", type=Path, default=None, help="run folder of dmo-train-local-model")
    trained.add_argument("--dataset", type=Path, default=None, help="dataset folder: start windows, action limit")
    trained.add_argument("--goal", type=Path, default=None, help="goal picture (PNG/JPEG/.npy)")
    return parser


def _resolve(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Fill the preset's defaults and check the options (a usage error exits with status 2)."""
    args.device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    if args.batch_size is None:
        args.batch_size = DMOConfig.preset(args.preset).batch_size
    if args.horizon is None:
        args.horizon = SAPOConfig.preset(args.preset).horizon
    trained = [args.world_model, args.reward_run, args.local_model, args.dataset, args.goal]
    if any(path is not None for path in trained) and not all(path is not None for path in trained):
        parser.error("trained models need all of --world-model, --reward-run, --local-model, --dataset and --goal "
                     "(or none of them for untrained ones)")
    if args.variant is not None and args.horizons:
        parser.error("--horizons is for the parent; a --variant run measures one --horizon")
    for name in ("batch_size", "horizon", "repeats", "image_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.horizons and min(args.horizons) < 1:
        parser.error(f"--horizons must be at least 1, got {args.horizons}")
    if args.warmup < 0:
        parser.error(f"--warmup must be >= 0, got {args.warmup}")
    try:
        torch.device(args.device)
    except RuntimeError as error:
        parser.error(f"--device {args.device!r}: {error}")


def setting_from_args(args: argparse.Namespace) -> Setting:
    runs = None
    if args.world_model is not None:
        runs = TrainedRuns(args.world_model, args.reward_run, args.local_model, args.dataset, args.goal)
    return Setting(preset=args.preset, batch_size=args.batch_size, horizon=args.horizon, image_size=args.image_size,
                   repeats=args.repeats, warmup=args.warmup, device=args.device, seed=args.seed, runs=runs)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _resolve(args, parser)
    if args.variant is not None:  # one variant, in this process
        record = measure(args.variant, setting_from_args(args))
        text = json.dumps(record, indent=2)
        if args.json is not None:
            args.json.write_text(text + "\n")
        print(text)
        return 0
    horizons = args.horizons or [args.horizon]
    rows = []
    for horizon in horizons:
        results = {variant: run_variant_process(args, variant, horizon) for variant in VARIANTS}
        rows.append(compare(results["dmo"], results["backprop"]))
    print_table(rows)
    if args.json is not None:
        args.json.write_text(json.dumps({"settings": {k: (str(v) if isinstance(v, Path) else v)
                                                      for k, v in vars(args).items()}, "results": rows},
                                        indent=2) + "\n")
    failed = any(row[v].get("status") not in ("ok", "out_of_memory") for row in rows for v in VARIANTS)
    return 1 if failed else 0


__all__ = ["DiffusionBackprop", "Models", "PeakMemory", "Setting", "SyntheticStarts", "TrainedRuns", "build_models",
           "compare", "dmo_algorithm", "main", "make_update", "measure", "wake_zero_layers"]

if __name__ == "__main__":
    raise SystemExit(main())
