"""``dmo-launch``: start a graph where ``ros2 launch`` does not exist (a pip-only machine).

Reads the same definition as ``launch/GRAPH.launch.py`` (``config/graphs/GRAPH.yaml``),
starts every node as its own process with its output prefixed by the node name, forwards
SIGINT/SIGTERM to the nodes once, and shuts the whole graph down when a required node
exits: the exit code is non-zero when a required node failed or a node had to be killed.
Executables are checked before anything starts. If the runner itself dies (even by
SIGKILL) the kernel sends its nodes SIGTERM (``PR_SET_PDEATHSIG``); the nodes also watch
their parent (``dmo_ros.nodes.template``). The launch files give ``ros2 launch`` the same
behaviour (``dmo_ros.nodes.launch_actions``).

    dmo-launch smoke duration:=3
    dmo-launch collect robot:=go2 --dry-run
    dmo-launch collect --show-args

Plain Python: no rclpy (the nodes import it, in their own processes).
"""

from __future__ import annotations

import argparse
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TextIO

import yaml

from dmo_ros.graphs.definition import (
    GraphError,
    GraphSpec,
    ResolvedNode,
    available_graphs,
    load_graph,
    parse_launch_arguments,
    resolve_arguments,
    resolve_graph,
)
from dmo_ros.interrupt import stop_on_interrupt

RUNNER = "dmo-launch"
PARAMETER_FOLDER_PREFIX = "dmo-launch-"
"""The runner writes each node's parameters into ``<tmp>/dmo-launch-<runner pid>-<random>/`` for the run."""
EXIT_FAILED = 1
EXIT_USAGE = 2
_CLEAN_STOP_CODES = (0, -signal.SIGINT, -signal.SIGTERM)
_PR_SET_PDEATHSIG = 1


def find_executable(package: str, executable: str) -> Path | None:
    """Where ``ros2 run PACKAGE EXECUTABLE`` would find it, or the pip install's bin folder."""
    prefixes = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    candidates = [Path(prefix) / "lib" / package / executable for prefix in [*prefixes, sys.prefix]]
    candidates.append(Path(sys.executable).parent / executable)
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def installed_executables(package: str) -> list[str]:
    """Console scripts the installed distribution of ``package`` provides."""
    try:
        entry_points = metadata.distribution(package).entry_points
    except metadata.PackageNotFoundError:
        return []
    return sorted(ep.name for ep in entry_points if ep.group == "console_scripts")


def missing_executables_message(
    graph: GraphSpec,
    nodes: list[ResolvedNode],
    locate: Callable[[ResolvedNode], str | None] | None = None,
) -> str | None:
    """None when every node's executable is installed; else one line per missing one.

    ``locate(node)`` says why a node's executable cannot be started (None: it can); by
    default, not found where ``find_executable`` looks. The launch files pass launch_ros's own
    lookup, so each launcher checks exactly what it will run.
    """
    lines = []
    for node in nodes:
        reason = (locate or _not_installed)(node)
        if reason is not None:
            lines.append(
                f"  node '{node.name}' needs executable '{node.executable}' of package '{node.package}', {reason}"
            )
    if not lines:
        return None
    return f"graph '{graph.name}' cannot start:\n" + "\n".join(lines)


def _not_installed(node: ResolvedNode) -> str | None:
    if find_executable(node.package, node.executable) is not None:
        return None
    known = ", ".join(installed_executables(node.package)) or "none found"
    return f"which is not installed (installed {node.package} executables: {known})"


def remove_stale_parameter_folders(folder: Path | str | None = None) -> list[Path]:
    """Remove the parameter folders of runners that no longer run (a runner killed with SIGKILL cannot remove its
    own): ``dmo-launch-<pid>-*`` in ``folder`` (default: the temporary directory) whose pid is not alive. Returns
    the removed folders. Folders of live runners, other users' runners and other names are left alone."""
    removed = []
    for path in Path(folder or tempfile.gettempdir()).glob(f"{PARAMETER_FOLDER_PREFIX}*-*"):
        pid_text = path.name[len(PARAMETER_FOLDER_PREFIX):].split("-", 1)[0]
        if not pid_text.isdigit() or not path.is_dir() or int(pid_text) == os.getpid():
            continue
        try:
            os.kill(int(pid_text), 0)
            continue  # that runner is alive
        except ProcessLookupError:
            pass
        except PermissionError:
            continue  # alive, another user's
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


@dataclass
class _Running:
    node: ResolvedNode
    process: subprocess.Popen
    reader: threading.Thread
    stopping: bool = False
    reported: bool = False


class GraphRunner:
    """Starts resolved nodes as processes and supervises them until the graph stops."""

    def __init__(
        self,
        graph_name: str,
        nodes: list[ResolvedNode],
        stop_timeout: float = 5.0,
        out: TextIO | None = None,
    ) -> None:
        self.graph_name = graph_name
        self.nodes = nodes
        self.stop_timeout = stop_timeout
        self.out = out or sys.stdout
        self._lock = threading.Lock()
        self._stop_reason: str | None = None  # set once by request_stop; see there why no Event

    def say(self, prefix: str, line: str) -> None:
        with self._lock:
            self.out.write(f"[{prefix}] {line.rstrip()}\n")
            self.out.flush()

    def request_stop(self, reason: str) -> None:
        """Ask the supervising loop to stop the graph (the first reason is kept).

        Also the SIGINT/SIGTERM handler (``install_stop_handlers``), so it takes no lock: a Python
        signal handler runs in the main thread between two bytecodes, possibly while that thread
        holds a lock. The ``threading.Event`` this used to set deadlocked there (``Event.set``
        waits for the lock that ``Event.wait`` holds around its bookkeeping): the runner then never
        forwarded the SIGINT and the graph ran on. A plain attribute, polled every 50 ms, cannot."""
        if self._stop_reason is None:
            self._stop_reason = reason

    def run(self) -> int:
        """Start the graph, supervise it, and return the runner's exit code."""
        remove_stale_parameter_folders()
        with tempfile.TemporaryDirectory(prefix=f"{PARAMETER_FOLDER_PREFIX}{os.getpid()}-") as params_dir:
            running = self._start_all(Path(params_dir))
            failed = self._supervise(running)
            unclean = self._stop_all(running)
        if failed:
            self.say(RUNNER, f"graph '{self.graph_name}' stopped: {self._stop_reason}")
            return EXIT_FAILED
        if unclean:
            self.say(RUNNER, f"graph '{self.graph_name}' stopped, but not cleanly: {', '.join(unclean)}")
            return EXIT_FAILED
        self.say(RUNNER, f"graph '{self.graph_name}' stopped cleanly ({self._stop_reason})")
        return 0

    def _command(self, node: ResolvedNode, params_dir: Path) -> list[str]:
        executable = find_executable(node.package, node.executable)
        assert executable is not None, "checked before starting"
        params_file = params_dir / f"{node.name}.yaml"
        params_file.write_text(yaml.safe_dump({"/**": {"ros__parameters": node.parameters}}))
        command = [str(executable), "--ros-args", "-r", f"__node:={node.name}"]
        if node.namespace:
            command += ["-r", f"__ns:={node.namespace}"]
        if node.parameters:
            command += ["--params-file", str(params_file)]
        for source, target in node.remappings:
            command += ["-r", f"{source}:={target}"]
        return command

    def _start_all(self, params_dir: Path) -> list[_Running]:
        # All processes are started before any output thread exists: the child-side
        # preexec hook is only safe in a single-threaded parent.
        environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
        started = []
        for node in self.nodes:
            command = self._command(node, params_dir)
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=environment,
                text=True,
                errors="replace",
                # Own session: a terminal's Ctrl-C reaches only the runner, which forwards it once.
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
            started.append((node, process))
        running = []
        for node, process in started:
            reader = threading.Thread(target=self._pump, args=(node.name, process.stdout), daemon=True)
            reader.start()
            running.append(_Running(node, process, reader))
            self.say(RUNNER, f"started '{node.name}' (pid {process.pid}{', required' if node.required else ''})")
        return running

    def _pump(self, name: str, stream: TextIO) -> None:
        for line in stream:
            self.say(name, line)

    def _supervise(self, running: list[_Running]) -> bool:
        """Wait until a stop is requested or every node has exited; True if a required node failed."""
        failed = False
        while self._stop_reason is None:
            for entry in running:
                code = entry.process.poll()
                if code is None or entry.reported:
                    continue
                entry.reported = True
                entry.reader.join(timeout=1.0)  # its last lines come before the verdict
                if entry.node.required:
                    verb = "failed" if code != 0 else "finished"
                    failed = failed or code != 0
                    self.request_stop(f"required node '{entry.node.name}' {verb} (exit code {code})")
                    self.say(RUNNER, f"required node '{entry.node.name}' {verb} (exit code {code}); stopping the graph")
                elif code != 0:
                    self.say(RUNNER, f"node '{entry.node.name}' died (exit code {code}); "
                             "not required, the graph goes on")
                else:
                    self.say(RUNNER, f"node '{entry.node.name}' exited (exit code 0)")
            if all(entry.reported for entry in running):
                self.request_stop("every node exited")
            else:
                time.sleep(0.05)  # a signal handler runs during the sleep; the loop sees its request next
        return failed

    def _stop_all(self, running: list[_Running]) -> list[str]:
        """SIGINT, then SIGTERM, then SIGKILL after stop_timeout each; names of unclean stops."""
        alive = [e for e in running if e.process.poll() is None]
        unclean = []
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            if not alive:
                break
            for entry in alive:
                entry.stopping = True
                if sig != signal.SIGINT:
                    self.say(RUNNER, f"'{entry.node.name}' did not stop; sending {signal.Signals(sig).name}")
                    unclean.append(f"'{entry.node.name}' needed {signal.Signals(sig).name}")
                _send(entry.process, sig)
            deadline = time.monotonic() + self.stop_timeout
            while alive and time.monotonic() < deadline:
                time.sleep(0.02)
                alive = [e for e in alive if e.process.poll() is None]
        for entry in running:
            entry.process.wait()
            entry.reader.join(timeout=2.0)
            code = entry.process.returncode
            if entry.stopping and not entry.reported:
                entry.reported = True
                if code not in _CLEAN_STOP_CODES:
                    unclean.append(f"'{entry.node.name}' exited with code {code}")
                self.say(RUNNER, f"'{entry.node.name}' stopped (exit code {code})")
        return sorted(set(unclean))


def _send(process: subprocess.Popen, sig: int) -> None:
    try:
        process.send_signal(sig)
    except ProcessLookupError:
        pass


_libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def _die_with_parent() -> None:
    """In the child: get SIGTERM if the runner itself dies (even by SIGKILL), so no node is orphaned."""
    if _libc is not None:
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def install_stop_handlers(request_stop: Callable[[str], None]) -> None:
    """SIGINT and SIGTERM ask the runner to stop the graph (forwarded to the nodes once).

    ``request_stop`` runs inside the signal handler: it must not take a lock (see ``GraphRunner.request_stop``)."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda number, _frame: request_stop(f"{signal.Signals(number).name} received"))


def describe_arguments(graph: GraphSpec) -> str:
    lines = [f"graph '{graph.name}' ({graph.source}):", f"  {graph.description}", "arguments:"]
    for argument in graph.arguments:
        choices = f" (one of: {', '.join(argument.choices)})" if argument.choices else ""
        if argument.depends_on:
            by = ", ".join(f"{argument.depends_on} {k}: {v}" for k, v in argument.default_by.items())
            choices += f" (auto: {by})"
        lines.append(f"  {argument.name}:={argument.default}{choices}\n      {argument.description}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=RUNNER,
        description="Start a dmo_ros graph on a machine without `ros2 launch` (same graphs as launch/).",
        epilog="Example: dmo-launch collect robot:=go2 duration:=60",
    )
    parser.add_argument("graph", nargs="?", help="graph name (see --list) or a path to a graph YAML file")
    parser.add_argument("arguments", nargs="*", metavar="name:=value", help="launch arguments")
    parser.add_argument("--list", action="store_true", help="list the graphs and exit")
    parser.add_argument("--show-args", action="store_true", help="show the graph's arguments and exit")
    parser.add_argument("--dry-run", action="store_true", help="print the nodes it would start, start nothing")
    parser.add_argument(
        "--stop-timeout", type=float, default=5.0,
        help="seconds a node gets after SIGINT (then SIGTERM, then SIGKILL) (default 5)",
    )
    return parser


# Once the graph starts, install_stop_handlers forwards Ctrl-C to the nodes; the wrapper covers the moments before
# (reading and resolving the graph), which ended in a traceback.
@stop_on_interrupt
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    options = parser.parse_args(argv)
    if options.list:
        print("\n".join(available_graphs()))
        return 0
    if not options.graph:
        parser.error("name a graph (see --list)")
    try:
        graph = load_graph(options.graph)
        if options.show_args:
            print(describe_arguments(graph))
            return 0
        values = parse_launch_arguments(graph, options.arguments)
        nodes = resolve_graph(graph, values)
    except GraphError as error:
        print(f"{RUNNER}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    if options.dry_run:
        plan = {
            "graph": graph.name,
            "arguments": resolve_arguments(graph, values),
            "nodes": [_node_summary(n) for n in nodes],
        }
        print(yaml.safe_dump(plan, sort_keys=False), end="")
        return 0
    if not nodes:
        print(f"{RUNNER}: error: graph '{graph.name}' has no node to start with these arguments", file=sys.stderr)
        return EXIT_USAGE
    problem = missing_executables_message(graph, nodes)
    if problem:
        print(f"{RUNNER}: error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    runner = GraphRunner(graph.name, nodes, stop_timeout=options.stop_timeout)
    install_stop_handlers(runner.request_stop)
    return runner.run()


def _node_summary(node: ResolvedNode) -> dict:
    return {
        "name": node.name,
        "executable": f"{node.package}/{node.executable}",
        "required": node.required,
        "parameters": node.parameters,
        "remappings": dict(node.remappings),
        **({"namespace": node.namespace} if node.namespace else {}),
    }


if __name__ == "__main__":
    sys.exit(main())
