"""``scripts/push_cube_gradient_gauge.py``: a rung-0 run's state-model gradient, per m/s and rad/s as the probes are."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from script_modules import load_script

from dmo_ros.gates.local_model import GradientProbe
from dmo_ros.ladder import cube_state_env
from dmo_ros.ladder.rung0 import StateModel, StateRewardModel
from dmo_ros.sims.push_cube import PushCubeConfig
from dmo_ros.training.checkpoint import save_checkpoint, write_run_config


@pytest.mark.parametrize("later", [None, [[0.1, 0.05, -0.3]]])
def test_the_rung0_gradient_matches_central_differences_in_the_probes_action_units(tmp_path, later):
    gauge = load_script("scripts/push_cube_gradient_gauge.py")
    torch.manual_seed(0)
    model, reward = StateModel(16, 1, 8, 3), StateRewardModel(16, 8)
    weights = {**{f"model.{k}": v for k, v in model.state_dict().items()},
               **{f"reward_model.{k}": v for k, v in reward.state_dict().items()}}
    write_run_config(tmp_path, {"kind": "rung0", "rung0": {"method": "sapo", "reward": "learned", "model_hidden": 16,
                                                            "model_layers": 1, "reward_hidden": 16}})
    save_checkpoint(tmp_path, 1, weights, {}, {})
    state = SimpleNamespace(robot=np.array([0.3, -0.2, 0.4]), cube=np.array([1.0, 0.5, 0.1]),
                            goal=np.array([-1.0, 1.0, 0.0]))
    action = torch.tensor([0.2, -0.1, 0.5])  # m/s, m/s, rad/s
    continuation = None if later is None else torch.tensor(later)
    probe = GradientProbe(frames=torch.zeros(1, 3, 4, 4, dtype=torch.uint8), actions=action[None],
                          gradient=np.zeros(3), state=state, continuation=continuation)
    (gradient,) = gauge.rung0_gradients(tmp_path, [probe])

    defaults = PushCubeConfig()
    limits = np.array([defaults.max_vx, defaults.max_vy, defaults.max_yaw_rate])
    observation = torch.from_numpy(cube_state_env.observe(state))[None].double()
    model, reward = model.double(), reward.double()

    def value(command: np.ndarray) -> float:  # the composite in the stand-in's units, as the probes step it
        with torch.no_grad():
            state = model(observation, torch.from_numpy(command / limits)[None])
            total = reward(state)
            for step in later or []:  # the held actions after it, their rewards summed
                state = model(state, torch.from_numpy(np.array(step) / limits)[None])
                total = total + reward(state)
            return float(total)

    eps = 1e-5
    expected = [(value(action.double().numpy() + eps * e) - value(action.double().numpy() - eps * e)) / (2 * eps)
                for e in np.eye(3)]
    assert gradient == pytest.approx(expected, rel=1e-3, abs=1e-7)


def test_a_run_without_a_learned_reward_is_refused(tmp_path):
    gauge = load_script("scripts/push_cube_gradient_gauge.py")
    write_run_config(tmp_path, {"kind": "rung0", "rung0": {"method": "ppo", "reward": "learned"}})
    with pytest.raises(SystemExit, match="a rung-0 SAPO run with --reward learned"):
        gauge.rung0_gradients(tmp_path, [])
    assert json.loads((tmp_path / "config.json").read_text())["rung0"]["method"] == "ppo"
