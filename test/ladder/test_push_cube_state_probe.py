"""``scripts/push_cube_state_probe.py``: the MLP probe on inputs that hold or lack the
answer, the operator's episodes, and the table for a Go2 local model."""

from __future__ import annotations

import json

import numpy as np
import pytest
from script_modules import load_script


def test_the_probe_reads_what_its_input_holds_and_not_what_it_lacks():
    probe = load_script("scripts/push_cube_state_probe.py")
    rng = np.random.default_rng(0)
    targets = rng.uniform(-1, 1, (800, 4))
    in_view = np.stack([np.arange(800) % 2 == 0, np.arange(800) % 3 == 0], axis=1)
    holds = np.c_[np.tanh(targets @ rng.standard_normal((4, 16))), rng.standard_normal((800, 4))]  # a mixed code
    read = probe.mlp_probe(holds, targets, in_view, train=400, steps=600)
    blind = probe.mlp_probe(rng.standard_normal((800, 20)), targets, in_view, train=400, steps=600)
    for name in ("cube", "goal"):
        assert read[f"{name}_error"] < 0.4 * read[f"{name}_error_baseline"]
        assert blind[f"{name}_error"] > 0.9 * blind[f"{name}_error_baseline"]  # nothing to read: about the mean
        assert read[f"{name}_error_in_view"] > 0 and read[f"{name}_error_out_of_view"] > 0
    assert read["cube_in_view_fraction"] == pytest.approx(0.5) and read["goal_in_view_fraction"] == pytest.approx(
        1 / 3, abs=0.01)
    with pytest.raises(ValueError, match="rows on both sides"):
        probe.mlp_probe(holds, targets, in_view, train=800)


def test_the_table_for_a_go2_local_model(tmp_path, capsys):
    from local_model.test_train import _args, _intent_reward_run, go2_dataset

    from dmo_ros.local_model.train import main as train_local_model

    probe = load_script("scripts/push_cube_state_probe.py")
    data = go2_dataset(tmp_path / "go2")
    train_local_model(_args(data, tmp_path / "local", "--reward-run", str(_intent_reward_run(tmp_path / "intent")),
                            "--steps", "3", "--no-gate"))
    episodes = probe.operator_episodes(2, 4, 16, 0, 0.2)
    assert [e["frames"].shape for e in episodes] == [(4, 3, 16, 16)] * 2
    assert episodes[0]["in_view"].shape == (4, 2) and episodes[0]["targets"].shape == (4, 4)
    # A reset puts the cube 0.6-1.6 m ahead, within 60 degrees of the heading: x > 0.3 m in the robot's frame.
    assert all(e["targets"][0, 0] > 0.3 for e in episodes)
    out = tmp_path / "probe.json"
    assert probe.main([str(tmp_path / "local"), "--episodes", "4", "--steps", "4", "--probe-steps", "20",
                       "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| pixels of the current frame |" in printed and f"| {tmp_path / 'local'} |" in printed
    results = json.loads(out.read_text())
    assert set(results) == {str(tmp_path / "local"), "pixels of the current frame"}
    assert results[str(tmp_path / "local")]["scored_rows"] == 8


def test_a_folder_that_is_not_a_local_model_gets_a_message_not_a_traceback(tmp_path, capsys):
    probe = load_script("scripts/push_cube_state_probe.py")
    with pytest.raises(SystemExit) as stop:
        probe.main([str(tmp_path / "missing")])
    assert stop.value.code == 2 and "not a training run folder" in capsys.readouterr().err
