"""The imagination environment: shapes, the rolling context and its time convention, autograd, devices."""

from __future__ import annotations

import pytest
import torch

from dmo_ros.dataset.loaders import Window
from dmo_ros.world_model.config import SamplerConfig, WorldModelConfig
from dmo_ros.world_model.denoiser import Denoiser, to_model_range
from dmo_ros.world_model.imagination import WorldModelEnv, to_uint8

SIZE, L, B = 8, 4, 3


def denoiser() -> Denoiser:
    torch.manual_seed(0)
    model = Denoiser(WorldModelConfig.preset("tiny", 2, [0.25, 0.25], image_size=SIZE))
    with torch.no_grad():  # zero-initialised layers would make F = 0 and hide the actions' influence
        for parameter in model.parameters():
            if parameter.ndim > 1 and not parameter.any():
                parameter.normal_(std=0.1)
    return model.eval()


def window(horizon: int = 5) -> Window:
    g = torch.Generator().manual_seed(0)
    t = L + horizon
    return Window(frames=torch.randint(0, 256, (B, t, 3, SIZE, SIZE), generator=g, dtype=torch.uint8),
                  actions=torch.rand((B, t, 2), generator=g) * 0.5 - 0.25,
                  intent=torch.zeros(B, t, dtype=torch.bool), milestone=torch.zeros(B, t),
                  episode=torch.zeros(B, dtype=torch.int64), start=torch.zeros(B, dtype=torch.int64), context=L)


class SpySampler:
    """Records what the environment asks the sampler for; 'predicts' a constant frame per call."""

    def __init__(self) -> None:
        self.inputs: list[tuple[torch.Tensor, torch.Tensor]] = []

    def sample(self, frames, actions, generator=None):
        self.inputs.append((frames.clone(), actions.clone()))
        return torch.full_like(frames[:, -1], len(self.inputs) / 10)


def test_reset_takes_uint8_context_and_keeps_the_actions_between_frames() -> None:
    env, w = WorldModelEnv(denoiser()), window()
    observation = env.reset_from_windows(w)
    assert env.batch_size == B and env.frames.shape == (B, L, 3, SIZE, SIZE) and env.frames.dtype == torch.float32
    torch.testing.assert_close(env.frames, to_model_range(w.context_frames))
    torch.testing.assert_close(observation, to_model_range(w.frames[:, L - 1]))
    # The window's last context action leads out of the context: the first step supplies it instead.
    torch.testing.assert_close(env.actions, w.actions[:, : L - 1])
    env.reset(to_model_range(w.context_frames), w.actions[:, : L - 1])  # float frames, L - 1 actions
    torch.testing.assert_close(env.actions, w.actions[:, : L - 1])


def test_step_conditions_on_l_frames_and_l_actions_ending_with_the_new_one_and_rolls() -> None:
    env, w = WorldModelEnv(denoiser()), window()
    env.sampler = spy = SpySampler()
    env.reset_from_windows(w)
    before_frames, before_actions = env.frames.clone(), env.actions.clone()
    action = torch.tensor([[0.1, -0.2]] * B)
    new = env.step(action)
    frames_in, actions_in = spy.inputs[0]
    torch.testing.assert_close(frames_in, before_frames)
    torch.testing.assert_close(actions_in, torch.cat([before_actions, action[:, None]], dim=1))
    # After the step: the new frame and the action that produced it are last in the context.
    torch.testing.assert_close(env.frames[:, -1], new)
    torch.testing.assert_close(env.frames[:, :-1], before_frames[:, 1:])
    torch.testing.assert_close(env.actions[:, -1], action)
    torch.testing.assert_close(env.actions[:, :-1], before_actions[:, 1:])
    torch.testing.assert_close(env.observation, new)


def test_open_loop_replay_feeds_the_recorded_actions_in_window_order() -> None:
    """rollout(window.actions[:, L-1:L-1+H]): frame L + k is conditioned on window.actions[:, k+1 : L+k+1]."""
    env, w = WorldModelEnv(denoiser()), window(horizon=3)
    env.sampler = spy = SpySampler()
    env.reset_from_windows(w)
    env.rollout(w.actions[:, L - 1 : L - 1 + 3])
    for k, (_, actions_in) in enumerate(spy.inputs):
        torch.testing.assert_close(actions_in, w.actions[:, k : L + k])


def test_rollout_shapes_range_and_reproducibility() -> None:
    model, w = denoiser(), window(horizon=5)
    outs = []
    for _ in range(2):
        env = WorldModelEnv(model, SamplerConfig(num_steps=2), generator=torch.Generator().manual_seed(3))
        env.reset_from_windows(w)
        outs.append(env.rollout(w.future_actions))
    frames = outs[0]
    assert frames.shape == (B, 5, 3, SIZE, SIZE) and frames.min() >= -1 and frames.max() <= 1
    assert torch.equal(outs[0], outs[1])


def test_bf16_sampler_config_runs_the_network_in_bfloat16_and_keeps_the_frames_within_two_levels() -> None:
    model, w = denoiser(), window(horizon=3)
    convolution_dtypes: list[torch.dtype] = []
    hooks = [module.register_forward_hook(lambda _m, _i, out: convolution_dtypes.append(out.dtype))
             for module in model.modules() if isinstance(module, torch.nn.Conv2d)]
    frames = {}
    try:
        for bf16 in (False, True):
            convolution_dtypes.clear()
            env = WorldModelEnv(model, model.sampler_with(bf16=bf16), generator=torch.Generator().manual_seed(3))
            env.reset_from_windows(w)
            frames[bf16] = env.rollout(w.future_actions)
            assert set(convolution_dtypes) == {torch.bfloat16 if bf16 else torch.float32}
    finally:
        for hook in hooks:
            hook.remove()
    assert frames[True].dtype == torch.float32  # the frames leave the sampler in float32 either way
    levels = (to_uint8(frames[True]).int() - to_uint8(frames[False]).int()).abs()
    assert levels.max() <= 2 and not torch.equal(frames[True], frames[False])


def test_sampler_with_overrides_only_what_is_given() -> None:
    model = denoiser()
    assert model.sampler_with() == model.sampler_config
    both = model.sampler_with(4.0, bf16=True)
    assert (both.change_threshold, both.bf16, both.num_steps) == (4.0, True, model.sampler_config.num_steps)
    assert model.sampler_with(bf16=True).change_threshold == model.sampler_config.change_threshold


def test_no_autograd_by_default_and_gradients_to_actions_with_grad_true() -> None:
    model, w = denoiser(), window()
    action = torch.full((B, 2), 0.1, requires_grad=True)
    env = WorldModelEnv(model)
    env.reset_from_windows(w)
    assert not env.step(action).requires_grad
    env = WorldModelEnv(model, grad=True)
    env.reset_from_windows(w)
    first = env.step(action)
    second = env.step(torch.zeros(B, 2))  # the first action is still in the context: gradients reach it
    (second * torch.randn_like(second)).sum().backward()
    assert first.requires_grad and action.grad is not None and action.grad.abs().sum() > 0


def test_device_placement_and_misuse_errors() -> None:
    model = denoiser()
    env = WorldModelEnv(model, device="cpu")
    assert env.device == torch.device("cpu") == model.device
    with pytest.raises(RuntimeError, match="reset"):
        env.step(torch.zeros(B, 2))
    w = window()
    env.reset_from_windows(w)
    assert env.frames.device == env.device
    with pytest.raises(ValueError, match=r"actions must be \(3, 2\)"):
        env.step(torch.zeros(B, 3))
    with pytest.raises(ValueError, match="context frames"):
        env.reset(w.frames[:, :2], w.actions[:, :2])
    if torch.cuda.is_available():  # a GPU machine: everything follows the env's device
        env = WorldModelEnv(model, device="cuda")
        env.reset_from_windows(w)
        assert env.step(torch.zeros(B, 2)).device.type == "cuda"


def test_uint8_conversion_round_trips_every_value() -> None:
    values = torch.arange(256, dtype=torch.uint8)
    assert torch.equal(to_uint8(to_model_range(values)), values)
    assert to_uint8(torch.tensor([-3.0, 3.0])).tolist() == [0, 255]
