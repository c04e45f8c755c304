"""A double of the ROS 2 launch API (launch 3.7 / launch_ros 0.28) for machines without it.

`launch`/`launch_ros` are not on PyPI. The double records what a launch file builds
(``modules()``, for the tests that inspect the actions), and runs a launch file as a
process the way ``ros2 launch`` does (``python launch_double.py FILE name:=value ...``),
reproducing the upstream behaviour our launch files must cope with (launch/launch_service.py,
launch/actions/execute_local.py, launch_ros/substitutions/executable_in_package.py):

- ``name:=value`` arguments become launch configurations; undeclared names are kept and
  otherwise ignored; a value outside a declared argument's choices is an error.
- Nodes start in order, in the launcher's process group (a terminal's Ctrl-C reaches every
  node); a node's executable is looked up (ament index, ``lib/PACKAGE``) when that node
  starts, so an unknown one fails the launch after the nodes before it started, and those
  are left running.
- An exception in the launch (an ``OpaqueFunction``, an ``on_exit`` handler) is logged as
  "Caught exception in launch (see debug for traceback): ...", shuts the launch down and
  makes the exit code 1; a ``Shutdown`` action or the last process exiting shuts it down
  with exit code 0.
- Shutdown sends SIGINT to the running processes (not after a Ctrl-C: the terminal already
  did), SIGTERM after ``sigterm_timeout`` (5 s), SIGKILL after ``sigkill_timeout`` (5 s).
- A second SIGINT is ignored. SIGTERM (and SIGQUIT) make the launcher exit at once, leaving
  its processes running ("using SIGTERM can result in orphaned processes").
"""

from __future__ import annotations

import os
import runpy
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Any

import yaml

MODULE_NAMES = (
    "launch", "launch.actions", "launch.substitutions", "launch_ros", "launch_ros.actions",
    "launch_ros.substitutions",
)
SIGTERM_TIMEOUT = 5.0
SIGKILL_TIMEOUT = 5.0


class Recorded:
    """Stands in for a launch entity: keeps its constructor arguments."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


class LaunchContext:
    def __init__(self, argv: list[str] | None = None, configurations: dict[str, str] | None = None) -> None:
        self.argv = list(argv or [])
        self.launch_configurations = dict(configurations or {})
        self.is_shutdown = False


class LaunchConfiguration(Recorded):
    def perform(self, context: LaunchContext) -> str:
        return context.launch_configurations[self.args[0]]


class SubstitutionFailure(Exception):
    pass


class ExecutableInPackage(Recorded):
    """launch_ros's lookup: the package's prefix from the ament index, then ``lib/PACKAGE/EXECUTABLE``."""

    def perform(self, context: LaunchContext) -> str:
        from ament_index_python.packages import get_package_prefix

        package, executable = self.kwargs["package"], self.kwargs["executable"]
        prefix = get_package_prefix(package)  # PackageNotFoundError, as upstream's FindPackagePrefix
        libexec = os.path.join(prefix, "lib", package)
        if not os.path.exists(libexec):
            raise SubstitutionFailure(
                f"package '{package}' found at '{prefix}', but libexec directory '{libexec}' does not exist")
        found = shutil.which(executable, path=libexec)
        if found is None:
            raise SubstitutionFailure(f"executable '{executable}' not found on the libexec directory '{libexec}' ")
        return found


class ProcessExited:
    def __init__(self, returncode: int) -> None:
        self.returncode = returncode


def modules() -> dict[str, types.ModuleType]:
    """Module objects to put in ``sys.modules`` in place of launch and launch_ros."""
    made = {name: types.ModuleType(name) for name in MODULE_NAMES}
    made["launch"].LaunchDescription = lambda actions: list(actions)
    made["launch"].LaunchContext = LaunchContext
    for name in ("DeclareLaunchArgument", "OpaqueFunction", "Shutdown"):
        setattr(made["launch.actions"], name, type(name, (Recorded,), {}))
    made["launch.substitutions"].LaunchConfiguration = LaunchConfiguration
    made["launch.substitutions"].SubstitutionFailure = SubstitutionFailure
    made["launch_ros.actions"].Node = type("Node", (Recorded,), {})
    made["launch_ros.substitutions"].ExecutableInPackage = ExecutableInPackage
    return made


class LaunchFailed(Exception):
    pass


class Launcher:
    """Runs one launch file's description like ``ros2 launch`` (see the module doc)."""

    def __init__(self, path: Path, argv: list[str]) -> None:
        self.path, self.argv = path, argv
        self.processes: list[tuple[Any, subprocess.Popen]] = []  # (Node, process) still running
        self.return_code = 0
        self.shutdown_started: float | None = None
        self.escalated: set[int] = set()
        self.sigints = 0
        self.params_dir = Path(tempfile.mkdtemp(prefix="launch-double-"))

    def log(self, level: str, text: str) -> None:
        print(f"[{level}] [launch]: {text}", flush=True)

    def run(self) -> int:
        signal.signal(signal.SIGINT, self.on_sigint)
        signal.signal(signal.SIGTERM, self.on_sigterm)
        signal.signal(signal.SIGQUIT, self.on_sigterm)
        context = LaunchContext(self.argv)
        self.context = context
        try:
            description = runpy.run_path(str(self.path))["generate_launch_description"]()
            self.execute(description, context)
        except Exception as error:
            self.caught(error)
        while self.processes:
            self.reap()
            self.escalate()
            time.sleep(0.02)
        shutil.rmtree(self.params_dir, ignore_errors=True)
        return self.return_code

    def caught(self, error: Exception) -> None:
        self.log("ERROR", f"Caught exception in launch (see debug for traceback): {error}")
        self.return_code = 1
        self.shutdown(due_to_sigint=False)

    def execute(self, entities: list, context: LaunchContext) -> None:
        for entity in entities:
            kind = type(entity).__name__
            if kind == "DeclareLaunchArgument":
                name, kwargs = entity.args[0], entity.kwargs
                overrides = {k: v for k, v in (t.split(":=", 1) for t in self.argv if ":=" in t)}
                value = overrides.get(name, context.launch_configurations.get(name, kwargs.get("default_value")))
                choices = kwargs.get("choices")
                if choices and value not in choices:
                    raise LaunchFailed(f"Argument '{name}' provided value '{value}' is not valid. "
                                       f"Valid options are: {choices}")
                context.launch_configurations[name] = value
            elif kind == "OpaqueFunction":
                batch = entity.kwargs["function"](context) or []
                started_before = len(self.processes)
                try:
                    self.execute(batch, context)
                except Exception:
                    # Upstream starts a batch's processes asynchronously: those spawned after the
                    # error shut the launch down are never stopped (the stand-in runs on forever).
                    del self.processes[started_before:]
                    raise
            elif kind == "Node":
                self.start(entity, context)
            elif kind == "Shutdown":
                self.log("INFO", f"shutting down: {entity.kwargs.get('reason', '')}")
                self.shutdown(due_to_sigint=False)
            else:
                raise LaunchFailed(f"the launch double does not know {kind}")

    def start(self, node: Any, context: LaunchContext) -> None:
        if context.is_shutdown:
            return
        kwargs = node.kwargs
        executable = ExecutableInPackage(package=kwargs["package"], executable=kwargs["executable"]).perform(context)
        command = [executable, "--ros-args", "-r", f"__node:={kwargs['name']}"]
        if kwargs.get("namespace"):
            command += ["-r", f"__ns:={kwargs['namespace']}"]
        for index, parameters in enumerate(kwargs.get("parameters") or []):
            path = self.params_dir / f"{kwargs['name']}_{index}.yaml"
            path.write_text(yaml.safe_dump({"/**": {"ros__parameters": parameters}}))
            command += ["--params-file", str(path)]
        for source, target in kwargs.get("remappings") or []:
            command += ["-r", f"{source}:={target}"]
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL)  # same process group, like launch
        self.log("INFO", f"process started with pid [{process.pid}]")
        self.processes.append((node, process))

    def reap(self) -> None:
        for node, process in list(self.processes):
            code = process.poll()
            if code is None:
                continue
            self.processes.remove((node, process))
            name = node.kwargs["name"]
            if code == 0:
                self.log("INFO", f"{name}: process has finished cleanly [pid {process.pid}]")
            else:
                self.log("ERROR", f"{name}: process has died [pid {process.pid}, exit code {code}]")
            on_exit = node.kwargs.get("on_exit")
            try:
                if callable(on_exit):
                    self.execute(on_exit(ProcessExited(code), self.context) or [], self.context)
                elif on_exit:
                    self.execute(list(on_exit) if isinstance(on_exit, list) else [on_exit], self.context)
            except Exception as error:
                self.caught(error)
        if not self.processes and not self.context.is_shutdown:
            self.shutdown(due_to_sigint=False)  # idle

    def shutdown(self, due_to_sigint: bool) -> None:
        if self.context.is_shutdown:
            return
        self.context.is_shutdown = True
        self.shutdown_started = time.monotonic()
        if not due_to_sigint:
            for _node, process in self.processes:
                process.send_signal(signal.SIGINT)

    def escalate(self) -> None:
        if self.shutdown_started is None:
            return
        waited = time.monotonic() - self.shutdown_started
        for sig, after in ((signal.SIGTERM, SIGTERM_TIMEOUT), (signal.SIGKILL, SIGTERM_TIMEOUT + SIGKILL_TIMEOUT)):
            if waited >= after and sig not in self.escalated:
                self.escalated.add(sig)
                for node, process in self.processes:
                    self.log("ERROR", f"{node.kwargs['name']}: sending {signal.Signals(sig).name}")
                    process.send_signal(sig)

    def on_sigint(self, _number: int, _frame: Any) -> None:
        self.sigints += 1
        if self.sigints == 1:
            self.log("WARNING", "user interrupted with ctrl-c (SIGINT)")
            self.shutdown(due_to_sigint=True)
        else:
            self.log("WARNING", "user interrupted with ctrl-c (SIGINT) again, ignoring...")

    def on_sigterm(self, number: int, _frame: Any) -> None:
        name = signal.Signals(number).name
        self.log("ERROR", f"user interrupted with ctrl-\\ ({name}), terminating...")
        self.log("ERROR", f"using {name} can result in orphaned processes")
        os._exit(1)


def main(argv: list[str]) -> int:
    sys.modules.update(modules())
    return Launcher(Path(argv[0]), argv[1:]).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
