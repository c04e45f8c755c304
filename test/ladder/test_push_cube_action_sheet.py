"""``scripts/push_cube_action_sheet.py``: the imagined-vs-real change measure, and the sheet from a Go2 local model."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from script_modules import load_script


def test_response_agreement_on_hand_made_frames():
    sheet = load_script("scripts/push_cube_action_sheet.py")
    zero = np.zeros((4, 4, 3))
    change = np.zeros((4, 4, 3))
    change[1, 2] = 10.0
    assert sheet.response_agreement(change, change, zero, zero) == pytest.approx((1.0, 1.0))
    assert sheet.response_agreement(change, 0.5 * change, zero, zero) == pytest.approx((1.0, 0.5))
    assert sheet.response_agreement(change, -change, zero, zero) == pytest.approx((-1.0, 1.0))
    assert sheet.response_agreement(change, zero + 3.0, zero, zero + 3.0) == (0.0, 0.0)  # the imagination stands still
    other = np.zeros((4, 4, 3))
    other[3, 0] = 10.0  # a change somewhere else: orthogonal
    assert sheet.response_agreement(change, other, zero, zero) == pytest.approx((0.0, 1.0))
    assert sheet.response_agreement(zero, change, zero, zero) == (0.0, 0.0)  # no real change: nothing to agree with


def test_the_sheet_of_a_go2_local_model(tmp_path, capsys, monkeypatch):
    from local_model.test_train import _args, _intent_reward_run, go2_dataset

    from dmo_ros.local_model.model import LocalModel
    from dmo_ros.local_model.train import main as train_local_model
    from dmo_ros.sims.push_cube import PushCubeSim

    sheet = load_script("scripts/push_cube_action_sheet.py")
    data = go2_dataset(tmp_path / "go2")
    train_local_model(_args(data, tmp_path / "local", "--reward-run", str(_intent_reward_run(tmp_path / "intent")),
                            "--steps", "3", "--no-gate"))
    # The context's actions as RSSM.observe pairs them: each frame with the command sent after it (the last unused).
    commands, contexts = [], []
    step, observe = PushCubeSim.step, LocalModel.observe
    monkeypatch.setattr(PushCubeSim, "step", lambda sim, command: (commands.append(np.array(command)),
                                                                   step(sim, command))[1])
    monkeypatch.setattr(LocalModel, "observe", lambda model, frames, actions, *a, **k: (
        contexts.append((actions[0].numpy(), list(commands))), observe(model, frames, actions, *a, **k))[1])
    out = tmp_path / "sheet" / "local.png"
    assert sheet.main([str(tmp_path / "local"), "--out", str(out), "--states", "2", "--horizon", "2"]) == 0
    assert len(contexts) == 2
    for actions, sent in contexts:
        assert len(actions) > 1
        np.testing.assert_allclose(actions[:-1], np.stack(sent[1 - len(actions):]), atol=1e-6)
        np.testing.assert_array_equal(actions[-1], np.zeros(3))
    size = 16  # go2_dataset's frames
    # Per state a real and an imagined row, a 4 px gap between states; the context column, then 2 steps per command.
    assert np.asarray(Image.open(out)).shape == (2 * 2 * size + 4, (1 + 2 * len(sheet.COMMANDS)) * size, 3)
    table = json.loads(out.with_suffix(".json").read_text())
    assert set(table) == set(sheet.COMMANDS) - {"zero"}
    assert all(-1.0 <= row["cosine"] <= 1.0 and row["size_ratio"] >= 0.0 for row in table.values())
    assert "| yaw + |" in capsys.readouterr().out
