"""The trainers measure their gate at the end, ``dmo-gate`` re-measures it, and policy training refuses models
below their gate (or never gated) unless forced — naming the failed check."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dmo_ros.dmo.train import main as train_policy
from dmo_ros.gates.cli import main as gate_main
from dmo_ros.gates.report import GateCheck, GateReport, read_gate_report, require_gates, write_gate_report
from dmo_ros.local_model.train import main as train_local
from dmo_ros.reward.train import main as train_reward
from dmo_ros.world_model.train import main as train_world_model

COMMON = ["--preset", "tiny", "--device", "cpu", "--progress", "false", "--steps", "4", "--batch-size", "4"]


@pytest.fixture(scope="module")
def runs(pusht_play, tmp_path_factory):
    """Tiny world, reward and local models trained 4 steps on stand-in play data, each gated by its trainer."""
    root = tmp_path_factory.mktemp("gated")
    goal = root / "goal.png"
    Image.fromarray(np.full((64, 64, 3), 255, np.uint8)).save(goal)
    data = str(pusht_play.dataset)
    assert train_world_model([data, "--run-dir", str(root / "wm"), *COMMON]) == 0
    assert train_reward([data, "--run-dir", str(root / "reward"), "--goal", str(goal), *COMMON]) == 0
    assert train_local([data, "--run-dir", str(root / "local"), "--reward-run", str(root / "reward"), "--goal",
                        str(goal), "--sequence-length", "4", *COMMON]) == 0
    return {"wm": root / "wm", "reward": root / "reward", "local": root / "local", "goal": goal,
            "dataset": pusht_play.dataset}


def test_each_trainer_writes_its_gate(runs):
    for name, component in (("wm", "world_model"), ("reward", "reward"), ("local", "local_model")):
        report = read_gate_report(runs[name])
        assert report is not None and report.component == component
        assert report.checks and all(np.isfinite(c.bound) for c in report.checks)
    assert (runs["reward"] / "gate" / "reward_shape.png").stat().st_size > 10_000
    # Four training steps do not make a world model that follows actions.
    assert not read_gate_report(runs["wm"]).passed


def test_dmo_gate_re_measures_prints_and_exits_1_below_the_gate(runs, capsys):
    (runs["wm"] / "gate.json").unlink()
    code = gate_main(["world-model", str(runs["wm"]), "--dataset", str(runs["dataset"]), "--windows", "4",
                      "--horizon", "3"])
    out = capsys.readouterr().out
    assert code == 1 and "gate world_model: FAILED" in out and "right_direction" in out
    saved = json.loads((runs["wm"] / "gate.json").read_text())
    assert saved["passed"] is False and saved["metrics"]["sampler"]["change_threshold"] == 0.0  # the model's own
    code = gate_main(["world-model", str(runs["wm"]), "--dataset", str(runs["dataset"]), "--windows", "4",
                      "--horizon", "3", "--change-threshold", "4", "--bf16"])
    sampler = json.loads((runs["wm"] / "gate.json").read_text())["metrics"]["sampler"]
    assert code == 1 and sampler["change_threshold"] == 4 and sampler["bf16"] is True
    assert saved["metrics"]["sampler"]["bf16"] is False
    assert gate_main(["world-model", str(runs["wm"]), "--dataset", str(runs["dataset"]),
                      "--change-threshold", "-2"]) == 2
    assert "change_threshold" in capsys.readouterr().err
    assert gate_main(["world-model", str(runs["wm"] / "missing"), "--dataset", str(runs["dataset"])]) == 2
    assert gate_main(["reward", str(runs["reward"]), "--goal", str(runs["goal"]), "--episodes", "1", "--steps", "4",
                      "--agent-places", "3", "--expert-runs", "1", "--expert-steps", "10"]) in (0, 1)


def test_dmo_gate_reward_with_a_reach_task_measures_the_reach_gate(runs, tmp_path, capsys):
    import shutil

    from dmo_ros.gates.cli import GOAL_GATES

    reward = shutil.copytree(runs["reward"], tmp_path / "reward")  # the session's run keeps its pushing gate
    own = (reward / "gate.json").read_text()
    code = gate_main(["reward", str(reward), "--goal", str(runs["goal"]), "--task", "reach_fixed", "--step", "96"])
    out = capsys.readouterr().out
    assert code in (0, 1) and "ascent" in out and "peak_offset_u" in out
    # The run's own (pushing) gate is kept; the reach gate goes beside it, where a reach policy looks for it.
    (folder,) = (reward / GOAL_GATES).iterdir()
    assert folder.name.endswith("_reach_fixed") and f"wrote {folder / 'gate.json'}" in out
    assert (reward / "gate.json").read_text() == own
    written = json.loads((folder / "gate.json").read_text())
    assert written["metrics"]["task"] == "reach_fixed" and "map" not in written["metrics"]
    assert (folder / "gate" / "reward_reach_map.png").is_file()
    with pytest.raises(SystemExit):  # a reach bound without the task, or a pushing option with it
        gate_main(["reward", str(reward), "--goal", str(runs["goal"]), "--min-ascent", "0.5"])
    with pytest.raises(SystemExit):
        gate_main(["reward", str(reward), "--goal", str(runs["goal"]), "--task", "reach_fixed", "--episodes", "2"])
    assert "belongs to the pushing tasks' reward gate" in capsys.readouterr().err


@pytest.mark.parametrize("extra", [[], ["--episodes", "2"]])
def test_dmo_gate_reward_with_a_pushing_task_says_to_leave_the_task_out(runs, extra, capsys):
    """The reward's --task picks the reach gate; a pushing task there is the mistake the message names, also when a
    shape-gate option stands beside it (it once blamed --episodes for "not the reach gate (--task push_region)")."""
    with pytest.raises(SystemExit) as stop:
        gate_main(["reward", str(runs["reward"]), "--goal", str(runs["goal"]), "--task", "push_region", *extra])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "--task 'push_region' has no agent target" in err and "leave --task out" in err
    assert "belongs to" not in err


def test_dmo_gate_reward_toward_another_picture_keeps_the_runs_own_gate(runs, tmp_path, capsys):
    """Re-measuring toward the run's own picture replaces its gate.json; toward another picture the measurement
    goes to gate_goals/ (found there by the policy trainer), the run's own gate untouched."""
    import shutil

    from dmo_ros.gates.cli import GOAL_GATES, reward_gate_toward

    reward = shutil.copytree(runs["reward"], tmp_path / "reward")
    quick = ["--episodes", "1", "--steps", "4", "--agent-places", "3", "--expert-runs", "1", "--expert-steps", "10"]
    assert gate_main(["reward", str(reward), "--goal", str(runs["goal"]), *quick]) in (0, 1)
    assert f"wrote {reward / 'gate.json'}" in capsys.readouterr().out and not (reward / GOAL_GATES).exists()
    own = (reward / "gate.json").read_text()
    other = tmp_path / "other.png"
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(other)
    assert gate_main(["reward", str(reward), "--goal", str(other), *quick]) in (0, 1)
    out = capsys.readouterr().out
    (folder,) = (reward / GOAL_GATES).iterdir()
    assert "is kept; this one goes to" in out and f"wrote {folder / 'gate.json'}" in out
    assert (reward / "gate.json").read_text() == own and (folder / "gate" / "reward_shape.png").is_file()
    assert read_gate_report(folder).metrics["goal"] == str(other.resolve())
    lines = []
    assert reward_gate_toward(reward, other, "push_region", notify=lines.append) == folder and not lines
    assert gate_main(["reward", str(reward), "--goal", str(tmp_path / "missing.png")]) == 2
    assert "missing.png" in capsys.readouterr().err


def test_the_trainers_gate_a_reach_task_with_gate_task(runs, tmp_path, capsys):
    data = str(runs["dataset"])
    assert train_reward([data, "--run-dir", str(tmp_path / "reward"), "--goal", str(runs["goal"]),
                         "--gate-task", "reach_fixed", *COMMON]) == 0
    assert "ascent" in capsys.readouterr().out
    assert read_gate_report(tmp_path / "reward").metrics["task"] == "reach_fixed"
    assert (tmp_path / "reward" / "gate" / "reward_reach_map.png").is_file()
    assert train_local([data, "--run-dir", str(tmp_path / "local"), "--reward-run", str(runs["reward"]), "--goal",
                        str(runs["goal"]), "--sequence-length", "4", "--gate-task", "reach_fixed", *COMMON]) == 0
    local = read_gate_report(tmp_path / "local")
    assert local.metrics["task"] == "reach_fixed" and "(reach_fixed)" in local.checks[1].meaning
    # The session's local model was gated on the pushing tasks: a reach_fixed policy is refused, naming the command;
    # the reward's reach gate toward the picture is measured at the policy's start (into the run's gate_goals/).
    assert train_policy(_policy_args(runs, tmp_path / "reach", "--task", "reach_fixed")) == 2
    captured = capsys.readouterr()
    assert "the reward's gate toward" in captured.out and "on reach_fixed was never measured" in captured.out
    assert re.search(r"local_model \S+: gated on \w+, not on reach_fixed; measure it with dmo-gate local-model .* "
                     r"--task reach_fixed", captured.err), captured.err


def _policy_args(runs, run_dir, *extra):
    return ["dmo", str(runs["dataset"]), "--world-model", str(runs["wm"]), "--reward-run", str(runs["reward"]),
            "--goal", str(runs["goal"]), "--local-model", str(runs["local"]), "--run-dir", str(run_dir),
            "--preset", "tiny", "--device", "cpu", "--progress", "false", "--max-samples", "32",
            "--eval-every", "0", *extra]


def test_policy_training_refuses_a_model_below_its_gate_unless_forced(runs, tmp_path, capsys):
    assert train_policy(_policy_args(runs, tmp_path / "refused")) == 2
    err = capsys.readouterr().err
    assert "world_model" in err and "gate FAILED" in err and "--force-gates" in err
    assert not (tmp_path / "refused").exists()
    assert train_policy(_policy_args(runs, tmp_path / "forced", "--force-gates")) == 0
    assert "[forced]" in capsys.readouterr().out


def test_a_model_never_gated_is_refused_with_the_command_that_gates_it(tmp_path):
    with pytest.raises(Exception, match="never gated.*dmo-gate world-model"):
        require_gates({"world_model": tmp_path})
    write_gate_report(tmp_path, GateReport("world_model", [GateCheck("x", 1.0, 0.5, ">=", "")]))
    assert require_gates({"world_model": tmp_path}) == [f"world_model {tmp_path}: gate passed"]


def test_a_gate_measured_on_another_task_is_refused_with_the_command_for_this_one(tmp_path):
    def gated(name: str, component: str, task: str | None) -> Path:
        run = tmp_path / name
        write_gate_report(run, GateReport(component, [GateCheck("x", 1.0, 0.5, ">=", "")],
                                          {} if task is None else {"task": task}))
        return run

    push_reward, reach_reward = gated("push", "reward", None), gated("reach", "reward", "reach_fixed")
    local_push, world = gated("local", "local_model", "push_t"), gated("wm", "world_model", None)
    with pytest.raises(Exception, match=r"gated on the pushing tasks, not on reach_fixed; measure it with "
                                        r"dmo-gate reward .* --task reach_fixed"):
        require_gates({"reward": push_reward}, task="reach_fixed")
    with pytest.raises(Exception, match="gated on reach_fixed, not on the pushing task push_region"):
        require_gates({"reward": reach_reward}, task="push_region")
    with pytest.raises(Exception, match="local_model .*gated on push_t, not on reach"):
        require_gates({"local_model": local_push}, task="reach")
    assert require_gates({"reward": reach_reward, "world_model": world}, task="reach_fixed") == [
        f"reward {reach_reward}: gate passed", f"world_model {world}: gate passed"]
    assert require_gates({"reward": push_reward, "local_model": local_push}, task="push_region")[1].endswith("passed")
    forced = require_gates({"reward": push_reward}, force=True, task="reach_fixed")
    assert forced[0].endswith("[forced]") and "not on reach_fixed" in forced[0]


def test_a_gate_measured_toward_another_goal_picture_is_refused(tmp_path):
    """The reward and local-model gates vouch for rewards toward the picture they measured with: another picture
    is refused (with the command that gates it), the same bytes elsewhere pass, and a gate whose picture has gone
    cannot be compared (passes as before)."""
    pictures = tmp_path / "pictures"
    pictures.mkdir()
    push, reach, copy = pictures / "push.png", pictures / "reach.png", pictures / "copy_of_push.png"
    push.write_bytes(b"T on its goal pose")
    reach.write_bytes(b"the agent on a target")
    copy.write_bytes(push.read_bytes())
    runs = {}
    for component in ("reward", "local_model"):
        runs[component] = tmp_path / component
        write_gate_report(runs[component], GateReport(component, [GateCheck("x", 1.0, 0.5, ">=", "")],
                                                      {"goal": str(push)}))
    with pytest.raises(Exception, match=rf"reward .*gated toward the goal picture {push}, not toward {reach}; "
                                        r"measure it with dmo-gate reward .* --goal GOAL"):
        require_gates(runs, task="push_t", goal=reach)
    with pytest.raises(Exception, match=r"local_model .*not toward"):
        require_gates({"local_model": runs["local_model"]}, goal=reach)
    assert all(line.endswith("gate passed") for line in require_gates(runs, goal=copy))
    assert all(line.endswith("gate passed") for line in require_gates(runs, goal=None))
    push.unlink()
    assert all(line.endswith("gate passed") for line in require_gates(runs, goal=reach))


def test_a_gate_given_a_relative_goal_path_is_compared_from_anywhere(runs, tmp_path, monkeypatch):
    """dmo-gate records the goal picture's resolved path, so a policy started from another folder still finds it and
    refuses another picture."""
    import shutil

    reward = shutil.copytree(runs["reward"], tmp_path / "reward")
    shutil.copy(runs["goal"], tmp_path / "goal.png")
    other = tmp_path / "other.png"
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(other)
    monkeypatch.chdir(tmp_path)
    assert gate_main(["reward", "reward", "--goal", "goal.png", "--episodes", "1", "--steps", "4", "--agent-places",
                      "3", "--expert-runs", "1", "--expert-steps", "10"]) in (0, 1)
    assert read_gate_report(reward).metrics["goal"] == str(tmp_path / "goal.png")
    monkeypatch.chdir(runs["dataset"])
    with pytest.raises(Exception, match="gated toward the goal picture .*goal.png, not toward"):
        require_gates({"reward": reward}, goal=other)
    # The same bytes at another path: no goal complaint (the 4-step model may still fail its checks: forced).
    assert "goal picture" not in require_gates({"reward": reward}, goal=runs["goal"], force=True)[0]


def test_a_nan_measurement_fails_its_check():
    assert not GateCheck("x", float("nan"), 0.0, "<=", "").passed
    with pytest.raises(ValueError):
        GateCheck("x", 1.0, 0.0, "==", "")


def test_the_local_model_gate_says_when_its_probes_reward_is_not_the_one_it_was_trained_on(runs, tmp_path, capsys):
    import shutil

    local, other = tmp_path / "local", tmp_path / "other_reward"
    shutil.copytree(runs["local"], local)
    shutil.copytree(runs["reward"], other)
    quick = ["--dataset", str(runs["dataset"]), "--goal", str(runs["goal"]), "--probes", "2", "--sequences", "4",
             "--state-probe-episodes", "0"]
    assert gate_main(["local-model", str(local), "--reward-run", str(runs["reward"]), *quick]) in (0, 1)
    assert "different rewards" not in capsys.readouterr().out
    assert gate_main(["local-model", str(local), "--reward-run", str(other), *quick]) in (0, 1)
    out = capsys.readouterr().out
    assert "they are different rewards" in out and str(other) in out


def test_the_command_a_refusal_names_runs_and_gates_the_local_model_on_that_task(runs, tmp_path, capsys):
    import shlex
    import shutil

    local = shutil.copytree(runs["local"], tmp_path / "local")
    with pytest.raises(Exception) as refusal:  # gated by its trainer on push_t: refused for reach_fixed
        require_gates({"local_model": local}, task="reach_fixed")
    command = str(refusal.value).split("measure it with ")[1].splitlines()[0]
    argv = shlex.split(command.replace("DATASET", str(runs["dataset"])).replace("REWARD_RUN", str(runs["reward"]))
                       .replace("GOAL", str(runs["goal"])))
    assert argv[:2] == ["dmo-gate", "local-model"] and argv[-2:] == ["--task", "reach_fixed"]
    quick = ["--probes", "2", "--sequences", "4", "--state-probe-episodes", "0"]
    assert gate_main([*argv[1:], *quick]) in (0, 1)
    metrics = read_gate_report(local).metrics
    assert metrics["task"] == "reach_fixed" and "agent_only" not in metrics  # the reach task pays for the agent
    lines = require_gates({"local_model": local}, force=True, task="reach_fixed")
    assert "not on reach_fixed" not in " ".join(lines)  # no longer "gated on push_t"
    # A pushing task: the agent-only range of the local reward head is reported beside the checks.
    assert gate_main([*argv[1:-2], *quick, "--agent-only-episodes", "1", "--agent-only-step", "160"]) in (0, 1)
    assert "info agent-only range" in capsys.readouterr().out
    assert read_gate_report(local).metrics["agent_only"]["spots"] > 0
    assert gate_main([*argv[1:-2], *quick, "--agent-only-step", "0"]) == 2  # a clear error, not a traceback
    err = capsys.readouterr().err
    assert "--agent-only-step must be a number > 0" in err and "Traceback" not in err


def test_a_policy_toward_another_goal_picture_gets_the_rewards_gate_measured_toward_it(runs, tmp_path, capsys):
    """dmo-train-policy gates the reward toward its own --goal: the reward run's gate.json when it was measured
    toward the same picture, else a gate measured now into the reward run's gate_goals/ (kept for the next policy,
    never overwriting the run's own gate), which refuses or passes like any gate."""
    import shutil

    from dmo_ros.gates.cli import GOAL_GATES, reward_gate_toward

    reward = shutil.copytree(runs["reward"], tmp_path / "reward")
    own = (reward / "gate.json").read_text()
    lines = []
    assert reward_gate_toward(reward, runs["goal"], "push_region", notify=lines.append) == reward and not lines
    other = tmp_path / "other.png"
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(other)
    folder = reward_gate_toward(reward, other, "push_region", notify=lines.append)
    assert folder.parent == reward / GOAL_GATES and folder.name.endswith("_push") and len(lines) == 1
    measured = read_gate_report(folder)
    assert measured.component == "reward" and measured.metrics["goal"] == str(other.resolve())
    assert (folder / "gate" / "reward_shape.png").is_file() and (reward / "gate.json").read_text() == own
    assert reward_gate_toward(reward, other, "push_t", notify=lines.append) == folder and len(lines) == 1  # kept
    # Side by side toward one picture (two policies, torchrun's ranks): one measures, the others wait and reuse it.
    from concurrent.futures import ThreadPoolExecutor

    shared_picture = tmp_path / "side_by_side.png"
    Image.fromarray(np.full((64, 64, 3), 200, np.uint8)).save(shared_picture)
    with ThreadPoolExecutor(2) as pool:
        folders = list(pool.map(lambda _: reward_gate_toward(reward, shared_picture, "push_t", notify=lines.append),
                                range(2)))
    assert folders[0] == folders[1] and read_gate_report(folders[0]).component == "reward" and len(lines) == 2
    shutil.rmtree(folders[0])
    measured_folders = sorted((reward / GOAL_GATES).iterdir())
    # The policy trainer uses it: refused below the gate (the 4-step reward), naming the measured folder.
    args = ["dmo", str(runs["dataset"]), "--forward", "simulator", "--reward-run", str(reward), "--goal", str(other),
            "--local-model", str(runs["local"]), "--task", "push_region", "--run-dir", str(tmp_path / "policy"),
            "--preset", "tiny", "--device", "cpu", "--progress", "false", "--max-samples", "32", "--eval-every", "0"]
    write_gate_report(folder, GateReport("reward", [GateCheck("t_path_spearman", 0.5, 0.9, ">=", "")],
                                         {"goal": str(other.resolve())}))
    assert train_policy(args) == 2
    err = capsys.readouterr().err
    assert f"reward {folder}: gate FAILED: t_path_spearman 0.5 (needs >= 0.9)" in err
    assert not (tmp_path / "policy").exists()
    assert train_policy([*args, "--force-gates"]) == 0
    gates = json.loads((tmp_path / "policy" / "config.json").read_text())["gates"]
    assert gates["reward"]["run"] == str(folder) and gates["reward"]["passed"] is False
    # Forced, a picture never gated is not measured (no time spent): the mismatch is named and marked forced.
    third = tmp_path / "third.png"
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(third)
    assert reward_gate_toward(reward, third, "push_t", notify=lines.append, measure=False) == reward
    assert train_policy([*args[:7], str(third), *args[8:], "--run-dir", str(tmp_path / "forced"), "--force-gates"]) == 0
    out = capsys.readouterr().out
    assert f"reward {reward}: gated toward the goal picture" in out and "[forced]" in out
    assert sorted((reward / GOAL_GATES).iterdir()) == measured_folders and len(lines) == 2


def test_a_goal_picture_redrawn_under_its_name_gets_the_gates_measured_again(runs, tmp_path, capsys):
    """The reward gate (pushing and reach) and the local-model gate record the hash of the picture's bytes: after
    the picture is redrawn under the same name they no longer vouch for it, and the policy trainer's
    reward_gate_toward measures the reward's gate toward the new picture instead of reusing the old numbers."""
    import shutil

    from dmo_ros.gates.cli import GOAL_GATES, reward_gate_toward
    from dmo_ros.gates.report import goal_picture_digest

    reward = shutil.copytree(runs["reward"], tmp_path / "reward")
    local = shutil.copytree(runs["local"], tmp_path / "local")
    goal = Path(shutil.copy(runs["goal"], tmp_path / "goal.png"))
    quick = ["--episodes", "1", "--steps", "4", "--agent-places", "3", "--expert-runs", "1", "--expert-steps", "10"]
    assert gate_main(["reward", str(reward), "--goal", str(goal), *quick]) in (0, 1)
    assert gate_main(["reward", str(reward), "--goal", str(goal), "--task", "reach_fixed", "--step", "96"]) in (0, 1)
    (reach,) = (reward / GOAL_GATES).iterdir()
    assert gate_main(["local-model", str(local), "--dataset", str(runs["dataset"]), "--reward-run", str(reward),
                      "--goal", str(goal), "--probes", "2", "--sequences", "4", "--state-probe-episodes", "0",
                      "--agent-only-episodes", "0"]) in (0, 1)
    first = goal_picture_digest(goal)
    for folder in (reward, reach, local):
        assert read_gate_report(folder).metrics["goal_sha256"] == first
    lines = []
    assert reward_gate_toward(reward, goal, "push_region", notify=lines.append) == reward and not lines
    capsys.readouterr()

    Image.fromarray(np.full((64, 64, 3), 90, np.uint8)).save(goal)  # redrawn under the same name
    for task, gated in ((None, {"reward": reward, "local_model": local}), ("reach_fixed", {"reward": reach})):
        forced = require_gates(gated, force=True, task=task, goal=goal)
        assert all("has been redrawn since" in line for line in forced), forced
    measured = reward_gate_toward(reward, goal, "push_region", notify=lines.append)
    assert measured.parent == reward / GOAL_GATES and len(lines) == 1 and "never measured" in lines[0]
    assert read_gate_report(measured).metrics["goal_sha256"] == goal_picture_digest(goal) != first
