"""``scripts/pushing_reward_agent_spots.py``: a pushing task's reward over the agent's whole range, and rung 0's r̂."""

from __future__ import annotations

import torch
from script_modules import load_script

from policy_runs import untrained_reward_run


def _script():
    return load_script("scripts/pushing_reward_agent_spots.py")


def _rung0_run(root, reward: str = "learned", with_state_model: bool = False):
    """A rung-0 run folder whose r̂ is fitted to the agent's x (normalised): its best spot is on the right wall."""
    from dmo_ros.ladder.rung0 import StateRewardModel
    from dmo_ros.training.checkpoint import save_checkpoint, write_run_config

    torch.manual_seed(0)
    model = StateRewardModel(hidden=8)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(300):  # fit r̂(s) = the agent's x in [-1, 1]
        states = torch.rand(256, 8) * 2 - 1
        loss = ((model(states) - states[:, 0]) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    run = root / f"rung0_{reward}"
    write_run_config(run, {"kind": "policy", "rung0": {"reward": reward, "reward_hidden": 8, "model_hidden": 8,
                                                       "model_layers": 1}})
    weights = {f"reward_model.{k}": v for k, v in model.state_dict().items()}
    if with_state_model:
        from dmo_ros.ladder.rung0 import StateModel

        weights.update({f"model.{k}": v for k, v in StateModel(8, 1).state_dict().items()})
    save_checkpoint(run, 1, weights, {}, {})
    return run


def test_the_map_covers_the_walls_and_compares_rung0s_regressor(tmp_path, capsys):
    reward_run, goal = untrained_reward_run(tmp_path)
    args = ["--reward-run", str(reward_run), "--goal", str(goal), "--episodes", "2", "--step", "96"]
    assert _script().main([*args, "--rung0-run", str(_rung0_run(tmp_path))]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith(f"episode {e}: ") for e, line in enumerate(lines))
    assert all("mean at the walls - mean inside" in line for line in lines)
    assert all("r̂: range" in line and "best spot [492.0, " in line.split("r̂:")[1] for line in lines)  # the right wall


def test_bad_inputs_exit_2(tmp_path, capsys):
    reward_run, goal = untrained_reward_run(tmp_path)
    base = ["--reward-run", str(reward_run), "--goal", str(goal)]
    assert _script().main([*base, "--task", "reach_fixed"]) == 2
    assert _script().main([*base, "--rung0-run", str(_rung0_run(tmp_path, reward="true"))]) == 2
    assert _script().main(["--reward-run", str(tmp_path / "none"), "--goal", str(goal)]) == 2
    err = capsys.readouterr().err
    assert err.count("pushing_reward_agent_spots: error") == 3 and "Traceback" not in err


def _local_model_run(root, image_size: int = 32, labels=None):
    from dataclasses import asdict

    from dmo_ros.local_model.config import LocalModelConfig
    from dmo_ros.local_model.model import LocalModel
    from dmo_ros.training.checkpoint import save_checkpoint, write_run_config

    torch.manual_seed(0)
    config = LocalModelConfig.preset("tiny", 2, [0.2, 0.2], image_size=image_size)
    model = LocalModel(config)
    with torch.no_grad():  # a reward head that varies with the frame (DreamerV3 zero-initialises its output)
        for parameter in model.reward_head.parameters():
            parameter.normal_(0.0, 0.3)
    run = root / f"local_{image_size}"
    write_run_config(run, {"kind": "local_model", "model": asdict(config),
                           **({"labels": {"reward_run": str(labels)}} if labels is not None else {})})
    save_checkpoint(run, 1, model.state_dict(), {}, {})
    return run


def test_the_map_compares_a_local_models_reward_head(tmp_path, capsys):
    reward_run, goal = untrained_reward_run(tmp_path)
    args = ["--reward-run", str(reward_run), "--goal", str(goal), "--episodes", "1", "--step", "96"]
    assert _script().main([*args, "--local-model", str(_local_model_run(tmp_path, labels=reward_run))]) == 0
    (line,) = capsys.readouterr().out.strip().splitlines()
    local = line.split("; local r̂: ")[1]
    assert local.startswith("range ") and float(local.split()[1].rstrip(",")) > 0 and "walls - inside" in local
    other = _local_model_run(tmp_path / "other", labels=tmp_path / "another_reward")
    assert _script().main([*args, "--local-model", str(other)]) == 0
    assert "note: the local model's head was trained on the labels of" in capsys.readouterr().out
    assert _script().main([*args, "--local-model", str(_local_model_run(tmp_path, image_size=64))]) == 2
    assert "frames of 64 px, the reward model's 32 px" in capsys.readouterr().err


def test_the_gradient_drift_of_a_local_model(tmp_path, capsys):
    reward_run, goal = untrained_reward_run(tmp_path)
    args = ["--reward-run", str(reward_run), "--goal", str(goal), "--episodes", "2", "--step", "96"]
    local = _local_model_run(tmp_path, labels=reward_run)
    assert _script().main([*args, "--local-model", str(local), "--gradient-steps", "2"]) == 0
    drift = [line for line in capsys.readouterr().out.splitlines() if line.startswith("  local d r̂/d a (2 held")]
    assert len(drift) == 2
    for line in drift:
        assert 0.0 <= float(line.split("drift ")[1].split()[0]) <= 1.0 and "the T's way to its goal" in line
    assert _script().main([*args, "--local-model", str(local), "--gradient-steps", "2", "--through-decoder"]) == 0
    decoded = [line for line in capsys.readouterr().out.splitlines()
               if line.startswith("  local, decoded frames' reward d r̂/d a (2 held steps): drift ")]
    assert len(decoded) == 2
    assert _script().main([*args, "--local-model", str(local), "--through-decoder"]) == 2
    assert "give --local-model and --gradient-steps" in capsys.readouterr().err
    rung0 = _rung0_run(tmp_path, with_state_model=True)
    assert _script().main([*args, "--rung0-run", str(rung0), "--gradient-steps", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert sum(line.startswith("  rung-0 d r̂/d a (2 held steps): drift ") for line in lines) == 2
    assert _script().main([*args, "--gradient-steps", "2"]) == 2  # no model to differentiate
    assert _script().main([*args, "--local-model", str(local), "--gradient-steps", "-1"]) == 2
    err = capsys.readouterr().err
    assert "give --local-model or --rung0-run" in err and "--gradient-steps >= 0" in err
