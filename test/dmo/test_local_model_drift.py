"""``scripts/local_model_drift.py``: fit on real sequences, the pretrained local model vs a DMO run's copy."""

from __future__ import annotations

import json
import shutil

import numpy as np
from script_modules import load_script

from dmo_ros.dataset.format import open_arrays
from dmo_ros.dmo.train import main as train_policy


def _script():
    return load_script("scripts/local_model_drift.py")


def test_the_drift_table_compares_the_pretrained_model_with_a_fine_tuned_copy(policy_inputs, tmp_path, capsys):
    local = shutil.copytree(policy_inputs["local_model"], tmp_path / "local_model")
    config = json.loads((local / "config.json").read_text())
    (local / "config.json").write_text(json.dumps({**config, "sequence_length": 4}))
    dataset = policy_inputs["dataset"]
    samples = len(open_arrays(dataset)["frames"])
    np.save(local / "labels.npy", np.linspace(-1.0, 0.0, samples, dtype=np.float32))
    (local / "rewards.json").write_text(json.dumps({str(dataset.resolve()): {"file": "labels.npy"}}))

    run = tmp_path / "dmo"
    assert train_policy(["dmo", str(dataset), "--world-model", str(policy_inputs["world_model"]), "--reward-run",
                         str(policy_inputs["reward"]), "--goal", str(policy_inputs["goal"]), "--local-model",
                         str(local), "--run-dir", str(run), "--preset", "tiny", "--device", "cpu", "--progress",
                         "false", "--eval-every", "0", "--max-samples", "64", "--force-gates"]) == 0
    capsys.readouterr()
    drift = _script()
    assert drift.main(["--local-model", str(local), "--dataset", str(dataset), "--sequences", "8", str(run)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("8 real validation sequences of 4 samples")
    rows = {line.split()[0]: [float(value) for value in line.split()[1:]] for line in lines[2:]}
    assert set(rows) == {"pretrained", str(run)}
    assert all(np.isfinite(rows["pretrained"])) and rows[str(run)] != rows["pretrained"]  # the copy was fine-tuned

    assert drift.main(["--local-model", str(policy_inputs["local_model"]), "--dataset", str(dataset)]) == 2
    assert "error" in capsys.readouterr().err
