"""Ctrl-C or SIGTERM in a command: one line and exit code 130 / 143 (as a shell reports them), never a traceback.

Light on purpose (no torch): every command's ``main`` may be wrapped. What a command keeps when it is
interrupted is its own business (a trainer's loop writes a checkpoint first; dmo-convert leaves only its
``.partial`` folder); the wrapper only ends it cleanly.

SIGTERM (``kill``, ``docker stop``, a batch scheduler's preemption, systemd) is answered like Ctrl-C: the wrapper
turns it into a ``KeyboardInterrupt`` in the main thread, so a trainer checkpoints before it exits. Before, SIGTERM
killed a trainer at once and lost the progress since its last checkpoint; a job started in the background with
``nohup`` or ``setsid`` ignores SIGINT (the shell's SIG_IGN is inherited), so ``kill`` was the only way to stop it.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import threading
from collections.abc import Callable

INTERRUPTED_EXIT_CODE = 130
"""A command stopped by Ctrl-C exits 128 + SIGINT, as a shell reports it."""

TERMINATED_EXIT_CODE = 143
"""A command stopped by SIGTERM exits 128 + SIGTERM, as a shell reports it."""


REDELIVERY_DELAY_S = 0.05
"""Seconds after Python dropped a stop in a C callback or finaliser before the signal is sent again."""


class StopAtBoundary:
    """While active (a ``with`` block, main thread only), the first Ctrl-C or SIGTERM is held until
    :meth:`at_boundary` (a point where stopping leaves consistent state: a trainer's epoch end, a recorder's tick);
    the second is delivered at once.

    Only signals whose handler is a Python callable are held (``default_int_handler`` for Ctrl-C,
    :func:`stop_on_interrupt`'s for SIGTERM); an ignored signal (a ``nohup`` job's SIGINT) stays ignored. At the
    boundary the held signal is handed to the handler that was in place, so the command reports and exits as it
    would have (130 / 143). ``notify`` (optional) is told ``"SIGINT: <what>"`` when a signal is held."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, notify: Callable[[str], None] | None = None, what: str = "stopping at the next safe point"
                 ) -> None:
        self.notify, self.what = notify, what
        self.previous: dict[int, Callable] = {}
        self.received: list[int] = []
        """Every signal this block's handler got, in order; the first is the held one."""

    def __enter__(self) -> StopAtBoundary:
        if threading.current_thread() is threading.main_thread():
            for number in self.SIGNALS:
                handler = signal.getsignal(number)
                if callable(handler):
                    self.previous[number] = handler
                    signal.signal(number, self._on_signal)
        return self

    def __exit__(self, *_exc: object) -> None:
        self._restore()

    def _restore(self) -> None:
        for number, handler in self.previous.items():
            signal.signal(number, handler)
        self.previous = {}

    @property
    def held(self) -> int | None:
        """The signal held for the boundary, or None."""
        return self.received[0] if self.received else None

    def _on_signal(self, number: int, frame: object) -> None:
        # First or second is decided by one append, then the count: this handler may nest (a second signal between
        # two bytecodes of the first's call), and a "none held yet?" test before setting it let both be held.
        self.received.append(number)
        if len(self.received) == 1:
            if self.notify is not None:
                self.notify(f"{signal.Signals(number).name}: {self.what} (again: stop now)")
            return
        handler = self.previous.get(number, signal.default_int_handler)
        self._restore()
        handler(number, frame)

    def at_boundary(self) -> None:
        """Deliver a held signal now (to the handler it would have reached): raises what that handler raises."""
        if self.held is not None:
            number, handler = self.held, self.previous.get(self.held, signal.default_int_handler)
            self._restore()
            handler(number, None)


def stop_on_interrupt(main: Callable[..., int], note: str = "") -> Callable[..., int]:
    """``main(argv)`` that answers Ctrl-C with ``<command>: interrupted[; note]`` on stderr and exit code 130, and
    SIGTERM alike with ``<command>: terminated (SIGTERM)[; note]`` and exit code 143.

    SIGTERM is caught only while ``main`` runs, in the main thread, and only where nothing else handles it (its
    handler is the default); a second SIGTERM while the first is being answered (a checkpoint being written) is
    ignored. A ``main`` that catches the interrupt itself and returns 130 gets 143 when the cause was SIGTERM.

    A stop that Python drops because it was raised where it cannot propagate (inside a C callback such as pymunk's
    cffi draw callbacks, or a ``__del__``; reported through :data:`sys.unraisablehook`) is delivered again, so a
    ``kill`` is never lost; other unraisable exceptions go to the hook that was in place."""

    @functools.wraps(main)
    def wrapped(argv: list[str] | None = None) -> int:
        terminated: list[int] = []

        def on_terminate(number: int, _frame: object) -> None:
            if not terminated:  # a repeated SIGTERM must not interrupt the checkpoint the first one asked for
                terminated.append(number)
                raise KeyboardInterrupt

        def on_unraisable(unraisable) -> None:
            if not issubclass(unraisable.exc_type, KeyboardInterrupt):
                previous_hook(unraisable)
                return
            # Python dropped the stop where it cannot propagate (a C callback -- gym-pusht draws through pymunk's
            # cffi callbacks -- or a finaliser): send the signal again from a thread, a moment later, so that it
            # lands out of this hook (raised in here it would be dropped for good); landing in a callback again
            # brings it back here.
            number = signal.SIGTERM if terminated else signal.SIGINT
            terminated.clear()
            timer = threading.Timer(REDELIVERY_DELAY_S, os.kill, (os.getpid(), number))
            timer.daemon = True  # a command that ends first is not killed after it
            timer.start()

        previous = _install_terminate_handler(on_terminate)
        previous_hook = sys.unraisablehook
        if threading.current_thread() is threading.main_thread():
            sys.unraisablehook = on_unraisable
        prog = os.path.basename(sys.argv[0])
        try:
            code = main(argv)
        except KeyboardInterrupt:
            what = "terminated (SIGTERM)" if terminated else "interrupted"
            print(f"\n{prog}: {what}" + (f"; {note}" if note else ""), file=sys.stderr, flush=True)
            code = INTERRUPTED_EXIT_CODE
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
            sys.unraisablehook = previous_hook
        return TERMINATED_EXIT_CODE if terminated and code == INTERRUPTED_EXIT_CODE else code

    return wrapped


def _install_terminate_handler(handler: Callable[[int, object], None]) -> signal.Handlers | None:
    """Install ``handler`` for SIGTERM when this is the main thread and SIGTERM is unhandled; the handler it
    replaced (to restore), or None where nothing was installed."""
    if threading.current_thread() is not threading.main_thread():
        return None
    previous = signal.getsignal(signal.SIGTERM)
    if previous is not signal.SIG_DFL:
        return None
    signal.signal(signal.SIGTERM, handler)
    return previous


__all__ = ["INTERRUPTED_EXIT_CODE", "TERMINATED_EXIT_CODE", "StopAtBoundary", "stop_on_interrupt"]
