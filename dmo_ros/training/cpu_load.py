"""Whether a CPU run is about to share its cores: a warning, printed by the trainers when they start.

torch runs one intra-op thread per core by default. When other jobs already keep the cores busy, those threads
wait on each other at every operation: on this project's 2-core machine a 2-thread trainer beside two 1-thread
trainers ran 9x slower than with one thread (README, "Troubleshooting"). Training still goes on; the warning says
how to avoid it.
"""

from __future__ import annotations

import os

import torch


def oversubscription_warning(threads: int | None = None, load: float | None = None,
                             cores: int | None = None) -> str | None:
    """A warning when ``threads`` (default: torch's intra-op threads) plus the machine's other work (``load``:
    the 1-minute load average, default the machine's) exceed its ``cores`` (default ``os.cpu_count()``) by
    half, else None. A 1-thread run is never warned (it cannot wait on its own threads)."""
    threads = torch.get_num_threads() if threads is None else threads
    cores = cores or os.cpu_count() or 1
    if load is None:
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):  # not on this platform
            return None
    if threads <= 1 or load + threads <= 1.5 * cores:
        return None
    return (f"warning: the machine is busy (load {load:.1f} on {cores} cores) and this run uses {threads} CPU threads; "
            "threads that share cores wait on each other and training can be several times slower. Give each of "
            "the runs that share the cores fewer threads, e.g. OMP_NUM_THREADS=1.")


__all__ = ["oversubscription_warning"]
