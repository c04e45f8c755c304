"""The key test: on action-driven toy data the tiny local model learns one-step predictions that use the action.

A 6x6 bright square on a dark 16x16 frame moves by ``3 px x action`` per step (actions uniform in
[-1, 1]^2, positions clipped to the frame); the reward of a frame is minus the square's distance to
a fixed goal point (divided by the largest distance, so in [-1.4, 0]). Training takes ~15 s on one
core, once with each kind of latent (categorical, Gaussian, Gaussian with a residual prior). Then,
on held-out sequences:

- the one-step prior predicts the next frame's reward and image far better than at initialisation;
- with the actions shuffled between sequences it predicts clearly worse (the model uses the action);
- the gradient of the predicted reward with respect to the action points toward the goal — the
  Jacobian DMO's policy gradient is made of.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from dmo_ros.local_model import LocalModel, LocalModelConfig, SequenceBatch

SIZE, SQUARE, STEP = 16, 6, 3.0
SPAN = SIZE - SQUARE
GOAL = np.array([5.0, 5.0])


def _render(position: np.ndarray) -> np.ndarray:
    frame = np.full((3, SIZE, SIZE), 20, np.uint8)
    x, y = np.round(position).astype(int)
    frame[:, y : y + SQUARE, x : x + SQUARE] = 230
    return frame


def toy_sequences(rng: np.random.Generator, count: int, length: int) -> tuple[SequenceBatch, np.ndarray]:
    """``count`` sequences and the square's positions (count, length, 2)."""
    frames = np.zeros((count, length, 3, SIZE, SIZE), np.uint8)
    actions = rng.uniform(-1, 1, (count, length, 2)).astype(np.float32)
    positions = np.zeros((count, length, 2))
    for i in range(count):
        position = rng.uniform(0, SPAN, 2)
        for t in range(length):
            frames[i, t], positions[i, t] = _render(position), position
            position = np.clip(position + STEP * actions[i, t], 0, SPAN)
    rewards = -np.linalg.norm(positions - GOAL, axis=-1) / SPAN
    batch = SequenceBatch(torch.from_numpy(frames), torch.from_numpy(actions),
                          torch.from_numpy(rewards.astype(np.float32)))
    return batch, positions


def _metrics(model: LocalModel, batch: SequenceBatch) -> dict[str, float]:
    model.eval()
    torch.manual_seed(0)
    with torch.no_grad():
        _, logs = model(batch)
    return logs


@pytest.fixture(scope="module", params=[{"latent": "categorical"}, {"latent": "gaussian"},
                                        {"latent": "gaussian", "prior_residual": True}], ids=["categorical", "gaussian",
                                                                                            "gaussian_residual"])
def trained(request):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        rng = np.random.default_rng(0)
        model = LocalModel(LocalModelConfig.preset("tiny", 2, [1.0, 1.0], image_size=SIZE, **request.param))
        held_out, positions = toy_sequences(np.random.default_rng(1), 128, 4)
        initial = _metrics(model, held_out)
        model.train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
        for _ in range(250):
            loss, _ = model(toy_sequences(rng, 16, 4)[0])
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1000.0)
            optimizer.step()
        model.eval()
        yield model, held_out, positions, initial
    finally:
        torch.set_num_threads(threads)


def test_one_step_predictions_are_learned(trained) -> None:
    model, held_out, _, initial = trained
    final = _metrics(model, held_out)
    assert final["reward_error"] < 0.1 and final["reward_error"] < 0.4 * initial["reward_error"], (initial, final)
    assert final["next_image_mse"] < 0.2 and final["next_image_mse"] < 0.4 * initial["next_image_mse"], final
    assert final["reward_error_posterior"] < 0.1, final


def test_predictions_use_the_action(trained) -> None:
    """Shuffling the actions across sequences (an action-blind input) makes every one-step metric clearly worse."""
    model, held_out, _, _ = trained
    order = torch.randperm(len(held_out.actions), generator=torch.Generator().manual_seed(0))
    true, shuffled = _metrics(model, held_out), _metrics(model, replace(held_out, actions=held_out.actions[order]))
    assert shuffled["next_latent_kl"] > 1.5 * true["next_latent_kl"], (true, shuffled)
    assert shuffled["reward_error"] > 1.5 * true["reward_error"], (true, shuffled)
    assert shuffled["next_image_mse"] > 1.5 * true["next_image_mse"], (true, shuffled)


def test_reward_gradient_wrt_action_points_to_the_goal(trained) -> None:
    """d r(prior_step(s, a)) / d a, through the straight-through prior, points from the square toward the goal."""
    model, held_out, positions, _ = trained
    with torch.no_grad():
        posteriors, _ = model.observe(held_out.frames[:, :1], held_out.actions[:, :1], sample=False)
    action = torch.zeros(len(held_out.actions), 2, requires_grad=True)
    prior = model.rssm.prior_step(posteriors.at(0), action, sample=False)
    model.reward(prior).sum().backward()
    toward_goal = torch.from_numpy(GOAL - positions[:, 0]).float()
    far = toward_goal.norm(dim=-1) > 3.0  # near the goal the best direction is ill-defined at 3 px per step
    cosine = torch.nn.functional.cosine_similarity(action.grad[far], toward_goal[far], dim=-1)
    assert torch.isfinite(action.grad).all()
    assert (cosine > 0).float().mean() > 0.8 and cosine.mean() > 0.5, cosine
