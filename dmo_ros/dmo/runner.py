"""The policy-training loop every method shares (DMO-SAPO, No Diffusion, PPO).

An RL trainer does not fit the supervised ``forward(batch) -> (loss, logs)`` contract (it makes
its own data and owns several optimisers), so the policy trainers share this one instead:
an algorithm offers ``train_epoch() -> logs`` and its state (:class:`PolicyAlgorithm`), and
:func:`train_policy` gives every method the same

- **sample counter**: world-model transitions generated (the x-axis of the paper's Fig. 3),
  logged together with the training wall-clock (evaluation time excluded);
- **periodic evaluation** on the simulated stand-in through the policy API (success rate and
  mean max coverage), before training and every ``eval_every`` epochs, appended to
  ``RUN_DIR/eval.jsonl`` and TensorBoard (``eval/*`` against samples, ``eval_time/*`` against
  seconds);
- atomic checkpoints (safetensors weights + ``weights_only`` trainer state) every
  ``checkpoint_every`` epochs, at the end, on Ctrl-C and at ``time_limit_s``; re-running the
  same command resumes from the newest one. Ctrl-C or SIGTERM during an epoch lets the epoch
  finish and stops at its end (:class:`~dmo_ros.interrupt.StopAtBoundary`): a checkpoint of a half-updated
  algorithm resumed to another result than an uninterrupted run. A second one stops at once and
  keeps the last complete checkpoint;
- TensorBoard scalars ``train/*`` against samples, and a tqdm progress bar over samples.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor

from dmo_ros.interrupt import StopAtBoundary
from dmo_ros.policy.api import Policy
from dmo_ros.training.checkpoint import (
    latest_step,
    load_model_weights,
    load_trainer_state,
    save_checkpoint,
    write_run_config,
)
from dmo_ros.training.cpu_load import LoadWatch, oversubscription_warning

EVAL_LOG = "eval.jsonl"
"""File in the run folder with one JSON line per stand-in evaluation."""


class PolicyAlgorithm(Protocol):
    """What :func:`train_policy` drives (:class:`.algorithm.LatentSAPO`, :class:`.ppo.PPOAlgorithm`)."""

    method: str

    @property
    def samples(self) -> int: ...

    def train_epoch(self) -> dict[str, float]: ...

    def policy(self) -> Policy: ...

    def policy_config(self) -> dict[str, Any]: ...

    def state_dict(self) -> dict[str, Tensor]: ...

    def load_state_dict(self, state: dict[str, Tensor]) -> None: ...

    def trainer_state(self) -> dict[str, Any]: ...

    def load_trainer_state(self, state: dict[str, Any]) -> None: ...


@dataclass
class PolicyTrainConfig:
    """How long a policy trains, how often it is evaluated and checkpointed."""

    max_samples: int = 20_000
    """Stop once this many world-model transitions have been generated (the sample budget)."""

    max_epochs: int = 0
    """Stop after this many epochs (iterations) as well; 0: no epoch limit."""

    time_limit_s: float = 0.0
    """Stop (with a checkpoint) after this many seconds of training in this call; 0: no limit."""

    eval_every: int = 10
    """Evaluate on the stand-in every this many epochs (and before the first and after the last); 0: never."""

    eval_episodes: int = 10
    """Stand-in episodes per periodic evaluation (a progress monitor; reported numbers use 50, ``dmo-eval-policy``)."""

    eval_max_steps: int = 150
    """Control steps per evaluation episode (150 = gym-pusht's standard 30 s at 5 Hz)."""

    eval_seed: int = 10_000
    """Seed of the evaluation episodes (the same start poses at every evaluation, distinct from the data's)."""

    checkpoint_every: int = 10
    """Write a checkpoint every this many epochs (and at the end)."""

    log_every: int = 1
    """Write TensorBoard scalars every this many epochs."""

    seed: int = 0
    """Seed of the networks' initialisation and the algorithm's sampling."""

    device: str = "auto"
    """"auto" (CUDA when available), "cpu", "cuda" or "cuda:N"."""

    progress: bool = True
    """Show a progress bar over samples."""

    sampler_change_threshold: float | None = None
    """The diffusion world model's sampler: soft threshold (uint8 levels) on each imagined frame's change from
    the previous one (the world model sampler's change_threshold); None: the model's own
    (``sampler_change_threshold`` of its config). Not used by No Diffusion or the simulator forward."""

    sampler_bf16: bool = False
    """Sample the diffusion world model under bfloat16 autocast (:attr:`SamplerConfig.bf16`): ~2.5x faster
    imagination on a CPU with AMX (frames within one uint8 level), much slower on one without bfloat16 units.
    Not used by No Diffusion or the simulator forward."""

    def __post_init__(self) -> None:
        if self.sampler_change_threshold is not None and not 0 <= self.sampler_change_threshold < 255:
            raise ValueError(f"sampler_change_threshold must be in [0, 255) uint8 levels or none, got "
                             f"{self.sampler_change_threshold}")
        for name in ("max_samples", "eval_episodes", "eval_max_steps", "checkpoint_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_epochs < 0 or self.eval_every < 0 or self.time_limit_s < 0:
            raise ValueError("max_epochs, eval_every and time_limit_s must be >= 0")


@dataclass
class PolicyTrainResult:
    """What one call of :func:`train_policy` did."""

    epochs: int
    """Epochs reached (over the whole run)."""
    samples: int
    """World-model transitions generated (over the whole run)."""
    wall_s: float
    """Training seconds over the whole run (evaluation excluded)."""
    evaluations: list[dict[str, Any]] = field(default_factory=list)
    """The evaluation records of this call (as written to ``eval.jsonl``)."""
    logs: dict[str, float] = field(default_factory=dict)
    """The last epoch's logs."""
    stopped_early: bool = False
    """True when the time limit or Ctrl-C ended the call before the budget."""
    interrupted: bool = False
    """True when Ctrl-C ended it (after a checkpoint): its command exits 130, so a script running it stops too."""


Evaluate = Callable[[Policy], dict[str, Any]]
"""Evaluates a policy; returns at least ``success_rate`` and ``mean_max_coverage`` (and ``episodes``)."""


def read_evaluations(run_dir: Path | str) -> list[dict[str, Any]]:
    """The records of ``RUN_DIR/eval.jsonl`` (empty when there are none yet)."""
    path = Path(run_dir) / EVAL_LOG
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def train_policy(algorithm: PolicyAlgorithm, config: PolicyTrainConfig, run_dir: Path | str,
                 run_config: dict[str, Any], evaluate: Evaluate | None = None) -> PolicyTrainResult:
    """Train ``algorithm`` until the sample budget (or epoch / time limit); see the module doc.

    ``run_config`` is written as ``config.json`` (plus the policy's own entry); an existing checkpoint in
    ``run_dir`` is resumed: weights, optimisers, counters, the training clock and the evaluation log go on.
    """
    run_dir = Path(run_dir)
    write_run_config(run_dir, {**run_config, "policy": algorithm.policy_config()})
    wall_s, epoch = 0.0, 0
    if latest_step(run_dir) is not None:
        algorithm.load_state_dict(load_model_weights(run_dir))
        state = load_trainer_state(run_dir)
        algorithm.load_trainer_state(state["algorithm"])
        wall_s, epoch = float(state["wall_s"]), int(state["epoch"])
        # The budget is this command's, not the run's first one: say where it takes the run, since re-running a
        # finished run (e.g. to record videos) without its --max-samples would otherwise train on unannounced.
        ahead = (f"this command's budget is {config.max_samples} samples: training goes on to it (pass "
                 f"--max-samples {algorithm.samples} to only evaluate)" if algorithm.samples < config.max_samples
                 else f"at or past this command's budget ({config.max_samples} samples): no more training")
        print(f"resuming {run_dir} at epoch {state['epoch']}, {algorithm.samples} samples, {wall_s:.0f} s; {ahead}",
              flush=True)
        for note in getattr(algorithm, "resume_notes", []):
            print(f"note: {note}", flush=True)
    evaluations = read_evaluations(run_dir)

    from torch.utils.tensorboard import SummaryWriter  # slow import: only where it is used
    from tqdm import tqdm

    writer = SummaryWriter(str(run_dir / "tensorboard"))
    on_cpu = str(getattr(algorithm, "device", "cpu")).startswith("cpu")
    busy = oversubscription_warning() if on_cpu else None
    if busy:
        print(busy, flush=True)
    load_watch = LoadWatch() if on_cpu else None
    progress = tqdm(total=config.max_samples, initial=min(algorithm.samples, config.max_samples), unit="sample",
                    disable=not config.progress, dynamic_ncols=True, desc=algorithm.method)
    new_records: list[dict[str, Any]] = []

    def run_evaluation() -> None:
        if evaluate is None:
            return
        record = {"epoch": epoch, "samples": algorithm.samples, "wall_s": round(wall_s, 3),
                  **evaluate(algorithm.policy()), "method": algorithm.method}
        with open(run_dir / EVAL_LOG, "a") as stream:
            stream.write(json.dumps(record) + "\n")
        for key, value in record.items():  # success_rate, mean_max_coverage and whatever else is a number
            if key in ("epoch", "samples", "wall_s", "episodes") or isinstance(value, bool):
                continue
            if isinstance(value, (int, float)) and math.isfinite(value):
                writer.add_scalar(f"eval/{key}", value, algorithm.samples)
                writer.add_scalar(f"eval_time/{key}", value, int(wall_s))
        writer.flush()
        new_records.append(record)
        distance = record.get("mean_final_distance")
        # Push Cube's records (they carry the Table II metrics) hold the cube's best progress toward the goal there.
        measure = "best progress" if "straightness" in record else "mean max coverage"
        progress.write(f"eval at {algorithm.samples} samples, {wall_s:.0f} s: success "
                       f"{record['success_rate']:.0%}, {measure} {record['mean_max_coverage']:.3f}"
                       + (f", final distance {distance:.1f}" if isinstance(distance, float) else ""))

    def checkpoint(logs: dict[str, float]) -> None:
        save_checkpoint(run_dir, epoch, algorithm.state_dict(),
                        {"algorithm": algorithm.trainer_state(), "wall_s": wall_s, "epoch": epoch},
                        {**logs, "samples": float(algorithm.samples), "wall_s": wall_s})

    if evaluate is not None and config.eval_every and not any(r["epoch"] == epoch for r in evaluations):
        run_evaluation()  # the untrained policy: where every curve starts
    logs: dict[str, float] = {}
    stopped_early = interrupted = in_epoch = False
    call_start = time.monotonic()
    stop = StopAtBoundary(progress.write, "stopping at the end of this epoch, with a checkpoint")
    try:
        with stop:
            while algorithm.samples < config.max_samples and not (config.max_epochs and epoch >= config.max_epochs):
                stop.at_boundary()
                if config.time_limit_s and time.monotonic() - call_start >= config.time_limit_s:
                    stopped_early = True
                    break
                tick = time.monotonic()
                before = algorithm.samples
                in_epoch = True
                logs = algorithm.train_epoch()
                in_epoch = False
                wall_s += time.monotonic() - tick
                epoch += 1
                bad = [key for key, value in logs.items() if not math.isfinite(value)]
                if bad:
                    progress.write(f"warning: non-finite logs at epoch {epoch}: {', '.join(bad)}")
                progress.update(min(algorithm.samples, config.max_samples) - min(before, config.max_samples))
                busy = load_watch.check() if load_watch else None
                if busy:
                    progress.write(f"epoch {epoch}: {busy}")
                progress.set_postfix({key: f"{logs[key]:.3g}" for key in ("global_return", "return", "mean_reward")
                                      if key in logs}, refresh=False)
                if epoch % config.log_every == 0:
                    for key, value in logs.items():
                        writer.add_scalar(f"train/{key}", value, algorithm.samples)
                    writer.add_scalar("time/wall_s", wall_s, algorithm.samples)
                    writer.add_scalar("time/samples_per_s", algorithm.samples / max(wall_s, 1e-9), algorithm.samples)
                if config.eval_every and epoch % config.eval_every == 0:
                    run_evaluation()
                if epoch % config.checkpoint_every == 0:
                    checkpoint(logs)
                stop.at_boundary()
    except KeyboardInterrupt:
        stopped_early = interrupted = True
        if in_epoch:  # a second signal cut the epoch: its half-done update must not become a checkpoint
            progress.write(f"interrupted inside epoch {epoch + 1}: its half-done update is not saved; re-run the "
                           "same command to resume from the last complete checkpoint")
        else:
            progress.write("interrupted: writing a checkpoint (re-run the same command to resume)")
    finally:
        progress.close()
    if config.eval_every and not stopped_early and not any(r["epoch"] == epoch for r in evaluations + new_records):
        run_evaluation()  # the final policy
    if not in_epoch:
        checkpoint(logs)
    writer.close()
    return PolicyTrainResult(epochs=epoch, samples=algorithm.samples, wall_s=wall_s, evaluations=new_records,
                             logs=logs, stopped_early=stopped_early, interrupted=interrupted)


def set_seed(seed: int) -> None:
    """Seed torch's global RNG (network initialisation) before an algorithm is built."""
    torch.manual_seed(seed)


__all__ = ["EVAL_LOG", "Evaluate", "PolicyAlgorithm", "PolicyTrainConfig", "PolicyTrainResult", "read_evaluations",
           "set_seed", "train_policy"]
