"""``scripts/push_cube_reward_profile.py``: the placements along the line through the goal, and the table, JSON and
picture for an intent reward run."""

from __future__ import annotations

import json

import numpy as np
import pytest
from script_modules import load_script

from dmo_ros.sims.push_cube import PushCubeConfig, PushCubeSim


def test_the_cube_lies_on_the_line_through_the_goal_with_the_robot_behind_it_facing_the_goal():
    profile = load_script("scripts/push_cube_reward_profile.py")
    with PushCubeSim(PushCubeConfig(seed=3, width=8, height=8)) as sim:
        state = sim.state()
        goal, start = state.goal[:2], state.cube[:2]
        way = (goal - start) / np.linalg.norm(goal - start)
        for d, (robot, cube) in zip((1.0, 0.25, 0.0, -0.2), profile.placements(sim, np.array([1.0, 0.25, 0.0, -0.2]),
                                                                              0.55), strict=True):
            np.testing.assert_allclose(cube[:2], goal - d * way, atol=1e-9)
            np.testing.assert_allclose(robot[:2], cube[:2] - 0.55 * way, atol=1e-9)
            assert np.cos(robot[2] - np.arctan2(way[1], way[0])) == pytest.approx(1.0)


def test_the_profile_of_an_intent_reward_run(tmp_path, capsys):
    from local_model.test_train import _intent_reward_run

    profile = load_script("scripts/push_cube_reward_profile.py")
    run = _intent_reward_run(tmp_path / "intent")
    profile.main(["--reward-run", str(run), "--episodes", "2", "--distances", "1.0", "0.25", "0.0",
                  "--standoffs", "0.4", "0.75", "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert "<- the disc's edge" in out and "0.75 m behind: home gain (centre - edge)" in out
    summary = json.loads((tmp_path / "out" / "reward_profile.json").read_text())
    assert summary["distances_m"] == [1.0, 0.25, 0.0] and [row["standoff_m"] for row in summary["standoffs"]] == [
        0.4, 0.75]
    for row in summary["standoffs"]:
        assert len(row["mean"]) == 3 and all(np.isfinite(row["mean"])) and row["episodes_per_distance"] == [2, 2, 2]
        assert row["home_gain"]["mean"] == pytest.approx(row["mean"][2] - row["mean"][1], abs=1e-5)
        assert row["approach_gain"]["mean"] == pytest.approx(row["mean"][1] - row["mean"][0], abs=1e-5)
        assert row["approach_gain"]["from_m"] == 1.0
        assert list(row["heads"]) == ["P(intent)", "milestone"]  # an intent reward: its heads (no progress head here)
        assert all(0 <= p <= 1 for p in row["heads"]["P(intent)"]) and len(row["heads"]["milestone"]) == 3
    # Without the centre among the distances the home gain is not measured (not taken at the nearest distance).
    profile.main(["--reward-run", str(run), "--episodes", "1", "--distances", "0.6", "0.25", "--standoffs", "0.55",
                  "--out", str(tmp_path / "partial")])
    assert "approach gain (edge - 0.6 m)" in capsys.readouterr().out
    row = json.loads((tmp_path / "partial" / "reward_profile.json").read_text())["standoffs"][0]
    assert row["home_gain"]["mean"] is None and row["centre_beats_edge"] is None  # JSON has no NaN: null
    assert (tmp_path / "out" / "reward_profile.png").stat().st_size > 1000


@pytest.mark.parametrize("bad", [["--episodes", "0"], ["--standoffs", "0.4", "0"], ["--standoffs", "nan"]])
def test_bad_settings_are_refused_with_one_line(bad, tmp_path, capsys):
    profile = load_script("scripts/push_cube_reward_profile.py")
    with pytest.raises(SystemExit) as exit_info:
        profile.main(["--reward-run", str(tmp_path / "unused"), *bad])
    assert exit_info.value.code == 2 and "must be" in capsys.readouterr().err


def test_a_missing_reward_run_is_one_line(tmp_path, capsys):
    profile = load_script("scripts/push_cube_reward_profile.py")
    with pytest.raises(SystemExit) as exit_info:
        profile.main(["--reward-run", str(tmp_path / "nothing")])
    assert exit_info.value.code == 2 and "not a training run folder" in capsys.readouterr().err
