"""ros2 launch dmo_ros deploy_go2.launch.py — the graph defined in config/graphs/deploy_go2.yaml.

Without ros2 launch (pip-only machines) the same graph starts with: dmo-launch deploy_go2
"""

from dmo_ros.nodes.launch_actions import graph_launch_description


def generate_launch_description():
    return graph_launch_description("deploy_go2")
