"""How a node process stops: SIGINT/SIGTERM and the death of its parent (see ``template``).

Plain Python, no rclpy: a node's console script (``dmo_ros.nodes.executables``) installs the
handler before it imports the node's module. Those imports (rclpy, NumPy, the message
packages; PyTorch for policy and dream) take seconds on a loaded machine, and a SIGINT in
that window (a Ctrl-C, or a launcher stopping a graph just after starting it) used to kill the
process with a KeyboardInterrupt traceback, its ``on_shutdown`` never run. ``run_node`` takes
the installed handler over (``stop_requests``), so a signal received during the imports stops
the node as one received while it is built does: the node is made, finishes at once and shuts
down as usual.

The handler only records the signal and sets a flag on the node: it takes no lock. A Python
signal handler runs in the main thread between two bytecodes, possibly while that thread
holds a lock, and waiting there for the same lock never returns.
"""

from __future__ import annotations

import contextlib
import ctypes
import faulthandler
import os
import signal
import sys
import threading
import time
from typing import Any, Protocol

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
TEARDOWN_LIMIT_S = 3.0
"""Seconds from the end of a node's ``on_shutdown`` to its process's exit, past which the process ends itself with
its exit code. Both launchers send SIGTERM 5 s after SIGINT, and a stop that needs it counts as unclean."""
BACKSTOP_S = 1.0
"""Seconds past the watchdog's deadline at which a teardown that holds the GIL is ended (see
:class:`TeardownWatchdog`): faulthandler prints every thread's traceback, and a native timer exits 0.2 s later."""
_BACKSTOP_DUMP_S = 0.2
"""Seconds between faulthandler's traceback and the native timer's exit (time to write the traceback)."""
_PR_SET_PDEATHSIG = 1


class TeardownWatchdog:
    """Ends the process with ``code`` unless :meth:`disarm` is called within ``TEARDOWN_LIMIT_S`` (or by ``deadline``,
    a ``time.monotonic()`` value).

    For what follows a node's ``on_shutdown``, when nothing is left to save: destroying the node, shutting rclpy
    down, the interpreter's exit (joining leftover threads, atexit handlers). ``phase`` says what is under way, for
    the warning. It runs on a daemon thread, which keeps running through the interpreter's exit, and writes with
    ``os.write`` and exits with ``os._exit`` because a hung thread may hold the locks of Python's streams.

    A hang inside a C call that keeps the GIL (rclpy's teardown is C++; seen in CI: ``destroy_node`` under load)
    stops that Python thread too. For it, ``BACKSTOP_S`` later, faulthandler's own C thread prints every thread's
    traceback (the place of the hang on stderr) and a POSIX timer's thread (:class:`NativeExit`, no GIL needed)
    ends the process with ``code``: still before the launchers' SIGTERM, and with the node's code, as for a hang
    that leaves the GIL free. Where no such timer can be made, faulthandler exits with code 1 instead."""

    def __init__(self, name: str, code: int, phase: str, deadline: float | None = None) -> None:
        self.name, self.code, self.phase = name, int(code), phase
        self.begun = time.monotonic()
        self.deadline = self.begun + TEARDOWN_LIMIT_S if deadline is None else deadline
        self._disarmed = threading.Event()
        threading.Thread(target=self._watch, name="teardown-watchdog", daemon=True).start()
        backstop = max(0.1, self.deadline - time.monotonic()) + BACKSTOP_S
        self._native_exit = NativeExit.arm(self.code, backstop + _BACKSTOP_DUMP_S)
        with contextlib.suppress(RuntimeError, ValueError, OSError):  # no usable fd 2: the Python watchdog only
            faulthandler.dump_traceback_later(backstop, exit=self._native_exit is None, file=2)

    def disarm(self) -> None:
        self._disarmed.set()
        faulthandler.cancel_dump_traceback_later()
        if self._native_exit is not None:
            self._native_exit.cancel()

    def _watch(self) -> None:
        if self._disarmed.wait(max(0.0, self.deadline - time.monotonic())):
            return
        busy = [t.name for t in threading.enumerate() if not t.daemon and t is not threading.main_thread()]
        where = self.phase + (f" (threads still running: {', '.join(busy)})" if busy else "")
        with contextlib.suppress(OSError):
            os.write(2, f"[WARN] [{self.name}]: the teardown after on_shutdown hung while {where}; exiting with "
                        f"code {self.code} (nothing left to save)\n".encode())
        os._exit(self.code)


class _Sigevent(ctypes.Structure):
    """Linux's ``struct sigevent`` (64 bytes) for ``SIGEV_THREAD``."""

    _fields_ = [("sigev_value", ctypes.c_void_p), ("sigev_signo", ctypes.c_int), ("sigev_notify", ctypes.c_int),
                ("sigev_notify_function", ctypes.c_void_p), ("sigev_notify_attributes", ctypes.c_void_p),
                ("_pad", ctypes.c_byte * 32)]


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


_SIGEV_THREAD = 2
_CLOCK_MONOTONIC = 1


class NativeExit:
    """A one-shot POSIX timer (``timer_create`` with ``SIGEV_THREAD``, glibc) that calls ``_exit(code)`` on a thread
    of its own: it ends the process even while the Python threads are stopped by a C call that keeps the GIL, which
    a Python thread or a Python signal handler cannot. The notify function gets the ``sigval`` union by value, in the
    first integer argument register, where ``_exit`` reads its status."""

    def __init__(self, libc: ctypes.CDLL, timer: ctypes.c_void_p) -> None:
        self._libc, self._timer = libc, timer
        self._cancelled = False

    @classmethod
    def arm(cls, code: int, seconds: float) -> NativeExit | None:
        """Exit with ``code`` in ``seconds``; None where the timer cannot be made (not Linux/glibc: the caller falls
        back to faulthandler's exit with code 1)."""
        if not sys.platform.startswith("linux"):
            return None
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            event = _Sigevent(sigev_value=code & 0xFF, sigev_notify=_SIGEV_THREAD,
                              sigev_notify_function=ctypes.cast(libc._exit, ctypes.c_void_p).value)
            timer = ctypes.c_void_p()
            if libc.timer_create(_CLOCK_MONOTONIC, ctypes.byref(event), ctypes.byref(timer)) != 0:
                return None
            whole = int(seconds)
            when = _Itimerspec(it_value=_Timespec(whole, int((seconds - whole) * 1e9)))
            if libc.timer_settime(timer, 0, ctypes.byref(when), None) != 0:
                libc.timer_delete(timer)
                return None
        except (AttributeError, OSError):  # no timer_create in this C library
            return None
        return cls(libc, timer)

    def cancel(self) -> None:
        """Delete the timer; a second call does nothing (glibc frees a deleted timer's record)."""
        if not self._cancelled:
            self._cancelled = True
            self._libc.timer_delete(self._timer)


class Finishable(Protocol):
    def finish(self, code: int = 0) -> None: ...


def ask_for_signal_on_parent_death(sig: int = signal.SIGTERM) -> None:
    """Linux: the kernel sends ``sig`` to this process when its parent exits (even by SIGKILL).

    Strictly, when the parent's *thread* that started this process exits: ``ros2 launch``
    (its asyncio loop) and ``dmo-launch`` start nodes from their main thread.
    """
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, sig)


class StopRequests:
    """The SIGINT/SIGTERM handler of a node process: a signal asks the node to finish (or, before
    the node exists, is kept for it); those after the first are also reported, and once the node
    shuts down they are otherwise ignored. It may nest (a second signal between two bytecodes of
    the first's handler) and stays correct when it does."""

    def __init__(self) -> None:
        self.node: Finishable | None = None
        self.received: list[str] = []
        self.shutting_down = False
        self.parent = os.getppid()
        self.teardown: TeardownWatchdog | None = None
        """The node's teardown watchdog, once ``on_shutdown`` has returned (its deadline also bounds the exit)."""

    def __call__(self, number: int, _frame: Any) -> None:
        name = signal.Signals(number).name
        again = bool(self.received) or self.shutting_down
        self.received.append(name)
        # Every signal before the shutdown asks the node to finish (``finish`` keeps the first code), not only the
        # one that came first: two signals microseconds apart (a terminal's Ctrl-C beside a launcher's forwarded
        # one) nest this handler, and a "was it the first?" test after the append made both calls take the second
        # branch, so the node spun on until SIGKILL (seen in CI: teleop, 50 ticks after two "again" messages).
        if not self.shutting_down and self.node is not None:
            self.node.finish(0)
        if not again:
            return
        # os.write: no Python buffer to re-enter. A launcher killed before its nodes leaves
        # their output a broken pipe: an error raised here would interrupt the shutdown.
        with contextlib.suppress(OSError):
            os.write(2, f"[INFO] {name} again: already stopping; the shutdown finishes first "
                        "(files are being closed; SIGKILL aborts it)\n".encode())

    def install(self) -> None:
        """Handle the stop signals from now on and get SIGTERM when the parent process dies."""
        self.parent = os.getppid()
        ask_for_signal_on_parent_death()
        for sig in STOP_SIGNALS:
            signal.signal(sig, self)

    @property
    def requested(self) -> bool:
        return bool(self.received)


def stop_requests() -> StopRequests:
    """The process's stop handler: the one installed earlier (by the console script), else a new
    one, installed now."""
    global _installed
    handler = signal.getsignal(signal.SIGINT)
    if isinstance(handler, StopRequests):
        return handler
    _installed = StopRequests()
    _installed.install()
    return _installed


_installed: StopRequests | None = None
"""The handler ``stop_requests`` installed last (still known after ``ignore_stop_signals`` replaced it)."""


def watch_exit(code: int) -> None:
    """Bound the interpreter's exit after a node ran (the console script's last step): past the node's teardown
    deadline the process ends itself with ``code``. A process that ran no node is left alone."""
    teardown = None if _installed is None else _installed.teardown
    if teardown is not None:
        TeardownWatchdog(teardown.name, code, "exiting the interpreter", deadline=teardown.deadline)


def ignore_stop_signals() -> None:
    """From here on the process only exits. Python's finalization puts back the default action
    of a signal that has a Python handler (death by signal: exit code -15, not 0) and keeps an
    ignored one ignored."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
