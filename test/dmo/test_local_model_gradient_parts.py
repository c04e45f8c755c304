"""``scripts/local_model_gradient_parts.py``: the gate's cosine split into the prior's and the reward head's part."""

from __future__ import annotations

import numpy as np
import pytest
from script_modules import load_script


def _script():
    return load_script("scripts/local_model_gradient_parts.py")


def test_each_part_is_compared_with_the_simulator_at_the_same_probes(policy_inputs, capsys):
    parts = _script()
    local = str(policy_inputs["local_model"])
    assert parts.main(["--reward-run", str(policy_inputs["reward"]), "--goal", str(policy_inputs["goal"]),
                       "--probes", "6", local]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in lines] == ["gate", "decoupled", "posterior", "prior"]
    cosines = [float(line.split()[3]) for line in lines]
    assert all(np.isfinite(cosines)) and all(-1 <= c <= 1 for c in cosines)
    assert all("of 6 probes" in line for line in lines)


def test_a_go2_local_model_is_probed_on_the_push_cube_stand_in(tmp_path, capsys):
    """A local model of Go2 data (its run's robot) is split at probes of the Push Cube stand-in, with an intent
    reward (no goal picture) and the gate's step in m/s and rad/s."""
    from local_model.test_train import _args, _intent_reward_run, go2_dataset

    from dmo_ros.local_model.train import main as train_local_model

    data = go2_dataset(tmp_path / "go2")
    reward = _intent_reward_run(tmp_path / "intent")
    train_local_model(_args(data, tmp_path / "local", "--reward-run", str(reward), "--steps", "2", "--no-gate"))
    capsys.readouterr()
    assert _script().main(["--reward-run", str(reward), "--probes", "4", str(tmp_path / "local")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in lines] == ["gate", "decoupled", "posterior", "prior"]
    assert all(-1 <= float(line.split()[3]) <= 1 and "of 4 probes" in line for line in lines)


def test_the_ensemble_line_averages_the_models_gradients(policy_inputs, capsys):
    """Two copies of one model: their mean gradient is the model's own, so the ensemble lines repeat its cosines."""
    local = str(policy_inputs["local_model"])
    assert _script().main(["--reward-run", str(policy_inputs["reward"]), "--goal", str(policy_inputs["goal"]),
                           "--probes", "4", "--task", "push_region", "--ensemble", local, local]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 12 and all(line.startswith("mean of 2 models") for line in lines[8:])
    single = [line.split()[3] for line in lines[:4]]
    assert [line.split()[6] for line in lines[8:]] == single  # "mean of 2 models  <part> cosine <value>"


def test_random_actions_can_drive_the_probes(policy_inputs, capsys):
    """--policy random: the evaluation's random floor picks the probes' states and actions (where an untrained
    policy goes), each part compared with the simulator as before."""
    assert _script().main(["--reward-run", str(policy_inputs["reward"]), "--goal", str(policy_inputs["goal"]),
                           "--probes", "4", "--task", "push_region", "--policy", "random",
                           str(policy_inputs["local_model"])]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in lines] == ["gate", "decoupled", "posterior", "prior"]
    assert all(-1 <= float(line.split()[3]) <= 1 and "of 4 probes" in line for line in lines)


def test_a_policy_run_is_measured_by_the_local_model_it_deploys(tiny_policies, capsys):
    """A policy run in place of a local-model run: its deployed filter (here trained without fine-tuning, so the
    pretrained model's weights) gives the same numbers as the local-model run it started from."""
    policy = tiny_policies["pusht"]
    root = policy.parent
    assert _script().main(["--reward-run", str(root / "reward"), "--goal", str(root / "goal.png"), "--probes", "4",
                           str(policy), str(root / "local_model")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 8
    assert [line.split()[1:] for line in lines[:4]] == [line.split()[1:] for line in lines[4:]]


@pytest.mark.parametrize("wrong", ["policy", "local_model", "reward"])
def test_a_missing_run_is_one_line_and_exit_code_2(policy_inputs, tmp_path, capsys, wrong):
    """A mistyped --policy, local-model or --reward-run folder: a one-line error before any probe runs."""
    missing = str(tmp_path / "nowhere")
    reward = missing if wrong == "reward" else str(policy_inputs["reward"])
    local = missing if wrong == "local_model" else str(policy_inputs["local_model"])
    policy = ["--policy", missing] if wrong == "policy" else []
    assert _script().main(["--reward-run", reward, "--goal", str(policy_inputs["goal"]), "--probes", "4", *policy,
                           local]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("local_model_gradient_parts: error: ")
    assert "nowhere" in captured.err and "Traceback" not in captured.err


def test_steps_compares_the_k_step_local_gradient_only(policy_inputs, capsys):
    """--steps K: the local gradient of the K rewards after the action (the later actions held) against the
    stand-in's finite difference of the same K rewards; the one-step parts are not split out then."""
    args = ["--reward-run", str(policy_inputs["reward"]), "--goal", str(policy_inputs["goal"]), "--probes", "4",
            "--task", "push_region", str(policy_inputs["local_model"])]
    assert _script().main(["--steps", "3", *args]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and "local 3-step gradient" in lines[0] and -1 <= float(lines[0].split()[3]) <= 1
    assert _script().main(["--steps", "3", "--hold", *args]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and "local 3-step gradient, the probed action held" in lines[0]
    assert _script().main(["--steps", "0", *args]) == 2
    assert "--steps must be at least 1" in capsys.readouterr().err
