"""The imagined environment: real start windows, rewards from the recorded episode's start, partial restarts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dmo_ros.dataset.format import open_arrays, read_meta
from dmo_ros.dmo.imagined_env import ImaginedEnv, StartWindows
from dmo_ros.reward.energy import GoalReward, load_reward_model
from dmo_ros.reward.goal_image import load_goal_image
from dmo_ros.world_model.denoiser import load_world_model


def _env(inputs, batch_size=3):
    world_model = load_world_model(inputs["world_model"])
    starts = StartWindows([inputs["dataset"]], context=world_model.config.context, seed=1)
    goal = load_goal_image(inputs["goal"], size=(32, 32))
    return ImaginedEnv(world_model, load_reward_model(inputs["reward"]), goal, starts, batch_size)


def _first_frames(inputs, window):
    meta, frames = read_meta(inputs["dataset"]), open_arrays(inputs["dataset"])["frames"]
    first = {int(ep["index"]): int(ep["start"]) for ep in meta["episodes"]}
    return torch.stack([torch.from_numpy(np.array(frames[first[int(e)]])).permute(2, 0, 1) for e in window.episode])


def test_episodes_start_from_real_windows_and_rewards_from_their_episode_start(policy_inputs):
    env = _env(policy_inputs)
    observation = env.reset()
    window = env.start_window
    assert torch.allclose(observation, window.context_frames[:, -1].float() / 127.5 - 1.0)  # a real frame
    expected = env.reward.images(_first_frames(policy_inputs, window))
    assert torch.equal(env.reward.start, expected)
    frames, rewards = env.step(torch.zeros(3, 2))
    assert frames.shape == (3, 3, 32, 32) and rewards.shape == (3,) and torch.isfinite(rewards).all()
    assert env.samples == 3 and env.steps.tolist() == [1, 1, 1]
    # The default reward is Markov: the frames score the same whatever start the episode has.
    torch.testing.assert_close(rewards, GoalReward(env.reward.model, env.reward.goal)(frames))


def test_reset_some_restarts_only_the_done_episodes(policy_inputs):
    env = _env(policy_inputs)
    env.reset()
    env.step(torch.zeros(3, 2))
    frames_before, start_before = env.context[0].clone(), env.reward.start.clone()
    env.reset_some(torch.tensor([False, True, False]))
    frames_after, _ = env.context
    assert torch.equal(frames_after[[0, 2]], frames_before[[0, 2]])
    assert not torch.equal(frames_after[1], frames_before[1])
    assert torch.equal(env.reward.start[[0, 2]], start_before[[0, 2]])
    assert env.steps.tolist() == [1, 0, 1]


def test_bad_actions_are_refused(policy_inputs):
    env = _env(policy_inputs)
    env.reset()
    with pytest.raises(ValueError, match="non-finite"):
        env.step(torch.tensor([[float("nan"), 0.0]] * 3))
    with pytest.raises(ValueError, match=r"actions must be \(3, 2\)"):
        env.step(torch.zeros(2, 2))
