"""The busy-machine warning: threads plus the machine's other load against its cores."""

from __future__ import annotations

import os

import pytest

from dmo_ros.training.cpu_load import LoadWatch, oversubscription_warning


@pytest.mark.parametrize(("threads", "load", "cores", "warned"), [
    (2, 2.0, 2, True),  # two busy jobs on 2 cores and a 2-thread run: the case that ran 9x slower
    (2, 0.1, 2, False),  # an idle machine
    (1, 4.0, 2, False),  # one thread waits on no thread of its own
    (8, 1.0, 16, False),  # room to spare
    (16, 9.0, 16, True),
])
def test_warns_only_when_threads_and_load_exceed_the_cores(threads, load, cores, warned):
    message = oversubscription_warning(threads=threads, load=load, cores=cores)
    assert (message is not None) == warned
    if warned:
        assert f"load {load:.1f} on {cores} cores" in message and "OMP_NUM_THREADS=1" in message


def test_reads_the_machine_when_not_told(monkeypatch):
    monkeypatch.setattr(os, "getloadavg", lambda: (7.5, 0.0, 0.0))
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert "load 7.5 on 2 cores" in oversubscription_warning(threads=2)

    def unavailable():
        raise OSError("no load average here")

    monkeypatch.setattr(os, "getloadavg", unavailable)
    assert oversubscription_warning(threads=2) is None


@pytest.mark.parametrize(("threads", "load", "cores", "warned"), [
    (2, 2.1, 2, False),  # a 2-thread run alone: the load average is its own threads
    (2, 3.0, 2, True),  # a 1-thread job joined it: the case that fell from ~57 to 2.4 samples/s
    (1, 5.0, 2, False),
    (16, 16.4, 16, False),
    (16, 18.0, 16, True),
])
def test_while_running_the_load_already_counts_the_runs_own_threads(threads, load, cores, warned):
    message = oversubscription_warning(threads=threads, load=load, cores=cores, running=True)
    assert (message is not None) == warned


def test_the_load_watch_looks_at_its_interval_and_warns_once():
    now = [0.0]
    answers = iter([None, "warning: busy", "warning: still busy"])
    looked = []

    def warning():
        looked.append(now[0])
        return next(answers)

    watch = LoadWatch(every_s=60.0, clock=lambda: now[0], warning=warning)
    seen = []
    for second in range(0, 400, 10):
        now[0] = float(second)
        seen.append(watch.check())
    assert looked == [60.0, 120.0]  # every 60 s until it warned, then never again
    assert [message for message in seen if message] == ["warning: busy"]
