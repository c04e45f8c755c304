"""Build ROS 2 launch descriptions from the graph definitions in config/graphs.

Each ``launch/GRAPH.launch.py`` is one call to ``graph_launch_description``. The argument
values are read when the launch runs (an ``OpaqueFunction``) and resolved by the same
``resolve_graph`` as the pip-only runner, so both start the same nodes with the same
parameters and conditions.
"""

from __future__ import annotations

from launch.actions import DeclareLaunchArgument, OpaqueFunction, Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from dmo_ros.graphs.definition import GraphSpec, as_text, load_graph, resolve_graph
from launch import LaunchContext, LaunchDescription


def graph_launch_description(graph_name: str) -> LaunchDescription:
    """The launch description of the named graph (or of a graph YAML file path)."""
    graph = load_graph(graph_name)
    actions = [
        DeclareLaunchArgument(
            argument.name,
            default_value=as_text(argument.default),
            description=argument.description,
            **({"choices": list(argument.choices)} if argument.choices else {}),
        )
        for argument in graph.arguments
    ]
    actions.append(OpaqueFunction(function=lambda context: node_actions(graph, context)))
    return LaunchDescription(actions)


def node_actions(graph: GraphSpec, context: LaunchContext) -> list[Node]:
    values = {a.name: LaunchConfiguration(a.name).perform(context) for a in graph.arguments}
    return [
        Node(
            package=node.package,
            executable=node.executable,
            name=node.name,
            namespace=node.namespace or None,
            parameters=[node.parameters] if node.parameters else [],
            remappings=list(node.remappings),
            output="screen",
            on_exit=Shutdown(reason=f"required node '{node.name}' exited") if node.required else None,
        )
        for node in resolve_graph(graph, values)
    ]
