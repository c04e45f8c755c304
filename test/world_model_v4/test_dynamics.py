"""The dynamics transformer: learns an action-driven video, its reward token learns an action-history label,
the reward mask holds, and KV-cached generation equals uncached generation."""

from __future__ import annotations

import torch

from dmo_ros.world_model_v4.config import DynamicsConfig
from dmo_ros.world_model_v4.dynamics import Dynamics, KVCache, LatentWindow

from .synthetic import point_video, train_steps


def tiny(**overrides) -> Dynamics:
    config = DynamicsConfig.preset("tiny", action_size=2, latent_tokens=4, latent_dim=8, image_size=16, **overrides)
    return Dynamics(config)


def _inputs(b: int, t: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    has_action = torch.ones(b, t, dtype=torch.bool)
    has_action[:, 0] = False
    return {"latents": torch.randn(b, t, 4, 8, generator=generator),
            "tau_index": torch.randint(0, 9, (b, t), generator=generator),
            "step_index": torch.full((b, t), 3), "actions_in": torch.randn(b, t, 2, generator=generator),
            "has_action": has_action}


def test_loss_runs_and_logs() -> None:
    torch.manual_seed(0)
    model = tiny()
    window, _ = point_video(8, 6)
    loss, logs = model(window)
    loss.backward()
    assert torch.isfinite(loss) and {"flow", "bootstrap", "reward_bce", "x_mse"} <= set(logs)
    assert all(p.grad is not None for p in model.parameters())  # every part takes part in the loss


def test_reward_mask_holds_and_reward_sees_past_actions() -> None:
    """Latent outputs are bitwise unchanged when the reward token's input changes; the reward output changes
    when a past action changes (a reward token attending only to itself would not)."""
    torch.manual_seed(0)
    model = tiny().eval()
    inputs = _inputs(3, 6, torch.Generator().manual_seed(1))
    with torch.no_grad():
        latents, head, _ = model.predict(**inputs)
        other = torch.randn(3, 6, model.config.width) * 5
        latents_2, head_2, _ = model.predict(**inputs, reward_input=other)
        assert torch.equal(latents, latents_2)
        assert (head - head_2).abs().max() > 1e-3
        changed = dict(inputs, actions_in=inputs["actions_in"].clone())
        changed["actions_in"][:, 2] += 1.0  # the action into frame 2
        latents_3, head_3, _ = model.predict(**changed)
    assert torch.equal(head_3[:, :2], head[:, :2])  # causal: earlier frames cannot see it
    assert (head_3[:, 2:] - head[:, 2:]).abs().min() > 0  # frame 2 and every later frame's reward respond
    assert torch.equal(latents_3[:, :2], latents[:, :2])


def test_kv_cache_generation_equals_uncached() -> None:
    torch.manual_seed(0)
    model = tiny().eval()
    b, steps = 2, 4
    inputs = _inputs(b, 3, torch.Generator().manual_seed(2))
    context = model.renoise(inputs["latents"], torch.Generator().manual_seed(3))
    actions = torch.randn(b, 3, 2, generator=torch.Generator().manual_seed(4))
    has = torch.ones(b, 1, dtype=torch.bool)
    with torch.no_grad():
        cache = KVCache(model.config.context - 1)
        model.commit(cache, context, inputs["actions_in"], inputs["has_action"])
        generator, cached = torch.Generator().manual_seed(5), []
        for k in range(3):
            latents = model.denoise(actions[:, k], steps, generator, cache=cache)
            model.commit(cache, latents[:, None], actions[:, k, None], has)
            cached.append(latents)
        assert cache.length == 5 and cache.next_position == 6
        window = {"latents": context, "actions_in": inputs["actions_in"], "has_action": inputs["has_action"]}
        generator, uncached = torch.Generator().manual_seed(5), []
        for k in range(3):
            length = window["latents"].shape[1]
            latents = model.denoise(actions[:, k], steps, generator,
                                    window={**window, "positions": torch.arange(length + 1)})
            window = {"latents": torch.cat([window["latents"], latents[:, None]], 1),
                      "actions_in": torch.cat([window["actions_in"], actions[:, k, None]], 1),
                      "has_action": torch.cat([window["has_action"], has], 1)}
            uncached.append(latents)
    for a, b_ in zip(cached, uncached, strict=True):
        torch.testing.assert_close(a, b_, rtol=1e-4, atol=1e-5)


def _one_step_error(model: Dynamics, window: LatentWindow, actions: torch.Tensor) -> torch.Tensor:
    """Mean squared error of the sampled frame 5 given frames 0..4 and the window's actions (B, T)."""
    context = window.latents[:, :5]
    actions_in = torch.cat([torch.zeros_like(window.actions[:, :1]), window.actions[:, :4]], 1)
    has_action = torch.ones(actions_in.shape[:2], dtype=torch.bool)
    has_action[:, 0] = False
    with torch.no_grad():
        cache = KVCache(model.config.context - 1)
        model.commit(cache, model.renoise(context, torch.Generator().manual_seed(0)), actions_in, has_action)
        predicted = model.denoise(actions, 4, torch.Generator().manual_seed(1), cache=cache)
    return (predicted - window.latents[:, 5]).pow(2).mean()


def test_dynamics_learns_the_action_effect_below_the_action_blind_bound() -> None:
    """A point moved by a_t in [-1, 1]^2: the one-step error must beat the best action-blind guess (the last
    frame: the actions have mean 0), which no model that ignores the action can beat."""
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    model = tiny(width=48, heads=2)
    train_steps(model, lambda: point_video(32, 6, generator=generator)[0], steps=300)
    window, _ = point_video(128, 6, generator=torch.Generator().manual_seed(7))
    error = _one_step_error(model, window, window.actions[:, 4])
    blind = (window.latents[:, 4] - window.latents[:, 5]).pow(2).mean()
    assert error < 0.7 * blind, (error, blind)
    shuffled = _one_step_error(model, window, window.actions[torch.randperm(128), 4])
    assert shuffled > 1.5 * error  # it follows the action given, not a guess from the past


def test_reward_token_learns_a_label_of_the_action_history() -> None:
    """intent_t = a_{t-1} + a_{t-2} > 0 on frames of pure noise: only the action tokens (this frame's and,
    through the temporal layers, the previous one's) tell the label."""
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)

    def batch(b: int, gen: torch.Generator) -> LatentWindow:
        actions = torch.randn(b, 6, 2, generator=gen)
        past = torch.cat([torch.zeros(b, 2), actions[:, :-1, 0]], 1)  # past[:, t + 1] = a_{t-1}
        intent = (past[:, 1:] + past[:, :-1]) > 0  # a_{t-1} + a_{t-2}
        latents = torch.rand(b, 6, 4, 8, generator=gen) * 2 - 1
        return LatentWindow(latents, actions, intent, torch.zeros(b, 6))

    model = tiny(reward_loss_weight=1.0)
    train_steps(model, lambda: batch(32, generator), steps=300)
    test = batch(256, torch.Generator().manual_seed(3))
    actions_in = torch.cat([torch.zeros_like(test.actions[:, :1]), test.actions[:, :-1]], 1)
    has_action = torch.ones(256, 6, dtype=torch.bool)
    has_action[:, 0] = False
    tau_index, step_index = model.context_levels(256, 6, torch.device("cpu"))
    with torch.no_grad():
        _, head, _ = model.predict(test.latents, tau_index, step_index, actions_in, has_action)
    accuracy = ((head[:, 2:, 0] > 0) == test.intent[:, 2:]).float().mean()
    assert accuracy > 0.85, accuracy
