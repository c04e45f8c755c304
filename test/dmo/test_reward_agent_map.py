"""``scripts/reward_agent_map.py``: the reach gate's map for looking at (the gate itself: test/gates)."""

from __future__ import annotations

from script_modules import load_script


def _script():
    return load_script("scripts/reward_agent_map.py")


def test_the_command_draws_the_map_and_refuses_a_missing_run(policy_inputs, tmp_path, capsys):
    script = _script()
    out = tmp_path / "map.png"
    assert script.main(["--reward-run", str(policy_inputs["reward"]), "--goal", str(policy_inputs["goal"]),
                        "--local-model", str(policy_inputs["local_model"]), "--step", "96", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert out.is_file() and "learned reward: Spearman(reward, -distance to the target)" in printed
    assert "local model's reward head: Spearman" in printed
    assert "local model's reward gradient (1 prior steps, action held): mean cosine" in printed
    assert (tmp_path / "map_gradient.png").stat().st_size > 5_000
    assert script.main(["--reward-run", str(policy_inputs["reward"]), "--goal", str(policy_inputs["goal"]),
                        "--gradient-steps", "0"]) == 2
    assert script.main(["--reward-run", str(tmp_path / "none"), "--goal", str(policy_inputs["goal"])]) == 2
    assert "reward_agent_map: error" in capsys.readouterr().err


def test_a_dmo_run_maps_the_local_model_its_fine_tuning_left(tmp_path, capsys):
    from policy_runs import train_tiny_policy

    run = train_tiny_policy(tmp_path)
    capsys.readouterr()
    assert _script().main(["--reward-run", str(run.parent / "reward"), "--goal", str(run.parent / "goal.png"),
                           "--local-model", str(run), "--step", "160"]) == 0
    assert "local model's reward gradient" in capsys.readouterr().out
