"""dmo-ladder-table on runs it does not list: a clear message, not a traceback."""

from __future__ import annotations

import json

from dmo_ros.ladder.table import main


def test_a_push_cube_run_is_refused_with_a_pointer_to_dmo_compare(tmp_path, capsys):
    run = tmp_path / "act"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"kind": "policy", "method": "act", "task": "push_cube"}))
    (run / "final_eval.json").write_text(json.dumps({"task": "push_cube", "config": {"episodes": 2, "seed": 1},
                                                     "samples": 0, "wall_s": 1.0, "policy": {}, "ceilings": {}}))
    assert main([str(run)]) == 2
    err = capsys.readouterr().err
    assert "Push Cube run" in err and "dmo-compare" in err and "Traceback" not in err


NUMBERS = {"success_rate": 0.5, "success_ci95": [0.3, 0.7], "loose_success_rate": 0.75,
           "loose_success_ci95": [0.5, 0.9], "mean_max_coverage": 0.3, "max_coverage_std": 0.1,
           "mean_final_distance": 40.0, "final_distance_std": 10.0, "episodes": 4}


def _finished_run(folder, config):
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"kind": "policy", "method": "dmo", "rung": 2, **config}))
    (folder / "final_eval.json").write_text(json.dumps({
        "config": {"task": "push_region", "seed": 7}, "samples": 4096, "wall_s": 120.0, "policy": NUMBERS,
        "ceilings": {"ceiling: random actions": NUMBERS}}))
    return folder


def test_gates_column_reads_each_run_beside_the_gates_of_its_inputs(tmp_path, capsys):
    """A run records its inputs' gates at its start; an older run falls back to the models' gate.json now."""
    from dmo_ros.gates.report import GateCheck, GateReport, write_gate_report

    world_model = tmp_path / "wm"
    write_gate_report(world_model, GateReport("world_model", [GateCheck("agent_visible", 0.87, 0.95, ">=", ""),
                                                             GateCheck("right_direction", 0.9, 0.8, ">=", "")]))
    recorded = _finished_run(tmp_path / "recorded", {"gates": {
        "reward": {"run": "r", "passed": True, "checks": []},
        "local_model": {"run": "l", "passed": False, "checks": [
            {"name": "gradient_cosine", "value": 0.25, "bound": 0.3, "direction": ">=", "passed": False}]}}})
    legacy = _finished_run(tmp_path / "legacy", {"world_model": str(world_model), "local_model": str(tmp_path / "lm"),
                                                 "reward_run": str(tmp_path / "gone")})
    (tmp_path / "lm").mkdir()  # a local model that was never gated
    assert main([str(recorded), str(legacy), "--gates"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("| gates of its inputs |")
    assert lines[2].endswith("| 2/4 [30-70%] | 3/4 [50-90%] | 0.300 +- 0.100 | 40.0 +- 10.0 | 4 | 7 | reward ok; "
                             "local_model FAIL gradient_cosine 0.25 (>= 0.3) |")
    assert lines[3].endswith("| now: world_model FAIL agent_visible 0.87 (>= 0.95); local_model never gated |")
    assert lines[4].startswith("| - | push_region | random actions |") and lines[4].endswith("| - |")
    assert main([str(recorded)]) == 0
    assert "gates" not in capsys.readouterr().out  # the default table is unchanged


def test_a_label_names_the_setting_in_the_method_cell(tmp_path, capsys):
    run = _finished_run(tmp_path / "ft4", {})
    assert main([f"fine-tuned={run}", str(run)]) == 0
    rows = capsys.readouterr().out.splitlines()[2:4]
    assert rows[0].startswith("| 2 | push_region | dmo (fine-tuned) | 4,096 |") and "| dmo | 4,096 |" in rows[1]


def test_a_true_reward_run_is_named_as_rung_1s_oracle(tmp_path, capsys):
    """dmo-train-policy --true-reward: the rung cell says the reward was the stand-in's, not a learned one."""
    oracle = _finished_run(tmp_path / "oracle", {"rung": 1, "reward": "true"})
    learned = _finished_run(tmp_path / "learned", {"rung": 1, "reward": "learned"})
    assert main([str(oracle), str(learned)]) == 0
    rows = capsys.readouterr().out.splitlines()[2:4]
    assert rows[0].startswith("| 1 (true reward) | push_region | dmo |") and rows[1].startswith("| 1 | push_region |")


def test_damaged_or_foreign_records_are_named(tmp_path, capsys):
    """A cut final_eval.json was reported as a bare "Expecting ',' delimiter", a missing key as "'config'" and a
    missing config.json as "[Errno 2] ..." with no word about which run or what to do."""
    run = _finished_run(tmp_path / "run", {})
    (run / "final_eval.json").write_text('{"task": "push_t"')
    assert main([str(run)]) == 2
    assert "run/final_eval.json: unreadable (Expecting" in capsys.readouterr().err
    (run / "final_eval.json").write_text('{"task": "push_t"}')
    assert main([str(run)]) == 2
    assert "its final_eval.json or config.json lacks 'config' (not a finished run of" in capsys.readouterr().err
    (run / "final_eval.json").write_text(json.dumps({"config": {"task": "push_region", "seed": 7}, "samples": 1,
                                                     "wall_s": 1.0, "policy": NUMBERS}))
    assert main([str(run)]) == 2
    assert "lacks 'ceilings'" in capsys.readouterr().err
    (run / "config.json").unlink()
    assert main([str(run)]) == 2
    assert "run/config.json is missing (not a run folder of dmo-train-policy" in capsys.readouterr().err
    (run / "config.json").write_text("[]")
    assert main([str(run)]) == 2
    assert "config.json: holds a list" in capsys.readouterr().err


def test_a_reach_row_leaves_the_coverage_out(tmp_path, capsys):
    """A reach task's T starts on its goal pose: its max coverage is 1.0 in every episode and says nothing."""
    run = _finished_run(tmp_path / "reach", {})
    record = json.loads((run / "final_eval.json").read_text())
    record["config"]["task"] = "reach_fixed"
    (run / "final_eval.json").write_text(json.dumps(record))
    assert main([str(run), str(_finished_run(tmp_path / "push", {}))]) == 0
    lines = capsys.readouterr().out.splitlines()
    reach = next(line for line in lines if line.startswith("| 2 | reach_fixed |"))
    push = next(line for line in lines if line.startswith("| 2 | push_region |"))
    assert reach.endswith("| 3/4 [50-90%] | - | 40.0 +- 10.0 | 4 | 7 |")
    assert push.endswith("| 3/4 [50-90%] | 0.300 +- 0.100 | 40.0 +- 10.0 | 4 | 7 |")


def _run_with_episodes(folder, outcomes, seed=7, rung0=False):
    folder.mkdir()
    config = {"kind": "rung0", "method": "sapo"} if rung0 else {"kind": "policy", "method": "dmo", "rung": 1}
    (folder / "config.json").write_text(json.dumps(config))
    per_episode = [{"success": won, "start_distance": 60.0 + 10 * i} for i, won in enumerate(outcomes)]
    numbers = {**NUMBERS, "per_episode": per_episode}
    (folder / "final_eval.json").write_text(json.dumps({
        "config": {"task": "push_region", "seed": seed}, "samples": 4096, "wall_s": 120.0, "policy": numbers,
        "ceilings": {"ceiling: random actions": NUMBERS}}))
    return folder


def test_episodes_lists_each_run_per_start_and_the_starts_no_run_solved(tmp_path, capsys):
    pixels = _run_with_episodes(tmp_path / "r1", [True, False, True, False])
    state = _run_with_episodes(tmp_path / "r0", [True, False, False, True], rung0=True)
    assert main([str(pixels), f"true state={state}", "--episodes"]) == 0
    out = capsys.readouterr().out
    assert f"| {pixels} | 2/4 | `1.1.` |" in out and f"| true state={state} | 2/4 | `1..1` |" in out
    assert "Starts no run solved (1; the start's distance from the goal): 1 (70 u)" in out
    assert "Starts every run solved (1): 0 (60 u)" in out
    assert main([str(pixels)]) == 0
    assert "Starts no run solved" not in capsys.readouterr().out  # only with --episodes


def test_episodes_refuses_runs_on_other_starts_or_without_records(tmp_path, capsys):
    first = _run_with_episodes(tmp_path / "a", [True, False, True, False])
    other_seed = _run_with_episodes(tmp_path / "b", [True, False, True, False], seed=8)
    assert main([str(first), str(other_seed), "--episodes"]) == 2
    err = capsys.readouterr().err
    assert "evaluated on other starts" in err and "Traceback" not in err
    old = _finished_run(tmp_path / "old", {})
    old_final = json.loads((old / "final_eval.json").read_text())
    old_final["config"]["seed"] = 7
    (old / "final_eval.json").write_text(json.dumps(old_final))
    assert main([str(first), str(old), "--episodes"]) == 2
    assert "lacks 'per_episode'" in capsys.readouterr().err


def test_starts_picture_draws_each_start_with_how_many_runs_solved_it(tmp_path, capsys):
    """The stand-in's first frame of each evaluation episode (re-created from the runs' seed), framed red where no
    run solved it, green where every run did, grey otherwise."""
    import numpy as np
    from PIL import Image

    from dmo_ros.policy.evaluate import EvalConfig
    from dmo_ros.sims.pusht import PushTSim

    first = _run_with_episodes(tmp_path / "a", [True, False, True])
    second = _run_with_episodes(tmp_path / "b", [True, False, False])
    out = tmp_path / "pictures" / "starts.png"
    assert main([str(first), str(second), "--starts-picture", str(out)]) == 0
    assert f"to {out}" in capsys.readouterr().out
    sheet = np.asarray(Image.open(out).convert("RGB"))
    sim = PushTSim(EvalConfig(task="push_region", seed=7).sim_config())
    expected = []
    for index in range(3):
        if index:
            sim.reset()
        expected.append(sim.render().repeat(2, axis=0).repeat(2, axis=1))
    sim.close()
    size = expected[0].shape[0]
    tile_width, tile_height = size + 8, size + 22
    assert sheet.shape == (tile_height, 3 * tile_width, 3)
    for index, frame in enumerate(expected):  # the starts themselves, in order
        assert np.array_equal(sheet[4:4 + size, index * tile_width + 4:index * tile_width + 4 + size], frame)
    frames = [tuple(sheet[1, index * tile_width + 1]) for index in range(3)]
    assert frames == [(0, 150, 0), (200, 0, 0), (150, 150, 150)]  # both runs / no run / one of the two solved it
    other_seed = _run_with_episodes(tmp_path / "c", [True, False, True], seed=8)
    assert main([str(first), str(other_seed), "--starts-picture", str(tmp_path / "x.png")]) == 2
    assert "evaluated on other starts" in capsys.readouterr().err and not (tmp_path / "x.png").exists()


def _unevaluated_run(folder, config):
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_a_run_without_final_eval_says_which_case_it_is(tmp_path, capsys):
    """Before, every one of these said "no final_eval.json (has the run finished?)"."""
    world_model = _unevaluated_run(tmp_path / "wm", {"kind": "world_model", "preset": "tiny"})
    assert main([str(world_model)]) == 2
    err = capsys.readouterr().err
    assert "is a world model run (config.json kind 'world_model', trained by dmo-train-world-model), not a " \
           "policy run" in err and "has the run finished" not in err

    policy = _unevaluated_run(tmp_path / "dmo", {"kind": "policy", "method": "dmo", "preset": "tiny"})
    assert main([str(policy)]) == 2
    err = capsys.readouterr().err
    assert "this policy run has no final evaluation" in err
    assert "(--final-eval-episodes 0, the tiny preset's default)" in err
    assert "re-running its dmo-train-policy command (same settings) with --final-eval-episodes 50" in err

    rung0 = _unevaluated_run(tmp_path / "rung0", {"kind": "rung0", "method": "ppo"})
    assert main([str(rung0)]) == 2
    assert "dmo-train-rung0 command (same settings) with --final-eval-episodes 50" in capsys.readouterr().err

    act = _unevaluated_run(tmp_path / "act", {"kind": "policy", "method": "act", "task": "push_t"})
    assert main([str(act)]) == 2
    assert f"dmo-train-act evaluates only Go2 runs at the end. Measure it with: dmo-eval-policy {act}" in (
        capsys.readouterr().err)

    assert main([str(tmp_path / "nothing")]) == 2
    assert "no final_eval.json and no config.json: not a run folder of" in capsys.readouterr().err
