"""``scripts/local_model_action_response.py``: the action-response gate on the local model's decoded imagination."""

from __future__ import annotations

import json

import pytest
import torch
from script_modules import load_script

from dmo_ros.dataset.loaders import WindowDataset, collate
from dmo_ros.local_model.config import LocalModelConfig
from dmo_ros.local_model.model import LocalModel, load_local_model


def _script():
    return load_script("scripts/local_model_action_response.py")


def test_the_rollout_decodes_one_imagined_frame_per_action(policy_inputs):
    model = load_local_model(policy_inputs["local_model"])
    dataset = WindowDataset(policy_inputs["dataset"], context=4, horizon=1, split="train")
    window = collate([dataset[i] for i in range(3)])
    rollout = _script().local_model_rollout(model)
    right = rollout(window, torch.tensor([0.2, 0.0]).expand(3, 5, 2))
    left = rollout(window, torch.tensor([-0.2, 0.0]).expand(3, 5, 2))
    assert right.shape == (3, 5, 3, 32, 32) and right.abs().max() <= 1
    assert not torch.equal(right, left)  # the actions reach the imagined frames
    assert torch.equal(right, rollout(window, torch.tensor([0.2, 0.0]).expand(3, 5, 2)))  # modes: deterministic


def test_the_command_prints_the_gate_and_writes_the_picture(policy_inputs, tmp_path, capsys):
    out, report = tmp_path / "response.png", tmp_path / "response.json"
    assert _script().main([str(policy_inputs["local_model"]), "--dataset", str(policy_inputs["dataset"]),
                           "--windows", "4", "--horizon", "3", "--out", str(out), "--json", str(report)]) == 0
    printed = capsys.readouterr().out
    assert "agent_visible" in printed and "simulator px per step" in printed and "decoded posteriors" in printed
    assert "gate local_model (action response, decoded)" in printed
    assert out.stat().st_size > 0
    assert set(json.loads(report.read_text())["metrics"]["commands"]) == {"zero", "+x", "-x", "+y", "-y"}


def test_a_model_without_a_decoder_is_a_clear_error():
    model = LocalModel(LocalModelConfig.preset("tiny", 2, image_size=32, decoder_loss_scale=0.0))
    with pytest.raises(ValueError, match="no decoder"):
        _script().local_model_rollout(model)


def test_a_dmo_run_is_read_through_its_fine_tuned_local_model(tmp_path, capsys):
    from policy_runs import train_tiny_policy

    run = train_tiny_policy(tmp_path)
    assert _script().main([str(run), "--dataset", str(run.parent / "dataset"), "--windows", "4", "--horizon", "3"]) == 0
    assert "agent visible in the decoded posteriors" in capsys.readouterr().out
