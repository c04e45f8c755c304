"""The busy-machine warning: threads plus the machine's other load against its cores."""

from __future__ import annotations

import io
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
    from dmo_ros.training import cpu_load

    monkeypatch.setattr(os, "getloadavg", lambda: (7.5, 0.0, 0.0))
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(cpu_load, "runnable_others", lambda: 3.0)
    assert "load 7.5 on 2 cores" in oversubscription_warning(threads=2)
    monkeypatch.setattr(cpu_load, "runnable_others", lambda: 0.0)  # the load of jobs that have ended
    assert oversubscription_warning(threads=2) is None

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


@pytest.mark.parametrize(("others_now", "warned"), [
    (0.0, False),  # the load average still counts a stage that has just ended: nothing wants a core now
    (1.0, True),  # another job is running
    (None, True),  # not known (no /proc/loadavg): the load average alone
])
def test_at_the_start_a_load_that_has_already_ended_is_not_warned(others_now, warned):
    message = oversubscription_warning(threads=2, load=1.8, cores=2, others_now=others_now)
    assert (message is not None) == warned


def test_runnable_others_reads_proc_loadavg_without_this_process(monkeypatch):
    import builtins

    real_open = builtins.open
    reads = iter(["1.80 1.5 1.2 3/118 99\n", "1.80 1.5 1.2 1/118 99\n", "1.80 1.5 1.2 3/118 99\n"])
    monkeypatch.setattr(builtins, "open", lambda path, *a, **k: (
        io.StringIO(next(reads)) if path == "/proc/loadavg" else real_open(path, *a, **k)))
    from dmo_ros.training.cpu_load import runnable_others

    assert runnable_others(samples=3, interval_s=0.0) == 2.0  # the median of 2, 0, 2

    def missing(path, *a, **k):
        raise FileNotFoundError(path)

    monkeypatch.setattr(builtins, "open", missing)
    assert runnable_others(samples=3, interval_s=0.0) is None
