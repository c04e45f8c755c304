"""Table II's trajectory metrics on hand-made trajectories with known values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dmo_ros.policy.trajectory_metrics import (
    curvature,
    path_length,
    straightness_index,
    trajectory_metrics,
    visibility_stats,
    wrap_angle,
)


def straight_line(length: float = 2.0, heading: float = 0.7, steps: int = 20) -> np.ndarray:
    s = np.linspace(0.0, length, steps + 1)
    return np.stack([1.0 + s * math.cos(heading), -0.5 + s * math.sin(heading), np.full_like(s, heading)], axis=1)


def circle_arc(radius: float, angle: float, steps: int = 400) -> np.ndarray:
    """The robot walking counter-clockwise along a circle of ``radius``, facing along it."""
    phi = np.linspace(0.0, angle, steps + 1)
    return np.stack([radius * np.sin(phi), radius * (1 - np.cos(phi)), wrap_angle(phi)], axis=1)


def test_straight_line_is_straight_and_does_not_turn():
    poses = straight_line()
    assert straightness_index(poses) == pytest.approx(1.0)
    assert curvature(poses) == pytest.approx(0.0, abs=1e-12)
    assert path_length(poses) == pytest.approx(2.0)


@pytest.mark.parametrize("radius", [0.5, 1.0, 2.5])
def test_circle_arc_has_curvature_one_over_radius(radius):
    angle = math.pi / 2
    poses = circle_arc(radius, angle)
    assert curvature(poses) == pytest.approx(1.0 / radius, rel=1e-4)
    # A quarter circle: chord / arc = (R * sqrt(2)) / (R * pi / 2).
    assert straightness_index(poses) == pytest.approx(math.sqrt(2) / (math.pi / 2), rel=1e-4)


def test_full_circle_crosses_the_yaw_wrap_and_returns_to_the_start():
    poses = circle_arc(1.0, 2 * math.pi)  # the yaw wraps from +pi to -pi half way
    assert curvature(poses) == pytest.approx(1.0, rel=1e-4)
    assert straightness_index(poses) == pytest.approx(0.0, abs=1e-9)


def test_zig_zag_has_the_known_straightness_and_curvature():
    # Four legs of length L at +-30 deg to the x axis, the robot facing along each leg and turning on the
    # spot (60 deg) at the three corners: displacement 4 L cos 30, path 4 L, turn 3 * 60 deg.
    leg, theta = 0.5, math.radians(30)
    points, yaws = [np.zeros(2)], [theta]
    for k in range(4):
        heading = theta if k % 2 == 0 else -theta
        if k:  # turn on the spot first
            points.append(points[-1].copy())
            yaws.append(heading)
        points.append(points[-1] + leg * np.array([math.cos(heading), math.sin(heading)]))
        yaws.append(heading)
    poses = np.column_stack([np.array(points), np.array(yaws)])
    metrics = trajectory_metrics(poses)
    assert metrics.path_length_m == pytest.approx(4 * leg)
    assert metrics.straightness == pytest.approx(math.cos(theta))
    assert metrics.total_turn_rad == pytest.approx(3 * 2 * theta)
    assert metrics.curvature_rad_m == pytest.approx(3 * 2 * theta / (4 * leg))


def test_standing_still_or_turning_on_the_spot_has_no_straightness_or_curvature():
    still = np.zeros((10, 3))
    spin = np.column_stack([np.zeros(10), np.zeros(10), np.linspace(0, 3, 10)])
    for poses in (still, spin):
        metrics = trajectory_metrics(poses)
        assert metrics.straightness is None and metrics.curvature_rad_m is None
    assert trajectory_metrics(spin).total_turn_rad == pytest.approx(3.0)


def test_bad_poses_are_refused():
    with pytest.raises(ValueError, match=r"\(T, 3\)"):
        path_length(np.zeros((5, 2)))
    with pytest.raises(ValueError, match="finite"):
        path_length(np.array([[0, 0, 0], [np.nan, 0, 0]]))


def test_visibility_counts_spells_out_of_view():
    stats = visibility_stats([False, False, True, True, False, True, False, False, False])
    assert stats.out_of_view_spells == 3
    assert stats.longest_out_of_view == 3
    assert stats.out_of_view_fraction == pytest.approx(6 / 9)
    assert stats.mean_spell == pytest.approx(2.0)
    always = visibility_stats([True] * 5)
    assert (always.out_of_view_spells, always.longest_out_of_view, always.out_of_view_fraction) == (0, 0, 0.0)
    with pytest.raises(ValueError):
        visibility_stats([])
