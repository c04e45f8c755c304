"""DMO's gradient matching (``DMOConfig.gradient_matching_scale``): the simulator's finite-difference probes, the
probe buffer, the refusals, and a learning test: fitting the local model's d r̂ / d a to the probes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dmo_ros.dmo.algorithm import DMOConfig, LatentSAPO
from dmo_ros.dmo.imagined_env import StartWindows
from dmo_ros.dmo.replay import GradientProbeBuffer
from dmo_ros.dmo.sapo import SAPOConfig
from dmo_ros.dmo.simulator_env import SimulatorEnv
from dmo_ros.local_model.model import load_local_model
from dmo_ros.reward.energy import load_reward_model
from dmo_ros.reward.goal_image import load_goal_image


def _env(inputs, batch_size: int = 2, seed: int = 1) -> SimulatorEnv:
    reward = load_reward_model(inputs["reward"])
    goal = load_goal_image(inputs["goal"], size=(32, 32))
    return SimulatorEnv(reward, goal, batch_size=batch_size, image_size=32, context=4, task="push_region", seed=seed)


def test_reward_gradient_is_the_central_difference_and_leaves_the_episodes_where_they_were(policy_inputs):
    probed, twin, plus, minus = (_env(policy_inputs) for _ in range(4))
    push = torch.tensor([[0.1, -0.05], [-0.2, 0.1]])
    for env in (probed, twin, plus, minus):
        env.reset()
        env.step(push)
    epsilon = 0.05
    gradient = probed.reward_gradient(push, epsilon)
    assert gradient.shape == (2, 2) and torch.isfinite(gradient).all()
    assert probed.samples == 2 + 2 * 4  # the four branches of each episode are forward-model samples
    # The first component against two twins stepped by a ± eps e_0 for real.
    _, reward_plus = plus.step(push + torch.tensor([epsilon, 0.0]))
    _, reward_minus = minus.step(push - torch.tensor([epsilon, 0.0]))
    torch.testing.assert_close(gradient[:, 0], (reward_plus - reward_minus) / (2 * epsilon), rtol=1e-4, atol=1e-5)
    # The probed episodes go on from where they were, as the twin never probed does.
    observation, reward_now = probed.step(push)
    twin_observation, twin_reward = twin.step(push)
    assert torch.equal(observation, twin_observation) and torch.equal(reward_now, twin_reward)
    with pytest.raises(ValueError, match="epsilon"):
        probed.reward_gradient(push, 0.0)
    with pytest.raises(ValueError, match="finite"):
        probed.reward_gradient(torch.full((2, 2), float("nan")), epsilon)
    for env in (probed, twin, plus, minus):
        env.close()


def test_the_probe_buffer_keeps_the_newest_probes_and_refuses_bad_ones():
    buffer = GradientProbeBuffer(capacity=3, length=2, image_shape=(3, 4, 4), action_size=2)
    with pytest.raises(ValueError, match="empty"):
        buffer.sample(1)
    for value in range(4):
        buffer.add(torch.zeros(1, 2, 3, 4, 4), torch.zeros(1, 2, 2), torch.full((1, 2), float(value)))
    assert len(buffer) == 3 and sorted(buffer.gradients[:, 0].tolist()) == [1.0, 2.0, 3.0]
    assert buffer.gradient_scale() == pytest.approx(2.0 * np.sqrt(2.0))
    frames, actions, gradients = buffer.sample(5)
    assert frames.dtype == torch.uint8 and frames.shape == (5, 2, 3, 4, 4) and gradients.shape == (5, 2)
    with pytest.raises(ValueError, match="non-finite"):
        buffer.add(torch.zeros(1, 2, 3, 4, 4), torch.zeros(1, 2, 2), torch.full((1, 2), float("inf")))
    with pytest.raises(ValueError, match="2 frames"):
        buffer.add(torch.zeros(1, 3, 3, 4, 4), torch.zeros(1, 3, 2), torch.zeros(1, 2))


def test_gradient_matching_needs_fine_tuning_and_a_forward_model_that_can_branch(policy_inputs):
    with pytest.raises(ValueError, match="finetune_steps"):
        DMOConfig(gradient_matching_scale=1.0, finetune_steps=0)
    with pytest.raises(ValueError, match="gradient_probe_epsilon"):
        DMOConfig(gradient_probe_epsilon=-1.0)
    from dmo_ros.dmo.imagined_env import ImaginedEnv
    from dmo_ros.world_model.denoiser import load_world_model

    world_model = load_world_model(policy_inputs["world_model"])
    starts = StartWindows([policy_inputs["dataset"]], context=world_model.config.context, seed=0)
    config = DMOConfig.preset("tiny", gradient_matching_scale=1.0)
    imagined = ImaginedEnv(world_model, load_reward_model(policy_inputs["reward"]),
                           load_goal_image(policy_inputs["goal"], size=(32, 32)), starts, config.batch_size)
    with pytest.raises(ValueError, match="--forward simulator"):  # the world model (rung 2) cannot branch yet
        LatentSAPO("dmo", load_local_model(policy_inputs["local_model"]), starts, config, SAPOConfig.preset("tiny"),
                   np.array([0.25, 0.25]), imagined)


def _matching_error(algorithm: LatentSAPO) -> tuple[float, float]:
    """The matching loss and mean cosine over every stored probe (no sampling)."""
    probes = algorithm.probes
    size = len(probes)
    frames, actions, targets = probes.frames[:size], probes.actions[:size], probes.gradients[:size]
    local = algorithm.local
    with torch.enable_grad():
        posteriors, _ = local.observe(frames, actions, sample=False)
        action = actions[:, -1].clone().requires_grad_(True)
        state = local.rssm.prior_step(posteriors.at(-1), action, sample=False)
        (gradient,) = torch.autograd.grad(local.reward(state).sum(), action)
    scale = probes.gradient_scale()
    loss = float((gradient / scale - targets / scale).pow(2).sum(-1).mean())
    return loss, float(torch.nn.functional.cosine_similarity(gradient, targets, dim=-1).mean())


def test_gradient_matching_fits_the_local_gradient_to_the_simulator_probes(policy_inputs):
    """Learning test: with the matching loss the fine-tuning turns the local one-step gradient toward the probes'
    finite differences (an epoch probes each episode once; the untrained reward head's gradient is 0 at first)."""
    torch.manual_seed(0)
    config = DMOConfig.preset("tiny", finetune_steps=1, finetune_batch_size=8, finetune_lr=1e-3,
                              gradient_matching_scale=1000.0, replay_capacity=8)
    env = _env(policy_inputs, batch_size=config.batch_size)
    starts = StartWindows([policy_inputs["dataset"]], context=4, seed=0)
    algorithm = LatentSAPO("dmo", load_local_model(policy_inputs["local_model"]), starts, config,
                           SAPOConfig.preset("tiny"), np.array([0.25, 0.25]), env)
    logs = algorithm.train_epoch()
    assert len(algorithm.probes) == config.batch_size
    assert env.samples == config.batch_size * (SAPOConfig.preset("tiny").horizon + 4)  # rollout + 2A branches each
    before, cosine_before = _matching_error(algorithm)
    for _ in range(150):
        logs = algorithm._finetune()
    after, cosine_after = _matching_error(algorithm)
    assert {"local/gradient_matching_loss", "local/probe_gradient_cosine"} <= set(logs)
    assert after < 0.3 * before and cosine_after > max(0.8, cosine_before + 0.3), (before, after, cosine_before,
                                                                                   cosine_after)
    env.close()
