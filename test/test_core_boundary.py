"""The one boundary: only dmo_ros.nodes imports rclpy, launch or ROS message packages."""

from __future__ import annotations

import ast
import subprocess
import sys

from conftest import REPO

PACKAGE_ROOT = REPO / "dmo_ros"
NODE_PACKAGE = PACKAGE_ROOT / "nodes"
ROS_ONLY = ("rclpy", "launch", "launch_ros", "rcl_interfaces", "rosidl_runtime_py", "ament_index_python")


def is_ros_module(name: str) -> bool:
    top = name.split(".")[0]
    return top in ROS_ONLY or top.endswith("_msgs") or top.endswith("_srvs")


def core_modules() -> list[str]:
    return sorted(
        ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        for path in PACKAGE_ROOT.rglob("*.py")
        if NODE_PACKAGE not in path.parents
    )


def test_no_core_module_imports_ros():
    offenders = []
    for path in PACKAGE_ROOT.rglob("*.py"):
        if NODE_PACKAGE in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [f"{path.relative_to(REPO)}:{node.lineno} imports {n}" for n in names if is_ros_module(n)]
    assert not offenders, "\n".join(offenders)


BLOCKED_IMPORT = """
import importlib, sys

class Blocker:
    def find_spec(self, name, path=None, target=None):
        top = name.split(".")[0]
        if top in {roots!r} or top.endswith("_msgs") or top.endswith("_srvs"):
            raise ImportError(f"{{name}} is blocked: the core must not need it")
        return None

sys.meta_path.insert(0, Blocker())
for module in {modules!r}:
    importlib.import_module(module)
print("imported", len({modules!r}), "core modules")
"""


def test_the_core_imports_with_rclpy_unavailable():
    modules = core_modules()
    assert "dmo_ros.graphs.runner" in modules and "dmo_ros.graphs.definition" in modules
    code = BLOCKED_IMPORT.format(roots=set(ROS_ONLY), modules=modules)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert f"imported {len(modules)} core modules" in result.stdout


def test_the_blocker_really_blocks_rclpy():
    """Guard against a vacuous pass: the same blocker makes a node module fail to import."""
    code = BLOCKED_IMPORT.format(roots=set(ROS_ONLY), modules=["dmo_ros.nodes.template"])
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert result.returncode != 0 and "rclpy is blocked" in result.stderr


TRAINERS = ("dmo_ros.dmo", "dmo_ros.world_model", "dmo_ros.reward")


def test_deployable_policies_never_import_the_trainers():
    """Layering: the trainers import the policy networks (dmo_ros.policy), never the reverse."""
    offenders = []
    for path in (PACKAGE_ROOT / "policy").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [f"{path.relative_to(REPO)}:{node.lineno} imports {n}" for n in names
                          if n.startswith(TRAINERS)]
    assert not offenders, "\n".join(offenders)
    # And at run time: loading the policy API (every method) brings in no trainer module.
    code = ("import sys, dmo_ros.policy.api, dmo_ros.policy.controller; "
            f"print(sorted(m for m in sys.modules if m.startswith({TRAINERS!r})))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
