"""The collect graph end to end on each stand-in: the bag holds what the robot would give.

Runs the real graph (stand-in, scripted teleop, recorder) through the pip-only runner for a
few seconds, then reads every recorded message back with rosbags.
"""

from __future__ import annotations

import pytest

from conftest import BIN, run_command
from dmo_ros.recording.summary import summarize

pytestmark = pytest.mark.ros

SECONDS = 12.0  # the graph starts in a few seconds on a loaded 2-core machine; the spans checked are half of this
ACTION = {"pusht": ("/servo_node/delta_twist_cmds", "geometry_msgs/msg/TwistStamped"),
          "go2": ("/cmd_vel", "geometry_msgs/msg/Twist")}


@pytest.mark.parametrize("robot", ["pusht", "go2"])
def test_collect_records_camera_actions_and_intent(robot, tmp_path, ros_env):
    output = tmp_path / "bags"
    result = run_command(
        [str(BIN / "dmo-launch"), "collect", f"robot:={robot}", f"duration:={SECONDS}", f"output:={output}",
         "demo_probability:=1.0", "play_steps_min:=5", "play_steps_max:=8", "demo_timeout_steps:=8", "seed:=3"],
        ros_env, timeout=120,
    )
    assert result.returncode == 0, result.stdout
    assert "stopped cleanly" in result.stdout
    [session] = list(output.iterdir())
    summary = summarize(session)
    action_topic, action_type = ACTION[robot]
    topics = summary.topics
    assert {t: s.msgtype for t, s in topics.items()} == {
        "/camera/image": "sensor_msgs/msg/Image",
        action_topic: action_type,
        "/intent": "dmo_msgs/msg/Intent",
        "/reset": "std_msgs/msg/Header",
    }, result.stdout[-4000:]  # the recorder's log names what it subscribed to and what it never saw
    assert "/standin_state" not in topics  # simulator ground truth is never recorded
    camera, action, intent = topics["/camera/image"], topics[action_topic], topics["/intent"]
    # Counts within tolerance of the rates over each topic's own recorded span (the stand-in's
    # camera starts a moment after teleop; discovery takes longer on a loaded machine).
    for topic, rate in ((camera, 10), (action, 5)):
        span = (topic.last_ns - topic.first_ns) / 1e9
        assert span >= 0.5 * SECONDS, (topic.topic, span)
        assert 0.85 * rate * span <= topic.count - 1 <= 1.15 * rate * span + 1, (topic.topic, topic.count, span)
    assert abs(intent.count - action.count) <= 2
    assert 9.0 <= camera.rate_hz <= 11.0 and 4.5 <= action.rate_hz <= 5.5 and 4.5 <= intent.rate_hz <= 5.5
    assert camera.image_formats == {"96x96 rgb8": camera.count}
    # Play (intent off), then the demonstration (intent on), reset, again: each phase lasts at most
    # ~10 ticks, so even a recorder that discovers the graph late records the labels toggling.
    assert intent.intent_toggles >= 1 and 0 < intent.intent_on < intent.count
    assert all(t.stamps_monotonic for t in topics.values() if t.count)
    # No stall: a few ticks late at most. A loaded machine delays a 5 Hz tick by one or two (CI of 2026-12-03 measured
    # an action gap of 0.57 s and a camera gap of 0.46 s in one run); a stalled node leaves seconds.
    assert camera.max_gap_s < 1.0 and action.max_gap_s < 1.0, (camera.max_gap_s, action.max_gap_s)


def test_unknown_robot_is_rejected_before_anything_starts(ros_env):
    result = run_command([str(BIN / "dmo-launch"), "collect", "robot:=spot"], ros_env)
    assert result.returncode == 2
    assert "argument 'robot' must be one of pusht, go2; got 'spot'" in result.stdout
    assert "started" not in result.stdout


def test_unwritable_output_stops_the_graph_with_a_clear_message(tmp_path, ros_env):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    result = run_command([str(BIN / "dmo-launch"), "collect", f"output:={blocked / 'bags'}", "duration:=5"],
                         ros_env, timeout=60)
    assert result.returncode == 1, result.stdout
    assert "cannot write to output folder" in result.stdout
    assert "required node 'recorder' failed (exit code 2)" in result.stdout
    assert "[recorder] Traceback" not in result.stdout  # a plain message, not a crash
