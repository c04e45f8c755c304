"""Robot profiles: the shipped ones load; mistakes are named; the field mapping reads messages."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import yaml

from dmo_ros.dataset.robot_profile import ProfileError, load_robot_profile
from dmo_ros.resources import config_dir


def test_shipped_profiles():
    pusht, go2 = load_robot_profile("pusht"), load_robot_profile("go2")
    assert pusht.topics["action"] == "/servo_node/delta_twist_cmds" and go2.topics["action"] == "/cmd_vel"
    assert pusht.action.names == ("vx", "vy") and go2.action.names == ("vx", "vy", "yaw_rate")
    twist = SimpleNamespace(linear=SimpleNamespace(x=0.1, y=-0.2), angular=SimpleNamespace(z=0.3))
    assert go2.action.vector(twist) == [0.1, -0.2, 0.3]
    assert pusht.action.vector(SimpleNamespace(twist=twist)) == [0.1, -0.2]


def test_scale_is_applied(tmp_path):
    raw = yaml.safe_load(open(config_dir() / "robots" / "go2.yaml"))
    raw["action"]["scale"] = [2.0, 2.0, -1.0]
    (tmp_path / "scaled.yaml").write_text(yaml.safe_dump(raw))
    twist = SimpleNamespace(linear=SimpleNamespace(x=0.1, y=-0.2), angular=SimpleNamespace(z=0.3))
    assert load_robot_profile(tmp_path / "scaled.yaml").action.vector(twist) == [0.2, -0.4, -0.3]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda r: r.update(topix={}), "unknown key\\(s\\) topix"),
        (lambda r: r["action"].update(fields=["linear.x"]), "the same length"),
        (lambda r: r["topics"].pop("camera"), "topics needs camera and action"),
        (lambda r: r.update(rate_hz=0), "rate_hz must be positive, got 0"),
    ],
)
def test_mistakes_are_named(tmp_path, edit, message):
    raw = yaml.safe_load(open(config_dir() / "robots" / "go2.yaml"))
    edit(raw)
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ProfileError, match=message):
        load_robot_profile(tmp_path / "bad.yaml")


def test_unknown_robot_lists_the_known_ones():
    with pytest.raises(ProfileError, match="no robot profile 'spot'.*robots: go2, pusht"):
        load_robot_profile("spot")


def test_write_is_the_inverse_of_vector_and_limits_are_read():
    from geometry_msgs.msg import Twist, TwistStamped  # the node's real message classes

    pusht, go2 = load_robot_profile("pusht"), load_robot_profile("go2")
    assert pusht.action.limits == (0.25, 0.25) and go2.action.limits == (0.5, 0.3, 1.0)
    stamped = pusht.action.write(TwistStamped(), [0.1, -0.2])
    assert (stamped.twist.linear.x, stamped.twist.linear.y, stamped.twist.angular.z) == (0.1, -0.2, 0.0)
    assert pusht.action.vector(stamped) == [0.1, -0.2]
    twist = go2.action.write(Twist(), [0.3, 0.1, -0.5])
    assert go2.action.vector(twist) == [0.3, 0.1, -0.5]
    with pytest.raises(ValueError, match="has 3 components, got 2"):
        go2.action.write(Twist(), [0.1, 0.2])


def test_scaled_fields_are_written_unscaled(tmp_path):
    raw = yaml.safe_load(open(config_dir() / "robots" / "go2.yaml"))
    raw["action"]["scale"] = [2.0, 2.0, -1.0]
    (tmp_path / "scaled.yaml").write_text(yaml.safe_dump(raw))
    spec = load_robot_profile(tmp_path / "scaled.yaml").action
    blank = SimpleNamespace(linear=SimpleNamespace(x=0, y=0), angular=SimpleNamespace(z=0))
    twist = spec.write(blank, [0.2, -0.4, -0.3])
    assert (twist.linear.x, twist.linear.y, twist.angular.z) == (0.1, -0.2, 0.3)
    assert spec.vector(twist) == [0.2, -0.4, -0.3]


@pytest.mark.parametrize(("limits", "message"), [([0.5, 0.3], "one positive number per field"),
                                                 ([0.5, 0.0, 1.0], "one positive number per field")])
def test_bad_limits_are_named(tmp_path, limits, message):
    raw = yaml.safe_load(open(config_dir() / "robots" / "go2.yaml"))
    raw["action"]["limits"] = limits
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ProfileError, match=message):
        load_robot_profile(tmp_path / "bad.yaml")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize(("edit", "what"), [
    (lambda r, v: r.update(rate_hz=v), "rate_hz"),
    (lambda r, v: r["action"].update(scale=[1.0, v, 1.0]), "action scale factors"),
    (lambda r, v: r["action"].update(limits=[0.5, v, 1.0]), "action limits"),
], ids=["rate_hz", "scale", "limits"])
def test_every_number_must_be_finite(tmp_path, edit, what, value):
    # nan passed every check and surfaced in dmo-convert as "no action had a camera frame"
    raw = yaml.safe_load(open(config_dir() / "robots" / "go2.yaml"))
    edit(raw, value)
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ProfileError, match=f"{what} must be finite, got {value}"):
        load_robot_profile(tmp_path / "bad.yaml")


def test_a_number_field_that_is_not_numbers_is_named(tmp_path):
    raw = yaml.safe_load(open(config_dir() / "robots" / "go2.yaml"))
    raw["action"]["scale"] = [1.0, "fast", 1.0]
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ProfileError, match="action scale factors must be numbers, got 'fast'"):
        load_robot_profile(tmp_path / "bad.yaml")
