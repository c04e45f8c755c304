"""Build ROS 2 launch descriptions from the graph definitions in config/graphs.

Each ``launch/GRAPH.launch.py`` is one call to ``graph_launch_description``. The argument
values are read when the launch runs (an ``OpaqueFunction``) and resolved by the same
``resolve_graph`` as the pip-only runner, so both start the same nodes with the same
parameters and conditions. Where upstream ``ros2 launch`` (launch 3.7, launch_ros 0.28)
behaves differently from ``dmo-launch``, the description makes it behave the same:

- A ``name:=value`` on the command line that the graph does not declare is an error
  (``ros2 launch`` ignores it silently), as is a value outside an argument's choices or of
  the wrong type.
- Every node's executable is looked up first, the way launch_ros does
  (``ExecutableInPackage``: the ament index, then ``lib/PACKAGE``): one that is missing
  fails the launch before any node starts, naming it (upstream starts the nodes before it
  and leaves them running).
- A required node that exits stops the graph; if it failed (a non-zero exit code, other
  than a clean stop by SIGINT/SIGTERM while the graph shuts down) the launch exits 1
  (upstream's ``Shutdown`` exits 0). So does any node killed (SIGKILL) while stopping.

Errors are raised as ``GraphError`` inside the launch; ``ros2 launch`` prints
"Caught exception in launch (see debug for traceback): <message>" and exits 1.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

from ament_index_python.packages import PackageNotFoundError
from launch.actions import DeclareLaunchArgument, OpaqueFunction, Shutdown
from launch.substitutions import LaunchConfiguration, SubstitutionFailure
from launch_ros.actions import Node
from launch_ros.substitutions import ExecutableInPackage

from dmo_ros.graphs.definition import (
    GraphError,
    GraphSpec,
    LaunchArgument,
    ResolvedNode,
    as_text,
    load_graph,
    resolve_graph,
)
from dmo_ros.graphs.runner import missing_executables_message
from launch import LaunchContext, LaunchDescription

CLEAN_STOP_CODES = (0, -signal.SIGINT, -signal.SIGTERM)
"""Exit codes of a node that stopped as asked while the graph shuts down."""


def graph_launch_description(graph_name: str, *, reject_unknown_arguments: bool = True) -> LaunchDescription:
    """The launch description of the named graph (or of a graph YAML file path).

    ``reject_unknown_arguments=False`` is for a launch file that includes this description
    and takes command-line arguments of its own (they share one command line).
    """
    graph = load_graph(graph_name)
    actions = [
        DeclareLaunchArgument(
            argument.name,
            default_value=as_text(argument.default),
            description=argument_help(argument),
            **({"choices": list(argument.choices)} if argument.choices else {}),
        )
        for argument in graph.arguments
    ]
    actions.append(
        OpaqueFunction(function=lambda context: node_actions(graph, context, reject_unknown_arguments))
    )
    return LaunchDescription(actions)


def argument_help(argument: LaunchArgument) -> str:
    """The description ``ros2 launch --show-args`` prints; an ``auto`` default lists its values."""
    if not argument.depends_on:
        return argument.description
    by = ", ".join(f"{argument.depends_on} {k}: {v}" for k, v in argument.default_by.items())
    return f"{argument.description} (auto: {by})"


def node_actions(graph: GraphSpec, context: LaunchContext, reject_unknown_arguments: bool = True) -> list[Node]:
    """The graph's Node actions for this launch's argument values; GraphError before any starts."""
    if reject_unknown_arguments:
        declared = {a.name for a in graph.arguments}
        for token in context.argv:
            name, separator, _ = token.partition(":=")
            if separator and name not in declared:
                raise GraphError(graph.unknown_argument_message(name))
    values = {a.name: LaunchConfiguration(a.name).perform(context) for a in graph.arguments}
    nodes = resolve_graph(graph, values)
    problem = missing_executables_message(graph, nodes, locate=lambda node: launch_ros_cannot_find(node, context))
    if problem:
        raise GraphError(problem)
    return [
        Node(
            package=node.package,
            executable=node.executable,
            name=node.name,
            namespace=node.namespace or None,
            parameters=[node.parameters] if node.parameters else [],
            remappings=list(node.remappings),
            output="screen",
            on_exit=exit_handler(node),
        )
        for node in nodes
    ]


def launch_ros_cannot_find(node: ResolvedNode, context: LaunchContext) -> str | None:
    """Why launch_ros would fail to start this node's executable, or None when it finds it."""
    try:
        ExecutableInPackage(executable=node.executable, package=node.package).perform(context)
    except (SubstitutionFailure, PackageNotFoundError) as error:
        # PackageNotFoundError is a KeyError, whose str() adds quotes: take its message.
        return f"launch_ros cannot find it: {error.args[0] if error.args else error}"
    return None


def exit_handler(node: ResolvedNode) -> Callable[[Any, LaunchContext], list | None]:
    """``on_exit`` of a node: a required node stops the graph, non-zero when it failed."""

    def on_exit(event: Any, context: LaunchContext) -> list | None:
        code = event.returncode
        # Raising is how a launch exits non-zero: it logs the message, shuts down, returns 1.
        if context.is_shutdown:
            if code not in CLEAN_STOP_CODES:
                raise GraphError(f"node '{node.name}' did not stop cleanly (exit code {code})")
            return None
        if not node.required:
            return None  # launch itself reports the exit; the graph goes on, as with dmo-launch
        if code != 0:
            raise GraphError(f"required node '{node.name}' failed (exit code {code}); stopping the graph")
        return [Shutdown(reason=f"required node '{node.name}' finished (exit code {code})")]

    return on_exit
