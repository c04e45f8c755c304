"""ros2 launch dmo_ros smoke.launch.py — the graph defined in config/graphs/smoke.yaml.

Without ros2 launch (pip-only machines) the same graph starts with: dmo-launch smoke
"""

from dmo_ros.nodes.launch_actions import graph_launch_description


def generate_launch_description():
    return graph_launch_description("smoke")
