"""``--help`` / ``-h`` of a node executable: what the node does, its parameters, how to set them; then exit 0.
Any other argument outside the ``--ros-args`` blocks is refused (exit 2) with the ``-p`` that sets it.

A node takes its settings as ROS parameters, not options, so before this every executable ignored ``--help``:
``recorder --help`` started recording (an empty session folder under ``bags/``) and the stand-ins, the test
pattern and the teleop ran until killed. ``run_node`` asks :func:`help_requested` before ``rclpy.init``, so a
help request never starts ROS nor creates anything.

rclpy hands every argument outside ``--ros-args ... [--]`` to the program and no node reads them, so
``recorder --duration 5`` recorded with the default duration without a word. ``run_node`` asks
:func:`unexpected_arguments` before ``rclpy.init`` too and refuses them with :func:`unexpected_arguments_message`.
``ros2 run``, ``ros2 launch`` (launch_ros ``Node`` without ``arguments=``) and ``dmo-launch`` put all of theirs
inside a ``--ros-args`` block (``-r __node:=NAME``, ``--params-file FILE``, ``-r FROM:=TO``).

Standard library only (no rclpy): the node modules are the only ones that import rclpy.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Sequence
from typing import Any

from dmo_ros.help_text import plain_text

HELP_FLAGS = ("-h", "--help")
ROS_ARGS_START = "--ros-args"
ROS_ARGS_END = "--"


def outside_ros_args(argv: Sequence[str]) -> list[str]:
    """The arguments of ``argv`` (without the program name) outside the ``--ros-args ... [--]`` blocks: the ones a
    node itself would read. Those blocks belong to rclpy and go to it unchanged."""
    outside, in_ros_args = [], False
    for argument in argv:
        if argument == ROS_ARGS_START:
            in_ros_args = True
        elif argument == ROS_ARGS_END and in_ros_args:
            in_ros_args = False
        elif not in_ros_args:
            outside.append(argument)
    return outside


def help_requested(argv: Sequence[str]) -> bool:
    """Whether ``argv`` (without the program name) asks for help: ``-h`` or ``--help`` outside the
    ``--ros-args ... [--]`` blocks."""
    return any(argument in HELP_FLAGS for argument in outside_ros_args(argv))


def unexpected_arguments(argv: Sequence[str]) -> list[str]:
    """The arguments of ``argv`` (without the program name) outside the ``--ros-args ... [--]`` blocks, other than
    ``-h``/``--help``: a node reads none of them."""
    return [argument for argument in outside_ros_args(argv) if argument not in HELP_FLAGS]


def _suggestion(unexpected: Sequence[str], names: Sequence[str]) -> str:
    """The ``--ros-args`` that most likely means what ``unexpected`` meant: ``--duration 5`` or ``--duration=5`` ->
    ``-p duration:=5``; ``duration:=5`` -> ``-p duration:=5``; ``__node:=x`` or ``a/b:=c`` -> ``-r`` (a remapping)."""
    import difflib

    first = unexpected[0]
    if ":=" in first:
        name, _, value = first.partition(":=")
        flag = "-p" if name in names or not (name.startswith("__") or "/" in name) else "-r"
        return f"--ros-args {flag} {name}:={value}"
    if first.startswith("-") and first.lstrip("-"):
        name, equals, value = first.lstrip("-").partition("=")
        name = name.replace("-", "_")
        close = difflib.get_close_matches(name, names, n=1)
        name = name if name in names or not close else close[0]
        if not equals:
            value = unexpected[1] if len(unexpected) > 1 and not unexpected[1].startswith("-") else "VALUE"
        return f"--ros-args -p {name}:={value}"
    return "--ros-args -p NAME:=VALUE"


def unexpected_arguments_message(name: str, unexpected: Sequence[str], parameters: Sequence[type]) -> str:
    """One line: node executable ``name`` does not take the arguments ``unexpected``; the ``--ros-args`` that sets a
    parameter instead, and the parameters of the ``parameters`` dataclasses."""
    names = [field.name for kind in parameters for field in dataclasses.fields(kind)]
    quoted = " ".join(unexpected)
    listed = f"; its parameters: {', '.join(names)}" if names else ""
    return (f"{name}: unexpected argument{'s' if len(unexpected) > 1 else ''} '{quoted}' (a node takes no options; "
            f"its settings are ROS parameters): use {_suggestion(unexpected, names)}{listed} ({name} --help)")


def parameter_types(module: types.ModuleType) -> list[type]:
    """The parameter dataclasses a node module defines: its dataclasses whose fields all carry a description
    (``template.param``), in definition order."""
    found = []
    for value in vars(module).values():
        if (isinstance(value, type) and dataclasses.is_dataclass(value) and value.__module__ == module.__name__
                and dataclasses.fields(value)
                and all("description" in field.metadata for field in dataclasses.fields(value))):
            found.append(value)
    return found


def _default(field: dataclasses.Field) -> Any:
    return field.default_factory() if field.default is dataclasses.MISSING else field.default


def _type_name(field: dataclasses.Field) -> str:
    # Under ``from __future__ import annotations`` the annotation is its source text ("list[str]").
    return field.type if isinstance(field.type, str) else getattr(field.type, "__name__", str(field.type))


def _example(fields: Sequence[dataclasses.Field]) -> str:
    """``-p name:=value`` of the first scalar parameter, with its default, for the usage example."""
    for field in fields:
        default = _default(field)
        if isinstance(default, bool):
            return f"-p {field.name}:={str(default).lower()}"
        if isinstance(default, (int, float)) or (isinstance(default, str) and default and " " not in default):
            return f"-p {field.name}:={default}"
    return "-p NAME:=VALUE"


def node_help(name: str, doc: str | None, parameters: Sequence[type]) -> str:
    """The help text of node executable ``name``: a usage line, the module docstring ``doc`` (what the node does,
    its topics) and every field of the ``parameters`` dataclasses with its type, default and description."""
    fields = [field for kind in parameters for field in dataclasses.fields(kind)]
    lines = [f"usage: ros2 run dmo_ros {name} [-h] [--ros-args -p NAME:=VALUE ... -r TOPIC:=NEW_TOPIC ...]", ""]
    if doc:
        lines += [plain_text(doc.strip()), ""]
    if fields:
        lines.append("parameters (set with --ros-args -p NAME:=VALUE, values in YAML; or --params-file FILE):")
        for field in fields:
            lines.append(f"  {field.name} ({_type_name(field)}, default {_default(field)!r})")
            lines.append(f"      {plain_text(field.metadata['description'])}")
        lines.append("")
    lines += [
        "Topics are remapped with --ros-args -r FROM:=TO. Example:",
        f"  ros2 run dmo_ros {name} --ros-args {_example(fields)}",
    ]
    return "\n".join(lines)


__all__ = ["HELP_FLAGS", "help_requested", "node_help", "outside_ros_args", "parameter_types", "unexpected_arguments",
           "unexpected_arguments_message"]
