"""EnergyNet (shapes, loss, augmentation, calibration buffers), GoalReward (batching, inputs, scale), loading."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dmo_ros.reward.config import REWARD_PRESETS, RewardConfig
from dmo_ros.reward.energy import EnergyNet, GoalReward, load_reward_model, random_shift, to_model_images
from dmo_ros.reward.pairs import RankingPairs
from dmo_ros.training.checkpoint import save_checkpoint, write_run_config

SIZE = 16


def _config(**overrides) -> RewardConfig:
    return RewardConfig.preset("tiny", image_size=SIZE, **overrides)


def _batch(b: int = 6, seed: int = 0) -> RankingPairs:
    g = torch.Generator().manual_seed(seed)
    images = [torch.randint(0, 256, (b, 3, SIZE, SIZE), generator=g, dtype=torch.uint8) for _ in range(4)]
    return RankingPairs(*images, steps=torch.tensor([[0, 1, 2, 3]] * b), episode=torch.zeros(b, dtype=torch.long),
                        source=torch.zeros(b, dtype=torch.long), tie=torch.zeros(b, dtype=torch.bool))


def test_energy_shapes_and_forward_contract() -> None:
    torch.manual_seed(0)
    model = EnergyNet(_config())
    frames = torch.rand(5, 3, SIZE, SIZE) * 2 - 1
    assert model.energy(frames, frames, frames).shape == (5,)
    loss, logs = model(_batch())
    assert loss.dim() == 0 and loss.requires_grad
    assert {"loss", "bt_loss", "accuracy", "margin", "energy_gap", "energy_std"} <= set(logs)
    assert 0.0 <= logs["accuracy"][0] <= 1.0 and logs["accuracy"][1] == 6  # (value, weight): 6 ordered pairs
    assert all(isinstance(v, float) or (isinstance(v, tuple) and len(v) == 2) for v in logs.values())
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    images = model.sample_images(_batch())["pairs"]
    assert images.shape == (3, 4 * SIZE, 4 * SIZE) and 0 <= images.min() and images.max() <= 1


def test_bradley_terry_loss_matches_the_formula() -> None:
    """loss = mean -log sigma(f(later) - f(earlier)) (+ f^2 penalty); accuracy = share of f(later) > f(earlier)."""
    torch.manual_seed(0)
    model = EnergyNet(_config(energy_l2=0.0)).eval()
    batch = _batch()
    loss, logs = model(batch)
    x = {name: to_model_images(getattr(batch, name)) for name in ("start", "earlier", "later", "goal")}
    f_earlier = model.energy(x["earlier"], x["start"], x["goal"])
    f_later = model.energy(x["later"], x["start"], x["goal"])
    expected = -torch.log(torch.sigmoid(f_later - f_earlier)).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert logs["accuracy"][0] == pytest.approx((f_later > f_earlier).float().mean().item())


def test_tie_items_ask_for_equal_energies() -> None:
    """A tie item's loss is the cross-entropy with target 1/2, (softplus(m) + softplus(-m)) / 2, smallest (log 2)
    at margin 0; ordered items keep -log sigma(m); accuracy and margin count ordered items only."""
    torch.manual_seed(0)
    model = EnergyNet(_config(energy_l2=0.0, tie_changed_share=0.01)).eval()
    batch = _batch()
    batch.tie = torch.tensor([True, False, True, False, False, True])
    loss, logs = model(batch)
    x = {name: to_model_images(getattr(batch, name)) for name in ("start", "earlier", "later", "goal")}
    margin = model.energy(x["later"], x["start"], x["goal"]) - model.energy(x["earlier"], x["start"], x["goal"])
    expected = torch.where(batch.tie, 0.5 * (F.softplus(margin) + F.softplus(-margin)), F.softplus(-margin)).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert logs["accuracy"] == pytest.approx(((margin[~batch.tie] > 0).float().mean().item(), 3))
    assert logs["tie_share"] == pytest.approx(0.5) and logs["tie_margin"] == pytest.approx(
        (margin[batch.tie].abs().mean().item(), 3), rel=1e-5)
    same = _batch()
    same.later, same.tie = same.earlier, torch.ones(6, dtype=torch.bool)
    assert model(same)[0].item() == pytest.approx(np.log(2.0), rel=1e-5)  # the tie loss's minimum


def test_calibration_buffers_update_in_training_only_and_are_saved() -> None:
    torch.manual_seed(0)
    model = EnergyNet(_config())
    state = model.state_dict()
    assert {"energy_gap", "energy_std", "calibration_updates"} <= set(state)
    model.eval()
    model(_batch())
    assert int(model.calibration_updates) == 0 and model.energy_gap.item() == 1.0
    model.train()
    model(_batch(seed=1))
    # The first update replaces the initial value (a running mean), it does not blend with it.
    b = _batch(seed=1)
    with torch.no_grad():
        x = {name: to_model_images(getattr(b, name)) for name in ("start", "goal")}
        gap = (model.energy(x["goal"], x["start"], x["goal"]) - model.energy(x["start"], x["start"], x["goal"]))
    assert int(model.calibration_updates) == 1
    assert model.energy_gap.item() == pytest.approx(gap.mean().item(), rel=1e-4, abs=1e-6)
    model(_batch(seed=2))
    assert int(model.calibration_updates) == 2


def test_random_shift_moves_all_channels_of_an_item_alike() -> None:
    torch.manual_seed(0)
    images = torch.arange(2 * 6 * 8 * 8, dtype=torch.float32).reshape(2, 6, 8, 8)
    assert random_shift(images, 0) is images
    shifted = random_shift(images, 2)
    padded = F.pad(images, (2, 2, 2, 2), mode="replicate")
    for k in range(2):
        # Exactly one whole-pixel offset reproduces the item, for all its channels at once.
        matches = [(dy, dx) for dy in range(5) for dx in range(5)
                   if torch.equal(padded[k, :, dy: dy + 8, dx: dx + 8], shifted[k])]
        assert len(matches) == 1


def test_to_model_images() -> None:
    pixels = np.zeros((4, 5, 3), np.uint8)
    pixels[..., 0] = 255
    x = to_model_images(pixels)
    assert x.shape == (3, 4, 5) and x.dtype == torch.float32
    assert x[0].eq(1).all() and x[1:].eq(-1).all()
    assert torch.equal(to_model_images(torch.from_numpy(pixels).permute(2, 0, 1)), x)
    assert torch.equal(to_model_images(x), x)  # floats are taken as already in [-1, 1]
    with pytest.raises(ValueError, match="uint8"):
        to_model_images(torch.zeros(3, 4, 4, dtype=torch.int32))
    with pytest.raises(ValueError, match="3 colour channels"):
        to_model_images(torch.zeros(2, 4, 4))


def _trained_like(model: EnergyNet, gap: float, std: float) -> EnergyNet:
    model.energy_gap.fill_(gap)
    model.energy_std.fill_(std)
    return model.eval()


def test_goal_reward_normalisation_batching_and_inputs() -> None:
    torch.manual_seed(0)
    model = _trained_like(EnergyNet(_config(condition_on_start=True)), gap=2.5, std=0.5)
    g = torch.Generator().manual_seed(3)
    goal = torch.randint(0, 256, (3, SIZE, SIZE), generator=g, dtype=torch.uint8)
    starts = torch.randint(0, 256, (2, 3, SIZE, SIZE), generator=g, dtype=torch.uint8)
    frames = torch.randint(0, 256, (2, 4, 3, SIZE, SIZE), generator=g, dtype=torch.uint8)
    reward = GoalReward(model, goal.permute(1, 2, 0).numpy())  # (H, W, 3) numpy, as load_goal_image gives
    with pytest.raises(RuntimeError, match="set_start"):
        reward(frames[0])
    reward.set_start(starts)
    r = reward(frames)
    assert r.shape == (2, 4) and not r.requires_grad
    # By hand: (f(o | s, g) - f(s | s, g)) / gap, with the context of each row's own start.
    for b in range(2):
        s, gl = to_model_images(starts[b:b + 1]), to_model_images(goal[None])
        o = to_model_images(frames[b])
        with torch.no_grad():
            expected = (model.energy(o, s.expand_as(o), gl.expand_as(o)) - model.energy(s, s, gl)) / 2.5
        torch.testing.assert_close(r[b], expected, rtol=1e-5, atol=1e-5)
    # uint8 and float inputs, channels first or last, give the same rewards; the start scores 0.
    as_float = to_model_images(frames)
    torch.testing.assert_close(reward(as_float), r)
    torch.testing.assert_close(reward(frames.permute(0, 1, 3, 4, 2).numpy()), r)
    assert reward(starts).abs().max() < 1e-5
    # One start for a flat batch of frames.
    single = GoalReward(model, goal, start=starts[0])
    torch.testing.assert_close(single(frames[0]), r[0])
    with pytest.raises(ValueError, match="leading shape"):
        reward(frames[0, :3])
    with pytest.raises(ValueError, match="takes 16x16"):
        reward(torch.zeros(2, 3, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        GoalReward(model, torch.full((3, SIZE, SIZE), 200.0))


def test_the_default_reward_is_a_function_of_the_frame_alone() -> None:
    """Without start conditioning (the default) a frame scores the same from any start: (f(o|g) - mean f) / scale."""
    torch.manual_seed(0)
    model = _trained_like(EnergyNet(_config()), gap=2.0, std=0.5)
    assert not model.config.condition_on_start
    model.energy_mean.fill_(0.3)
    g = torch.Generator().manual_seed(4)
    goal, frames = (torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)
                    for shape in ((3, SIZE, SIZE), (5, 3, SIZE, SIZE)))
    reward = GoalReward(model, goal)
    without_start = reward(frames)  # no start needed
    with torch.no_grad():
        o, gl = to_model_images(frames), to_model_images(goal[None])
        expected = (model.energy(o, o, gl.expand_as(o)) - 0.3) / 2.0
    torch.testing.assert_close(without_start, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(reward(frames, start=frames[0]), without_start)
    torch.testing.assert_close(reward(frames, start=frames[3]), without_start)
    # Training-mode forward passes track the mean energy of training frames (the reward's reference).
    model.train()
    before = model.energy_mean.clone()
    images = torch.randint(0, 256, (4, 3, SIZE, SIZE), dtype=torch.uint8)
    model(RankingPairs(images, images, images, images, torch.zeros(4, 4, dtype=torch.int64),
                       torch.zeros(4, dtype=torch.int64), torch.zeros(4, dtype=torch.int64),
                       torch.zeros(4, dtype=torch.bool)))
    assert not torch.equal(model.energy_mean, before)


def test_runs_saved_before_the_option_load_as_start_conditioned() -> None:
    saved = {k: v for k, v in vars(_config()).items() if k != "condition_on_start"}
    assert RewardConfig.from_dict(saved).condition_on_start


def test_goal_reward_scale_floors_and_gradients() -> None:
    torch.manual_seed(0)
    model = _trained_like(EnergyNet(_config()), gap=-1.0, std=0.25)  # a gap below the spread: the spread is used
    assert model.reward_scale().item() == 0.25
    goal = torch.zeros(3, SIZE, SIZE, dtype=torch.uint8)
    frames = torch.randint(0, 256, (3, 3, SIZE, SIZE), dtype=torch.uint8)
    with_grad = GoalReward(model, goal, start=frames[0], grad=True)(frames)
    assert with_grad.requires_grad
    with_grad.sum().backward()
    assert any(p.grad is not None for p in model.parameters())


def test_head_runs_in_float32_under_autocast() -> None:
    model = EnergyNet(_config()).eval()
    x = torch.rand(2, 3, SIZE, SIZE) * 2 - 1
    with torch.autocast("cpu", dtype=torch.bfloat16):
        f = model.energy(x, x, x)
    assert f.dtype == torch.float32


def test_load_reward_model_refuses_a_run_of_another_kind(tmp_path: Path) -> None:
    """A world-model run given as --reward-run was refused only by a list of 'unknown RewardConfig field(s)'."""
    write_run_config(tmp_path, {"kind": "world_model", "model": {"channels": [8]}})
    with pytest.raises(ValueError, match="holds a world model run .*not a reward model run.*dmo-train-reward"):
        load_reward_model(tmp_path, "cpu")


def test_load_reward_model_from_a_run(tmp_path: Path) -> None:
    torch.manual_seed(0)
    config = _config(channels=(8, 16))
    model = _trained_like(EnergyNet(config), gap=3.0, std=1.5)
    write_run_config(tmp_path, json.loads(json.dumps({"kind": "reward", "model": asdict(config)})))
    save_checkpoint(tmp_path, 1, model.state_dict(), {"step": 1}, {})
    loaded = load_reward_model(tmp_path, "cpu")
    assert loaded.config == config and not loaded.training
    assert loaded.energy_gap.item() == 3.0 and loaded.reward_scale().item() == 3.0
    x = torch.rand(2, 3, SIZE, SIZE) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(loaded.energy(x, x, x), model.energy(x, x, x))


def test_config_presets_and_validation() -> None:
    assert set(REWARD_PRESETS) == {"tiny", "cpu", "gpu"}
    tiny = RewardConfig.preset("tiny")
    assert tiny.image_size == 64 and tiny == REWARD_PRESETS["tiny"]
    assert tiny is not REWARD_PRESETS["tiny"] and tiny.channels is not REWARD_PRESETS["tiny"].channels
    sizes = [sum(p.numel() for p in EnergyNet(RewardConfig.preset(name)).parameters())
             for name in ("tiny", "cpu", "gpu")]
    assert sizes == sorted(sizes)
    with pytest.raises(ValueError, match="unknown reward preset 'huge'"):
        RewardConfig.preset("huge")
    with pytest.raises(ValueError, match="unknown RewardConfig field"):
        RewardConfig.from_dict({"image_size": 64, "colour": 3})
    assert RewardConfig.from_dict(json.loads(json.dumps(asdict(tiny)))) == tiny  # the config.json round trip
    for bad in ({"min_span": 0}, {"max_span": 2, "min_span": 3}, {"channels": ()}, {"shift_augment": -1},
                {"image_size": 16, "channels": (8, 8, 8, 8, 8)}, {"calibration_momentum": 1.0},
                {"negative_fraction": -0.1}, {"negative_fraction": 1.0}, {"tie_changed_share": -0.01},
                {"tie_changed_share": 1.0}):
        with pytest.raises(ValueError):
            RewardConfig(**bad)


@pytest.mark.parametrize("condition_on_start", [True, False])
def test_a_goal_set_rewards_each_frame_by_its_best_goal(condition_on_start: bool) -> None:
    """K goal pictures: r(o) = max_k r_k(o), each r_k the single-picture reward; a set of one is the picture."""
    torch.manual_seed(0)
    model = _trained_like(EnergyNet(_config(condition_on_start=condition_on_start)), gap=2.0, std=0.5)
    g = torch.Generator().manual_seed(5)
    goals = torch.randint(0, 256, (3, 3, SIZE, SIZE), generator=g, dtype=torch.uint8)
    starts = torch.randint(0, 256, (2, 3, SIZE, SIZE), generator=g, dtype=torch.uint8)
    frames = torch.randint(0, 256, (2, 4, 3, SIZE, SIZE), generator=g, dtype=torch.uint8)
    each = torch.stack([GoalReward(model, goal, start=starts)(frames) for goal in goals])
    best = GoalReward(model, goals.permute(0, 2, 3, 1).numpy(), start=starts)(frames)  # (K, H, W, 3) as loaded
    torch.testing.assert_close(best, each.amax(0))
    assert (each.argmax(0) != each.argmax(0).flatten()[0]).any()  # different goals win for different frames
    torch.testing.assert_close(GoalReward(model, goals[:1], start=starts)(frames), each[0])
    with pytest.raises(ValueError, match=r"\(K, 3, H, W\)"):
        GoalReward(model, torch.zeros(2, 2, 3, SIZE, SIZE, dtype=torch.uint8))
