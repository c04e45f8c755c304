"""Run folders and checkpoints: atomic writes, a ``last`` pointer, weights that load without running code.

A run folder::

    RUN_DIR/config.json                      what was trained: {"model": {...}, "train": {...}, ...}
    RUN_DIR/checkpoints/step_00001000/       one checkpoint
        model.safetensors                    the weights (safetensors: plain tensors, no pickle)
        trainer.pt                           optimizer, RNG states, step (torch.load(weights_only=True))
        meta.json                            step, time, the metrics at save time
    RUN_DIR/checkpoints/last                 text file: the name of the newest complete checkpoint
    RUN_DIR/tensorboard/                     TensorBoard event files

A checkpoint is written into ``step_N.tmp`` and renamed when complete, then ``last`` is
replaced atomically (write + ``os.replace``); a crash at any point leaves the previous
checkpoint and pointer intact, and a half-written folder is never pointed at. Loading uses
safetensors for weights and ``torch.load(weights_only=True)`` for trainer state, so a
tampered checkpoint cannot run code.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

CHECKPOINTS = "checkpoints"
LAST = "last"
CONFIG = "config.json"
WEIGHTS = "model.safetensors"
TRAINER_STATE = "trainer.pt"
DATASET_META = "meta.json"  # what marks a dataset folder (dmo_ros.dataset.format.META_FILE)


class CheckpointError(RuntimeError):
    """A run folder or checkpoint that cannot be read (missing, incomplete, mismatched)."""


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as stream:
        stream.write(text)
        stream.flush()
        os.fsync(stream.fileno())
    os.replace(tmp, path)


def check_run_dir(run_dir: Path | str) -> None:
    """Refuse a ``--run-dir`` that cannot hold a run: a file, or a dataset folder (a run's files would be mixed
    into the dataset's); :class:`CheckpointError` with the fix."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise CheckpointError(f"--run-dir {run_dir} is a file, not a folder; choose another --run-dir")
    blocking = next((parent for parent in run_dir.parents if parent.exists() and not parent.is_dir()), None)
    if blocking is not None:
        raise CheckpointError(f"--run-dir {run_dir}: {blocking} is a file, so no folder can be made there; "
                              "choose another --run-dir")
    if (run_dir / DATASET_META).is_file():
        raise CheckpointError(f"--run-dir {run_dir} is a dataset folder ({DATASET_META}); give the dataset as "
                              "the input and a new folder (e.g. runs/NAME) as --run-dir")


RESUME_INPUTS = {"preset": "--preset", "datasets": "datasets", "world_model": "--world-model",
                 "reward_run": "--reward-run", "goal": "--goal", "local_model": "--local-model",
                 "tokenizer_run": "--tokenizer"}
"""What a run is trained from, as its ``config.json`` records it: a resumed run must be given the same."""


def changed_inputs(run_dir: Path | str, config: dict[str, Any]) -> str:
    """Why ``config`` may not resume the run in ``run_dir``, in one line ('' when it may, or there is nothing to
    resume): an input of :data:`RESUME_INPUTS` recorded by the run's checkpointed ``config.json`` and given
    differently now. Resuming with another preset, dataset, world model, reward or goal picture would train one
    network on two setups and record only the second."""
    try:
        saved = read_run_config(run_dir)
        if latest_step(run_dir) is None:
            return ""
    except CheckpointError:
        return ""

    def shown(key: str, value: Any) -> str:
        if key == "datasets" and isinstance(value, list):
            return ", ".join(map(str, sorted(value)))
        return "none" if value is None else str(value)

    clash = [key for key in RESUME_INPUTS if key in saved and key in config
             and shown(key, saved[key]) != shown(key, config[key])]
    if not clash:
        return ""
    held = "; ".join(f"{RESUME_INPUTS[key]} {shown(key, saved[key])} (given now: {shown(key, config[key])})"
                     for key in clash)
    return f"{run_dir} holds a run trained with {held}; resume it with the same inputs, or train into a new --run-dir"


def write_run_config(run_dir: Path | str, config: dict[str, Any]) -> None:
    """Write ``config.json`` (atomically) — the config a later load rebuilds the model from.

    Raises :class:`CheckpointError` (:func:`changed_inputs`) when it would resume a run with other inputs."""
    run_dir = Path(run_dir)
    check_run_dir(run_dir)
    problem = changed_inputs(run_dir, config)
    if problem:
        raise CheckpointError(problem)
    run_dir.mkdir(parents=True, exist_ok=True)
    _write_atomic(run_dir / CONFIG, json.dumps(config, indent=2, sort_keys=True) + "\n")


def recorded_path(path: Path | str | None) -> str | None:
    """An input's path as a run's ``config.json`` records it: absolute, so the record still names the input
    when it is read from another working directory (``dmo-ladder-table --gates``, a later session); None
    stays None."""
    return None if path is None else str(Path(path).resolve())


RUN_KINDS = {
    "world_model": ("world model", "dmo-train-world-model"),
    "world_model_v4": ("DreamerV4-style world model", "dmo-train-dynamics"),
    "world_model_v4_tokenizer": ("tokenizer", "dmo-train-tokenizer"),
    "reward": ("reward model", "dmo-train-reward"),
    "local_model": ("local model", "dmo-train-local-model"),
    "policy": ("policy", "dmo-train-policy or dmo-train-act"),
    "rung0": ("rung 0 policy", "dmo-train-rung0"),
}
"""A run's ``config.json`` ``kind`` -> (what it holds, the command that trains it), for the messages."""


class RunKindError(CheckpointError, ValueError):
    """A run folder of another kind than the command needs (a reward run given as the world model)."""


def read_run_config(run_dir: Path | str, kind: str | None = None) -> dict[str, Any]:
    """The run's ``config.json``; :class:`CheckpointError` when the folder is not a run.

    ``kind``: the kind of run the caller needs; a run of another kind is a :class:`RunKindError` that says what
    the folder holds and which command trains the one needed (a run that records no kind is taken as it is)."""
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise CheckpointError(f"{run_dir}: not a training run folder (no {CONFIG})")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{path}: not valid JSON ({error})") from error
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: holds a {type(config).__name__}, not a run's config")
    held = config.get("kind", kind)
    if kind is not None and held != kind:
        held_name, held_command = RUN_KINDS.get(held, (repr(held), "another command"))
        name, command = RUN_KINDS.get(kind, (kind, "its trainer"))
        raise RunKindError(f"{run_dir} holds a {held_name} run (from {held_command}), not a {name} run; give the "
                           f"run folder of a {name} ({command})")
    return config


def saved_run(run_dir: Path | str, kind: str, what: str) -> dict[str, Any] | None:
    """The ``config.json`` of an existing run of ``kind`` (None when ``run_dir`` holds no run yet).

    A trainer re-run with the same command resumes from it; a run folder of another kind is a
    :class:`CheckpointError` (``what`` names the expected model in the message).
    """
    check_run_dir(run_dir)
    try:
        saved = read_run_config(run_dir)
    except CheckpointError:
        return None
    if saved.get("kind") != kind or "model" not in saved:
        raise CheckpointError(f"{run_dir} holds a run that is not a {what}; choose another --run-dir")
    latest_step(run_dir)  # a damaged last checkpoint is refused now, before any work
    return saved


def checkpoint_dir(run_dir: Path | str, checkpoint: str = LAST) -> Path:
    """The folder of ``checkpoint`` ("last", "step_00001000" or a path); CheckpointError if absent."""
    run_dir = Path(run_dir)
    if checkpoint == LAST:
        pointer = run_dir / CHECKPOINTS / LAST
        if not pointer.is_file():
            raise CheckpointError(f"{run_dir}: no checkpoint yet ({pointer} missing)")
        checkpoint = pointer.read_text().strip()
    folder = Path(checkpoint) if os.sep in checkpoint else run_dir / CHECKPOINTS / checkpoint
    if not (folder / WEIGHTS).is_file():
        raise CheckpointError(f"{folder}: incomplete checkpoint (no {WEIGHTS})")
    return folder


def latest_step(run_dir: Path | str) -> int | None:
    """Step of the ``last`` checkpoint, or None when the run has none (no ``last`` pointer).

    A ``last`` pointer whose checkpoint is missing or damaged is a :class:`CheckpointError` that names the
    complete checkpoints to go back to: resuming must not silently start over (and overwrite the run)."""
    if not (Path(run_dir) / CHECKPOINTS / LAST).is_file():
        return None
    try:
        folder = checkpoint_dir(run_dir)
        for name in (WEIGHTS, TRAINER_STATE, "meta.json"):
            if not (folder / name).is_file():
                raise CheckpointError(f"{folder}: incomplete checkpoint (no {name})")
        try:
            return int(json.loads((folder / "meta.json").read_text())["step"])
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise CheckpointError(f"{folder / 'meta.json'}: unreadable ({type(error).__name__}: {error})") from error
    except CheckpointError as error:
        raise CheckpointError(f"{error}; {resume_hint(run_dir)}") from error


def resume_hint(run_dir: Path | str) -> str:
    """How to get past a damaged last checkpoint: the complete ones left, or a new run folder."""
    root = Path(run_dir) / CHECKPOINTS
    pointed = (root / LAST).read_text().strip() if (root / LAST).is_file() else ""
    others = sorted(path.name for path in root.glob("step_*")
                    if path.name != pointed and not path.name.endswith(".tmp") and (path / WEIGHTS).is_file())
    if others:
        return (f"to resume from an earlier checkpoint write its name ({', '.join(others)}) into {root / LAST}, "
                "or train into a new --run-dir")
    return f"no earlier checkpoint is left: remove {run_dir} to start over, or train into a new --run-dir"


def save_checkpoint(run_dir: Path | str, step: int, model_state: dict[str, torch.Tensor],
                    trainer_state: dict[str, Any], metrics: dict[str, float], keep: int = 2) -> Path:
    """Write checkpoint ``step`` atomically, point ``last`` at it, keep the newest ``keep`` ones."""
    root = Path(run_dir) / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    name = f"step_{step:08d}"
    final, tmp = root / name, root / (name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    # safetensors stores plain tensors only: detached, contiguous CPU copies.
    save_file({key: value.detach().contiguous().cpu() for key, value in model_state.items()}, str(tmp / WEIGHTS))
    torch.save(trainer_state, tmp / TRAINER_STATE)
    (tmp / "meta.json").write_text(json.dumps({"step": step, "metrics": metrics}, indent=2) + "\n")
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    _write_atomic(root / LAST, name + "\n")
    finished = sorted(path for path in root.glob("step_*") if path.is_dir() and not path.name.endswith(".tmp"))
    for old in finished[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_model_weights(run_dir: Path | str, checkpoint: str = LAST) -> dict[str, torch.Tensor]:
    """The model's weights of a checkpoint (safetensors: reading them runs no code).

    A weights file that is not safetensors (e.g. a pickle renamed to model.safetensors) is a
    :class:`CheckpointError`: it is never unpickled."""
    path = checkpoint_dir(run_dir, checkpoint) / WEIGHTS
    with open(path, "rb") as stream:
        head = stream.read(9)
    # safetensors: an 8-byte little-endian header length, then the JSON header ("{"). Its first byte is
    # that length's low byte, which may be anything (0x80 included), so look at the layout, not one byte.
    header_size = int.from_bytes(head[:8], "little") if len(head) == 9 else -1
    looks_like_safetensors = head[8:9] == b"{" and 0 < header_size <= path.stat().st_size - 8
    if not looks_like_safetensors and (head[:1] == b"\x80" or head[:2] == b"PK"):  # pickle / torch.save zip
        raise CheckpointError(f"{path}: holds a pickle payload, not safetensors; refused (unpickling can run code)")
    try:
        weights = load_file(str(path))
    except Exception as error:  # SafetensorError and OSError: a damaged or foreign file, reported, not loaded
        raise CheckpointError(f"{path}: not a readable safetensors file ({error}); refused") from error
    # A file whose header parses can still hold damaged numbers; no trainer saves a NaN or inf weight (non-finite
    # steps are skipped), so such a file was damaged after it was written and would only produce NaN outputs.
    bad = [key for key, value in weights.items() if value.is_floating_point() and not torch.isfinite(value).all()]
    if bad:
        shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        raise CheckpointError(f"{path}: holds non-finite (NaN or inf) values in {shown}: a damaged file; refused "
                              f"({resume_hint(run_dir)})")
    return weights


def load_trainer_state(run_dir: Path | str, checkpoint: str = LAST) -> dict[str, Any]:
    """Optimizer, RNG states and step of a checkpoint, loaded with ``weights_only=True``.

    Raises :class:`CheckpointError` in one line for a file that is damaged (garbage, truncated, empty) or holds
    objects only code could rebuild, with the earlier checkpoints to resume from; torch's own message is not passed
    on, since it advises ``weights_only=False`` (running whatever code the file holds)."""
    path = checkpoint_dir(run_dir, checkpoint) / TRAINER_STATE
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        lines = str(error).strip().splitlines()
        if lines and lines[0].startswith("Weights only load failed"):
            why = "it holds objects that only code could rebuild, and loading a checkpoint never runs code"
        elif lines and "weights_only" not in lines[0]:
            why = f"{type(error).__name__}: {lines[0]}"
        else:
            why = type(error).__name__
        raise CheckpointError(f"{path} is damaged or was not written by dmo_ros ({why}); "
                              f"{resume_hint(run_dir)}") from None


__all__ = [
    "RESUME_INPUTS",
    "RUN_KINDS",
    "CheckpointError",
    "changed_inputs",
    "RunKindError",
    "check_run_dir",
    "checkpoint_dir",
    "latest_step",
    "load_model_weights",
    "load_trainer_state",
    "read_run_config",
    "resume_hint",
    "save_checkpoint",
    "saved_run",
    "write_run_config",
]
