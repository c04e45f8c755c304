"""The Push Cube evaluation on the Go2 stand-in: traces to episodes, the ceilings, policies, the command line."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from dmo_ros.policy.api import load_policy
from dmo_ros.policy.evaluate import main as eval_main
from dmo_ros.policy.push_cube_eval import (
    PushCubeEvalConfig,
    PushCubeResult,
    episode_from_trace,
    evaluate_controller,
    evaluate_policy,
    format_table,
    make_ceiling,
    result_from_dict,
)


def test_a_trace_becomes_an_episode_with_the_table_ii_numbers():
    # The robot walks 1 m straight along x, then turns 90 deg on the spot and walks 1 m along y.
    poses = np.array([[0, 0, 0], [0.5, 0, 0], [1, 0, 0], [1, 0, math.pi / 2], [1, 0.5, math.pi / 2],
                      [1, 1, math.pi / 2]], dtype=float)
    episode = episode_from_trace(poses, [True, True, False, False, True, True], [1.0, 0.8, 0.6, 0.5, 0.3, 0.2],
                                 [False, False, False, False, False, True])
    assert episode.success and episode.steps == 5 and episode.steps_to_success == 5
    assert episode.straightness == pytest.approx(math.sqrt(2) / 2)
    assert episode.curvature_rad_m == pytest.approx((math.pi / 2) / 2)
    assert episode.out_of_view_fraction == pytest.approx(2 / 6) and episode.longest_out_of_view == 2
    assert (episode.start_distance_m, episode.final_distance_m, episode.min_distance_m) == (1.0, 0.2, 0.2)
    with pytest.raises(ValueError, match="equally many"):
        episode_from_trace(poses, [True], [1.0], [False])


def test_ceilings_bracket_the_task():
    config = PushCubeEvalConfig(episodes=3, max_steps=120)
    expert = evaluate_controller(make_ceiling("expert", config.seed), config)
    zero = evaluate_controller(make_ceiling("zero", config.seed), config)
    assert expert.successes == 3, [e.final_distance_m for e in expert.episodes]
    assert all(e.steps == e.steps_to_success < 120 for e in expert.episodes)
    assert all(0 < e.straightness <= 1 for e in expert.episodes)
    assert zero.successes == 0 and all(e.steps == 120 and e.straightness is None for e in zero.episodes)
    # The same seeded placements for both: the cube starts equally far from the goal.
    assert [e.start_distance_m for e in expert.episodes] == [e.start_distance_m for e in zero.episodes]
    # While the expert pushes, the cube (right in front of the camera) is in view.
    assert np.mean([e.out_of_view_fraction for e in expert.episodes]) < 0.5
    summary = expert.summary()
    assert summary["successes"] == 3 and summary["steps_to_success"]["n"] == 3
    again = result_from_dict(json.loads(json.dumps(expert.to_dict())))
    assert again.summary() == summary
    table = format_table([("expert", expert), ("zero", zero)], config)
    assert "| expert | 3 | 3/3 100%" in table and "| zero | 3 | 0/3 0%" in table


def test_a_policy_is_driven_through_the_policy_api(tiny_act_policy):
    policy = load_policy(tiny_act_policy)
    config = PushCubeEvalConfig(episodes=2, max_steps=5)
    result = evaluate_policy(policy, config)
    assert isinstance(result, PushCubeResult) and [e.steps for e in result.episodes] == [5, 5]
    assert all(e.path_length_m > 0 for e in result.episodes)  # it commanded motion


def test_command_line_for_go2_writes_the_table_and_json(tiny_act_policy, tmp_path, capsys):
    out = tmp_path / "eval.json"
    code = eval_main(["--robot", "go2", str(tiny_act_policy), "--episodes", "2", "--max-steps", "4", "--out",
                      str(out), "--quiet"])
    assert code == 0
    text = capsys.readouterr().out
    assert "straightness" in text and "ceiling: scripted expert (privileged)" in text
    report = json.loads(out.read_text())
    assert report["task"] == "push_cube" and report["policy"]["episodes"] == 2
    assert eval_main(["--robot", "go2", str(tmp_path / "missing"), "--no-ceilings", "--quiet"]) == 2
    assert "error" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        eval_main(["--robot", "go2", "--episodes", "0", "--ceilings-only"])


def test_a_negative_seed_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="seed must be >= 0, got -3"):
        PushCubeEvalConfig(seed=-3)


@pytest.mark.parametrize("robot, other", [("pusht", "go2"), ("go2", "pusht")])
def test_a_policy_of_the_other_robot_is_refused_in_one_line(tiny_policies, capsys, robot, other):
    """A Push-T policy on the Go2 stand-in (or the other way round) would send commands of the wrong size: refused
    before anything runs, in either mode, naming the robot to give."""
    for mode in ("direct", "ros"):
        code = eval_main(["--robot", other, str(tiny_policies[robot]), "--episodes", "1", "--no-ceilings", "--quiet",
                          "--mode", mode])
        err = capsys.readouterr().err
        assert code == 2 and f"was trained on robot '{robot}'" in err and f"--robot {robot}" in err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1
