"""The documented ROS 2 workspace build: `colcon build --base-paths . dmo_msgs`.

Builds a copy of the checkout with colcon (as on a machine with ROS 2 installed), then
checks the install tree as `ros2 run` / `ros2 launch` use it: executables in
lib/dmo_ros, launch and graph files in share/dmo_ros, dmo_msgs importable after sourcing
install/setup.bash, and the graphs found there when no source checkout is around.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import BIN, REPO

LEFT_BEHIND = shutil.ignore_patterns(".git", ".venv", "build", "install", "log", "__pycache__", "*.egg-info")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ws") / "dmo_ros"
    shutil.copytree(REPO, root, ignore=LEFT_BEHIND)
    venv = str(Path(sys.prefix))
    env = {**os.environ, "AMENT_PREFIX_PATH": venv, "CMAKE_PREFIX_PATH": venv, "PATH": f"{BIN}:{os.environ['PATH']}"}
    result = subprocess.run(
        [str(BIN / "colcon"), "build", "--base-paths", ".", "dmo_msgs",
         "--cmake-args", "-DBUILD_TESTING=OFF", f"-DPython3_EXECUTABLE={sys.executable}"],
        cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout
    assert "2 packages finished" in result.stdout
    return root


def in_workspace(root: Path, command: str) -> subprocess.CompletedProcess:
    """Run a shell command with the venv active and install/setup.bash sourced, away from the source tree."""
    env = {k: v for k, v in os.environ.items() if k not in ("AMENT_PREFIX_PATH", "CMAKE_PREFIX_PATH")}
    env["PATH"] = f"{BIN}:{env['PATH']}"
    return subprocess.run(
        ["bash", "-c", f"source {root}/install/setup.bash && {command}"],
        cwd="/", env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120,
    )


def test_install_tree_has_what_ros2_run_and_launch_need(workspace):
    install = workspace / "install" / "dmo_ros"
    assert (install / "share" / "ament_index" / "resource_index" / "packages" / "dmo_ros").is_file()
    assert (install / "share" / "dmo_ros" / "package.xml").is_file()
    for source in [*(REPO / "launch").glob("*.launch.py"), *(p for p in (REPO / "config").rglob("*") if p.is_file())]:
        relative = source.relative_to(REPO)
        assert (install / "share" / "dmo_ros" / relative).read_text() == source.read_text(), relative
    # Every executable a graph names from this package is where `ros2 launch` looks for it (lib/dmo_ros): a
    # missing one fails a real launch with "executable '...' not found on the libexec directory".
    from dmo_ros.graphs.definition import available_graphs, load_graph

    named = {node.executable for graph in available_graphs() for node in load_graph(graph).nodes
             if node.package == "dmo_ros"}
    assert {"policy", "pusht_standin", "go2_standin", "dream"} <= named
    for executable in sorted(named):
        assert os.access(install / "lib" / "dmo_ros" / executable, os.X_OK), executable


def test_sourced_workspace_imports_dmo_msgs_and_finds_the_installed_graphs(workspace):
    result = in_workspace(workspace, (
        "python -c 'from dmo_msgs.msg import Intent, ImaginedStep; import dmo_ros.graphs.definition as d; "
        "print(d.__file__); print(d.config_dir()); print(Intent(active=True).active, ImaginedStep().step)'"
    ))
    assert result.returncode == 0, result.stdout
    module_file, config_dir, values = result.stdout.strip().splitlines()[-3:]
    assert module_file.startswith(str(workspace / "install"))  # the installed package, not the checkout
    assert config_dir == str(workspace / "install" / "dmo_ros" / "share" / "dmo_ros" / "config")
    assert values == "True 0"
