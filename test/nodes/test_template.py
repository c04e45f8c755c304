"""The node template's signal handling, in-process (the process-level behaviour: the
recorder tests, test_smoke_nodes.py and test/launch/test_launch_parity.py)."""

from __future__ import annotations

import inspect
import re
import signal
from importlib import metadata
from pathlib import Path

import pytest
from nested_signal import SecondSignalRightAfterAppend

from dmo_ros.nodes import executables, stop_signals
from dmo_ros.nodes.stop_signals import STOP_SIGNALS, StopRequests, stop_requests


class FakeNode:
    def __init__(self) -> None:
        self.finished: list[int] = []

    def finish(self, code: int = 0) -> None:
        self.finished.append(code)


def test_the_first_signal_finishes_the_node_and_later_ones_are_only_reported(capfd):
    node, stop = FakeNode(), StopRequests()
    stop.node = node
    stop(signal.SIGINT, None)
    assert node.finished == [0] and stop.requested
    assert capfd.readouterr().err == ""
    stop.shutting_down = True
    stop(signal.SIGINT, None)
    stop(signal.SIGTERM, None)
    assert node.finished == [0]  # nothing raised, nothing interrupted
    err = capfd.readouterr().err
    assert "SIGINT again: already stopping; the shutdown finishes first" in err
    assert "SIGTERM again: already stopping" in err


@pytest.mark.parametrize("second", [signal.SIGINT, signal.SIGTERM])
def test_two_signals_nesting_in_the_handler_still_finish_the_node(capfd, second):
    """Seen in CI: a terminal's Ctrl-C and the launcher's forwarded one microseconds apart; both handler calls
    took the "again" branch and teleop spun on until SIGKILL."""
    node, stop = FakeNode(), StopRequests()
    stop.node = node
    stop.received = SecondSignalRightAfterAppend(lambda: stop(second, None))
    stop(signal.SIGINT, None)
    assert node.finished and set(node.finished) == {0}
    assert stop.received == ["SIGINT", second.name]
    assert capfd.readouterr().err.count("again: already stopping") == 1


def test_a_signal_before_the_node_exists_is_kept_for_it():
    stop = StopRequests()
    stop(signal.SIGTERM, None)  # while the node is still being built (a simulator loading)
    assert stop.requested and stop.received == ["SIGTERM"]


def test_a_first_signal_during_shutdown_does_not_finish_again(capfd):
    node, stop = FakeNode(), StopRequests()
    stop.node, stop.shutting_down = node, True  # the node finished by itself and is closing
    stop(signal.SIGINT, None)
    assert node.finished == []
    assert "already stopping" in capfd.readouterr().err


@pytest.fixture
def own_stop_handlers(monkeypatch):
    """Installing a node's handlers here leaves pytest's own as they were (and asks for no parent-death signal)."""
    monkeypatch.setattr(stop_signals, "ask_for_signal_on_parent_death", lambda: None)
    saved = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def test_run_node_takes_over_the_handler_the_console_script_installed(own_stop_handlers):
    early = stop_requests()  # what a console script does first
    assert all(signal.getsignal(sig) is early for sig in STOP_SIGNALS)
    early(signal.SIGINT, None)  # a Ctrl-C while the node's module is still being imported
    later = stop_requests()  # what run_node does
    assert later is early and later.requested


def test_every_node_executable_installs_the_stop_handler_before_importing_its_node():
    """The console scripts the graphs start are the functions of dmo_ros.nodes.executables, one per node module."""
    scripts = {ep.name: ep.value for ep in metadata.distribution("dmo_ros").entry_points
               if ep.group == "console_scripts" and not ep.name.startswith("dmo-")}
    assert scripts, "no node executables installed"
    for name, target in scripts.items():
        assert target == f"dmo_ros.nodes.executables:{name}", (name, target)
        module = Path(executables.__file__).with_name(f"{name}.py")
        assert "\ndef main(" in module.read_text(), module
        assert inspect.getsource(getattr(executables, name)).strip().endswith(f'return run("{name}")')


def test_only_the_policy_node_runs_callbacks_on_several_threads():
    """With one executor thread no callback is running when ``on_shutdown`` is called, so a node's shutdown zero
    command is its last one (see ``run_node``). A node that spins more threads must keep its callbacks from
    publishing after it, as the policy node does (test_policy_node_shutdown.py); then it joins this set."""
    nodes = Path(executables.__file__).parent
    several = {path.stem for path in nodes.glob("*.py") if re.search(r"run_node\([^)]*threads=", path.read_text())}
    assert several == {"policy"}


def test_a_node_is_destroyed_only_after_its_running_callbacks_return(own_stop_handlers, monkeypatch):
    """With several executor threads a callback may still run when the node stops: ``run_node`` calls
    ``on_shutdown`` at once (the zero command is not held up) but destroys the node only after it returned."""
    import threading
    import time

    from rclpy.callback_groups import MutuallyExclusiveCallbackGroup

    from dmo_ros.nodes import template

    events: list[str] = []
    started = threading.Event()

    class SlowCallbackNode(template.DmoNode):
        def __init__(self) -> None:
            super().__init__("slow_callback_test")
            self.slow = self.create_timer(0.01, self.slow_step, MutuallyExclusiveCallbackGroup())
            self.stopper = self.create_timer(0.01, self.stop, MutuallyExclusiveCallbackGroup())

        def slow_step(self) -> None:
            self.slow.cancel()
            started.set()
            time.sleep(0.5)  # an inference in progress
            events.append("callback returned")

        def stop(self) -> None:
            if started.is_set():
                self.stopper.cancel()
                self.finish(0)

        def on_shutdown(self) -> None:
            events.append("on_shutdown")

        def destroy_node(self) -> None:
            events.append("destroyed")
            super().destroy_node()

    assert template.run_node(SlowCallbackNode, args=[], threads=2) == 0
    assert events == ["on_shutdown", "callback returned", "destroyed"]

    # A callback that hangs does not hang the stop: the node is destroyed after CALLBACK_DRAIN_S.
    events.clear()
    started.clear()
    monkeypatch.setattr(template, "CALLBACK_DRAIN_S", 0.1)
    monkeypatch.setattr(SlowCallbackNode, "slow_step", lambda self: (self.slow.cancel(), started.set(),
                                                                     time.sleep(1.5)))
    begin = time.monotonic()
    assert template.run_node(SlowCallbackNode, args=[], threads=2) == 0
    assert events == ["on_shutdown", "destroyed"] and time.monotonic() - begin < 1.4


TEARDOWN_SCRIPT = """
import sys, threading, time
from dmo_ros.nodes import stop_signals, template
stop_signals.TEARDOWN_LIMIT_S = 0.5
hang = sys.argv[1]

class Node(template.DmoNode):
    def __init__(self):
        super().__init__("teardown_test")
        self.create_timer(0.01, lambda: self.finish(3))

    def on_shutdown(self):
        print("on_shutdown done", flush=True)

    def destroy_node(self):
        if hang == "destroy":
            time.sleep(60)
        if hang == "gil":  # a C call that never returns and keeps the GIL (PyDLL does not release it)
            import ctypes
            ctypes.PyDLL(None).sleep(60)
        super().destroy_node()

if hang == "thread":  # a leftover non-daemon thread the interpreter's exit would join forever
    threading.Thread(target=time.sleep, args=(60,), name="stuck").start()
code = template.run_node(Node, args=[])
if hang == "none":
    time.sleep(1.5)  # past the limit: a teardown that finished disarmed its watchdog
    print("still alive", flush=True)
else:
    stop_signals.watch_exit(code)  # the console script's last step
sys.exit(code)
"""


@pytest.mark.parametrize("hang, phase", [("destroy", "while destroying the node"),
                                         ("thread", "while exiting the interpreter (threads still running: stuck)"),
                                         ("gil", None), ("none", None), ("quick", None)])
def test_a_hung_teardown_ends_the_process_with_the_nodes_exit_code(hang, phase, ros_env):
    """After ``on_shutdown`` nothing is left to save: a teardown or an interpreter exit that hangs (a node SIGKILLed
    10 s after its shutdown, seen under load) must not outlast the launchers' 5 s SIGINT window."""
    import subprocess
    import sys
    import time

    begun = time.monotonic()
    result = subprocess.run([sys.executable, "-c", TEARDOWN_SCRIPT, hang], env=ros_env, capture_output=True,
                            text=True, timeout=50)
    elapsed = time.monotonic() - begun
    assert "on_shutdown done" in result.stdout
    if hang == "gil":  # only C threads can run: faulthandler's traceback, then the native timer's exit with the code
        assert result.returncode == 3 and "destroy_node" in result.stderr and elapsed < 30, result.stderr
        return
    assert result.returncode == 3, result.stderr  # finish(3)'s code, not a signal's
    if phase is None:
        assert ("still alive" in result.stdout) == (hang == "none") and "hung" not in result.stderr
    else:
        assert f"the teardown after on_shutdown hung {phase}; exiting with code 3" in result.stderr
        assert elapsed < 30  # the hang was 60 s


NATIVE_EXIT_SCRIPT = """
import ctypes, sys
from dmo_ros.nodes.stop_signals import NativeExit
timer = NativeExit.arm(7, 0.3)
assert timer is not None
if sys.argv[1] == "cancel":
    timer.cancel()
    timer.cancel()  # a second disarm is harmless
ctypes.PyDLL(None).sleep(1)  # holds the GIL: no Python thread or handler could end the process meanwhile
print("slept", flush=True)
"""


@pytest.mark.parametrize("cancelled", [False, True], ids=["armed", "cancelled"])
def test_the_native_exit_ends_a_process_whose_gil_is_held_and_a_cancelled_one_does_not(cancelled):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", NATIVE_EXIT_SCRIPT, "cancel" if cancelled else "armed"],
                            capture_output=True, text=True, timeout=30)
    if cancelled:
        assert result.returncode == 0 and "slept" in result.stdout, result.stderr
    else:
        assert result.returncode == 7 and "slept" not in result.stdout, result.stderr
