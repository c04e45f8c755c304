"""The main job (`make demo`, scripts/demo_pipeline.sh) end to end, small: every stage with the tiny presets on a
short fast recording, the policy's final table with its ceilings, and the deployment through the deploy graph on
the task the policy learned. The demo's own size is set by the Makefile (cpu presets, 10 000 samples, 40 k
imagined samples); this checks that the stages fit together, not how well the policy does."""

from __future__ import annotations

import json
import subprocess

import pytest

from conftest import BIN, REPO

pytestmark = pytest.mark.ros


def test_the_main_job_runs_every_stage_and_ends_on_the_policys_table(ros_env, tmp_path):
    env = {**ros_env, "DEMO_PRESET": "tiny", "DEMO_FINAL_EPISODES": "2", "DEMO_REPORT_WINDOWS": "4",
           "DEMO_DEPLOY_EPISODES": "1", "DEMO_DEPLOY_SECONDS": "8",
           "DEMO_WORLD_MODEL_STEPS": "7", "DEMO_LOCAL_MODEL_STEPS": "5"}
    finished = subprocess.run(
        [str(REPO / "scripts" / "demo_pipeline.sh"), str(BIN), "300", str(tmp_path / "bags"),
         str(tmp_path / "datasets"), str(tmp_path / "runs"), "push_region", "256"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=900)
    output = finished.stdout
    assert finished.returncode == 0, output[-4000:]
    assert "Traceback" not in output
    (session,) = (tmp_path / "runs").iterdir()
    times = (session / "stage_times.txt").read_text()
    for stage in ("collect 300 samples of play", "world model (tiny) (background)", "reward model (tiny)",
                  "local model (tiny)", "DMO-SAPO policy (tiny, push_region)", "deployment through ROS", "total"):
        assert stage in times, times
    # The world model trained in the background to the demo's step budget, its log kept and its end printed;
    # the local model to its own budget.
    world_model_log = (session / "world_model.log").read_text()
    assert "trained to step 7 " in world_model_log and "trained to step 7 " in output
    assert "trained to step 5 " in output
    # The policy's final evaluation on the demo's task, beside its ceilings, is the job's last word.
    table = (session / "dmo" / "final_eval.md").read_text()
    assert "evaluation of task push_region" in table and "scripted expert" in table and "random" in table
    assert output.rstrip().endswith(table.rstrip())
    # The demo's policy settings (DEMO_POLICY_SETTINGS' default) reached the trainer over the preset's.
    dmo_config = json.loads((session / "dmo" / "config.json").read_text())["configs"]["dmo"]
    assert (dmo_config["batch_size"], dmo_config["policy_ema"]) == (8, 0.98)
    # The deployment stage ran the graph on the same task and scored it through ROS.
    assert "[policy]" in output  # the live deployment's node log
    assert "through ROS: success " in output
