"""Whether a CPU run shares its cores: a warning, printed by the trainers when they start and, once, when a job
started beside a running trainer makes it share them (:class:`LoadWatch`).

torch runs one intra-op thread per core by default. When other jobs already keep the cores busy, those threads
wait on each other at every operation: on this project's 2-core machine a 2-thread trainer beside two 1-thread
trainers ran 9x slower than with one thread (README, "Troubleshooting"), and a 2-thread trainer that a second job
joined later fell from ~57 to 2.4 samples/s (docs/ladder.md, 2026-12-06). Training still goes on; the warning says
how to avoid it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import torch


def runnable_others(samples: int = 5, interval_s: float = 0.05) -> float | None:
    """How many other tasks want a core right now: the median over ``samples`` reads of the runnable count in
    ``/proc/loadavg`` (Linux; it counts this reading process too, so one is taken off), or None where there is no such
    file. Unlike the 1-minute load average it does not remember a job that has just ended."""
    counts = []
    for index in range(samples):
        try:
            with open("/proc/loadavg") as loadavg:
                fields = loadavg.read().split()
            counts.append(int(fields[3].split("/")[0]) - 1)
        except (OSError, IndexError, ValueError):
            return None
        if index + 1 < samples:
            time.sleep(interval_s)
    return float(sorted(counts)[len(counts) // 2])


def oversubscription_warning(threads: int | None = None, load: float | None = None,
                             cores: int | None = None, running: bool = False,
                             others_now: float | None = None) -> str | None:
    """A warning when this run's CPU threads and the machine's other work do not fit its cores, else None.

    ``threads``: this run's intra-op threads (default torch's); ``load``: the 1-minute load average (default the
    machine's); ``cores``: default ``os.cpu_count()``. Before the run (``running`` false) it warns when ``threads``
    plus ``load`` exceed the cores by half and, where ``others_now`` (default :func:`runnable_others` when the load is
    the machine's; None: not looked at) is known, other tasks still want a core the run's threads need: the load
    average still counts a pipeline's previous stage for a minute after it ended. While it runs the load average
    already counts the run's own busy threads, so it warns when ``load`` alone exceeds the cores by half a core. A
    1-thread run is never warned (it cannot wait on its own threads)."""
    threads = torch.get_num_threads() if threads is None else threads
    cores = cores or os.cpu_count() or 1
    if load is None:
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):  # not on this platform
            return None
        if not running and threads > 1 and others_now is None:
            others_now = runnable_others()
    fits = load <= cores + 0.5 if running else load + threads <= 1.5 * cores
    if not running and others_now is not None:
        fits = fits or others_now + threads <= cores
    if threads <= 1 or fits:
        return None
    return (f"warning: the machine is busy (load {load:.1f} on {cores} cores) and this run uses {threads} CPU threads; "
            "threads that share cores wait on each other and training can be several times slower. Give each of "
            "the runs that share the cores fewer threads, e.g. OMP_NUM_THREADS=1.")


class LoadWatch:
    """Looks at the machine's load every ``every_s`` seconds of a running trainer (:meth:`check`, called from its
    loop) and returns :func:`oversubscription_warning`'s message (``running=True``) the first time it applies, then
    None for good: a job started beside a trainer that already holds every core is the case a start-time check
    cannot see."""

    def __init__(self, every_s: float = 120.0, clock: Callable[[], float] = time.monotonic,
                 warning: Callable[[], str | None] = lambda: oversubscription_warning(running=True)) -> None:
        self.every_s, self.clock, self.warning = every_s, clock, warning
        self.next_check = clock() + every_s
        self.warned = False

    def check(self) -> str | None:
        if self.warned or self.clock() < self.next_check:
            return None
        self.next_check = self.clock() + self.every_s
        message = self.warning()
        self.warned = message is not None
        return message


__all__ = ["LoadWatch", "oversubscription_warning", "runnable_others"]
