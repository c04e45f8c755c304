"""Gate reports vouch for the goal picture they were measured toward: by its bytes' hash where the gate recorded
one, by its path and bytes on disk where it did not (gates written before the hash was recorded)."""

from __future__ import annotations

import pytest

from dmo_ros.gates.report import (
    GateCheck,
    GateReport,
    goal_mismatch,
    goal_picture_digest,
    record_goal,
    require_gates,
    write_gate_report,
)


def _gated_toward(picture, digest: str | None) -> GateReport:
    report = GateReport("reward", [GateCheck("x", 1.0, 0.5, ">=", "")])
    record_goal(report, picture, digest)
    return report


def test_a_picture_redrawn_under_the_same_name_is_another_picture(tmp_path):
    goal = tmp_path / "goal.png"
    goal.write_bytes(b"the T on its goal pose")
    report = _gated_toward(goal, goal_picture_digest(goal))
    assert goal_mismatch(report, goal) is None
    goal.write_bytes(b"the agent moved to 115.5 170")
    assert "redrawn since" in goal_mismatch(report, goal)
    run = tmp_path / "reward"
    write_gate_report(run, report)
    with pytest.raises(Exception, match=rf"reward {run}: gated toward the goal picture {goal} as it was then; the "
                                        r"file has been redrawn since .*measure it with dmo-gate reward"):
        require_gates({"reward": run}, goal=goal)


def test_the_same_bytes_anywhere_are_the_same_picture_by_hash(tmp_path):
    goal, copy, other = tmp_path / "goal.png", tmp_path / "copy.png", tmp_path / "other.png"
    goal.write_bytes(b"the T on its goal pose")
    copy.write_bytes(goal.read_bytes())
    other.write_bytes(b"another pose")
    report = _gated_toward(goal, goal_picture_digest(goal))
    goal.unlink()  # the measured picture has gone: its hash still tells a copy from another picture
    assert goal_mismatch(report, copy) is None
    assert goal_mismatch(report, other) == f"gated toward the goal picture {goal}, not toward {other}"
    assert goal_mismatch(report, tmp_path / "missing.png") is None  # nothing to compare


def test_a_gate_without_a_hash_keeps_the_path_comparison(tmp_path):
    goal = tmp_path / "goal.png"
    goal.write_bytes(b"the T on its goal pose")
    report = _gated_toward(goal, None)  # a gate.json written before the hash was recorded
    assert "goal_sha256" in report.metrics and report.metrics["goal_sha256"] is None
    goal.write_bytes(b"redrawn")
    assert goal_mismatch(report, goal) is None
    report.metrics.pop("goal_sha256")
    assert goal_mismatch(report, goal) is None
