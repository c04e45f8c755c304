"""Where the package's installed resources are: the config folder (graphs, robot profiles)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

PACKAGE = "dmo_ros"
CONFIG_DIR_VARIABLE = "DMO_ROS_CONFIG_DIR"
"""Environment variable naming a config folder to use instead of the installed one."""


def config_dir() -> Path:
    """The folder holding ``graphs/`` and ``robots/``: $DMO_ROS_CONFIG_DIR, the source checkout, or the install."""
    override = os.environ.get(CONFIG_DIR_VARIABLE)
    if override:
        return Path(override)
    checkout = Path(__file__).resolve().parents[1] / "config"
    if (checkout / "graphs").is_dir():
        return checkout
    return share_dir() / "config"


def share_dir() -> Path:
    """The installed share/dmo_ros folder (ament index first, then this Python's prefix)."""
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        candidate = Path(prefix) / "share" / PACKAGE
        if prefix and candidate.is_dir():
            return candidate
    return Path(sys.prefix) / "share" / PACKAGE
