"""dmo-compare on Push Cube runs (Go2): Table II per method from final_eval.json, ceilings, Fig. 3b."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dmo_ros.dmo.compare import main
from dmo_ros.policy.push_cube_eval import PushCubeResult, episode_from_trace


def straight_episode(success: bool, steps: int) -> dict:
    poses = np.column_stack([np.linspace(0, 1, steps + 1), np.zeros(steps + 1), np.zeros(steps + 1)])
    return episode_from_trace(poses, [True] * (steps + 1), np.linspace(1, 0.1, steps + 1),
                              [False] * steps + [success])


def write_push_cube_run(folder: Path, method: str, outcomes: list[bool], evals: list[tuple[int, float]]) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"kind": "policy", "method": method, "task": "push_cube"}))
    (folder / "eval.jsonl").write_text("".join(
        json.dumps({"epoch": epoch, "samples": 1000 * epoch, "wall_s": 10.0 * epoch, "success_rate": rate,
                    "mean_max_coverage": rate, "method": method}) + "\n" for epoch, rate in evals))
    result = PushCubeResult([straight_episode(ok, 10 if ok else 40) for ok in outcomes])
    ceiling = PushCubeResult([straight_episode(True, 20)] * len(outcomes)).record()
    (folder / "final_eval.json").write_text(json.dumps(
        {"task": "push_cube", "config": {}, "samples": 1000 * evals[-1][0], "wall_s": 10.0 * evals[-1][0],
         "policy": result.to_dict(), "ceilings": {"ceiling: scripted expert (privileged)": ceiling}}))
    return folder


def test_push_cube_runs_give_table_ii_with_pooled_success_and_fig_3b(tmp_path, capsys):
    dmo = [write_push_cube_run(tmp_path / f"dmo{seed}", "dmo", [True, seed == 0, False, False], [(1, 0.0), (2, 0.5)])
           for seed in range(2)]
    act = write_push_cube_run(tmp_path / "act", "act", [True, True, True, False], [(0, 0.75)])
    out = tmp_path / "out"
    assert main([*map(str, dmo), str(act), "--out", str(out)]) == 0
    table = (out / "comparison.md").read_text()
    assert "| DMO | 2 | 8 | 3/8 38%" in table and "50%, 25%" in table  # pooled and per run
    assert "| ACT (behaviour cloning) | 1 | 4 | 3/4 75%" in table and "- (demonstrations)" in table
    assert "10.0 +- 0.0" in table  # steps to success over the successes only
    assert "ceiling: scripted expert (privileged)" in table and "Table II (real Go2, N = 3 episodes)" in table
    image = Image.open(out / "fig3b.png")
    assert image.size[0] > 500 and np.asarray(image).std() > 0
    assert "3/8" in capsys.readouterr().out


def test_push_cube_runs_without_a_final_evaluation_or_mixed_with_push_t_are_refused(tmp_path, capsys):
    run = write_push_cube_run(tmp_path / "dmo", "dmo", [True], [(1, 1.0)])
    (run / "final_eval.json").unlink()
    assert main([str(run), "--out", str(tmp_path / "o")]) == 2
    assert "no final_eval.json" in capsys.readouterr().err
    push_t = tmp_path / "pusht"
    push_t.mkdir()
    (push_t / "config.json").write_text(json.dumps({"kind": "policy", "method": "ppo", "task": "push_t"}))
    (push_t / "eval.jsonl").write_text(json.dumps({"epoch": 1, "samples": 1, "wall_s": 1, "success_rate": 0,
                                                   "mean_max_coverage": 0}) + "\n")
    act = write_push_cube_run(tmp_path / "act", "act", [True], [(0, 1.0)])
    assert main([str(act), str(push_t), "--out", str(tmp_path / "o2")]) == 2
    assert "one task at a time" in capsys.readouterr().err


@pytest.fixture(autouse=True)
def _headless(monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")


def test_real_go2_runs_of_dmo_and_act_compare(tmp_path, capsys):
    """Runs written by the real trainers (tiny): dmo-train-policy on Go2 data and dmo-train-act, each with its
    Push Cube evaluations, go through dmo-compare together."""
    from dmo_ros.baselines.act_train import main as train_act
    from policy_runs import train_tiny_policy, write_go2_demonstrations

    dmo = train_tiny_policy(tmp_path, "go2", max_samples=16,
                            extra=("--eval-every", "1", "--eval-episodes", "1", "--eval-max-steps", "2",
                                   "--final-eval-episodes", "1"))
    act = tmp_path / "act"
    assert train_act([str(write_go2_demonstrations(tmp_path / "demos")), "--run-dir", str(act), "--preset", "tiny",
                      "--steps", "4", "--batch-size", "4", "--device", "cpu", "--progress", "false",
                      "--eval-episodes", "1", "--eval-max-steps", "2"]) == 0
    out = tmp_path / "out"
    assert main([str(dmo), str(act), "--out", str(out)]) == 0
    table = (out / "comparison.md").read_text()
    assert "| DMO | 1 | 1 |" in table and "| ACT (behaviour cloning) | 1 | 1 |" in table
    assert (out / "fig3b.png").is_file()
