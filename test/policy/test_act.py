"""ACT: the network learns, temporal ensembling averages as the ACT authors do, and a run loads as a policy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dmo_ros.policy.act import ACTConfig, ActionChunks, ACTModel, ACTPolicy, TemporalEnsemble
from dmo_ros.training.loop import seed_everything

IMAGE, CHUNK = 16, 3
PATTERNS = 4


def known_task() -> tuple[torch.Tensor, torch.Tensor]:
    """Four distinct frames, each showing one of four colours; frame k is followed by a known action sequence:
    action[t] = [cos(k + t), sin(2k - t), k/4 - t/8] (a different chunk per frame)."""
    colours = torch.tensor([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0]], dtype=torch.uint8)
    frames = colours[:, :, None, None].expand(-1, -1, IMAGE, IMAGE).contiguous()
    k = torch.arange(PATTERNS, dtype=torch.float32)[:, None]
    t = torch.arange(CHUNK, dtype=torch.float32)[None, :]
    actions = torch.stack([torch.cos(k + t), torch.sin(2 * k - t), k / 4 - t / 8], dim=-1)  # (4, K, 3)
    return frames, actions


def tiny_config() -> ACTConfig:
    return ACTConfig.preset("tiny", image_size=IMAGE, action_size=3, chunk_size=CHUNK, random_shift=0,
                            kl_weight=1.0)


def test_act_recovers_a_known_action_sequence_from_observations():
    seed_everything(0)
    frames, actions = known_task()
    model = ACTModel(tiny_config())
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    batch = ActionChunks(frames.repeat(4, 1, 1, 1), actions.repeat(4, 1, 1), torch.ones(16, CHUNK, dtype=torch.bool))
    before = (model.eval().predict(frames) - actions).abs().mean().item()
    model.train()
    for _ in range(300):
        loss, logs = model(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    error = (model.eval().predict(frames) - actions).abs().max().item()
    assert before > 0.3, before
    assert error < 0.1, f"the chunks were not recovered: max |error| {error:.3f} (before training {before:.3f})"
    assert set(logs) == {"loss", "l1", "kl"}


def test_padded_steps_do_not_count_in_the_loss():
    seed_everything(0)
    frames, actions = known_task()
    model = ACTModel(tiny_config()).eval()
    valid = torch.ones(PATTERNS, CHUNK, dtype=torch.bool)
    valid[:, -1] = False
    torch.manual_seed(1)
    loss, logs = model(ActionChunks(frames, actions, valid))
    changed = actions.clone()
    changed[:, -1] += 100.0  # garbage where padded: the same L1
    torch.manual_seed(1)
    _, logs_changed = model(ActionChunks(frames, changed, valid))
    assert logs_changed["l1"].item() == pytest.approx(logs["l1"].item(), rel=1e-5)


def test_temporal_ensembling_weights_older_predictions_more():
    ensemble = TemporalEnsemble(chunk_size=3, decay=0.5)
    assert ensemble(np.array([[1.0], [2.0], [3.0]]))[0] == pytest.approx(1.0)
    # Step 1: the first chunk's 2.0 (oldest, weight 1) and the second chunk's 10.0 (weight e^-0.5).
    w = np.exp(-0.5)
    assert ensemble(np.array([[10.0], [20.0], [30.0]]))[0] == pytest.approx((2.0 + w * 10.0) / (1 + w))
    # Step 2: three predictions of it: 3.0, 20.0, 100.0.
    expected = (3.0 + w * 20.0 + w * w * 100.0) / (1 + w + w * w)
    assert ensemble(np.array([[100.0], [200.0], [300.0]]))[0] == pytest.approx(expected)
    # Step 3: the first chunk has run out.
    assert ensemble(np.array([[0.0], [0.0], [0.0]]))[0] == pytest.approx((30.0 + w * 200.0 + w * w * 0.0)
                                                                           / (1 + w + w * w))
    ensemble.reset()
    assert ensemble(np.array([[5.0], [6.0], [7.0]]))[0] == pytest.approx(5.0)
    with pytest.raises(ValueError):
        ensemble(np.zeros((2, 1)))


def test_policy_clamps_and_executes_chunks_open_loop_without_ensembling():
    seed_everything(0)
    model = ACTModel(tiny_config())
    frame = np.zeros((IMAGE, IMAGE, 3), np.uint8)
    chunk = model.eval().predict(torch.zeros(1, 3, IMAGE, IMAGE, dtype=torch.uint8))[0].numpy()
    limit = np.full(3, 1e-3)
    policy = ACTPolicy(model, limit, (IMAGE, IMAGE), temporal_ensembling=False)
    policy.reset()
    actions = [policy.act(frame) for _ in range(CHUNK + 1)]
    assert np.all(np.abs(actions) <= limit + 1e-12)
    wide = ACTPolicy(model, np.full(3, 1e6), (IMAGE, IMAGE), temporal_ensembling=False)
    wide.reset()
    assert np.allclose([wide.act(frame) for _ in range(CHUNK)], chunk, atol=1e-5)
    from dmo_ros.policy.base import PolicyError

    with pytest.raises(PolicyError):
        policy.act(np.zeros((8, 8, 3), np.uint8))


def test_bad_configs_are_refused():
    with pytest.raises(ValueError, match="multiple of 8"):
        ACTConfig(image_size=20)
    with pytest.raises(ValueError, match="action_mean"):
        ACTConfig(action_size=2)
    with pytest.raises(ValueError, match="unknown ACT preset"):
        ACTConfig.preset("huge")
