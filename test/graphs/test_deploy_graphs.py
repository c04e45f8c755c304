"""The deploy graphs end to end: stand-in + policy node with a tiny trained policy, through the pip-only runner.

A probe subscribes to the robot's command topic with the robot's message type (a publisher of another type would
not match it) and measures the command rate: 5 Hz decisions, the stream rate when streaming is on, and the
commands stay within the robot profile's limits (here made tight enough that the policy hits them).
"""

from __future__ import annotations

import shutil
import time

import numpy as np
import pytest
import yaml

from conftest import LiveRun
from dmo_ros.resources import config_dir
from policy_probe import Probe

pytestmark = pytest.mark.ros

WINDOW_S = 3.0
CASES = {
    # graph, command type, topic argument, stream rate, robot limits override
    "pusht": ("deploy_pusht", "TwistStamped", ("action_topic", "/servo_node/delta_twist_cmds"), 0.0, [1e-3, 1e-3]),
    "pusht_streamed": ("deploy_pusht", "TwistStamped", ("action_topic", "/servo_node/delta_twist_cmds"), 20.0, None),
    "go2": ("deploy_go2", "Twist", ("cmd_vel_topic", "/cmd_vel"), 0.0, None),
    # The Push Cube baseline: an ACT run (action chunks, temporal ensembling) through the same policy node.
    "go2_act": ("deploy_go2", "Twist", ("cmd_vel_topic", "/cmd_vel"), 0.0, None),
}


@pytest.mark.parametrize("case", list(CASES))
def test_deploy_graph_commands_at_the_control_rate_within_limits(case, ros_env, request, tmp_path):
    graph, command_type, (topic_argument, topic), stream_hz, limits = CASES[case]
    robot = "go2" if graph == "deploy_go2" else "pusht"
    checkpoint = (request.getfixturevalue("tiny_act_policy") if case == "go2_act"
                  else request.getfixturevalue("tiny_policies")[robot])
    if limits is not None:  # a config folder whose robot profile has tight limits
        config = shutil.copytree(config_dir(), tmp_path / "config")
        profile_path = config / "robots" / f"{robot}.yaml"
        profile = yaml.safe_load(profile_path.read_text())
        profile["action"]["limits"] = limits
        profile_path.write_text(yaml.safe_dump(profile))
        ros_env = {**ros_env, "DMO_ROS_CONFIG_DIR": str(config)}
    expected_limits = np.asarray(limits or yaml.safe_load((config_dir() / "robots" / f"{robot}.yaml").read_text())
                                 ["action"]["limits"])
    probe = Probe(ros_env, command_type, topic)
    run = LiveRun([graph, f"checkpoint:={checkpoint}", "start_enabled:=true", f"stream_rate_hz:={stream_hz}",
                   f"{topic_argument}:={topic}"], ros_env)
    try:
        run.wait_for(f"on {topic} at 5.0 Hz", timeout=60)
        first = probe.wait_moving(0.0, timeout=30)
        time.sleep(WINDOW_S + 0.5)
        window = [c for c in probe.commands_since(first) if c[0] < first + WINDOW_S]
    finally:
        code = run.stop()
        probe.close()
    assert code == 0, run.output
    rate = len(window) / WINDOW_S
    expected_rate = stream_hz or 5.0
    assert 0.8 * expected_rate <= rate <= 1.2 * expected_rate, (rate, run.output)
    values = np.array([c[1:4] for c in window])[:, : len(expected_limits)]
    assert np.all(np.abs(values) <= expected_limits + 1e-12)
    if limits is not None:
        assert np.any(np.isclose(np.abs(values), expected_limits)), "the policy never reached the tight limits"
    if stream_hz:  # streamed copies of 5 Hz decisions: the value changes about 5 times a second
        changes = int(np.any(np.diff(values, axis=0) != 0, axis=1).sum())
        assert 0.6 * 5 * WINDOW_S <= changes <= 1.2 * 5 * WINDOW_S, changes
    assert "final statistics:" in run.output and "sent a zero command" in run.output
