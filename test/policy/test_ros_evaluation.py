"""Evaluation through ROS (the deploy graph: policy node and stand-in over DDS) against the direct evaluation.

Same seeds, same episodes: the per-episode outcomes must agree. Tolerance: the same success/failure in every
episode and max coverage within 0.02. The direct mode steps the simulator with the action of the newest frame; the
graph adds what a deployment adds (a 10 Hz camera beside 5 Hz control, timers out of phase), so a policy whose
action depends on the frame can act on a frame one step old. A constant-action policy (the actor's output layer
replaced by a constant) moves the T a lot and is insensitive to that lag: its episodes must agree to 1e-3.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from dmo_ros.policy.api import load_policy
from dmo_ros.policy.evaluate import EvalConfig, evaluate_policy, main
from dmo_ros.training.checkpoint import checkpoint_dir

pytestmark = pytest.mark.ros


def constant_policy(trained, folder, action=(-0.4, -0.9)):
    """A copy of a trained run whose actor always outputs ``action`` (in [-1, 1], before the robot scale)."""
    shutil.copytree(trained, folder)
    weights_file = checkpoint_dir(folder) / "model.safetensors"
    weights = load_file(str(weights_file))
    weights["actor.head.weight"] = torch.zeros_like(weights["actor.head.weight"])
    bias = weights["actor.head.bias"].clone()
    bias[: len(action)] = torch.atanh(torch.tensor(action))
    weights["actor.head.bias"] = bias
    save_file(weights, str(weights_file))
    return folder


@pytest.mark.parametrize(("kind", "tolerance", "task"),
                         [("constant", 1e-3, "push_t"), ("trained", 0.02, "push_t"), ("constant", 1e-3, "push_region"),
                          ("constant", 1e-3, "reach_fixed")])
def test_ros_and_direct_modes_give_the_same_episodes(kind, tolerance, task, tiny_policies, tmp_path, ros_env,
                                                     monkeypatch, capsys):
    for name, value in ros_env.items():  # the ROS evaluation's processes get this test's private DDS domain
        monkeypatch.setenv(name, value)
    run = tiny_policies["pusht"] if kind == "trained" else constant_policy(tiny_policies["pusht"], tmp_path / "c")
    out = tmp_path / "eval" / "both.json"
    code = main([str(run), "--mode", "both", "--episodes", "3", "--max-steps", "15", "--seed", "10000",
                 "--task", task, "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    report = json.loads(out.read_text())
    direct, through_ros = report["policy"]["per_episode"], report["policy_ros"]["per_episode"]
    assert len(direct) == len(through_ros) == 3
    for a, b in zip(direct, through_ros, strict=True):
        assert a["success"] == b["success"]
        assert abs(a["max_coverage"] - b["max_coverage"]) <= tolerance, (direct, through_ros)
        assert abs(a["final_coverage"] - b["final_coverage"]) <= tolerance, (direct, through_ros)
        assert b["steps"] == a["steps"]  # 15 control steps each (no success at this size)
        # The task's own numbers (push_region: the T centre's distance, arena units) from the stand-in's ground truth.
        assert a["loose_success"] == b["loose_success"]
        assert abs(a["start_distance"] - b["start_distance"]) <= 1e-3
        assert abs(a["final_distance"] - b["final_distance"]) <= 512 * tolerance, (direct, through_ros)
    lines = captured.out.splitlines()
    assert lines[1].startswith(f"policy {run} through ROS: success ")
    assert lines[2].startswith("per episode, ROS vs direct: same outcome 3/3")
    if task == "push_region":  # the graph's stand-in played push_region's resets: the T centre 60-120 u from the goal
        assert all(60 <= b["start_distance"] <= 120 for b in through_ros), through_ros
    elif task == "reach_fixed":  # scored on the episode's target (the agent's distance to it, arena units)
        assert all(b["start_distance"] > 40 for b in through_ros), through_ros
        assert any(abs(b["final_distance"] - b["start_distance"]) > 20 for b in through_ros), through_ros
    elif kind == "constant":  # the check is not vacuous: this policy moves the T (a still agent would not)
        still = evaluate_policy(load_policy(tiny_policies["pusht"]), EvalConfig(episodes=3, max_steps=15))
        moved = [abs(a["final_coverage"] - s.final_coverage) for a, s in zip(direct, still.episodes, strict=True)]
        assert max(moved) > 0.01, moved


def test_push_cube_ros_and_direct_modes_give_the_same_episodes(tiny_act_policy, tmp_path, ros_env, monkeypatch,
                                                               capsys):
    """Push Cube through deploy_go2 (the policy node and go2_standin over DDS) against the direct evaluation: the
    same placements, the same outcome and number of steps, and robot paths that agree to the camera lag."""
    for name, value in ros_env.items():
        monkeypatch.setenv(name, value)
    out = tmp_path / "eval" / "go2.json"
    code = main(["--robot", "go2", str(tiny_act_policy), "--mode", "both", "--episodes", "2", "--max-steps", "10",
                 "--no-ceilings", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    report = json.loads(out.read_text())
    direct, through_ros = report["policy"]["per_episode"], report["policy_ros"]["per_episode"]
    assert len(direct) == len(through_ros) == 2
    for a, b in zip(direct, through_ros, strict=True):
        assert a["success"] == b["success"] and a["steps"] == b["steps"]
        assert a["start_distance_m"] == pytest.approx(b["start_distance_m"], abs=1e-3)  # the same placements
        assert a["path_length_m"] > 0.05 and b["path_length_m"] > 0.05  # both moved
        assert abs(a["path_length_m"] - b["path_length_m"]) <= 0.25 * a["path_length_m"] + 0.05, (direct, through_ros)
    assert "per episode, ROS vs direct: same outcome 2/2" in captured.out


class QueuedEvaluator:
    """The evaluator's bookkeeping without DDS: ``spin_until`` delivers the queued stand-in states one by one."""

    def __init__(self, states, queued, moving_stamps):
        self.states, self.queued, self.moving_stamps = states, queued, moving_stamps

    def spin_until(self, condition, timeout, what, alive=lambda: True):
        while not condition():
            assert self.queued, f"no {what}"
            self.states.append(self.queued.pop(0))


def standin_state(episode, step, stamp_ns):
    from builtin_interfaces.msg import Time

    from dmo_msgs.msg import StandinState

    state = StandinState(episode=episode, step=step)
    state.header.stamp = Time(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000)
    return state


@pytest.mark.parametrize("delivered", [0, 1, 2], ids=["no-state-yet", "pre-command-state-in", "applying-state-in"])
def test_the_first_commanded_step_is_found_by_stamps_whatever_order_the_messages_came_in(delivered):
    """Steps at 0.2 s stamps; the policy's first command stamped at 0.45 s applies from step 3 (stamped 0.6 s) on, so
    counting starts after step 2, however many of the states the evaluator took before the command."""
    from dmo_ros.nodes.ros_evaluation import first_commanded_step

    states = [standin_state(1, step, 200_000_000 * step) for step in range(5)]
    evaluator = QueuedEvaluator(states[: 2 + delivered], states[2 + delivered:], [None, 450_000_000])
    assert first_commanded_step(evaluator, 1, 1, lambda: True) == 2
    evaluator.moving_stamps[1] = None  # an unstamped Twist: the latest state the evaluator has
    assert first_commanded_step(evaluator, 1, 1, lambda: True) == evaluator.states[-1].step


def test_a_moving_command_is_timed_by_its_stamp_or_for_a_twist_by_its_source_timestamp():
    """TwistStamped (the arm): its header stamp; Twist (Go2, no header): the DDS source timestamp its publisher wrote;
    a Twist the middleware gave no time: None (arrival order); zero commands (the node's safety stops): not counted."""
    from types import SimpleNamespace

    from builtin_interfaces.msg import Time
    from geometry_msgs.msg import Twist, TwistStamped

    from dmo_ros.nodes.ros_evaluation import Evaluator

    evaluator = SimpleNamespace(commands=0, moving_stamps=[])
    stamped = TwistStamped()
    stamped.header.stamp = Time(sec=3, nanosec=5)
    stamped.twist.linear.x = 0.1
    moving = Twist()
    moving.angular.z = -0.2
    for message, source in ((stamped, 9), (moving, 7_000_000_123), (Twist(), 8), (moving, 0)):
        Evaluator.on_command(evaluator, message, {"source_timestamp": source, "received_timestamp": source + 1})
    assert evaluator.commands == 4
    assert evaluator.moving_stamps == [3_000_000_005, 7_000_000_123, None]
