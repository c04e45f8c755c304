"""Trajectory quality of a Push Cube episode: the seed paper's Table II metrics and the cube's visibility.

The paper (Table II, "Trajectory Quality Analysis", Push Cube) reports per method:

- **steps to success** (lower is better): control steps until the cube's centre is inside the goal region;
- **straightness index** (higher is better, 1 is a straight line): the Euclidean displacement of the robot
  from its start to its end divided by the length of the path it walked, ``|p_T - p_0| / sum_t |p_{t+1} - p_t|``;
- **curvature** (rad/m, lower is smoother): the "average yaw change per metre", i.e. the total absolute heading
  change divided by the path length, ``sum_t |wrap(yaw_{t+1} - yaw_t)| / sum_t |p_{t+1} - p_t|``. A robot that
  walks along a circle of radius R facing along it turns 1/R radians per metre.

Both are undefined for a robot that (nearly) does not move: below ``min_path_m`` of path they are ``None``
(a robot turning on the spot has an unbounded curvature; it is counted apart, not averaged in).

Besides Table II this module measures what the task is about (the cube leaving the ego camera's view): the
fraction of steps the cube was out of view, how many separate spells out of view there were, and the longest one.

Poses are the simulator's ground truth (evaluation only): ``(T + 1, 3)`` arrays of [x (m), y (m), yaw (rad)] at the
start and after every control step. Nothing here imports the simulator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MIN_PATH_M = 0.05
"""Path length (m) below which straightness and curvature are not defined (the robot stood still)."""


def wrap_angle(angle: np.ndarray | float) -> np.ndarray:
    """Angles wrapped into [-pi, pi)."""
    return (np.asarray(angle, dtype=np.float64) + math.pi) % (2 * math.pi) - math.pi


def _poses(poses: np.ndarray) -> np.ndarray:
    poses = np.asarray(poses, dtype=np.float64)
    if poses.ndim != 2 or poses.shape[1] != 3:
        raise ValueError(f"poses must be a (T, 3) array of [x, y, yaw], got shape {poses.shape}")
    if not np.isfinite(poses).all():
        raise ValueError("poses must be finite")
    return poses


def path_length(poses: np.ndarray) -> float:
    """Length (m) of the polyline through the poses' positions; poses (T, 3) [x, y, yaw]."""
    poses = _poses(poses)
    return float(np.linalg.norm(np.diff(poses[:, :2], axis=0), axis=1).sum())


def net_displacement(poses: np.ndarray) -> float:
    """Straight-line distance (m) from the first position to the last."""
    poses = _poses(poses)
    return float(np.linalg.norm(poses[-1, :2] - poses[0, :2]))


def total_turn(poses: np.ndarray) -> float:
    """Total absolute heading change (rad) along the poses (each step's change wrapped into [-pi, pi))."""
    poses = _poses(poses)
    return float(np.abs(wrap_angle(np.diff(poses[:, 2]))).sum())


def straightness_index(poses: np.ndarray, min_path_m: float = MIN_PATH_M) -> float | None:
    """Net displacement / path length, in [0, 1] (1: a straight line); None below ``min_path_m`` of path."""
    length = path_length(poses)
    if length < min_path_m:
        return None
    return float(min(1.0, net_displacement(poses) / length))


def curvature(poses: np.ndarray, min_path_m: float = MIN_PATH_M) -> float | None:
    """Total absolute yaw change / path length (rad/m; 0: never turned); None below ``min_path_m`` of path."""
    length = path_length(poses)
    if length < min_path_m:
        return None
    return total_turn(poses) / length


@dataclass
class VisibilityStats:
    """How the cube left and came back into the ego camera's view over an episode."""

    out_of_view_fraction: float
    """Fraction of the observed steps (start included) at which the cube was out of view, in [0, 1]."""
    out_of_view_spells: int
    """Number of maximal runs of consecutive steps with the cube out of view (a run at the start counts)."""
    longest_out_of_view: int
    """Steps in the longest such run (0 when the cube was always in view)."""
    mean_spell: float
    """Mean steps per run out of view (0 when there was none)."""


def visibility_stats(in_view: np.ndarray | list[bool]) -> VisibilityStats:
    """Out-of-view statistics of a (T,) sequence of in-view flags (one per observed step)."""
    flags = np.asarray(in_view, dtype=bool).reshape(-1)
    if flags.size == 0:
        raise ValueError("visibility needs at least one in-view flag")
    out = ~flags
    edges = np.diff(np.concatenate([[0], out.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    lengths = ends - starts
    return VisibilityStats(out_of_view_fraction=float(out.mean()), out_of_view_spells=int(len(lengths)),
                           longest_out_of_view=int(lengths.max()) if len(lengths) else 0,
                           mean_spell=float(lengths.mean()) if len(lengths) else 0.0)


@dataclass
class TrajectoryMetrics:
    """Table II's trajectory metrics of one episode (None where undefined: the robot barely moved)."""

    path_length_m: float
    """Length of the robot's path (m)."""
    net_displacement_m: float
    """Distance from the robot's start to its end position (m)."""
    total_turn_rad: float
    """Total absolute heading change (rad)."""
    straightness: float | None
    """Net displacement / path length (1: straight); None below ``MIN_PATH_M`` of path."""
    curvature_rad_m: float | None
    """Total absolute yaw change per metre walked (rad/m); None below ``MIN_PATH_M`` of path."""


def trajectory_metrics(poses: np.ndarray, min_path_m: float = MIN_PATH_M) -> TrajectoryMetrics:
    """All of Table II's trajectory metrics of the robot poses (T, 3) [x (m), y (m), yaw (rad)]."""
    return TrajectoryMetrics(path_length_m=path_length(poses), net_displacement_m=net_displacement(poses),
                             total_turn_rad=total_turn(poses), straightness=straightness_index(poses, min_path_m),
                             curvature_rad_m=curvature(poses, min_path_m))


__all__ = ["MIN_PATH_M", "TrajectoryMetrics", "VisibilityStats", "curvature", "net_displacement", "path_length",
           "straightness_index", "total_turn", "trajectory_metrics", "visibility_stats", "wrap_angle"]
