"""dmo-train-act: the real command line with the tiny preset, resume, the demonstration items, bad inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dmo_ros.baselines.act_train import DemonstrationChunks, main
from dmo_ros.dataset.format import write_dataset
from dmo_ros.policy.act import ACTPolicy
from dmo_ros.policy.api import load_policy, load_policy_run
from dmo_ros.training.checkpoint import latest_step
from policy_runs import IMAGE, write_go2_demonstrations


def test_items_are_the_demonstration_steps_with_chunks_cut_at_the_demonstration_end(tmp_path):
    frames = np.zeros((12, 8, 8, 3), np.uint8)
    actions = np.arange(12, dtype=np.float32)[:, None].repeat(3, 1)
    intent = np.array([0, 1, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1], bool)  # runs 1-3, 6-7 (episode 0), 10-11 (episode 1)
    folder = write_dataset(tmp_path / "d", frames, actions, [8, 4], intent=intent, validation_fraction=0.0)
    items = DemonstrationChunks([folder], chunk_size=3, split="all")
    assert [t for _, t, _ in items.items] == [1, 2, 3, 6, 7, 10, 11]
    item = items[1]  # sample 2: actions 2, 3 then padding (the demonstration ends at 3)
    assert item.actions[:, 0].tolist() == [2.0, 3.0, 0.0] and item.valid.tolist() == [True, True, False]
    assert items[5].actions[:, 0].tolist() == [10.0, 11.0, 0.0]  # episode 1's run: not continued into another
    assert item.frames.shape == (3, 8, 8)


def test_cli_trains_resumes_and_writes_a_loadable_policy(tmp_path, capsys):
    dataset = write_go2_demonstrations(tmp_path / "data")
    run = tmp_path / "act"
    common = [str(dataset), "--run-dir", str(run), "--preset", "tiny", "--batch-size", "4", "--device", "cpu",
              "--progress", "false", "--checkpoint-every", "10"]
    assert main([*common, "--steps", "10", "--eval-episodes", "0"]) == 0
    assert latest_step(run) == 10
    assert main([*common, "--steps", "20", "--eval-episodes", "1", "--eval-max-steps", "3"]) == 0
    out = capsys.readouterr().out
    assert "resuming" in out and latest_step(run) == 20
    config = json.loads((run / "config.json").read_text())
    assert (config["kind"], config["method"], config["task"]) == ("policy", "act", "push_cube")
    assert config["model"]["chunk_size"] == 5 and config["policy"]["temporal_ensembling"] is True
    policy_run = load_policy_run(run)
    assert isinstance(policy_run.policy, ACTPolicy) and policy_run.robot == "go2"
    assert policy_run.camera_size == (96, 96)
    action = load_policy(run).act(np.zeros((IMAGE, IMAGE, 3), np.uint8))
    assert action.shape == (3,) and np.all(np.abs(action) <= np.asarray(config["policy"]["action_limit"]) + 1e-9)
    final = json.loads((run / "final_eval.json").read_text())
    assert final["task"] == "push_cube" and final["policy"]["episodes"] == 1
    assert set(final["ceilings"]) == {"ceiling: random actions", "ceiling: zero action",
                                      "ceiling: scripted expert (privileged)"}
    record = json.loads((run / "eval.jsonl").read_text().splitlines()[-1])
    assert record["method"] == "act" and record["episodes"] == 1 and "straightness" in record
    assert "| ACT (" in out


def test_bad_inputs_exit_2_with_a_message(tmp_path, capsys):
    plain = write_dataset(tmp_path / "play", np.zeros((20, 32, 32, 3), np.uint8), np.zeros((20, 3), np.float32),
                          [10, 10], extra_meta={"robot": "go2"})
    assert main([str(plain), "--run-dir", str(tmp_path / "r"), "--preset", "tiny"]) == 2
    assert "no demonstration (intent on)" in capsys.readouterr().err
    assert main([str(tmp_path / "missing"), "--run-dir", str(tmp_path / "r"), "--preset", "tiny"]) == 2
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"kind": "world_model", "model": {}}))
    dataset = write_go2_demonstrations(tmp_path / "data")
    assert main([str(dataset), "--run-dir", str(other), "--preset", "tiny"]) == 2
    assert "not an ACT policy" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(dataset), "--preset", "huge"])
