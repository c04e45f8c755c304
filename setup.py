"""The dmo_ros ament_python package (also installable with pip on machines without ROS)."""

from pathlib import Path

from setuptools import find_packages, setup

PACKAGE = "dmo_ros"
HERE = Path(__file__).parent


def share_files(folder: str, pattern: str) -> list[tuple[str, list[str]]]:
    """data_files entries installing folder/**/pattern under share/dmo_ros, keeping sub-folders."""
    groups: dict[str, list[str]] = {}
    for path in sorted((HERE / folder).rglob(pattern)):
        relative = path.relative_to(HERE)
        groups.setdefault(f"share/{PACKAGE}/{relative.parent}", []).append(str(relative))
    return sorted(groups.items())


# Executables run by `ros2 run dmo_ros <name>` and named by the graphs in config/graphs. Each goes through
# dmo_ros.nodes.executables, which installs the stop handler before the node's module (rclpy, torch) is imported.
NODE_EXECUTABLES = [
    f"{name} = dmo_ros.nodes.executables:{name}"
    for name in ("test_pattern", "topic_monitor", "pusht_standin", "go2_standin", "teleop", "recorder", "policy",
                 "dream")
]

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        *share_files("launch", "*.launch.py"),
        *share_files("config", "*.yaml"),
        *share_files("config", "*.xml"),
        *share_files("config", "*.rviz"),
    ],
    install_requires=["setuptools", "numpy", "pyyaml"],
    zip_safe=True,
    maintainer="dmo_ros maintainers",
    maintainer_email="dmo-ros@example.org",
    description="Vision policies learned in a diffusion world model from rosbag2 recordings (DMO-SAPO).",
    license="Apache-2.0",
    python_requires=">=3.10",
    entry_points={
        "console_scripts": [
            *NODE_EXECUTABLES,
            "dmo-launch = dmo_ros.graphs.runner:main",
            "dmo-play-stats = dmo_ros.teleop.scripted:main",
            "dmo-bag-info = dmo_ros.recording.summary:main",
            "dmo-collect-fast = dmo_ros.recording.fast_collect:main",
            "dmo-convert = dmo_ros.dataset.convert:main",
            "dmo-export-lerobot = dmo_ros.dataset.lerobot_export:main",
            "dmo-train-world-model = dmo_ros.world_model.train:main",
            "dmo-world-model-report = dmo_ros.world_model.fidelity:main",
            "dmo-train-tokenizer = dmo_ros.world_model_v4.train:tokenizer_main",
            "dmo-train-dynamics = dmo_ros.world_model_v4.train:dynamics_main",
            "dmo-world-model-v4-report = dmo_ros.world_model_v4.report:main",
            "dmo-train-reward = dmo_ros.reward.train:main",
            "dmo-reward-eval = dmo_ros.reward.evaluate:main",
            "dmo-goal-image = dmo_ros.reward.goal_image:main",
            "dmo-train-local-model = dmo_ros.local_model.train:main",
            "dmo-train-policy = dmo_ros.dmo.train:main",
            "dmo-train-act = dmo_ros.baselines.act_train:main",
            "dmo-eval-policy = dmo_ros.policy.evaluate:main",
            "dmo-compare = dmo_ros.dmo.compare:main",
            "dmo-train-rung0 = dmo_ros.ladder.rung0:main",
            "dmo-ladder-table = dmo_ros.ladder.table:main",
            "dmo-gate = dmo_ros.gates.cli:main",
            "dmo-dream-strip = dmo_ros.dream.strip:main",
            "dmo-dream-flags = dmo_ros.dream.flags:main",
        ],
    },
)
