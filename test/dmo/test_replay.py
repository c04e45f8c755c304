"""The fine-tuning replay and the gradient-matching probes survive a checkpoint: saved through
``torch.load(weights_only=True)`` and put back, a buffer samples what the uninterrupted one samples next."""

from __future__ import annotations

import io

import pytest
import torch

from dmo_ros.dmo.replay import GradientProbeBuffer, ReplayBuffer


def _through_a_checkpoint(state: dict) -> dict:
    stream = io.BytesIO()
    torch.save(state, stream)
    stream.seek(0)
    return torch.load(stream, weights_only=True)  # as dmo_ros.training.checkpoint.load_trainer_state reads it


def _replay(capacity: int = 3, seed: int = 0) -> ReplayBuffer:
    return ReplayBuffer(capacity, length=4, image_shape=(3, 4, 4), action_size=2, seed=seed)


def _fill_replay(buffer: ReplayBuffer, count: int) -> None:
    for value in range(count):
        frames = torch.full((1, 4, 3, 4, 4), value, dtype=torch.uint8)
        buffer.add(frames, torch.full((1, 3, 2), float(value)), torch.full((1, 4), float(value)))


@pytest.mark.parametrize("count", [2, 5])  # part filled; wrapped round (the cursor not at the end)
def test_the_replay_buffer_resumes_where_it_stopped(count):
    buffer = _replay()
    _fill_replay(buffer, count)
    buffer.sample(2, 3)  # the sampling RNG has moved: the copy must go on from here, not from its seed
    resumed = _replay(seed=99)
    resumed.load_state_dict(_through_a_checkpoint(buffer.state_dict()))
    assert (len(resumed), resumed.cursor) == (len(buffer), buffer.cursor)
    for _ in range(3):
        expected, got = buffer.sample(4, 3), resumed.sample(4, 3)
        assert torch.equal(got.frames, expected.frames) and torch.equal(got.actions, expected.actions)
        assert torch.equal(got.rewards, expected.rewards)
    # The next add overwrites the same row in both.
    _fill_replay(buffer, 1)
    _fill_replay(resumed, 1)
    assert torch.equal(resumed.frames, buffer.frames) and resumed.cursor == buffer.cursor


def test_the_probe_buffer_resumes_where_it_stopped():
    buffer = GradientProbeBuffer(capacity=4, length=2, image_shape=(3, 4, 4), action_size=2, seed=0)
    for value in range(6):
        buffer.add(torch.full((1, 2, 3, 4, 4), value, dtype=torch.uint8), torch.full((1, 2, 2), float(value)),
                   torch.full((1, 2), float(value)))
    resumed = GradientProbeBuffer(capacity=4, length=2, image_shape=(3, 4, 4), action_size=2, seed=5)
    resumed.load_state_dict(_through_a_checkpoint(buffer.state_dict()))
    assert resumed.gradient_scale() == buffer.gradient_scale()
    for expected, got in zip(buffer.sample(8), resumed.sample(8), strict=True):
        assert torch.equal(got, expected)


def test_a_saved_buffer_that_does_not_fit_is_refused_with_the_fix():
    buffer = _replay(capacity=3)
    _fill_replay(buffer, 3)
    state = buffer.state_dict()
    with pytest.raises(ValueError, match="another horizon, capacity or image size"):
        _replay(capacity=2).load_state_dict(state)  # a smaller --replay-capacity
    with pytest.raises(ValueError, match="replay buffer holds frames"):
        ReplayBuffer(3, length=5, image_shape=(3, 4, 4), action_size=2).load_state_dict(state)  # another horizon
    untouched = _replay()
    with pytest.raises(ValueError):
        untouched.load_state_dict({**state, "actions": state["actions"][:, :, :1]})
    assert len(untouched) == 0 and untouched.frames.abs().sum() == 0  # a refused state leaves nothing half-loaded
