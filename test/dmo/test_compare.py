"""dmo-compare: Fig. 3 and the table from logged runs; seeds aggregated; unusable runs named."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dmo_ros.dmo.compare import CompareError, aggregate, main, read_run

OUTPUTS = ["success_vs_samples.png", "success_vs_time.png", "coverage_vs_samples.png", "coverage_vs_time.png",
           "fig3.png", "comparison.md", "comparison.csv"]


def write_run(folder: Path, method: str, evals: list[tuple[int, float, float, float]], kind: str = "policy",
              forward: str | None = None) -> Path:
    """A run folder: config.json + eval.jsonl with one line per (samples, wall_s, success_rate, coverage)."""
    folder.mkdir(parents=True)
    config = {"kind": kind, "method": method, "policy": {}} | ({"forward": forward} if forward else {})
    (folder / "config.json").write_text(json.dumps(config))
    lines = [json.dumps({"epoch": 5 * (i + 1), "samples": samples, "wall_s": wall, "success_rate": success,
                         "mean_max_coverage": coverage, "episodes": 10, "method": method})
             for i, (samples, wall, success, coverage) in enumerate(evals)]
    (folder / "eval.jsonl").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture
def runs(tmp_path: Path) -> list[Path]:
    return [
        write_run(tmp_path / "dmo_s0", "dmo", [(1000, 60.0, 0.1, 0.30), (2000, 120.0, 0.5, 0.70),
                                               (3000, 180.0, 0.4, 0.65)]),
        write_run(tmp_path / "dmo_s1", "dmo", [(1000, 70.0, 0.3, 0.40), (2000, 140.0, 0.3, 0.50),
                                               (3000, 210.0, 0.8, 0.90)]),
        write_run(tmp_path / "ppo_s0", "ppo", [(4000, 30.0, 0.0, 0.10), (8000, 60.0, 0.1, 0.20)]),
        write_run(tmp_path / "nodiff_s0", "no_diffusion", [(1000, 50.0, 0.2, 0.35)]),
    ]


def read_csv(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="") as stream:
        return {row["method"]: row for row in csv.DictReader(stream)}


def test_compare_writes_figures_and_the_table(runs, tmp_path, capsys):
    out = tmp_path / "fig3"
    assert main([*map(str, runs), "--out", str(out), "--title", "Push-T demo", "--ceilings", "0"]) == 0
    printed = capsys.readouterr().out
    for name in OUTPUTS:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    for name in OUTPUTS[:5]:
        with Image.open(out / name) as image:
            image.verify()
        with Image.open(out / name) as image:
            assert image.format == "PNG" and min(image.size) > 200
            pixels = np.asarray(image.convert("RGB"))
            assert pixels.std() > 5  # something is drawn
    rows = read_csv(out / "comparison.csv")
    assert list(rows) == ["dmo", "no_diffusion", "ppo"]  # methods in a fixed order
    dmo, ppo, nodiff = rows["dmo"], rows["ppo"], rows["no_diffusion"]
    assert dmo["label"] == "DMO" and ppo["label"] == "PPO" and nodiff["label"] == "No Diffusion"
    assert int(dmo["runs"]) == 2 and int(ppo["runs"]) == 1
    # two seeds: the mean of each run's own final / best value, with min and max
    assert float(dmo["samples"]) == 3000 and float(dmo["wall_s"]) == pytest.approx(195.0)
    assert float(dmo["final_success_rate"]) == pytest.approx(0.6)
    assert (float(dmo["final_success_rate_min"]), float(dmo["final_success_rate_max"])) == (0.4, 0.8)
    assert float(dmo["best_success_rate"]) == pytest.approx((0.5 + 0.8) / 2)
    assert float(dmo["final_mean_max_coverage"]) == pytest.approx((0.65 + 0.90) / 2)
    assert float(dmo["best_mean_max_coverage"]) == pytest.approx((0.70 + 0.90) / 2)
    assert float(ppo["samples"]) == 8000 and float(ppo["wall_s"]) == 60.0
    assert float(ppo["final_success_rate"]) == 0.1 and float(ppo["best_mean_max_coverage"]) == 0.2
    assert float(nodiff["final_success_rate"]) == 0.2 and float(nodiff["best_success_rate"]) == 0.2
    table = (out / "comparison.md").read_text()
    assert "# Push-T demo" in table
    dmo_line = next(line for line in table.splitlines() if line.startswith("| DMO |"))
    assert dmo_line == ("| DMO | 2 | 3,000 (world-model) | 3.2 min | 0.600 (0.400-0.800) | 0.650 (0.500-0.800) "
                        "| 0.775 (0.650-0.900) | 0.800 (0.700-0.900) |")
    ppo_line = next(line for line in table.splitlines() if line.startswith("| PPO |"))
    assert ppo_line == "| PPO | 1 | 8,000 (world-model) | 60 s | 0.100 | 0.100 | 0.200 | 0.200 |"
    assert dmo_line in printed and ppo_line in printed


def test_seeds_are_aggregated_by_epoch(runs, tmp_path):
    dmo = [read_run(runs[0]), read_run(runs[1])]
    by_samples = aggregate(dmo, "success_rate", "samples")
    np.testing.assert_array_equal(by_samples.epochs, [5, 10, 15])
    np.testing.assert_array_equal(by_samples.x, [1000, 2000, 3000])
    np.testing.assert_allclose(by_samples.mean, [0.2, 0.4, 0.6])
    np.testing.assert_allclose(by_samples.low, [0.1, 0.3, 0.4])
    np.testing.assert_allclose(by_samples.high, [0.3, 0.5, 0.8])
    by_time = aggregate(dmo, "mean_max_coverage", "wall_s")  # wall-clock differs by seed: its mean per epoch
    np.testing.assert_allclose(by_time.x, [65.0, 130.0, 195.0])
    np.testing.assert_allclose(by_time.mean, [0.35, 0.60, 0.775])
    # a seed stopped early: the curve ends at the last epoch every seed evaluated
    short = read_run(write_run(tmp_path / "dmo_s2", "dmo", [(1000, 65.0, 0.5, 0.5), (2000, 125.0, 0.6, 0.6)]))
    three = aggregate([*dmo, short], "success_rate", "samples")
    np.testing.assert_array_equal(three.epochs, [5, 10])
    np.testing.assert_allclose(three.mean, [0.3, 0.4666666666666667])
    np.testing.assert_allclose(three.high, [0.5, 0.6])


def test_runs_without_a_common_epoch_are_an_error(tmp_path, capsys):
    first = write_run(tmp_path / "a", "ppo", [(1000, 1.0, 0.1, 0.1)])  # epoch 5
    second = tmp_path / "b"
    write_run(second, "ppo", [(1000, 1.0, 0.1, 0.1)])
    (second / "eval.jsonl").write_text(json.dumps({"epoch": 7, "samples": 10, "wall_s": 1.0, "success_rate": 0.0,
                                                   "mean_max_coverage": 0.0}) + "\n")
    assert main([str(first), str(second), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "the PPO runs" in err and "share no evaluated epoch" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_a_resumed_run_keeps_the_later_line_of_an_epoch(tmp_path):
    run = write_run(tmp_path / "run", "dmo", [(1000, 10.0, 0.1, 0.2), (2000, 20.0, 0.2, 0.3)])
    with open(run / "eval.jsonl", "a") as stream:  # resumed from epoch 5: epoch 10 logged again
        stream.write(json.dumps({"epoch": 10, "samples": 2000, "wall_s": 21.0, "success_rate": 0.4,
                                 "mean_max_coverage": 0.5, "episodes": 10, "method": "dmo"}) + "\n\n")
    log = read_run(run)
    assert [r["epoch"] for r in log.records] == [5, 10] and log.records[-1]["success_rate"] == 0.4


def test_unusable_runs_are_named(tmp_path, capsys):
    out = tmp_path / "out"
    no_log = write_run(tmp_path / "no_log", "dmo", [(1, 1.0, 0.0, 0.0)])
    (no_log / "eval.jsonl").unlink()
    empty = write_run(tmp_path / "empty", "dmo", [(1, 1.0, 0.0, 0.0)])
    (empty / "eval.jsonl").write_text("\n")
    corrupt = write_run(tmp_path / "corrupt", "ppo", [(1, 1.0, 0.0, 0.0), (2, 2.0, 0.0, 0.0)])
    with open(corrupt / "eval.jsonl", "a") as stream:
        stream.write('{"epoch": 15, "samples": 3, "wall_s": 3.0, "succ\n')
    missing_key = write_run(tmp_path / "missing_key", "ppo", [(1, 1.0, 0.0, 0.0)])
    (missing_key / "eval.jsonl").write_text(json.dumps({"epoch": 1, "samples": 5, "wall_s": 1.0}) + "\n")
    reward = write_run(tmp_path / "reward", "dmo", [(1, 1.0, 0.0, 0.0)], kind="reward")
    unknown = write_run(tmp_path / "unknown", "sac", [(1, 1.0, 0.0, 0.0)])
    cases = [
        (no_log, "no_log: no eval.jsonl"),
        (empty, "empty/eval.jsonl: empty"),
        (corrupt, "corrupt/eval.jsonl:3: not a JSON line"),
        (missing_key, "missing_key/eval.jsonl:1: missing success_rate, mean_max_coverage"),
        (reward, "reward: not a policy run"),
        (unknown, "unknown method 'sac'"),
        (tmp_path / "nowhere", "nowhere: not a training run (no config.json)"),
    ]
    good = write_run(tmp_path / "good", "dmo", [(1, 1.0, 0.0, 0.0)])
    for run, message in cases:
        assert main([str(good), str(run), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert message in err and err.startswith("dmo-compare: error:") and "Traceback" not in err, (message, err)
        with pytest.raises(CompareError):
            read_run(run)
    assert main([str(good), str(good), "--out", str(out)]) == 2
    assert "given more than once" in capsys.readouterr().err
    assert not out.exists()  # nothing written when a run is unusable


def test_the_samples_axis_names_the_forward_model(tmp_path):
    """Rung 1 draws its samples from the simulator, rung 2 from a world model: the x label and the table say
    which; one method's runs on different forward models are not seeds of one curve."""
    from dmo_ros.dmo.compare import group_by_method, samples_label

    evals = [(1000, 60.0, 0.1, 0.3), (2000, 120.0, 0.4, 0.6)]
    rung1 = read_run(write_run(tmp_path / "r1_dmo", "dmo", evals, forward="simulator"))
    rung2 = read_run(write_run(tmp_path / "r2_nodiff", "no_diffusion", evals, forward="world-model"))
    rung0 = read_run(write_run(tmp_path / "r0_sapo", "sapo", evals, kind="rung0"))
    legacy = read_run(write_run(tmp_path / "legacy_dmo", "dmo", evals))  # runs logged before ``forward``
    assert (rung1.forward, rung2.forward, rung0.forward, legacy.forward) == (
        "simulator", "world-model", "simulator", "world-model")
    assert samples_label([rung1, rung0]) == "simulator samples"
    assert samples_label([rung2]) == "world-model samples"
    assert samples_label([rung1, rung2]) == "samples (simulator or world model)"
    out = tmp_path / "out"
    assert main([str(tmp_path / "r1_dmo"), str(tmp_path / "r2_nodiff"), "--out", str(out)]) == 0
    table = (out / "comparison.md").read_text()
    assert "| DMO | 1 | 2,000 (simulator) |" in table and "| No Diffusion | 1 | 2,000 (world-model) |" in table
    with pytest.raises(CompareError, match="mix forward models"):
        group_by_method([rung1, legacy])
    with pytest.raises(CompareError, match="unknown forward 'dream'"):
        read_run(write_run(tmp_path / "odd", "dmo", evals, forward="dream"))


def test_rung0_runs_and_the_ceilings_beside_the_table(tmp_path, capsys):
    runs = [write_run(tmp_path / "sapo", "sapo", [(0, 0.0, 0.0, 0.0), (10, 1.0, 0.5, 0.2)], kind="rung0"),
            write_run(tmp_path / "ppo", "ppo", [(0, 0.0, 0.0, 0.0), (10, 1.0, 0.1, 0.1)], kind="rung0")]
    out = tmp_path / "out"
    assert main([*map(str, runs), "--out", str(out), "--ceilings", "2"]) == 0
    printed = capsys.readouterr().out
    assert "SAPO on true state (rung 0)" in printed and "| ceiling: scripted expert (privileged)" in printed
    assert "PPO on true state (rung 0)" in printed  # not "PPO", which names rung 1's and 2's PPO
    assert "evaluation of task push_t" in (out / "comparison.md").read_text()
    assert (out / "ceilings.json").is_file()


def test_ppo_on_rung_0_is_not_pooled_with_ppo_on_rung_1(tmp_path, capsys):
    """Both draw simulator samples, so the forward-model check let one PPO row pool the true state's runs with the
    rendered frames' runs."""
    evals = [(0, 0.0, 0.0, 0.0), (10, 1.0, 0.1, 0.1)]
    rung0 = write_run(tmp_path / "ppo_r0", "ppo", evals, kind="rung0")
    rung1 = write_run(tmp_path / "ppo_r1", "ppo", evals, forward="simulator")
    assert main([str(rung0), str(rung1), "--out", str(tmp_path / "out")]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| PPO")]
    assert len(rows) == 2 and sum("(rung 0)" in row for row in rows) == 1


def test_labels_make_variants_of_one_method_separate_curves(runs, tmp_path, capsys):
    """``LABEL=RUN_DIR``: two settings of DMO compared as two rows and curves (seeds aggregated within a label)."""
    dmo_s0, dmo_s1, ppo, _ = runs
    fixed = write_run(tmp_path / "dmo_fixed", "dmo", [(1000, 50.0, 0.6, 0.7), (2000, 100.0, 0.7, 0.8),
                                                      (3000, 150.0, 0.8, 0.9)])
    out = tmp_path / "variants"
    assert main([f"fine-tuned={dmo_s0}", f"fine-tuned={dmo_s1}", f"fixed local model={fixed}", str(ppo),
                 "--out", str(out), "--ceilings", "0"]) == 0
    with open(out / "comparison.csv", newline="") as stream:
        rows = {row["label"]: row for row in csv.DictReader(stream)}
    assert list(rows) == ["fine-tuned", "fixed local model", "PPO"]
    assert [rows[name]["method"] for name in rows] == ["dmo", "dmo", "ppo"]
    assert int(rows["fine-tuned"]["runs"]) == 2
    assert float(rows["fine-tuned"]["final_success_rate"]) == pytest.approx(0.6)
    assert float(rows["fixed local model"]["final_success_rate"]) == pytest.approx(0.8)
    assert "| fixed local model | 1 |" in capsys.readouterr().out

    # One label over two methods is not one curve; a folder whose name holds "=" is still a folder.
    assert main([f"mixed={dmo_s0}", f"mixed={ppo}", "--out", str(tmp_path / "bad"), "--ceilings", "0"]) == 2
    assert "names runs of different methods" in capsys.readouterr().err
    odd = write_run(tmp_path / "lr=1e-5", "dmo", [(1000, 50.0, 0.1, 0.2)])
    assert main([str(odd), "--out", str(tmp_path / "odd"), "--ceilings", "0"]) == 0
    assert "| DMO | 1 |" in capsys.readouterr().out


def write_reach_run(folder: Path, method: str, evals: list[tuple[int, float, float, float | None]]) -> Path:
    """A reach_fixed run: eval.jsonl lines of (samples, wall_s, success_rate, final distance or None: left out);
    its coverage is 1.0 throughout (the T never moves on a reach task)."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"kind": "policy", "method": method, "task": "reach_fixed",
                                                    "forward": "world-model"}))
    lines = [json.dumps({"epoch": 5 * (i + 1), "samples": samples, "wall_s": wall, "success_rate": success,
                         "mean_max_coverage": 1.0, "episodes": 10, "method": method}
                        | ({} if distance is None else {"mean_final_distance": distance}))
             for i, (samples, wall, success, distance) in enumerate(evals)]
    (folder / "eval.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def test_reach_runs_plot_and_tabulate_the_final_distance(tmp_path, capsys):
    """On a reach task the coverage is 1.0 always: the bottom row and the table give the final distance instead,
    its best being the lowest."""
    dmo = [write_reach_run(tmp_path / "dmo_s0", "dmo", [(1000, 60.0, 0.2, 300.0), (2000, 120.0, 0.9, 40.0),
                                                        (3000, 180.0, 0.7, 90.0)]),
           write_reach_run(tmp_path / "dmo_s1", "dmo", [(1000, 65.0, 0.1, 320.0), (2000, 125.0, 0.5, 150.0),
                                                        (3000, 185.0, 0.8, 60.0)])]
    ppo = write_reach_run(tmp_path / "ppo_s0", "ppo", [(1500, 30.0, 0.0, 280.0), (3000, 60.0, 0.1, 250.0)])
    out = tmp_path / "fig3"
    assert main([*map(str, [*dmo, ppo]), "--out", str(out), "--title", "reach", "--ceilings", "0"]) == 0
    printed = capsys.readouterr().out
    for name in ("success_vs_samples.png", "success_vs_time.png", "distance_vs_samples.png", "distance_vs_time.png",
                 "fig3.png"):
        with Image.open(out / name) as image:
            assert image.format == "PNG" and np.asarray(image.convert("RGB")).std() > 5, name
    assert not (out / "coverage_vs_samples.png").exists()
    rows = read_csv(out / "comparison.csv")
    assert "final_mean_max_coverage" not in rows["dmo"]
    assert float(rows["dmo"]["final_mean_final_distance"]) == pytest.approx(75.0)
    assert float(rows["dmo"]["best_mean_final_distance"]) == pytest.approx((40.0 + 60.0) / 2)  # each run's lowest
    assert float(rows["ppo"]["best_mean_final_distance"]) == 250.0
    table = (out / "comparison.md").read_text()
    assert "| final distance (u) | best distance (u) |" in table and "coverage" not in table
    assert "| DMO | 2 | 3,000 (world-model) | 3.0 min | 0.750 (0.700-0.800) | 0.850 (0.800-0.900) " \
           "| 75.0 (60.0-90.0) | 50.0 (40.0-60.0) |" in printed


def test_reach_runs_need_their_distance_and_are_not_mixed_with_pushing_runs(tmp_path, capsys):
    reach = write_reach_run(tmp_path / "reach", "dmo", [(1000, 60.0, 0.2, 300.0)])
    push = write_run(tmp_path / "push", "dmo", [(1000, 60.0, 0.2, 0.3)])
    assert main([f"reach={reach}", f"push={push}", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "reach runs mixed with pushing runs (push_t, reach_fixed)" in err and "Traceback" not in err
    undistanced = write_reach_run(tmp_path / "old", "dmo", [(1000, 60.0, 0.2, None)])
    with pytest.raises(CompareError, match="epoch 5 of a reach_fixed run has no finite mean_final_distance"):
        read_run(undistanced)
    assert not (tmp_path / "out").exists()
