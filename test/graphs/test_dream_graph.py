"""The dream graph end to end with a tiny world model, through the pip-only runner: what it publishes, its restart
service, its Foxglove websocket and MCAP file; and the RViz layout names exactly the topics it publishes."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import BIN, REPO, LiveProcess, LiveRun
from dmo_ros.resources import config_dir

pytestmark = pytest.mark.ros

PROBE = Path(__file__).resolve().parents[1] / "dream_probe.py"
IMAGE = 32  # the tiny runs' frames (policy_runs.IMAGE)


def probe(env: dict[str, str], seconds: float, restart_at: float, *mode: str) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, str(PROBE), str(seconds), str(restart_at), *mode], env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert json.loads(process.stdout.readline()) == "started"
    return process


def probe_result(process: subprocess.Popen) -> dict:
    output, _ = process.communicate(timeout=60)
    lines = output.strip().splitlines()
    assert process.returncode == 0, output
    return json.loads(lines[-1])


def dream_run(env: dict[str, str], root: Path, *arguments: str) -> LiveRun:
    return LiveRun(["dream", f"world_model:={root / 'world_model'}", f"dataset:={root / 'dataset'}",
                    f"policy:={root / 'policy'}", f"reward:={root / 'reward'}", f"goal:={root / 'goal.png'}",
                    "rollouts:=2", "seeds:=2", "scale:=2", "rate_hz:=10.0", *arguments], env)


def steps_by_stamp(steps: list[list]) -> dict[int, list[list]]:
    grouped: dict[int, list[list]] = defaultdict(list)
    for s in steps:
        grouped[s[0]].append(s)
    return grouped


def watch(process, watcher, started: str) -> dict:
    """Wait for the node's ``started`` line, take the probe's result, stop the node and require exit code 0."""
    try:
        process.wait_for(started, timeout=60)
        result = probe_result(watcher)
    finally:
        code = process.stop()
    assert code == 0, process.output
    return result


def test_dream_graph_replays_recorded_actions_beside_real_frames(ros_env, tiny_policies, tmp_path):
    root = tiny_policies["pusht"].parent
    mcap = tmp_path / "dream.mcap"
    watcher = probe(ros_env, seconds=3.0, restart_at=1.0)
    run = dream_run(ros_env, root, "action_source:=recorded", "horizon:=16", f"mcap:={mcap}",
                    "foxglove:=true", "foxglove_port:=0")
    result = watch(run, watcher, "dreaming 2 rollout(s)")
    steps, imagined, real = result["steps"], result["imagined"], result["real"]
    assert len(steps) >= 12 and len(imagined) >= 6, (len(steps), run.output)  # 10 Hz asked; a loaded CPU is slower
    # frames: rgb8, the two rollouts tiled side by side, upscaled twice (2 px gap); the step's own frame native
    width = 2 * IMAGE * 2 + 2
    assert {(w, h, enc) for _, w, h, enc, _ in imagined} == {(width, 2 * IMAGE, "rgb8")}
    assert {(w, h, enc) for _, w, h, enc, _ in real} == {(width, 2 * IMAGE, "rgb8")}
    assert all(size == width * 2 * IMAGE * 3 for *_, size in imagined)
    assert {(s[8], s[9], s[10]) for s in steps} == {(IMAGE, IMAGE, "rgb8")}
    # real and imagined frames are paired by step: one stamp per step on every topic. The probe listens for a
    # fixed time, so it can begin or end in the middle of one step's messages (images first, then the rollouts'
    # steps): the first and last stamps may be partial; every step in between must be whole.
    grouped = steps_by_stamp(steps)
    imagined_stamps, real_stamps = {i[0] for i in imagined}, {r[0] for r in real}
    every_stamp = set(grouped) | imagined_stamps | real_stamps
    edges = {min(every_stamp), max(every_stamp)}
    inner_real = real_stamps - edges
    assert inner_real <= set(grouped) and len(inner_real & imagined_stamps) >= 0.8 * len(inner_real)
    for stamp, group in grouped.items():
        rollouts = sorted(s[2] for s in group)
        assert rollouts == [0, 1] or (stamp in edges and rollouts in ([0], [1])), (stamp, rollouts)
        assert len({s[1] for s in group}) == 1
    # rewards finite (a reward model and goal are given); value NaN: recorded actions have no critic
    assert all(math.isfinite(s[4]) for s in steps)
    assert all(math.isnan(s[5]) for s in steps)
    assert all(s[6] > 0 for s in steps) and not any(s[7] for s in steps)  # spread of 2 seeds, no threshold
    # step counters increase by one per rollout; the restart service sets them back to 0
    success, message, received_at = result["restart"]
    assert success and "restarted from episode" in message
    for rollout in (0, 1):
        sequence = [s[1] for s in steps if s[2] == rollout]
        assert all(b == a + 1 or b == 0 for a, b in zip(sequence, sequence[1:], strict=False)), sequence
        assert sum(b < a for a, b in zip(sequence, sequence[1:], strict=False)) >= 1, sequence
    # the restart: a step 0 of both rollouts arrives between the call and two steps after the reply
    around = steps[result["restart_sent_at"] : received_at + 8]
    assert {0, 1} <= {s[2] for s in around if s[1] == 0}, (around, result["restart_sent_at"], received_at)
    # markers: a caption and the strip plots (reward, value is NaN: not plotted, spread)
    assert {"caption", "reward", "spread"} <= set().union(*map(set, result["markers"]))
    # the node publishes exactly the topics of its documentation (and the RViz layout shows the viewable ones)
    published = {topic: types for topic, types in result["publishers"].items() if topic.startswith("/dream/")}
    assert published == {"/dream/imagined": ["sensor_msgs/msg/Image"], "/dream/real": ["sensor_msgs/msg/Image"],
                         "/dream/step": ["dmo_msgs/msg/ImaginedStep"],
                         "/dream/markers": ["visualization_msgs/msg/MarkerArray"]}
    assert rviz_topics() == {t for t, types in published.items() if types[0] != "dmo_msgs/msg/ImaginedStep"}
    # the Foxglove server bound loopback; the MCAP holds every published step (the node counts them on exit)
    assert re.search(r"Foxglove on ws://127\.0\.0\.1:\d+", run.output)
    count = int(re.search(r"published (\d+) imagined steps", run.output).group(1))
    assert count >= len(imagined)
    counts = mcap_counts(mcap)
    assert counts == {"/dream/imagined": count, "/dream/real": count, "/dream/step": 2 * count}, (counts, count)


def test_dream_graph_with_the_policy_publishes_values_and_bounded_actions(ros_env, tiny_policies):
    root = tiny_policies["pusht"].parent
    watcher = probe(ros_env, seconds=4.0, restart_at=-1)
    run = dream_run(ros_env, root, "action_source:=policy", "horizon:=6", "threshold:=1.0e-12")
    result = watch(run, watcher, "dreaming 2 rollout(s) of 6 steps with policy actions")
    steps = result["steps"]
    assert len(steps) >= 10, run.output
    # each real frame shown belongs to an imagined step; only the listening window's edges may be partial (the
    # image topics can match before the reliable step topic does, and the last step's images come before its steps)
    real_stamps = {r[0] for r in result["real"]}
    step_stamps = set(steps_by_stamp(steps))
    window = {r for r in real_stamps if min(step_stamps) <= r < max(real_stamps | step_stamps)}
    assert window <= step_stamps, sorted(window - step_stamps)
    assert all(math.isfinite(s[4]) and math.isfinite(s[5]) for s in steps)  # reward and the critic's value
    limits = np.asarray(yaml.safe_load((config_dir() / "robots" / "pusht.yaml").read_text())["action"]["limits"])
    assert all(np.all(np.abs(s[3]) <= limits + 1e-6) for s in steps)
    assert all(s[7] for s in steps)  # every step is above a 1e-12 threshold: marked off data
    assert max(s[1] for s in steps) == 5 and 0 in [s[1] for s in steps[6 * 2 :]]  # loops on to the next start


def test_dream_node_from_the_camera_driven_by_teleop_actions(ros_env, tiny_policies):
    root = tiny_policies["pusht"].parent
    watcher = probe(ros_env, 3.0, 1.0, "live")
    node = LiveProcess([str(BIN / "dream"), "--ros-args", "-p", f"world_model:={root / 'world_model'}",
                        "-p", "start_source:=camera", "-p", "action_source:=teleop", "-p", "robot:=pusht",
                        "-p", "horizon:=6", "-p", "rate_hz:=10.0", "-p", "seeds:=2"], ros_env)
    result = watch(node, watcher, "dreaming 1 rollout(s) of 6 steps with teleop actions from the camera")
    steps = result["steps"]
    assert len(steps) >= 10 and result["real"] == [], node.output  # nothing recorded to show beside it
    assert all(np.allclose(s[3], [0.1, -0.05]) for s in steps[2:])  # the gamepad drives the imagined robot
    assert all(math.isnan(s[4]) and math.isnan(s[5]) for s in steps)  # no reward model, no critic
    assert all(s[2] == 0 for s in steps) and 5 in [s[1] for s in steps]
    assert result["restart"][0] and "restarted from live" in result["restart"][1]


def rviz_topics() -> set[str]:
    """Every topic the RViz layout subscribes to."""
    layout = yaml.safe_load((REPO / "config" / "dream.rviz").read_text())
    return {display["Topic"]["Value"] for display in layout["Visualization Manager"]["Displays"]
            if "Topic" in display}


def test_rviz_layout_parses_and_names_exactly_the_viewable_topics():
    from dmo_ros.nodes.dream import TOPICS

    layout = yaml.safe_load((REPO / "config" / "dream.rviz").read_text())
    displays = layout["Visualization Manager"]["Displays"]
    assert {d["Class"] for d in displays} == {"rviz_default_plugins/Image", "rviz_default_plugins/MarkerArray"}
    viewable = {f"/{TOPICS[name]}" for name in ("imagined", "real", "markers")}  # ImaginedStep: no RViz display
    assert rviz_topics() == viewable
    images = {d["Topic"]["Value"]: d["Topic"]["Reliability Policy"] for d in displays if d["Class"].endswith("Image")}
    assert set(images.values()) == {"Best Effort"}  # matches the node's sensor-data image QoS
    assert layout["Visualization Manager"]["Global Options"]["Fixed Frame"] == "dream"  # the node's frame_id


def mcap_counts(path: Path) -> dict[str, int]:
    from mcap.reader import make_reader

    counts: dict[str, int] = defaultdict(int)
    with path.open("rb") as stream:
        for _schema, channel, _message in make_reader(stream).iter_messages():
            counts[channel.topic] += 1
    return dict(counts)
