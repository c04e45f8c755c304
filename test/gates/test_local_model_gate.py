"""The local-model gate passes an RSSM that uses the action and fails the same RSSM with its action input cut.

The known-good model is the local model's own learning test's toy RSSM (a square moved by the action,
reward = minus its distance to a goal point): the true reward gradient there is known in closed form
(toward the goal), so gradient probes are made without a simulator. The simulator probes themselves
are checked against a reward whose gradient is known on the stand-in (the agent's x position).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from local_model.test_learning import GOAL, toy_sequences, trained  # noqa: F401  (the fixture)

from dmo_ros.gates.local_model import (
    GradientProbe,
    LocalModelGateConfig,
    action_sensitivity,
    cosine_agreement,
    linear_probe_errors,
    local_model_gate,
    local_reward_gradient,
    simulator_probes,
    state_probe,
)
from dmo_ros.gates.report import GateReport
from dmo_ros.sims.pusht_frames import locate_agent


def _toy_probes(count: int = 32) -> list[GradientProbe]:
    batch, positions = toy_sequences(np.random.default_rng(5), count, 4)
    probes = []
    for i in range(count):
        toward = GOAL - positions[i, -1]
        if np.linalg.norm(toward) > 3.0:
            probes.append(GradientProbe(batch.frames[i], batch.actions[i], toward / np.linalg.norm(toward)))
    return probes


class _ActionBlind:
    """The trained model with its action input cut (every action reaches the GRU as zero)."""

    def __init__(self, model):
        self.model = model

    def __enter__(self):
        rssm = self.model.rssm
        self.original = rssm.scale_action
        rssm.scale_action = lambda action: self.original(action) * 0.0
        return self.model

    def __exit__(self, *exc):
        self.model.rssm.scale_action = self.original


def test_a_model_that_uses_the_action_passes(trained):  # noqa: F811
    model, held_out, _, _ = trained
    report = local_model_gate(model, held_out, _toy_probes(), LocalModelGateConfig())
    assert report.passed, report.format()
    sensitivity = report.metrics["action_sensitivity"]
    assert sensitivity["shuffled"]["next_latent_kl"] > 1.5 * sensitivity["true"]["next_latent_kl"]
    gradient = report.metrics["gradient"]
    assert 0 < gradient["gradient_cosine_standard_error"] < 0.5 and "standard error" in report.format()


def test_the_same_model_with_its_action_input_zeroed_fails_shuffle_and_cosine(trained):  # noqa: F811
    model, held_out, _, _ = trained
    with _ActionBlind(model) as blind:
        report = local_model_gate(blind, held_out, _toy_probes(), LocalModelGateConfig())
    checks = {c.name: c for c in report.checks}
    assert not checks["shuffled_over_true_kl"].passed
    assert checks["shuffled_over_true_kl"].value == pytest.approx(1.0, abs=1e-6)
    assert not checks["gradient_cosine"].passed and checks["gradient_cosine"].value == 0.0
    assert not report.passed


def test_the_two_paths_of_the_local_gradient_add_up_to_it_and_later_steps_count(trained):  # noqa: F811
    """The action reaches the reward head through h' directly and through z' (which reads h' and the action);
    the chain rule splits the gate's gradient into exactly these two. A continuation adds the later rewards."""
    model, _, _, _ = trained
    probe = _toy_probes()[0]
    full = local_reward_gradient(model, probe)
    parts = local_reward_gradient(model, probe, "deter") + local_reward_gradient(model, probe, "stoch")
    assert np.abs(full).max() > 0 and parts == pytest.approx(full, rel=1e-4, abs=1e-8)
    longer = GradientProbe(probe.frames, probe.actions, probe.gradient, continuation=probe.actions[1:3])
    assert not np.allclose(local_reward_gradient(model, longer), full)
    with pytest.raises(ValueError, match="path must be"):
        local_reward_gradient(model, probe, "posterior")


def test_sensitivity_reports_true_shuffled_zero_and_a_constant(trained):  # noqa: F811
    model, held_out, _, _ = trained
    result = action_sensitivity(model, held_out)
    assert set(result) == {"true", "shuffled", "zero", "constant"}
    assert result["true"]["reward_error"] < result["constant"]["reward_error"]


def test_simulator_probes_recover_a_known_gradient():
    """With reward = the agent's x in pixels, the finite difference through the stand-in points along +x."""

    def agent_x(frames: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
        position, _ = locate_agent(frames.numpy())
        return torch.from_numpy(np.nan_to_num(position[:, 0]))

    probes = simulator_probes(agent_x, count=6, history=3, image_size=64, epsilon=0.05, seed=1, warmup=(3, 8))
    assert len(probes) == 6 and probes[0].frames.shape == (3, 3, 64, 64) and probes[0].actions.shape == (3, 2)
    cosines = [p.gradient[0] / np.linalg.norm(p.gradient) for p in probes if np.linalg.norm(p.gradient) > 0]
    assert np.median(cosines) > 0.9, [p.gradient for p in probes]


def test_simulator_probes_driven_by_a_controller_take_its_actions_and_states():
    """controller=: a controller that always drives +x makes every probe's actions its own and leaves the agent
    further right than where the scripted operator's probes leave it from the same resets."""

    class DriveRight:
        resets = 0

        def reset(self, sim) -> None:
            self.resets += 1

        def act(self, sim) -> np.ndarray:
            return np.array([0.19, 0.0])

    def agent_x(frames: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
        position, _ = locate_agent(frames.numpy())
        return torch.from_numpy(np.nan_to_num(position[:, 0]))

    drive = DriveRight()
    driven = simulator_probes(agent_x, count=4, history=3, image_size=64, epsilon=0.05, seed=1, warmup=(6, 6),
                              controller=drive)
    operated = simulator_probes(agent_x, count=4, history=3, image_size=64, epsilon=0.05, seed=1, warmup=(6, 6))
    assert drive.resets == 4
    assert all(np.allclose(p.actions.numpy(), [0.19, 0.0]) for p in driven)
    start_x = np.array([p.state.agent[0] for p in operated])
    assert all(p.state.agent[0] > 0 for p in driven)
    assert np.mean([p.state.agent[0] for p in driven]) > start_x.mean()


def test_simulator_probes_on_the_push_cube_stand_in_recover_a_known_gradient():
    """robot=go2: with reward = the cube's x in the picture, turning left (yaw rate > 0) or stepping left moves the
    cube right wherever it is seen, and the probes carry the Go2's 3-D actions."""
    from dmo_ros.sims.push_cube_frames import locate_cube

    def cube_x(frames: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
        return torch.nan_to_num(locate_cube(frames)[0][:, 0].double())

    probes = simulator_probes(cube_x, count=8, history=3, image_size=64, epsilon=0.1, seed=1, warmup=(3, 8),
                              robot="go2")
    assert probes[0].frames.shape == (3, 3, 64, 64) and probes[0].actions.shape == (3, 3)
    seen = [p.gradient for p in probes if np.linalg.norm(p.gradient) > 0]
    assert len(seen) >= 3 and all(g[2] > 0 and g[1] >= 0 for g in seen), seen
    # Each probe keeps the stand-in's state it was taken at (the last frame's): diagnostics hold state models to it.
    assert all(p.state.robot.shape == (3,) and p.state.cube.shape[0] >= 2 for p in probes)
    assert len({tuple(np.round(p.state.robot, 6)) for p in probes}) == len(probes)


def test_probes_over_several_steps_sum_the_rewards_with_the_operators_next_actions_held():
    """steps=K: the same states as one-step probes (the warm-up is not K), the operator's next K - 1 actions kept,
    and the finite difference of the K rewards' sum: a left turn keeps the cube further right in every later frame,
    so the yaw component grows with K."""
    from dmo_ros.sims.push_cube_frames import locate_cube

    def cube_x(frames: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
        return torch.nan_to_num(locate_cube(frames)[0][:, 0].double())

    one = simulator_probes(cube_x, count=6, history=2, image_size=64, epsilon=0.1, seed=3, warmup=(3, 8), robot="go2")
    three = simulator_probes(cube_x, count=6, history=2, image_size=64, epsilon=0.1, seed=3, warmup=(3, 8),
                             robot="go2", steps=3)
    assert all(p.continuation is None and p.later_actions.shape == (0, 3) for p in one)
    assert all(q.continuation.shape == (2, 3) and torch.equal(q.later_actions, q.continuation) for q in three)
    for p, q in zip(one, three, strict=True):
        assert torch.equal(p.frames, q.frames) and np.array_equal(p.state.robot, q.state.robot)
    seen = [(p.gradient[2], q.gradient[2]) for p, q in zip(one, three, strict=True) if p.gradient[2] > 0]
    assert len(seen) >= 3 and all(later > first for first, later in seen), seen
    held = simulator_probes(cube_x, count=6, history=2, image_size=64, epsilon=0.1, seed=3, warmup=(3, 8),
                            robot="go2", steps=3, hold=True)  # the probed action repeated: what DMO's matching fits
    for p, h in zip(one, held, strict=True):
        assert torch.equal(p.frames, h.frames)
        assert torch.equal(h.continuation, p.actions[-1].expand(2, 3)), (h.continuation, p.actions[-1])


def test_cosine_agreement_averages_over_the_probes_with_the_larger_finite_differences():
    def probe(gradient: list[float]) -> GradientProbe:
        return GradientProbe(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), torch.zeros(1, 2), np.array(gradient))

    probes = [probe([2.0, 0.0]), probe([0.0, 3.0]), probe([0.01, 0.0]), probe([0.0, 0.02])]
    # Agrees on the two large differences, opposes the two small ones: the gauge reads the large half.
    numbers = cosine_agreement([np.array([1.0, 0.0]), np.array([0.0, 5.0]), np.array([-1.0, 0.0]),
                                np.array([0.0, -1.0])], probes)
    assert numbers["gradient_cosine"] == pytest.approx(1.0) and numbers["gradient_cosine_all"] == pytest.approx(0.0)
    assert numbers["positive_fraction"] == 1.0 and numbers["probes"] == 4
    assert numbers["finite_difference_norm_median"] == pytest.approx(1.01)
    zero = cosine_agreement([np.zeros(2)] * 4, probes)  # a model without a gradient scores 0, not NaN
    assert zero["gradient_cosine"] == 0.0


def test_simulator_probes_of_a_reach_task_follow_reaches_to_its_target():
    """task=reach_fixed: the probes come from reach_fixed episodes whose operator drives to the target, so the
    probed actions point from the agent to the target (push_t's operator goes for the T instead)."""

    def agent_x(frames: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(np.nan_to_num(locate_agent(frames.numpy())[0][:, 0]))

    target = np.array([384.0, 128.0]) * 64 / 512  # reach_fixed's target in 64 x 64 pixels
    cosines = []
    for task in ("reach_fixed", "push_t"):
        probes = simulator_probes(agent_x, count=8, history=2, image_size=64, epsilon=0.05, seed=2, warmup=(2, 5),
                                  task=task)
        agents = locate_agent(torch.stack([p.frames[-1] for p in probes]).numpy())[0]
        toward = target - agents
        actions = np.stack([p.actions[-1].numpy() for p in probes])
        cosines.append(np.median((actions * toward).sum(1) / (np.linalg.norm(actions, axis=1)
                                                                * np.linalg.norm(toward, axis=1) + 1e-9)))
    assert cosines[0] > 0.8 and cosines[1] < 0.5, cosines
    with pytest.raises(ValueError, match="unknown task"):
        LocalModelGateConfig(task="reach_far")


def test_the_linear_probe_reads_positions_the_inputs_hold_and_not_others():
    rng = np.random.default_rng(0)
    targets = rng.uniform(0, 512, (600, 4))
    holding = np.c_[targets @ rng.normal(size=(4, 4)), rng.normal(size=(600, 20))]  # a linear mix + noise columns
    good = linear_probe_errors(holding, targets, 300, ridge=0.01)
    assert good["agent_error"] < 1 and good["block_error"] < 1 and good["agent_error_baseline"] > 100
    blind = linear_probe_errors(rng.normal(size=(600, 24)), targets, 300)
    assert blind["agent_error"] > 0.95 * blind["agent_error_baseline"] and blind["samples"] == 600
    # A huge ridge shrinks the read-out to the training mean (not to 0): the baseline's error, no worse.
    shrunk = linear_probe_errors(holding, targets, 300, ridge=1e9)
    assert shrunk["agent_error"] == pytest.approx(shrunk["agent_error_baseline"], rel=1e-3)
    with pytest.raises(ValueError, match="train must leave rows"):
        linear_probe_errors(holding, targets, 600)


def test_the_state_probe_filters_stand_in_play_through_the_model():
    from dmo_ros.local_model import LocalModel, LocalModelConfig

    torch.manual_seed(0)
    model = LocalModel(LocalModelConfig.preset("tiny", 2, [0.195, 0.195], image_size=32))
    result = state_probe(model, episodes=4, steps=10, seed=3)
    assert result["samples"] == 40 and result["agent_error_baseline"] > 20 and np.isfinite(result["agent_error"])
    with pytest.raises(ValueError, match="state_probe needs"):
        state_probe(model, episodes=1)


def test_the_state_probe_is_reported_beside_the_checks(trained):  # noqa: F811
    model, held_out, _, _ = trained
    positions = {"agent_error": 70.0, "agent_error_baseline": 130.0, "block_error": 15.0,
                 "block_error_baseline": 60.0, "samples": 1600}
    report = local_model_gate(model, held_out, _toy_probes(), LocalModelGateConfig(), positions)
    assert report.metrics["state_probe"] == positions
    assert "info state probe: agent position from the latent to 70 u (the mean: 130 u)" in report.format()
    assert GateReport.from_dict(report.to_dict()).notes == report.notes


def _agent_x(frames: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
    """A global reward that pays for the agent's x alone (the stand-in's colours locate it)."""
    return torch.from_numpy(np.array([locate_agent(frame.permute(1, 2, 0).numpy())[0][0] for frame in frames],
                                     dtype=np.float32))


def test_the_agent_only_range_sets_the_heads_range_beside_the_global_rewards():
    from dmo_ros.gates.local_model import agent_only_ranges
    from dmo_ros.local_model import LocalModel, LocalModelConfig

    torch.manual_seed(0)
    model = LocalModel(LocalModelConfig.preset("tiny", 2, [0.195, 0.195], image_size=32))
    flat = agent_only_ranges(model, _agent_x, episodes=2, step=128.0)  # DreamerV3's zero-initialised head: flat
    assert flat["local"] == [0.0, 0.0] and all(value > 10 for value in flat["global"]) and flat["spots"] >= 20
    with torch.no_grad():
        for parameter in model.reward_head.parameters():
            parameter.normal_(0.0, 0.3)
    varied = agent_only_ranges(model, lambda frames, start: torch.zeros(len(frames)), episodes=2, step=128.0)
    assert all(value > 0 for value in varied["local"]) and varied["global_mean"] == 0.0
    assert varied["correlation"] == [0.0, 0.0]  # a constant reward correlates with nothing
    assert len(varied["drift"]) == 2 and all(0.0 <= value <= 1.0 for value in varied["drift"])
    assert all(-1.0 <= value <= 1.0 for value in varied["drift_way_cosine"]) and varied["drift_steps"] == 16
    assert flat["drift"] == [0.0, 0.0]  # a flat head hands the actor no gradient, so no drift either
    assert "drift" not in agent_only_ranges(model, _agent_x, episodes=1, step=128.0, drift_steps=0)
    with pytest.raises(ValueError, match="pays for the agent's place"):
        agent_only_ranges(model, _agent_x, task="reach_fixed")


@pytest.mark.parametrize("field, value", [("agent_only_step", 0.0), ("agent_only_step", -32.0),
                                          ("agent_only_episodes", -1), ("state_probe_episodes", -1),
                                          ("probes", 0), ("sequences", 0), ("drift_steps", -1)])
def test_a_gate_config_that_would_measure_nothing_is_refused(field, value):
    with pytest.raises(ValueError, match=field):
        LocalModelGateConfig(**{field: value})


def test_the_agent_only_range_is_reported_beside_the_checks(trained):  # noqa: F811
    model, held_out, _, _ = trained
    agent_only = {"local": [0.3, 0.1], "global": [0.02, 0.02], "correlation": [0.4, 0.3], "local_mean": 0.2,
                  "global_mean": 0.02, "spots": 470}
    report = local_model_gate(model, held_out, _toy_probes(), LocalModelGateConfig(), agent_only=agent_only)
    assert report.metrics["agent_only"] == agent_only
    assert ("info agent-only range (the T still at 2 reset poses, the agent over its whole range, 470 frames; "
            "correlation 0.35): local reward head 0.200, the global reward 0.020 (10.0 x)") in report.format()
    assert GateReport.from_dict(report.to_dict()).notes == report.notes
