"""A rung-0 state model fitted on random commands to a batch of stand-ins: shared by the Push-T and Push Cube
state-model learning tests (test/ladder)."""

from __future__ import annotations

import numpy as np
import torch

from dmo_ros.ladder import rung0


def fit_state_model(envs, observation_size: int, action_size: int, steps: int = 40, updates: int = 300,
                    ) -> tuple[rung0.StateModel, rung0.Replay, torch.Generator, list[float]]:
    """Step ``envs`` ``steps`` times with uniform random commands (closing it after), fit a small state model on
    the transitions; returns the model, its replay, the sampling generator and the training losses."""
    torch.manual_seed(0)
    replay, generator = rung0.Replay(4096, observation_size, action_size), torch.Generator().manual_seed(0)
    states = torch.from_numpy(envs.observations())
    rng = np.random.default_rng(0)
    for _ in range(steps):
        actions = torch.from_numpy(rng.uniform(-1, 1, size=(envs.batch_size, action_size)).astype(np.float32))
        next_states = torch.from_numpy(envs.step(actions.numpy()))
        replay.add(states, actions, next_states)
        states = next_states
    envs.close()
    model = rung0.StateModel(hidden=64, observation_size=observation_size, action_size=action_size)
    state, _, next_state = replay.sample(256, generator)
    model.scale.copy_((next_state - state).std(0).clamp_min(1e-3))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(updates):
        loss = model.loss(*replay.sample(128, generator))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return model, replay, generator, losses
