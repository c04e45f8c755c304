"""The reach ladder from nothing (scripts/ladder_reach.sh), small: both recordings, every learned part, rungs 0-2 with
DMO and its baselines, the ladder table and the Fig. 3 plots, with the tiny presets. The numbers in docs/ladder.md come
from the same script at its defaults; this checks that the stages fit together, not how well the policies do."""

from __future__ import annotations

import subprocess

import pytest

from conftest import BIN, REPO

pytestmark = pytest.mark.ros


def test_the_reach_ladder_runs_every_rung_and_writes_its_table(ros_env, tmp_path):
    env = {**ros_env, "LADDER_PRESET": "tiny", "LADDER_PLAY_SAMPLES": "300", "LADDER_POLICY_SAMPLES": "256",
           "LADDER_SEEDS": "0", "LADDER_WORLD_MODEL_STEPS": "7", "LADDER_ROLLOUT_CONTEXT": "1",
           "LADDER_FINAL_EPISODES": "2"}
    finished = subprocess.run([str(REPO / "scripts" / "ladder_reach.sh"), str(BIN), str(tmp_path)], cwd=REPO, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=900)
    output = finished.stdout
    assert finished.returncode == 0, output[-4000:]
    assert "Traceback" not in output
    assert "trained to step 7 " in (tmp_path / "world_model.log").read_text()
    rows = [line.split("|")[1:4] for line in (tmp_path / "ladder_reach.md").read_text().splitlines()[2:]]
    cells = {(rung.strip(), method.strip()) for rung, task, method in rows if task.strip() == "reach_fixed"}
    for rung, method in [("0 (true state, learned reward)", "sapo"), ("0 (true state, learned reward)", "ppo"),
                         ("1", "dmo"), ("1", "ppo"), ("2", "dmo"), ("2", "no_diffusion"), ("2", "ppo"),
                         ("-", "random actions"), ("-", "scripted expert (privileged)")]:
        assert (rung, method) in cells, cells
    for figure in ("fig3_rung1", "fig3_rung2"):
        assert (tmp_path / figure / "fig3.png").stat().st_size > 0
