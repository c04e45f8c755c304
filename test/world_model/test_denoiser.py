"""EDM denoiser: preconditioning constants, the training loss, noise levels, configs, loading weights."""

from __future__ import annotations

import math
from dataclasses import asdict, replace

import pytest
import torch
from safetensors.torch import load_file, save_file

from dmo_ros.dataset.loaders import Window
from dmo_ros.world_model.config import PRESETS, SamplerConfig, WorldModelConfig
from dmo_ros.world_model.denoiser import Denoiser, edm_preconditioning, to_model_range, world_model_from_state
from dmo_ros.world_model.sampler import DiffusionSampler

SIZE = 16


def tiny(action_scale: tuple[float, float] = (0.25, 0.25), **overrides) -> Denoiser:
    torch.manual_seed(0)
    return Denoiser(WorldModelConfig.preset("tiny", 2, list(action_scale), image_size=SIZE, **overrides))


def windows(batch: int = 3, context: int = 4, horizon: int = 1, seed: int = 0) -> Window:
    g = torch.Generator().manual_seed(seed)
    t = context + horizon
    return Window(
        frames=torch.randint(0, 256, (batch, t, 3, SIZE, SIZE), generator=g, dtype=torch.uint8),
        actions=torch.rand((batch, t, 2), generator=g) * 0.5 - 0.25,
        intent=torch.zeros(batch, t, dtype=torch.bool),
        milestone=torch.zeros(batch, t),
        episode=torch.zeros(batch, dtype=torch.int64),
        start=torch.zeros(batch, dtype=torch.int64),
        context=context,
    )


def randomise_zero_layers(model: Denoiser) -> None:
    """Output convs start at zero (F = 0, every block the identity); give them weights so all inputs show in D."""
    torch.manual_seed(1)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.ndim > 1 and not parameter.any():
                parameter.normal_(std=0.1)


# -- preconditioning ---------------------------------------------------------------------------


@pytest.mark.parametrize("sigma", [2e-3, 0.5, 1.0, 5.0, 20.0])
def test_preconditioning_matches_the_edm_formulas(sigma: float) -> None:
    sd = 0.5
    c = edm_preconditioning(torch.tensor([sigma], dtype=torch.float64), sd)
    root = math.sqrt(sigma**2 + sd**2)
    assert c.c_in.item() == pytest.approx(1 / root, rel=1e-12)
    assert c.c_skip.item() == pytest.approx(sd**2 / (sigma**2 + sd**2), rel=1e-12)
    assert c.c_out.item() == pytest.approx(sigma * sd / root, rel=1e-12)
    assert c.c_noise.item() == pytest.approx(math.log(sigma) / 4, rel=1e-12)


def test_preconditioning_at_sigma_data_by_hand() -> None:
    c = edm_preconditioning(torch.tensor(0.5), 0.5)
    assert c.c_in.item() == pytest.approx(1 / (0.5 * math.sqrt(2)))  # 1.4142
    assert c.c_skip.item() == pytest.approx(0.5)
    assert c.c_out.item() == pytest.approx(0.5 / math.sqrt(2))  # 0.3536
    assert c.c_noise.item() == pytest.approx(math.log(0.5) / 4)  # -0.1733
    # At low noise D is (almost) the identity; at high noise (almost) all F.
    low, high = edm_preconditioning(torch.tensor(2e-3), 0.5), edm_preconditioning(torch.tensor(20.0), 0.5)
    assert low.c_skip.item() > 0.9999 and low.c_out.item() < 2.1e-3
    assert high.c_skip.item() < 1e-3 and high.c_out.item() == pytest.approx(0.5, rel=1e-3)


def test_untrained_denoiser_is_c_skip_times_its_input() -> None:
    """The zero-initialised output layer makes F = 0, so D(x) = c_skip x: checks the wiring of the scalings."""
    model, w = tiny(), windows()
    noisy = torch.randn(3, 3, SIZE, SIZE)
    sigma = torch.tensor([0.1, 0.5, 3.0])
    out = model.denoise(noisy, sigma, w.context_frames, w.context_actions)
    c_skip = edm_preconditioning(sigma, 0.5).c_skip.view(3, 1, 1, 1)
    torch.testing.assert_close(out, c_skip * noisy)


def test_actions_are_divided_by_the_action_scale() -> None:
    """A model with action_scale s fed s * a equals the same weights with scale 1 fed a."""
    scaled, unit = tiny(), tiny(action_scale=(1.0, 1.0))
    randomise_zero_layers(scaled)
    unit.load_state_dict(scaled.state_dict())
    w, noisy = windows(), torch.randn(3, 3, SIZE, SIZE)
    a = w.context_actions
    torch.testing.assert_close(scaled.denoise(noisy, 0.7, w.context_frames, a * 0.25),
                               unit.denoise(noisy, 0.7, w.context_frames, a))
    assert not torch.allclose(scaled.denoise(noisy, 0.7, w.context_frames, a),
                              unit.denoise(noisy, 0.7, w.context_frames, a))


# -- training ------------------------------------------------------------------------------


def test_loss_is_a_finite_scalar_and_trains_every_parameter() -> None:
    model = tiny(context_noise=0.05)
    randomise_zero_layers(model)
    loss, logs = model(windows(horizon=3))  # horizon > 1: the first future frame is the target
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert set(logs) >= {"loss", "sigma_mean"} and all(isinstance(v, float) for v in logs.values())
    assert logs["loss"] == pytest.approx(loss.item())
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing


def test_patch_stem_keeps_every_pixel_and_the_output_shape() -> None:
    """patch_size 2 folds 2x2 pixels into channels and unfolds the output: each output pixel sees its input pixel."""
    model = tiny(patch_size=2)
    randomise_zero_layers(model)
    batch = windows()
    context, actions, target = model._split_window(batch)
    noisy = target.clone().requires_grad_(True)
    out = model.inner_model(noisy, torch.zeros(3), context, actions)  # F alone: no c_skip path to the pixel
    assert out.shape == target.shape
    out[:, :, 5, 6].sum().backward()  # an odd column: lost if the stem only looked at every other pixel
    assert noisy.grad[:, :, 5, 6].abs().sum() > 0
    with pytest.raises(ValueError, match="patch_size must be >= 1 and divide image_size 16"):
        WorldModelConfig.preset("tiny", 2, image_size=SIZE, patch_size=3)


def test_untrained_loss_is_the_f_target_variance() -> None:
    """F = 0 at init, so the loss is E[((x0 - c_skip x_sigma) / c_out)^2], about 1 for data of std sigma_data."""
    model = tiny()
    torch.manual_seed(3)
    w = windows(batch=64)
    w.frames = (torch.randn(w.frames.shape) * 0.5 * 127.5 + 127.5).clamp(0, 255).to(torch.uint8)  # std ~0.5
    loss, _ = model(w)
    assert 0.7 < loss.item() < 1.3


def test_training_sigmas_are_log_normal_and_clipped() -> None:
    model = tiny()
    torch.manual_seed(0)
    sigma = model.sample_sigma(200_000, "cpu")
    assert sigma.min().item() >= 2e-3 and sigma.max().item() == pytest.approx(20.0)
    log_sigma = sigma.log()
    assert log_sigma.median().item() == pytest.approx(-0.4, abs=0.02)
    inside = log_sigma[(sigma > 2e-3) & (sigma < 20)]
    assert inside.std().item() == pytest.approx(1.2, rel=0.03)  # clipping trims only ~0.2 % above 20
    assert (sigma == 20).float().mean().item() == pytest.approx(0.0023, abs=0.001)  # P(z > 2.83)


def test_windows_that_do_not_fit_are_refused() -> None:
    model = tiny()
    with pytest.raises(ValueError, match="context=4 and horizon >= 1"):
        model(windows(context=3, horizon=2))
    with pytest.raises(ValueError, match="context=4 and horizon >= 1"):
        model(windows(context=4, horizon=0))
    bigger = windows()
    bigger.frames = torch.zeros(3, 5, 3, 32, 32, dtype=torch.uint8)
    with pytest.raises(ValueError, match=r"\(B, 3, 16, 16\)"):
        model(bigger)


def test_sample_images_are_rows_of_context_prediction_truth_in_unit_range() -> None:
    model = tiny()
    w = windows(batch=6)
    images = model.sample_images(w, sampler_config=SamplerConfig(num_steps=2))
    grid = images["next_frame"]
    assert grid.shape == (4, 3, SIZE, 3 * SIZE)
    assert grid.min() >= 0 and grid.max() <= 1
    torch.testing.assert_close(grid[..., :SIZE], (to_model_range(w.frames[:4, 3]) + 1) / 2)
    torch.testing.assert_close(grid[..., 2 * SIZE :], (to_model_range(w.frames[:4, 4]) + 1) / 2)


# -- configs and loading ---------------------------------------------------------------------------


def test_presets_and_parameter_counts() -> None:
    assert set(PRESETS) == {"tiny", "cpu", "gpu"}
    counts = {name: Denoiser(WorldModelConfig.preset(name, 2)).num_parameters for name in PRESETS}
    assert counts["tiny"] < 200_000 < counts["cpu"] < 2_000_000
    assert 4.3e6 < counts["gpu"] < 4.5e6  # DIAMOND's ~4.4 M at channels [64, 64, 64, 64]
    with pytest.raises(ValueError, match="valid presets: tiny, cpu, gpu"):
        WorldModelConfig.preset("huge", 2)
    with pytest.raises(ValueError, match="unknown WorldModelConfig fields"):
        WorldModelConfig.preset("tiny", 2, chanels=[8])


def test_config_validation_says_what_to_fix() -> None:
    assert WorldModelConfig(action_size=3).action_scale == [1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="one scale per action component"):
        WorldModelConfig(action_size=3, action_scale=[1.0, 2.0])
    with pytest.raises(ValueError, match="positive"):
        WorldModelConfig(action_scale=[1.0, 0.0])
    with pytest.raises(ValueError, match="one entry per UNet level"):
        WorldModelConfig(channels=[32, 32], depths=[1, 1, 1])
    with pytest.raises(ValueError, match="unknown WorldModelConfig keys"):
        WorldModelConfig.from_dict({"action_size": 2, "sigma_dat": 0.5})
    with pytest.raises(ValueError, match="Euler"):
        SamplerConfig(order=3)
    config = WorldModelConfig.preset("cpu", 2, [0.25, 0.1])
    assert WorldModelConfig.from_dict(asdict(config)) == config
    # A new level count without attention flags: no attention per level, not a length mismatch.
    assert WorldModelConfig.preset("gpu", 2, channels=[32, 32], depths=[1, 1]).attention == [False, False]


def test_weights_round_trip_through_safetensors(tmp_path) -> None:
    model = tiny()
    randomise_zero_layers(model)
    save_file(model.state_dict(), str(tmp_path / "model.safetensors"))
    loaded = world_model_from_state(asdict(model.config), load_file(str(tmp_path / "model.safetensors")))
    assert not loaded.training
    w, noisy = windows(), torch.randn(3, 3, SIZE, SIZE)
    torch.testing.assert_close(loaded.denoise(noisy, 1.0, w.context_frames, w.context_actions),
                               model.denoise(noisy, 1.0, w.context_frames, w.context_actions))
    with pytest.raises(RuntimeError, match="size mismatch"):
        world_model_from_state(asdict(WorldModelConfig.preset("tiny", 2, image_size=SIZE, channels=[8, 8])),
                               model.state_dict())


def test_residual_model_starts_by_repeating_the_last_frame_and_samples_around_it() -> None:
    # An untrained F outputs 0, so D = last frame + c_skip (x_sigma - last frame): the last frame at high noise,
    # and sampling (which starts around the last frame) ends on it.
    config = WorldModelConfig.preset("tiny", 2, image_size=16, predict_residual=True, sigma_data=0.1)
    model = Denoiser(config).eval()
    frames = torch.rand(3, 4, 3, 16, 16) * 2 - 1
    actions = torch.randn(3, 4, 2)
    out = model.denoise(frames[:, -1] + 5.0 * torch.randn(3, 3, 16, 16), 5.0, frames, actions)
    torch.testing.assert_close(out, frames[:, -1], atol=0.02, rtol=0)
    sampled = DiffusionSampler(model).sample(frames, actions, torch.Generator().manual_seed(0))
    assert (sampled - frames[:, -1]).abs().mean() < 0.05  # frames are uniform in [-1, 1]: mean |x| is 0.5
    plain = Denoiser(replace(config, predict_residual=False)).eval()  # the same untrained F samples ~0 instead
    assert DiffusionSampler(plain).sample(frames, actions).abs().mean() < 0.1


def test_change_weight_weights_only_the_pixels_that_move() -> None:
    # Same noise, same weights: the weighted loss exceeds the plain one by the changed pixels' share.
    still = torch.full((2, 5, 3, 16, 16), 0.5)
    moved = still.clone()
    moved[:, 4, :, :4, :4] = -0.5  # a 4x4 patch (1/16 of the pixels) changes in the target frame
    window = windows(batch=2)
    window.frames = moved.mul(127.5).add(127.5).round().to(torch.uint8)
    base = WorldModelConfig.preset("tiny", 2, image_size=16)
    plain, weighted = Denoiser(base), Denoiser(replace(base, change_weight=9.0))
    weighted.load_state_dict(plain.state_dict())
    torch.manual_seed(0)
    loss_plain, _ = plain(window)
    torch.manual_seed(0)
    loss_weighted, logs = weighted(window)
    assert logs["changed_pixels"] == pytest.approx(1 / 16)
    assert loss_weighted > loss_plain
    with pytest.raises(ValueError, match="change_weight"):
        WorldModelConfig(change_weight=-1.0)
    # Context noise (robustness to the model's own hazy frames) does not make the still pixels count as changed.
    noisy = Denoiser(replace(base, change_weight=9.0, context_noise=0.2)).train()
    assert noisy(window)[1]["changed_pixels"] == pytest.approx(1 / 16)


def test_load_world_model_refuses_a_run_of_another_kind(tmp_path) -> None:
    """A reward run given as the world model was refused only by a list of 'unknown WorldModelConfig keys'."""
    from dmo_ros.training.checkpoint import write_run_config
    from dmo_ros.world_model.denoiser import load_world_model

    write_run_config(tmp_path, {"kind": "reward", "model": {"hidden_size": 8}})
    with pytest.raises(ValueError, match="holds a reward model run .*not a world model run.*dmo-train-world-model"):
        load_world_model(tmp_path)


def test_rollout_context_trains_on_the_models_own_frames(monkeypatch) -> None:
    # rollout_context 2: windows of context + 3 frames; the target is the last, and with j imagined frames the
    # context's last j are the model's own samples from the recorded context j steps earlier.
    model = tiny(rollout_context=2, predict_residual=True, sigma_data=0.1, sigma_loc=-2.0)
    randomise_zero_layers(model)
    model.train()
    window = windows(batch=2, horizon=3)
    frames = to_model_range(window.frames)
    for imagined in (0, 1, 2):
        monkeypatch.setattr(torch, "randint", lambda low, high, size, imagined=imagined: torch.tensor(imagined))
        torch.manual_seed(3)
        context, actions, target, last_real, count = model._imagined_context(window)
        assert count == imagined and torch.equal(target, frames[:, -1]) and torch.equal(last_real, frames[:, -2])
        assert torch.equal(actions, window.actions[:, 2:6].float())  # the recorded actions of the last context
        start = 2 - imagined
        real_part = context[:, : 4 - imagined]
        assert torch.equal(real_part, frames[:, start + imagined : start + 4])
        expected = frames[:, start : start + 4]
        sampler = DiffusionSampler(model)
        torch.manual_seed(3)
        for offset in range(start, 2):  # the same samples (the same noise), step by step
            frame = sampler.sample(expected, window.actions[:, offset : offset + 4].float())
            expected = torch.cat([expected[:, 1:], frame[:, None]], dim=1)
        assert torch.allclose(context, expected, atol=1e-6)
        if imagined:
            assert not torch.equal(context[:, -1], frames[:, -2])  # not the recorded frame
        loss, logs = model(window)
        assert math.isfinite(loss.item()) and logs["imagined_context_frames"] == imagined
    monkeypatch.undo()
    loss.backward()  # the imagined frames carry no graph: only this step's denoising trains
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    # Windows too short for the imagined steps are refused by name; evaluation stays one step on real context.
    with pytest.raises(ValueError, match="rollout_context 2 needs windows"):
        model(windows(batch=2, horizon=1))
    model.eval()
    assert math.isfinite(model(windows(batch=2, horizon=1))[0].item())
    with pytest.raises(ValueError, match="rollout_context"):
        WorldModelConfig(rollout_context=-1)
