"""Multi-process training on PyTorch's own stack: torchrun sets the environment, we read it.

``torchrun --nproc-per-node N dmo-train-... `` starts N processes with ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` set; each joins the
process group (NCCL on CUDA, gloo on CPU) and wraps its model in DistributedDataParallel.
A plain launch (no ``WORLD_SIZE``) is a world of one and never touches torch.distributed.
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    """Where this process stands among the training processes."""

    rank: int = 0
    """This process's index among all processes (0 writes checkpoints, logs, progress)."""
    size: int = 1
    """How many processes train together."""
    local_rank: int = 0
    """Index on this machine: picks the GPU."""

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def is_main_process() -> bool:
    """True in a single process and in rank 0 under torchrun (the process that writes shared files)."""
    return int(os.environ.get("RANK", "0")) == 0


class DeviceError(ValueError):
    """A ``--device`` that is not a device name, or names a device this machine does not have."""


def resolve_device(name: str, world: World) -> torch.device:
    """``auto`` → this process's GPU when CUDA is available, else the CPU; :class:`DeviceError` for a device name
    torch does not know or a GPU this machine lacks."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError, TypeError):
        raise DeviceError(f"--device {name!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda"):
        raise DeviceError(f"--device {name!r}: only cpu and cuda devices are supported; use auto, cpu, cuda or cuda:N")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device {name!r} requested but CUDA is not available here (use --device cpu)")
        if device.index is None:
            device = torch.device("cuda", world.local_rank)
        if device.index >= torch.cuda.device_count():
            raise DeviceError(f"device {str(device)!r} requested but this machine has {torch.cuda.device_count()} "
                              f"GPU(s); use --device cuda (or cuda:N below {torch.cuda.device_count()})")
        torch.cuda.set_device(device)
    return device


def init_world(device_name: str) -> tuple[World, torch.device]:
    """Join the process group when started by torchrun; return this process's place and device."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        world = World()
        return world, resolve_device(device_name, world)
    world = World(rank=int(os.environ["RANK"]), size=size, local_rank=int(os.environ.get("LOCAL_RANK", "0")))
    device = resolve_device(device_name, world)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend)
        if backend == "gloo":
            # Left to interpreter finalization, gloo's worker threads can abort the process after a
            # finished run ("terminate called without an active exception", pytorch/pytorch#190489);
            # atexit runs while Python is still whole, and gloo's teardown is local. Not for NCCL: its
            # teardown after one rank failed can block (pytorch/torchtitan#1342). A no-op once the group is gone.
            atexit.register(shutdown, world)
    return world, device


def barrier(world: World) -> None:
    if world.distributed and dist.is_initialized():
        dist.barrier()


def all_reduce_mean(values: dict[str, float], world: World, device: torch.device) -> dict[str, float]:
    """Average a dict of floats over all processes (same keys everywhere)."""
    if not world.distributed or not values:
        return values
    keys = sorted(values)
    tensor = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return {k: v / world.size for k, v in zip(keys, tensor.tolist(), strict=True)}


def shutdown(world: World) -> None:
    """Leave the process group (every process, once, at the end); safe to call twice."""
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()


__all__ = ["DeviceError", "World", "all_reduce_mean", "barrier", "init_world", "resolve_device", "shutdown"]
