"""The DreamerV4-style world model in the policy trainers: ``ImaginedEnvV4`` follows the imagined-env contract
and ``dmo-train-policy`` picks it for a ``dmo-train-dynamics`` run."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch

from dmo_ros.dmo.imagined_env import StartWindows
from dmo_ros.dmo.imagined_env_v4 import ImaginedEnvV4
from dmo_ros.dmo.runner import read_evaluations
from dmo_ros.dmo.train import main
from dmo_ros.training.checkpoint import read_run_config, save_checkpoint, write_run_config
from dmo_ros.world_model_v4.config import DynamicsConfig, TokenizerConfig
from dmo_ros.world_model_v4.model import WorldModelV4, load_world_model_v4

IMAGE = 32  # the policy_inputs dataset's


@pytest.fixture(scope="module")
def v4_run(tmp_path_factory) -> Path:
    """An untrained tiny DreamerV4-style run folder for the policy_inputs dataset (32 px, 2-D actions)."""
    torch.manual_seed(0)
    tokenizer = TokenizerConfig.preset("tiny", image_size=IMAGE, patch_size=8)
    dynamics = DynamicsConfig.preset("tiny", action_size=2, action_scale=[0.25, 0.25], image_size=IMAGE,
                                     latent_tokens=tokenizer.latent_tokens, latent_dim=tokenizer.latent_dim)
    run = tmp_path_factory.mktemp("v4") / "run"
    write_run_config(run, {"kind": "world_model_v4", "model": asdict(dynamics), "tokenizer": asdict(tokenizer)})
    save_checkpoint(run, 1, WorldModelV4(tokenizer, dynamics).state_dict(), {}, {})
    return run


def test_env_contract(policy_inputs, v4_run) -> None:
    model = load_world_model_v4(v4_run)
    starts = StartWindows([policy_inputs["dataset"]], context=model.config.l_init, seed=0)
    env = ImaginedEnvV4(model, starts, batch_size=3, generator=torch.Generator().manual_seed(0))
    observation = env.reset()
    assert observation.shape == (3, 3, IMAGE, IMAGE) and env.start_window is not None
    assert env.reward(observation).shape == (3,)
    frames, actions = env.context
    assert frames.shape[0] == 3 and actions.shape == (3, frames.shape[1] - 1, 2)
    observation, reward = env.step(torch.zeros(3, 2))
    assert observation.shape == (3, 3, IMAGE, IMAGE) and reward.shape == (3,) and torch.isfinite(reward).all()
    assert env.samples == 3 and env.steps.tolist() == [1, 1, 1]
    env.reset_some(torch.tensor([False, True, False]))
    assert env.steps.tolist() == [1, 0, 1]
    env.step(torch.zeros(3, 2))
    with pytest.raises(ValueError, match="non-finite"):
        env.step(torch.full((3, 2), float("nan")))
    with pytest.raises(ValueError, match="actions must be"):
        env.step(torch.zeros(2, 2))
    state = env.state_dict()
    env.load_state_dict(state)
    assert env.samples == 6


@pytest.mark.parametrize("method", ["dmo", "ppo"])
def test_dmo_and_ppo_train_in_the_v4_world_model(method, policy_inputs, v4_run, tmp_path, capsys) -> None:
    """The reward token gives the rewards: no reward run or goal picture is needed (a DIAMOND run needs a reward
    run)."""
    run = tmp_path / method
    args = [method, str(policy_inputs["dataset"]), "--world-model", str(v4_run), "--run-dir", str(run), "--preset",
            "tiny", "--device", "cpu", "--progress", "false", "--eval-max-steps", "3", "--force-gates",
            *(["--local-model", str(policy_inputs["local_model"])] if method == "dmo" else []), "--max-samples", "32"]
    assert main(args) == 0
    assert [r["samples"] for r in read_evaluations(run)] == [0, 32]
    config = read_run_config(run)
    assert config["world_model"] == str(v4_run) and config["reward_run"] is None and config["goal"] is None
    args[args.index(str(v4_run))] = str(policy_inputs["world_model"])
    args[args.index(str(run))] = str(tmp_path / "diamond")
    assert main(args) == 2
    assert "--reward-run is required" in capsys.readouterr().err


def test_a_dmo_epoch_in_the_v4_world_model_updates_the_actor_only(policy_inputs, v4_run) -> None:
    """As in the DIAMOND env: the policy gradient reaches the actor alone, never the DreamerV4-style model (its
    tokenizer, dynamics or reward token) nor the pretrained local model; the imagined transitions, labelled by the
    reward token, go into the replay buffer."""
    from dmo_ros.dmo.algorithm import DMOConfig, LatentSAPO
    from dmo_ros.dmo.sapo import SAPOConfig
    from dmo_ros.local_model.model import load_local_model

    torch.manual_seed(0)
    world_model = load_world_model_v4(v4_run)
    starts = StartWindows([policy_inputs["dataset"]], context=world_model.config.l_init, seed=0)
    config = DMOConfig.preset("tiny", finetune_steps=0)
    env = ImaginedEnvV4(world_model, starts, config.batch_size, generator=torch.Generator().manual_seed(0))
    local = load_local_model(policy_inputs["local_model"])
    sapo = SAPOConfig.preset("tiny")
    algorithm = LatentSAPO("dmo", local, starts, config, sapo, [0.25, 0.25], env)
    actor_before = {k: v.clone() for k, v in algorithm.learner.actor.state_dict().items()}
    local_before = {k: v.clone() for k, v in local.state_dict().items()}
    world_before = {k: v.clone() for k, v in world_model.state_dict().items()}
    logs = algorithm.train_epoch()
    assert algorithm.samples == config.batch_size * sapo.horizon and np.isfinite(logs["actor_loss"])
    assert any(not torch.equal(v, actor_before[k]) for k, v in algorithm.learner.actor.state_dict().items())
    assert all(torch.equal(v, local_before[k]) for k, v in local.state_dict().items())
    assert all(torch.equal(v, world_before[k]) for k, v in world_model.state_dict().items())
    for model in (local, world_model):
        assert all(p.grad is None for p in model.parameters())
    assert logs["replay_sequences"] == config.batch_size and "global_return" in logs
