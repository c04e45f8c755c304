"""The launch tests' helpers: ament prefixes where launch_ros finds executables, the three
launchers (dmo-launch, the launch double, real `ros2 launch`) and the processes a graph left."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import sys
import time
import uuid
from pathlib import Path

import pytest

from conftest import BIN, REPO
from dmo_ros.graphs.definition import available_graphs, load_graph

STUB = "#!/bin/sh\necho \"stub of $0: not a real node\"\nexit 3\n"


def make_ament_prefix(root: Path, executables: dict[str, list[str]]) -> Path:
    """A prefix like a colcon install: each package registered in the ament index and its
    executables in lib/PACKAGE (the installed one when this environment has it, else a stub)."""
    for package, names in executables.items():
        marker = root / "share" / "ament_index" / "resource_index" / "packages" / package
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
        lib = root / "lib" / package
        lib.mkdir(parents=True, exist_ok=True)
        for name in names:
            installed = BIN / name
            if installed.is_file():
                (lib / name).symlink_to(installed)
            else:
                (lib / name).write_text(STUB)
                (lib / name).chmod(0o755)
    return root


def every_graph_executable(root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every executable any graph names, findable by launch_ros (first on AMENT_PREFIX_PATH)."""
    executables: dict[str, list[str]] = {}
    for graph in available_graphs():
        for node in load_graph(graph).nodes:
            names = executables.setdefault(node.package, [])
            if node.executable not in names:
                names.append(node.executable)
    prefix = make_ament_prefix(root, executables)
    ament = [str(prefix), *[p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]]
    monkeypatch.setenv("AMENT_PREFIX_PATH", os.pathsep.join(ament))
    return prefix


# -- the launchers ---------------------------------------------------------------------------

LAUNCHERS = ("dmo-launch", "launch-double", "ros2-launch")
DOUBLE = Path(__file__).with_name("launch_double.py")
REAL_LAUNCH_MISSING = (
    "ros2launch (ros2cli + launch_ros) is not installed here: ROS 2 launch is not on PyPI; "
    "the same assertions ran with dmo-launch and the launch double"
)
TOKEN_VARIABLE = "DMO_TEST_GRAPH_TOKEN"


def real_launch_available() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in ("ros2launch", "launch_ros"))


def launcher_command(launcher: str, graph: str | Path, arguments: list[str]) -> list[str]:
    """The command that starts ``graph`` (a name or a graph YAML path) with ``launcher``.

    For the ROS 2 launchers a YAML path needs ``graph_launch_file`` first (call it with the
    YAML; it writes the launch file beside it)."""
    if launcher == "dmo-launch":
        return [str(BIN / "dmo-launch"), str(graph), *arguments]
    launch_file = REPO / "launch" / f"{graph}.launch.py" if isinstance(graph, str) else graph_launch_file(graph)
    if launcher == "launch-double":
        return [sys.executable, str(DOUBLE), str(launch_file), *arguments]
    if launcher == "ros2-launch":
        if not real_launch_available():
            pytest.skip(REAL_LAUNCH_MISSING)
        program = "import sys; from ros2cli.cli import main; sys.exit(main(argv=sys.argv[1:]))"
        return [sys.executable, "-c", program, "launch", str(launch_file), *arguments]
    raise ValueError(launcher)


def graph_launch_file(graph_yaml: Path) -> Path:
    """A launch file for a graph YAML of a test, exactly like the ones in launch/."""
    path = graph_yaml.with_suffix(".launch.py")
    path.write_text(
        "from dmo_ros.nodes.launch_actions import graph_launch_description\n\n\n"
        "def generate_launch_description():\n"
        f"    return graph_launch_description({str(graph_yaml)!r})\n"
    )
    return path


def launcher_env(ros_env: dict[str, str], prefix: Path) -> dict[str, str]:
    """``ros_env`` with ``prefix`` first on AMENT_PREFIX_PATH and a token every process of the
    graph inherits (``graph_processes`` finds them by it, whoever their parent is by then)."""
    ament = [str(prefix), *[p for p in ros_env.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p], sys.prefix]
    return {**ros_env, "AMENT_PREFIX_PATH": os.pathsep.join(dict.fromkeys(ament)),
            TOKEN_VARIABLE: uuid.uuid4().hex}


def graph_processes(env: dict[str, str]) -> list[int]:
    """Live processes (zombies excluded) that carry this launch's token: launcher and nodes."""
    needle = f"{TOKEN_VARIABLE}={env[TOKEN_VARIABLE]}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:  # gone, a zombie, or not ours
            continue
    return found


def wait_until_gone(env: dict[str, str], timeout: float) -> list[int]:
    """Wait up to ``timeout`` s for every process of the graph to exit; the pids still alive."""
    deadline = time.monotonic() + timeout
    while (alive := graph_processes(env)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive


def kill_leftovers(env: dict[str, str]) -> None:
    for pid in graph_processes(env):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
