"""ros2 launch dmo_ros dream.launch.py — the graph defined in config/graphs/dream.yaml.

Without ros2 launch (pip-only machines) the same graph starts with: dmo-launch dream
"""

from dmo_ros.nodes.launch_actions import graph_launch_description


def generate_launch_description():
    return graph_launch_description("dream")
