"""Reward evaluation: Spearman against hand values, the goal-reaching oracle, the report files and the CLI."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dmo_ros.dataset.format import write_dataset
from dmo_ros.dataset.images import resize
from dmo_ros.reward.config import RewardConfig
from dmo_ros.reward.energy import EnergyNet
from dmo_ros.reward.evaluate import (
    average_ranks,
    evaluate_reward,
    format_table,
    goal_reaching_episodes,
    main,
    spearman,
    validation_segments,
    write_report,
)
from dmo_ros.reward.goal_image import save_goal_image
from dmo_ros.training.checkpoint import save_checkpoint, write_run_config

SIZE = 32


def test_average_ranks_share_ties() -> None:
    assert average_ranks([10, 20, 20, 30]).tolist() == [1, 2.5, 2.5, 4]
    assert average_ranks([3, 1, 2]).tolist() == [3, 1, 2]
    assert average_ranks([5, 5, 5]).tolist() == [2, 2, 2]
    assert average_ranks([0.5, -1, 0.5, 0.5, 7]).tolist() == [3, 1, 3, 3, 5]
    with pytest.raises(ValueError, match="NaN"):
        average_ranks([1, math.nan])


def test_spearman_against_hand_computed_values() -> None:
    # No ties: d = [-1, 1, -1, 1, 0], rho = 1 - 6 * 4 / (5 * 24) = 0.8.
    assert spearman([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]) == pytest.approx(0.8)
    # Ties in b: ranks [1, 2, 3.5, 5, 3.5]; centred products sum 8, squares 10 and 9.5: rho = 8 / sqrt(95).
    assert spearman([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]) == pytest.approx(8 / math.sqrt(95))
    # Monotone transforms do not matter; reversal gives -1.
    x = np.array([0.1, 3.0, 2.0, 8.0, -4.0])
    assert spearman(x, np.exp(x)) == pytest.approx(1.0)
    assert spearman(x, -x**3) == pytest.approx(-1.0)
    # Ties in both: a = [1, 1, 2, 2] -> [1.5, 1.5, 3.5, 3.5]; b = [1, 2, 2, 3] -> [1, 2.5, 2.5, 4]:
    # centred a = [-1, -1, 1, 1], b = [-1.5, 0, 0, 1.5]; rho = 3 / sqrt(4 * 4.5).
    assert spearman([1, 1, 2, 2], [1, 2, 2, 3]) == pytest.approx(3 / math.sqrt(18))
    assert math.isnan(spearman([1, 2, 3], [4, 4, 4]))
    assert math.isnan(spearman([1], [2]))
    with pytest.raises(ValueError, match="equal lengths"):
        spearman([1, 2], [1, 2, 3])


@pytest.fixture(scope="module")
def oracle():
    return goal_reaching_episodes(3, steps=24, seed=0, size=(SIZE, SIZE))


def test_oracle_episodes_reach_the_goal(oracle) -> None:
    assert len(oracle) == 3 and [e.episode for e in oracle] == [0, 1, 2]
    for episode in oracle:
        assert episode.frames.shape == (25, SIZE, SIZE, 3) and episode.frames.dtype == np.uint8
        assert episode.goal_image.shape == (SIZE, SIZE, 3)
        assert episode.coverage[-1] > 0.95  # a real success by gym-pusht's rule
        assert episode.coverage[0] < 0.5
        assert spearman(episode.coverage, np.arange(25)) > 0.8  # coverage grows over the episode
        assert not np.array_equal(episode.frames[0], episode.frames[-1])
    assert len({e.frames[0].tobytes() for e in oracle}) == 3  # different start poses


def test_oracle_frames_are_drawn_like_the_standin_camera() -> None:
    """Same pixels as the stand-in's camera (which recorded the data); the goal picture is the stand-in's."""
    from dmo_ros.sims.pusht import PushTConfig, PushTSim

    sim = PushTSim(PushTConfig(seed=0))  # at its episode 0, the state the oracle's episode 0 starts from
    try:
        episode = goal_reaching_episodes(1, steps=4, seed=0, size=(64, 64))[0]
        assert np.array_equal(sim.render_shapes(), sim.render())
        assert np.array_equal(episode.goal_image, resize(sim.goal_image(), 64, 64, "crop"))
    finally:
        sim.close()


def _dataset(folder: Path, intent: bool) -> Path:
    """Eight 14-sample episodes of a dot moving right (plus noise); with ``intent``, samples 3..11 of each."""
    rng = np.random.default_rng(0)
    frames = []
    for _ in range(8):
        for t in range(14):
            image = rng.integers(150, 170, (SIZE, SIZE, 3), dtype=np.uint8)
            image[14:18, 2 + 2 * t: 6 + 2 * t] = 20
            frames.append(image)
    flags = np.tile(np.r_[np.zeros(3), np.ones(9), np.zeros(2)].astype(bool), 8) if intent else None
    return write_dataset(folder, np.stack(frames), np.zeros((112, 2), np.float32), [14] * 8, intent=flags,
                         validation_fraction=0.25)


def test_validation_segments(tmp_path: Path) -> None:
    plain = _dataset(tmp_path / "plain", intent=False)
    segments, kind = validation_segments(plain, max_length=10, limit=100)
    assert kind == "episode" and [s["length"] for s in segments] == [10, 4, 10, 4]  # two val episodes, chunked
    labelled = _dataset(tmp_path / "labelled", intent=True)
    segments, kind = validation_segments(labelled, max_length=100, limit=100)
    assert kind == "intent" and [s["length"] for s in segments] == [9, 9]
    assert all((s["start"] - 3) % 14 == 0 for s in segments)
    assert len(validation_segments(plain, 10, limit=3)[0]) == 3


def _untrained(seed: int = 0) -> EnergyNet:
    torch.manual_seed(seed)
    return EnergyNet(RewardConfig.preset("tiny", image_size=SIZE, max_span=12))


def test_evaluation_of_an_untrained_model_writes_its_files(tmp_path: Path) -> None:
    dataset = _dataset(tmp_path / "ds", intent=True)
    report = evaluate_reward(_untrained(), dataset, episodes=2, steps=10, segments=5, max_pairs=100)
    assert report["pairs"]["split"] == "val" and report["pairs"]["count"] == 26  # 2 val episodes x (14 - 1) starts
    assert 0.0 <= report["pairs"]["accuracy"] <= 1.0
    assert report["dataset"]["kind"] == "intent" and len(report["dataset"]["segments"]) == 2
    oracle = report["oracle"]
    assert len(oracle["episodes"]) == 2 and all(row["final_coverage"] > 0.95 for row in oracle["episodes"])
    assert all(np.isfinite(row["first_reward"]) for row in oracle["episodes"])  # 0 only for start-conditioned
    assert -1.0 <= oracle["spearman_coverage_mean"] <= 1.0
    json_path, plot_path = write_report(report, tmp_path / "out")
    saved = json.loads(json_path.read_text())
    assert set(saved) == {"model", "pairs", "dataset", "oracle"}  # the raw curves stay out of the JSON
    assert saved["oracle"]["episodes"][0]["spearman_coverage"] == oracle["episodes"][0]["spearman_coverage"]
    with Image.open(plot_path) as plot:
        assert plot.size[0] > 300 and plot.size[1] > 200
    table = format_table(report)
    assert "pairwise ranking accuracy" in table and "mean" in table


def test_cli_on_a_run(tmp_path: Path, capsys) -> None:
    model = _untrained()
    run = tmp_path / "run"
    write_run_config(run, json.loads(json.dumps({"kind": "reward", "model": asdict(model.config)})))
    save_checkpoint(run, 1, model.state_dict(), {"step": 1}, {})
    dataset = _dataset(tmp_path / "ds", intent=False)
    goal = goal_reaching_episodes(1, steps=1, size=(96, 96))[0].goal_image
    save_goal_image(goal, tmp_path / "goal.png")
    args = [str(run), "--dataset", str(dataset), "--episodes", "1", "--steps", "6", "--pairs", "10",
            "--goal-image", str(tmp_path / "goal.png"), "--device", "cpu"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "pairwise ranking accuracy (val pairs, n=10)" in out and "oracle episode" in out
    report = json.loads((run / "reward_eval" / "reward_eval.json").read_text())
    assert report["oracle"]["goal_image"] == "given" and report["dataset"]["kind"] == "episode"
    assert (run / "reward_eval" / "reward_vs_time.png").is_file()
    assert main([str(tmp_path / "nowhere"), "--episodes", "0"]) == 2
    assert "not a training run folder" in capsys.readouterr().err
    assert main([*args, "--goal-image", str(tmp_path / "missing.png")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_a_negative_seed_is_a_bad_argument(capsys) -> None:
    """--seed -5 was reported as a bare 'expected non-negative integer'."""
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--seed", "-5"])
    assert exit_info.value.code == 2
    assert "--seed must be >= 0" in capsys.readouterr().err


def test_a_go2_reward_is_scored_along_the_push_cube_expert(tmp_path: Path, capsys) -> None:
    """A reward trained on Go2 data is scored on the Push Cube stand-in's scripted expert (progress, not Push-T
    coverage); a goal-picture reward needs a goal picture there, and says so."""
    from dmo_ros.reward.evaluate import push_cube_expert_episodes

    episode = push_cube_expert_episodes(1, steps=4, seed=1, size=(SIZE, SIZE),
                                        goal_image=np.zeros((SIZE, SIZE, 3), np.uint8))[0]
    assert episode.frames.shape == (5, SIZE, SIZE, 3) and episode.measure == "progress"
    assert episode.coverage[0] == 0.0 and 0.0 <= episode.coverage.max() <= 1.0
    assert push_cube_expert_episodes(1, steps=2)[0].frames.shape[1:] == (64, 64, 3)  # an intent reward needs no goal

    model = _untrained()
    go2 = write_dataset(tmp_path / "go2", np.zeros((12, SIZE, SIZE, 3), np.uint8), np.zeros((12, 3), np.float32),
                        [6, 6], extra_meta={"robot": "go2"})
    run = tmp_path / "run"
    write_run_config(run, json.loads(json.dumps({"kind": "reward", "model": asdict(model.config),
                                                 "datasets": [str(go2)]})))
    save_checkpoint(run, 1, model.state_dict(), {"step": 1}, {})
    with pytest.raises(SystemExit):
        main([str(run), "--episodes", "1", "--steps", "3", "--device", "cpu"])
    assert "need --goal-image" in capsys.readouterr().err
    np.save(tmp_path / "goals.npy", np.zeros((2, SIZE, SIZE, 3), np.uint8))
    assert main([str(run), "--episodes", "1", "--steps", "3", "--device", "cpu",
                 "--goal-image", str(tmp_path / "goals.npy")]) == 0
    assert "rho(r,prog)" in capsys.readouterr().out
    report = json.loads((run / "reward_eval" / "reward_eval.json").read_text())
    assert report["oracle"]["robot"] == "go2" and report["oracle"]["measure"] == "progress"
    assert "spearman_progress_mean" in report["oracle"] and report["oracle"]["episodes"][0]["steps"] <= 3
