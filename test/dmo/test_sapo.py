"""SAPO: TD-lambda targets and the actor objective against hand values, the temperature loss, the learner's
guards, and a learning test (DMO-SAPO on a point mass with a slightly wrong local model)."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest
import torch
from torch import nn

from dmo_ros.dmo.decoupled import rollout_decoupled
from dmo_ros.dmo.sapo import (
    LINEAR_FINAL_LR,
    PRESETS,
    SAPOConfig,
    SAPOLearner,
    Trajectory,
    actor_gradient_parts,
    actor_objective,
    alpha_loss,
    scheduled_lr,
    td_lambda_targets,
)


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: on a busy shared machine a second one mostly spins."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# A tiny case: H = 3 steps, B = 2 rollouts.
REWARDS = torch.tensor([[1.0, 2.0], [0.5, -1.0], [2.0, 0.0]], dtype=torch.float64)
ENTROPIES = torch.tensor([[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]], dtype=torch.float64)
VALUES = torch.tensor([[3.0, -1.0], [2.0, 0.5], [1.0, 4.0], [10.0, -2.0]], dtype=torch.float64)
ALPHA, GAMMA = 0.5, 0.9


def soft(h: int, b: int) -> float:
    return REWARDS[h, b].item() + ALPHA * ENTROPIES[h, b].item()


def n_step_return(h: int, b: int, n: int) -> float:
    """sum_{k<n} gamma^k q_{h+k} + gamma^n V(s_{h+n})."""
    return sum(GAMMA**k * soft(h + k, b) for k in range(n)) + GAMMA**n * VALUES[h + n, b].item()


def test_td_lambda_zero_is_one_step() -> None:
    targets = td_lambda_targets(REWARDS, ENTROPIES, VALUES, ALPHA, GAMMA, lam=0.0)
    expected = [[soft(h, b) + GAMMA * VALUES[h + 1, b].item() for b in range(2)] for h in range(3)]
    torch.testing.assert_close(targets, torch.tensor(expected, dtype=torch.float64))
    assert targets[0, 0].item() == pytest.approx(1.0 + 0.05 + 0.9 * 2.0)  # one number fully by hand


def test_td_lambda_one_is_monte_carlo_with_bootstrap() -> None:
    targets = td_lambda_targets(REWARDS, ENTROPIES, VALUES, ALPHA, GAMMA, lam=1.0)
    expected = [[n_step_return(h, b, 3 - h) for b in range(2)] for h in range(3)]
    torch.testing.assert_close(targets, torch.tensor(expected, dtype=torch.float64))
    assert targets[0, 1].item() == pytest.approx(2.1 + 0.9 * (-0.8) + 0.81 * 0.3 + 0.729 * (-2.0))


def test_td_lambda_is_the_weighted_mix_of_n_step_returns() -> None:
    """The paper's eq. 6: (1 - lam) sum_{n < H-h} lam^(n-1) G^(n) + lam^(H-h-1) G^(H-h)."""
    lam = 0.6
    targets = td_lambda_targets(REWARDS, ENTROPIES, VALUES, ALPHA, GAMMA, lam=lam)
    for h in range(3):
        for b in range(2):
            steps = 3 - h
            mix = (1 - lam) * sum(lam ** (n - 1) * n_step_return(h, b, n) for n in range(1, steps))
            mix += lam ** (steps - 1) * n_step_return(h, b, steps)
            assert targets[h, b].item() == pytest.approx(mix)


def test_td_lambda_entropy_term_and_dones() -> None:
    without_entropy = td_lambda_targets(REWARDS, torch.zeros_like(ENTROPIES), VALUES, ALPHA, GAMMA, lam=0.0)
    with_entropy = td_lambda_targets(REWARDS, ENTROPIES, VALUES, ALPHA, GAMMA, lam=0.0)
    torch.testing.assert_close(with_entropy - without_entropy, ALPHA * ENTROPIES)

    dones = torch.zeros(3, 2, dtype=torch.bool)
    dones[1, 0] = True  # s_2 of rollout 0 is terminal: no bootstrap past it
    targets = td_lambda_targets(REWARDS, ENTROPIES, VALUES, ALPHA, GAMMA, lam=1.0, dones=dones)
    assert targets[1, 0].item() == pytest.approx(soft(1, 0))
    assert targets[0, 0].item() == pytest.approx(soft(0, 0) + GAMMA * soft(1, 0))
    assert targets[0, 1].item() == pytest.approx(n_step_return(0, 1, 3))


def test_actor_objective_by_hand() -> None:
    rewards = torch.tensor([[1.0, -2.0], [3.0, 0.5]])
    entropies = torch.tensor([[0.2, 0.4], [-0.6, 1.0]])
    terminal = torch.tensor([5.0, -1.0], requires_grad=True)
    alpha, gamma = 0.1, 0.5
    loss = actor_objective(rewards, entropies, terminal, alpha, gamma)
    first = (1.0 + 0.02) + 0.5 * (3.0 - 0.06) + 0.25 * 5.0
    second = (-2.0 + 0.04) + 0.5 * (0.5 + 0.1) + 0.25 * -1.0
    assert loss.item() == pytest.approx(-(first + second) / 2 / 2)  # mean over B, divided by H
    loss.backward()
    torch.testing.assert_close(terminal.grad, torch.full((2,), -0.25 / 2 / 2))

    dones = torch.tensor([[True, False], [False, False]])  # rollout 0 ends after its first step
    loss = actor_objective(rewards, entropies, terminal.detach(), alpha, gamma, dones)
    assert loss.item() == pytest.approx(-((1.0 + 0.02) + second) / 2 / 2)


def test_actor_gradient_parts_split_the_objectives_gradient_by_hand() -> None:
    """A chain a_0 -> s_1 = 2 a_0 -> s_2 = 3 s_1: r_0 = s_1, r_1 = s_1 s_2, H_0 = -a_0^2, V(s_2) = s_2; each part's
    derivative by hand, and their sum is -B H times the objective's gradient."""
    action = torch.tensor([[0.5], [-1.0]], dtype=torch.float64, requires_grad=True)  # (B, A) = (2, 1)
    first, second = 2 * action[:, 0], 6 * action[:, 0]
    rewards = torch.stack([first, first * second])  # (H, B) = (2, 2)
    entropies = torch.stack([-action[:, 0] ** 2, torch.zeros(2, dtype=torch.float64)])
    alpha, gamma = 0.1, 0.5
    parts = actor_gradient_parts(rewards, entropies, second, alpha, gamma, action)
    a = action.detach()
    torch.testing.assert_close(parts["reward_first"], torch.full_like(a, 2.0))
    torch.testing.assert_close(parts["reward_later"], gamma * 24 * a)  # d(12 a^2) = 24 a
    torch.testing.assert_close(parts["value"], torch.full_like(a, gamma ** 2 * 6))
    torch.testing.assert_close(parts["entropy"], -alpha * 2 * a)
    loss = actor_objective(rewards, entropies, second, alpha, gamma)
    (gradient,) = torch.autograd.grad(loss, action, retain_graph=True)
    torch.testing.assert_close(parts["total"], -2 * 2 * gradient)
    unreached = actor_gradient_parts(rewards, entropies, torch.zeros(2, dtype=torch.float64), alpha, gamma, action)
    torch.testing.assert_close(unreached["value"], torch.zeros_like(a))  # a constant terminal value: zeros


def test_alpha_loss_moves_alpha_toward_the_target_entropy() -> None:
    for entropy, direction in ((2.0, -1.0), (-3.0, 1.0)):  # above target: alpha falls; below: it rises
        log_alpha = nn.Parameter(torch.tensor(0.0))
        optimizer = torch.optim.SGD([log_alpha], lr=0.1)
        for _ in range(5):
            optimizer.zero_grad()
            alpha_loss(log_alpha, torch.full((8, 4), entropy), target_entropy=-1.0).backward()
            optimizer.step()
        assert direction * log_alpha.item() > 0.4


def test_config_validation_presets_and_json_round_trip() -> None:
    config = SAPOConfig()
    assert config.adam_betas == (0.7, 0.95) and config.horizon == 32
    assert config.resolved_target_entropy(3) == -1.5
    assert SAPOConfig(target_entropy=-2.0).resolved_target_entropy(3) == -2.0
    assert SAPOConfig.from_dict(json.loads(json.dumps(asdict(config)))) == config
    assert set(PRESETS) == {"tiny", "cpu", "gpu"}
    assert SAPOConfig.preset("tiny", horizon=4).horizon == 4
    with pytest.raises(ValueError, match="unknown SAPO preset"):
        SAPOConfig.preset("huge")
    with pytest.raises(ValueError, match="unknown SAPOConfig fields"):
        SAPOConfig.preset("tiny", horizn=4)
    with pytest.raises(ValueError, match="unknown SAPOConfig keys"):
        SAPOConfig.from_dict({"gama": 0.9})
    for bad in ({"horizon": 0}, {"gamma": 1.5}, {"lam": -0.1}, {"actor_lr": 0.0}, {"adam_betas": (0.9, 1.0)},
                {"target_ema": 1.0}, {"critic_minibatches": 0}, {"lr_schedule": "cosine"}):
        with pytest.raises(ValueError):
            SAPOConfig(**bad)


def random_trajectory(horizon: int, batch: int, features: int, learner: SAPOLearner, model: nn.Module) -> Trajectory:
    """A trajectory whose rewards run through ``model`` (a stand-in for the local reward head)."""
    states = torch.randn(horizon + 1, batch, features)
    action, log_prob = learner.actor(states[:horizon])
    rewards = model(states[1:] + action.sum(-1, keepdim=True)).squeeze(-1)  # differentiable in the actions
    return Trajectory(states, rewards, -log_prob)


def test_update_steps_only_its_own_parameters() -> None:
    torch.manual_seed(0)
    learner = SAPOLearner(4, 2, SAPOConfig.preset("tiny"))
    reward_head = nn.Linear(4, 1)
    before = [p.clone() for p in learner.parameters()]
    logs = learner.update(random_trajectory(3, 5, 4, learner, reward_head))
    assert set(logs) >= {"actor_loss", "critic_loss", "alpha", "entropy", "return", "skipped_steps"}
    assert all(p.grad is None for p in reward_head.parameters())  # no stray gradients on other models
    assert all(p.grad is None for p in learner.parameters())
    changed = [not torch.equal(b, p) for b, p in zip(before, learner.parameters(), strict=True)]
    assert any(changed) and logs["skipped_steps"] == 0


def test_linear_schedule_decays_actor_and_critic_rates_to_shacs_floor() -> None:
    assert scheduled_lr(2e-3, "constant", 0.7) == 2e-3
    assert scheduled_lr(2e-3, "linear", 0.0) == 2e-3
    assert scheduled_lr(2e-3, "linear", 0.5) == pytest.approx((2e-3 + LINEAR_FINAL_LR) / 2)
    assert scheduled_lr(2e-3, "linear", 1.0) == pytest.approx(LINEAR_FINAL_LR)
    assert scheduled_lr(2e-3, "linear", 3.0) == pytest.approx(LINEAR_FINAL_LR)  # a budget overrun stays at the floor
    assert scheduled_lr(1e-6, "linear", 1.0) == 1e-6  # never raised above where it started
    with pytest.raises(ValueError, match="unknown learning-rate schedule"):
        scheduled_lr(1e-3, "step", 0.5)

    learner = SAPOLearner(4, 2, SAPOConfig.preset("tiny", lr_schedule="linear", actor_lr=1e-3, critic_lr=4e-3))
    assert learner.set_progress(0.25) == pytest.approx(1e-3 - 0.25 * (1e-3 - LINEAR_FINAL_LR))
    assert learner.actor_optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 - 0.25 * (1e-3 - LINEAR_FINAL_LR))
    assert learner.critic_optimizer.param_groups[0]["lr"] == pytest.approx(4e-3 - 0.25 * (4e-3 - LINEAR_FINAL_LR))
    assert learner.alpha_optimizer.param_groups[0]["lr"] == learner.config.alpha_lr  # alpha keeps its rate
    constant = SAPOLearner(4, 2, SAPOConfig.preset("tiny", actor_lr=1e-3))
    assert constant.set_progress(0.9) == 1e-3 and constant.actor_optimizer.param_groups[0]["lr"] == 1e-3


def test_late_linear_schedule_moves_the_actor_less_than_constant() -> None:
    """The same gradients at 99 % of the budget: the decayed rate moves the actor a small fraction as far."""
    moves = {}
    for schedule in ("constant", "linear"):
        torch.manual_seed(0)
        learner = SAPOLearner(4, 2, SAPOConfig.preset("tiny", lr_schedule=schedule))
        learner.set_progress(0.99)
        trajectory = random_trajectory(3, 5, 4, learner, nn.Linear(4, 1))
        before = torch.nn.utils.parameters_to_vector(learner.actor.parameters()).clone()
        learner.update(trajectory)
        moves[schedule] = (torch.nn.utils.parameters_to_vector(learner.actor.parameters()) - before).norm().item()
    assert 0 < moves["linear"] < 0.1 * moves["constant"]


def test_non_finite_gradients_skip_the_step() -> None:
    torch.manual_seed(0)
    config = SAPOConfig.preset("tiny")
    learner = SAPOLearner(4, 2, config)
    trajectory = random_trajectory(3, 5, 4, learner, nn.Linear(4, 1))
    trajectory.rewards = trajectory.rewards * torch.tensor(float("nan"))
    actor_before = [p.clone() for p in learner.actor.parameters()]
    critics_before = [p.clone() for p in learner.critics.online.parameters()]
    logs = learner.update(trajectory)
    # The actor step and every critic step are skipped; the alpha step (entropies are finite) is not.
    assert learner.skipped_steps == 1 + config.critic_iterations * config.critic_minibatches
    assert logs["skipped_steps"] == learner.skipped_steps
    assert all(torch.equal(b, p) for b, p in zip(actor_before, learner.actor.parameters(), strict=True))
    assert all(torch.equal(b, p) for b, p in zip(critics_before, learner.critics.online.parameters(), strict=True))
    assert all(torch.isfinite(p).all() for p in learner.parameters())


def test_dmo_sapo_learns_to_reach_a_goal() -> None:
    """A 2-D point mass ``s' = s + 0.1 a`` (the forward model), reward ``-|s' - goal|^2``, H = 16; the local
    model is a slightly wrong linear one (rotated, 20 % stronger actions, offset). DMO-SAPO must turn the
    initial (random) policy into one that reaches the goal."""
    torch.manual_seed(0)
    horizon, batch, updates = 16, 32, 80
    goal = torch.tensor([0.5, -0.3])
    local_A = torch.tensor([[1.0, 0.03], [-0.03, 1.0]])
    local_B = 1.2 * 0.1 * torch.eye(2)

    def true_step(s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return s + 0.1 * a

    def local_step(s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return s @ local_A.T + a @ local_B.T + 0.01

    def reward(s: torch.Tensor) -> torch.Tensor:
        return -(s - goal).pow(2).sum(-1)

    config = SAPOConfig.preset("tiny", horizon=horizon, actor_hidden=64, critic_hidden=64, actor_lr=3e-3,
                               critic_lr=3e-3, critic_iterations=2, critic_minibatches=2)
    learner = SAPOLearner(2, 2, config)
    eval_starts = torch.rand(256, 2, generator=torch.Generator().manual_seed(1)) * 2 - 1

    @torch.no_grad()
    def evaluate(policy) -> tuple[float, float]:
        """Mean return over the horizon on the true system, mean final distance to the goal."""
        state, total = eval_starts, torch.zeros(len(eval_starts))
        for _ in range(horizon):
            state = true_step(state, policy(state))
            total += reward(state)
        return total.mean().item(), (state - goal).norm(dim=-1).mean().item()

    random_return, _ = evaluate(lambda s: torch.rand_like(s) * 2 - 1)
    initial_return, initial_distance = evaluate(learner.actor.deterministic)

    for _ in range(updates):
        starts = torch.rand(batch, 2) * 2 - 1
        rollout = rollout_decoupled(starts, learner.actor, local_step, true_step, horizon)
        trajectory = Trajectory(features=torch.stack(rollout.states),
                                rewards=torch.stack([reward(s) for s in rollout.states[1:]]),
                                entropies=-torch.stack([extras[0] for extras in rollout.policy_extras]))
        logs = learner.update(trajectory)

    final_return, final_distance = evaluate(learner.actor.deterministic)
    assert logs["skipped_steps"] == 0
    assert initial_return < -12 and random_return < -12  # the task is not solved by doing nothing or at random
    assert final_return > 0.5 * initial_return + 3.0, (initial_return, final_return)
    assert final_distance < 0.1 < 0.5 < initial_distance, (initial_distance, final_distance)
