"""The one training loop: any ``nn.Module`` whose ``forward(batch)`` returns ``(loss, logs)``.

``logs`` maps names to numbers (floats or 0-d tensors), or to ``(value, weight)`` pairs for a quantity
measured on part of the batch (e.g. the reward's tie pairs): between two log points plain values are
averaged over steps, pairs weighted by their weights (a step of weight 0 does not count).

What every trainer gets from it (the world model, the reward model, the local model):

- AdamW with linear warm-up, gradient-norm clipping, bfloat16 autocast on CUDA;
- a batch order fixed by the seed and the step alone (:class:`GlobalBatches`), so a resumed
  run sees exactly the batches an uninterrupted one would, and a torchrun run of N
  processes sees, between them, exactly the batches one process with N x the batch sees;
- DistributedDataParallel when started by torchrun (gradients averaged over processes);
- atomic checkpoints (:mod:`dmo_ros.training.checkpoint`) with optimizer and RNG states, and
  automatic resume from the newest one when the run folder already holds one;
- TensorBoard scalars (``train/*``, ``val/*``, learning rate, gradient norm, samples/s) and
  sample images (when the model has ``sample_images(batch)``), a tqdm progress bar;
- steps with a non-finite loss or gradient are skipped (and counted); too many in a row stop
  training with an error that says what to check — never silent garbage in the weights.
"""

from __future__ import annotations

import math
import random
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import MISSING, asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from dmo_ros.dataset.loaders import collate, seed_worker
from dmo_ros.interrupt import INTERRUPTED_EXIT_CODE, stop_on_interrupt
from dmo_ros.training.checkpoint import (
    CheckpointError,
    latest_step,
    load_model_weights,
    load_trainer_state,
    read_run_config,
    resume_hint,
    save_checkpoint,
    write_run_config,
)
from dmo_ros.training.config import TrainConfig
from dmo_ros.training.cpu_load import LoadWatch, oversubscription_warning
from dmo_ros.training.distributed import DeviceError, World, all_reduce_mean, barrier, init_world
from dmo_ros.training.options import changed_settings, describe_changes


class TrainingError(RuntimeError):
    """Training cannot go on (diverged, data too small for a batch, run folder mismatch)."""


@dataclass
class TrainResult:
    """What a call of :func:`train` did."""

    step: int
    """The step reached (the number of optimizer steps in the run so far)."""
    start_step: int
    """The step this call started from (0, or the checkpoint it resumed)."""
    seconds: float
    """Wall-clock seconds of this call's training."""
    samples: int
    """Training items processed in this call, over all processes."""
    train_logs: dict[str, float] = field(default_factory=dict)
    """The last logged training averages."""
    val_logs: dict[str, float] = field(default_factory=dict)
    """The last validation averages (empty without a validation set)."""
    skipped_steps: int = 0
    """Steps skipped because the loss or gradient was not finite."""
    stopped_early: bool = False
    """True when ``time_limit_s`` ended the call before ``steps``."""


class GlobalBatches(Sampler[list[int]]):
    """This process's share of the global batches of one epoch, from a given batch on.

    Epoch ``e`` is a permutation of the items drawn from ``(seed, e)``; it is cut into global
    batches of ``batch_size x world.size`` items (a last incomplete one is dropped, so every
    step has the same shape) and process ``r`` takes slice ``r`` of each. With one process
    and batch ``N x b`` the global batches are the same as with N processes of batch ``b``.
    """

    def __init__(self, num_items: int, batch_size: int, world: World, seed: int, epoch: int,
                 first_batch: int = 0, shuffle: bool = True) -> None:
        self.num_items, self.batch_size, self.world = num_items, batch_size, world
        self.seed, self.epoch, self.first_batch, self.shuffle = seed, epoch, first_batch, shuffle

    @staticmethod
    def per_epoch(num_items: int, batch_size: int, world: World) -> int:
        return num_items // (batch_size * world.size)

    def __len__(self) -> int:
        return max(0, self.per_epoch(self.num_items, self.batch_size, self.world) - self.first_batch)

    def __iter__(self) -> Iterator[list[int]]:
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.num_items, generator=generator).tolist()
        else:
            order = list(range(self.num_items))
        global_size = self.batch_size * self.world.size
        for batch in range(self.first_batch, self.per_epoch(self.num_items, self.batch_size, self.world)):
            begin = batch * global_size + self.world.rank * self.batch_size
            yield order[begin : begin + self.batch_size]


def _loader(dataset: Dataset, sampler: GlobalBatches, config: TrainConfig, device: torch.device) -> DataLoader:
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=config.num_workers,
        collate_fn=collate,
        worker_init_fn=seed_worker,
        generator=torch.Generator().manual_seed(config.seed * 7919 + sampler.epoch),
        pin_memory=device.type == "cuda",
    )


def learning_rate(config: TrainConfig, step: int) -> float:
    """The learning rate of optimizer step ``step`` (0-based): linear warm-up over ``warmup_steps`` (step 0 gets
    lr / warmup), then constant, or with ``lr_schedule="cosine"`` a half cosine that reaches 0 at ``steps``."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    if config.lr_schedule == "constant":
        return config.lr
    decay_steps = max(1, config.steps - config.warmup_steps)
    done = min(1.0, (step - config.warmup_steps) / decay_steps)
    return config.lr * 0.5 * (1.0 + math.cos(math.pi * done))


# -- RNG states (saved per process so a resumed run draws the same noise) -------------------


def _rng_state(device: torch.device) -> dict[str, Any]:
    kind, keys, position, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "position": int(position),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": random.getstate(),
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    numpy = state["numpy"]
    np.random.set_state(("MT19937", numpy["keys"].numpy().astype(np.uint32), numpy["position"],
                         numpy["has_gauss"], numpy["cached_gaussian"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def seed_everything(seed: int) -> None:
    """Seed torch, numpy and ``random`` (call before building the model so its init is reproducible)."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


# -- the loop ------------------------------------------------------------------------------


class _Averages:
    """Running (weighted) sums of logged values between two log points (the module doc's ``logs``)."""

    def __init__(self) -> None:
        self.sums: dict[str, Any] = defaultdict(float)
        self.weights: dict[str, Any] = defaultdict(float)

    def add(self, logs: dict[str, Any]) -> None:
        # Tensors stay on their device until mean(): no GPU synchronisation on every step.
        for key, value in logs.items():
            value, weight = value if isinstance(value, tuple) else (value, 1.0)
            value, weight = (x.detach().float() if torch.is_tensor(x) else float(x) for x in (value, weight))
            self.sums[key] = self.sums[key] + value * weight
            self.weights[key] = self.weights[key] + weight

    def mean(self) -> dict[str, float]:
        """Per key: sum / weight; 0 for a key whose weights summed to 0 (logged, never measured)."""
        return {key: float(value) / weight if (weight := float(self.weights[key])) > 0 else 0.0
                for key, value in self.sums.items()}


def _check_run_folder(run_dir: Path, run_config: dict[str, Any], model: nn.Module) -> None:
    """A run folder may be resumed only by the same model config (training settings may change).

    A field the saved config lacks (the run predates it) counts as the field's default when the
    model's ``config`` is a dataclass: new options keep old runs resumable.
    """
    try:
        existing = read_run_config(run_dir)
    except CheckpointError:
        return
    if latest_step(run_dir) is None:
        return
    old, new = existing.get("model"), run_config.get("model")
    config = getattr(model, "config", None)
    if isinstance(old, dict) and is_dataclass(config):
        defaults = {f.name: f.default for f in fields(config) if f.default is not MISSING}
        old = {**{k: v for k, v in defaults.items() if k in (new or {})}, **old}
    if old != new:
        keys = sorted(k for k in set(old or {}) | set(new or {}) if (old or {}).get(k) != (new or {}).get(k))
        raise TrainingError(
            f"{run_dir} holds a run of a different model (differs in: {', '.join(keys) or 'model section'}); "
            "resume it with the same settings, or train into a new --run-dir"
        )


RESUMABLE_WITHOUT_NOTE = ("steps", "progress", "time_limit_s")
"""Training settings a resume changes as a matter of course (the budget, the display): not reported."""


def _settings_history(run_dir: Path, settings: dict[str, Any]) -> list[dict[str, Any]]:
    """The run's record of training settings changed at resumes, with this call's change appended (and printed):
    a resume may change them (a lower learning rate to finish, another batch size on another machine), but the
    config.json a resume rewrites must not hide what the earlier steps were trained with."""
    try:
        existing = read_run_config(run_dir)
    except CheckpointError:
        return []
    step = latest_step(run_dir)
    history = list(existing.get("train_changes") or [])
    before = existing.get("train")
    if step is None or not isinstance(before, dict):
        return history
    changed = changed_settings(before, settings, ignore=RESUMABLE_WITHOUT_NOTE)
    if changed:
        listed, record = describe_changes(changed)
        print(f"[train] note: resuming {run_dir} at step {step} with other training settings than it was last "
              f"trained with: {listed} (recorded in config.json's train_changes)", flush=True)
        history.append({"step": step, "changed": record})
    return history


def train(model: nn.Module, train_set: Dataset, val_set: Dataset | None, config: TrainConfig,
          run_dir: Path | str, run_config: dict[str, Any],
          on_validation: Callable[[int, dict[str, float]], None] | None = None) -> TrainResult:
    """Train ``model`` (``forward(batch) -> (loss, logs)``) on ``train_set``; resume from ``run_dir`` if it has a run.

    Args:
        model: the component; its parameters are moved to the training device.
        train_set: a Dataset whose items collate into a batch with ``.to(device)``.
        val_set: validation items (``val_batches`` fixed batches every ``val_every`` steps), or None.
        config: the loop's settings.
        run_dir: the run folder (config.json, checkpoints, tensorboard).
        run_config: JSON-able description of the run, with the model's config under ``"model"``
            (it is what a later load rebuilds the model from); ``"train"`` is added here.
        on_validation: called on the main process after each validation with (step, val logs).

    Raises:
        TrainingError: the data cannot fill one batch, the run folder holds another model, or
            the loss stayed non-finite for ``max_bad_steps`` steps.
    """
    run_dir = Path(run_dir)
    try:
        world, device = init_world(config.device)
    except DeviceError as error:
        raise TrainingError(str(error)) from error
    if world.is_main:
        try:
            _check_run_folder(run_dir, run_config, model)
            history = _settings_history(run_dir, asdict(config))
            write_run_config(run_dir, {**run_config, "train": asdict(config), "world_size": world.size,
                                       **({"train_changes": history} if history else {})})
        except CheckpointError as error:
            raise TrainingError(str(error)) from error
    barrier(world)

    num_items = len(train_set)
    per_epoch = GlobalBatches.per_epoch(num_items, config.batch_size, world)
    if per_epoch < 1:
        raise TrainingError(
            f"the training set has {num_items} items, fewer than one batch of {config.batch_size} x "
            f"{world.size} process(es); record more data or lower --batch-size"
        )

    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, betas=config.betas,
                                  weight_decay=config.weight_decay)
    try:
        start_step = latest_step(run_dir) or 0
        if start_step:
            state = load_trainer_state(run_dir)
            saved = load_model_weights(run_dir)
    except CheckpointError as error:
        message = str(error)
        raise TrainingError(message if "--run-dir" in message else f"{message}; {resume_hint(run_dir)}") from error
    ema = None
    if start_step:
        # With an average kept, the checkpoint's model weights are the average and the raw ones are in the state.
        model.load_state_dict(state.get("raw_weights", saved))
        if config.ema_decay > 0:
            ema = _moving_average(model, config.ema_decay)
            if "raw_weights" in state:
                ema.module.load_state_dict(saved)
        optimizer.load_state_dict(state["optimizer"])
        rng_states = state["rng"]
        _set_rng_state(rng_states[world.rank % len(rng_states)], device)
    else:
        torch.manual_seed(config.seed * 1000 + world.rank)
        np.random.seed((config.seed * 1000 + world.rank) % 2**32)
        random.seed(config.seed * 1000 + world.rank)
        if config.ema_decay > 0:
            ema = _moving_average(model, config.ema_decay)
    averaged = ema.module if ema is not None else model
    """The weights checkpoints hold and validation measures."""

    trained = model
    if world.distributed:
        trained = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    autocast = device.type == "cuda" and config.mixed_precision

    writer = None
    if world.is_main:
        from torch.utils.tensorboard import SummaryWriter  # slow import: only where it is used

        writer = SummaryWriter(str(run_dir / "tensorboard"))
        if start_step:
            print(f"[train] resuming {run_dir} from step {start_step}", flush=True)
        busy = oversubscription_warning() if device.type == "cpu" else None
        if busy:
            print(f"[train] {busy}", flush=True)
    load_watch = LoadWatch() if world.is_main and device.type == "cpu" else None
    result = TrainResult(step=start_step, start_step=start_step, seconds=0.0, samples=0)
    if start_step >= config.steps:
        if world.is_main:
            print(f"[train] {run_dir} is already trained to step {start_step} (steps={config.steps})", flush=True)
        if writer:
            writer.close()
        return result

    from tqdm import tqdm

    progress = tqdm(total=config.steps, initial=start_step, disable=not (config.progress and world.is_main),
                    dynamic_ncols=True, desc=run_dir.name, file=sys.stderr)
    averages, bad_in_row = _Averages(), 0
    began = time.perf_counter()
    interval_began, interval_samples = began, 0
    step = start_step

    def checkpoint(metrics: dict[str, float]) -> None:
        rng = _rng_state(device)
        if world.distributed:
            gathered: list[Any] = [None] * world.size
            dist.all_gather_object(gathered, rng)
            rng_states = gathered
        else:
            rng_states = [rng]
        if world.is_main:
            trainer_state = {"step": step, "optimizer": optimizer.state_dict(), "rng": rng_states}
            if ema is not None:
                trainer_state["raw_weights"] = {k: v.detach().cpu() for k, v in model.state_dict().items()}
            save_checkpoint(run_dir, step, averaged.state_dict(), trainer_state, metrics, keep=config.keep_checkpoints)
        barrier(world)

    try:
        while step < config.steps:
            epoch, first_batch = divmod(step, per_epoch)
            sampler = GlobalBatches(num_items, config.batch_size, world, config.seed, epoch, first_batch)
            for batch in _loader(train_set, sampler, config, device):
                model.train()
                batch = batch.to(device, non_blocking=True)
                with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=autocast):
                    loss, logs = trained(batch)
                optimizer.zero_grad(set_to_none=True)
                finite = torch.isfinite(loss.detach()).float()
                if world.distributed:  # every process must agree to skip, or DDP's all-reduce would hang
                    dist.all_reduce(finite, op=dist.ReduceOp.MIN)
                grad_norm = torch.tensor(float("nan"))
                if finite.item() > 0:
                    loss.backward()
                    grad_norm = nn.utils.clip_grad_norm_(
                        model.parameters(), config.grad_clip if config.grad_clip > 0 else float("inf"))
                if finite.item() > 0 and torch.isfinite(grad_norm):
                    for group in optimizer.param_groups:
                        group["lr"] = learning_rate(config, step)
                    optimizer.step()
                    if ema is not None:
                        ema.update_parameters(model)
                    bad_in_row = 0
                    averages.add({**logs, "loss": loss.detach().float(), "grad_norm": grad_norm})
                else:
                    bad_in_row += 1
                    result.skipped_steps += 1
                    if bad_in_row >= config.max_bad_steps:
                        raise TrainingError(
                            f"step {step}: the loss or gradient was not finite for {bad_in_row} steps in a row "
                            "(NaN/inf in the data, or divergence: lower --lr); the last checkpoint is "
                            f"{latest_step(run_dir)} in {run_dir}"
                        )
                step += 1
                result.samples += config.batch_size * world.size
                interval_samples += config.batch_size * world.size
                progress.update(1)
                busy = load_watch.check() if load_watch else None
                if busy:
                    progress.write(f"[train] step {step}: {busy}")

                if step % config.log_every == 0 or step == config.steps:
                    now = time.perf_counter()
                    logs_mean = all_reduce_mean(averages.mean(), world, device)
                    logs_mean["samples_per_s"] = interval_samples / max(now - interval_began, 1e-9)
                    logs_mean["lr"] = learning_rate(config, step - 1)
                    interval_began, interval_samples, averages = now, 0, _Averages()
                    result.train_logs = logs_mean
                    if writer:
                        for key, value in logs_mean.items():
                            writer.add_scalar(f"train/{key}", value, step)
                    progress.set_postfix(loss=f"{logs_mean.get('loss', float('nan')):.4g}",
                                         refresh=False)

                last = step == config.steps
                out_of_time = config.time_limit_s > 0 and time.perf_counter() - began > config.time_limit_s
                if world.distributed:
                    flag = torch.tensor(float(out_of_time), device=device)
                    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
                    out_of_time = bool(flag.item())
                if val_set is not None and ((config.val_every and step % config.val_every == 0) or last):
                    result.val_logs = _validate(averaged, val_set, config, world, device, autocast, writer, step)
                    if world.is_main:
                        summary = ", ".join(f"{k} {v:.4g}" for k, v in sorted(result.val_logs.items()))
                        progress.write(f"[train] step {step}/{config.steps}: val {summary}")
                        if on_validation:
                            on_validation(step, result.val_logs)
                if step % config.checkpoint_every == 0 or last or out_of_time:
                    checkpoint({**result.train_logs, **{f"val/{k}": v for k, v in result.val_logs.items()}})
                if last or out_of_time:
                    result.stopped_early = out_of_time and not last
                    break
            if result.stopped_early:
                break
    except KeyboardInterrupt:
        if not world.distributed and step > start_step:
            checkpoint(result.train_logs)  # keep the progress made; a re-run resumes from here
            progress.write(f"[train] interrupted: checkpoint at step {step} in {run_dir}")
        raise
    finally:
        progress.close()
        if writer:
            writer.close()
    result.step = step
    result.seconds = time.perf_counter() - began
    if world.is_main and result.stopped_early:
        print(f"[train] time limit reached at step {step}/{config.steps}; re-run to resume", flush=True)
    return result


def _moving_average(model: nn.Module, decay: float) -> torch.optim.swa_utils.AveragedModel:
    """An exponential moving average of ``model``'s parameters and buffers (PyTorch's ``AveragedModel``)."""
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    average = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
    average.update_parameters(model)  # starts at the current weights
    return average


def _validate(model: nn.Module, val_set: Dataset, config: TrainConfig, world: World, device: torch.device,
              autocast: bool, writer: Any, step: int) -> dict[str, float]:
    """Mean logs over the same ``val_batches`` batches each time; RNG forked so training draws are unchanged."""
    per_epoch = GlobalBatches.per_epoch(len(val_set), config.batch_size, world)
    if per_epoch < 1:
        return {}
    sampler = GlobalBatches(len(val_set), config.batch_size, world, seed=12345, epoch=0)
    averages = _Averages()
    devices = [device] if device.type == "cuda" else []
    model.eval()
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        torch.manual_seed(config.seed + 99_991 + world.rank)
        first = None
        for index, batch in enumerate(_loader(val_set, sampler, config, device)):
            if index >= config.val_batches:
                break
            batch = batch.to(device)
            first = first if first is not None else batch
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=autocast):
                loss, logs = model(batch)
            averages.add({**logs, "loss": loss.float()})
        logs = all_reduce_mean(averages.mean(), world, device)
        if writer is not None:
            for key, value in logs.items():
                writer.add_scalar(f"val/{key}", value, step)
            sample_images = getattr(model, "sample_images", None)
            if callable(sample_images) and first is not None:
                for name, image in sample_images(first).items():
                    image = image.detach().float().clamp(0, 1).cpu()
                    if image.ndim == 4:
                        writer.add_images(f"samples/{name}", image, step)
                    else:
                        writer.add_image(f"samples/{name}", image, step)
            writer.flush()
    model.train()
    return {key: value for key, value in logs.items() if math.isfinite(value)}


def exit_on_interrupt(main: Callable[..., int]) -> Callable[..., int]:
    """Wrap a trainer's ``main``: Ctrl-C ends it with one line and exit code 130, not a traceback.

    The loop has already written a checkpoint when it is interrupted in training (its ``[train] interrupted``
    line), so the line says that re-running the same command resumes."""
    return stop_on_interrupt(main, note="re-run the same command to resume")


__all__ = ["INTERRUPTED_EXIT_CODE", "GlobalBatches", "TrainResult", "TrainingError", "exit_on_interrupt",
           "learning_rate", "seed_everything", "train"]
