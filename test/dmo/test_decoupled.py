"""The decoupled gradient on a known differentiable system: DMO's policy gradient is what the theory says.

System: linear dynamics ``s' = A s + B a`` (the true, "forward" model), reward
``r = -s'^T Q s' - a^T R a``, linear policy ``a = K s + b`` with parameters (K, b), horizon H, a batch of
start states; the return is the sum of the rewards over the horizon and the batch. The DMO gradient is
checked against gradients computed independently: finite differences, and an explicit adjoint
(backward) recursion in numpy on the forward model's states with the local model's Jacobians.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pytest
import torch
from torch import nn

from dmo_ros.dmo.decoupled import decoupled_step, detach_state, map_state, rollout_decoupled

STATE, ACTION, HORIZON, BATCH = 3, 2, 5, 4
DTYPE = torch.float64


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: on a busy shared machine a second one mostly spins."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class LinearSystem(nn.Module):
    """s' = A s + B a + c, parameters as nn.Parameters (so a stray gradient would show up in .grad)."""

    def __init__(self, A: torch.Tensor, B: torch.Tensor, c: torch.Tensor | None = None) -> None:
        super().__init__()
        self.A, self.B = nn.Parameter(A.clone()), nn.Parameter(B.clone())
        self.c = nn.Parameter(torch.zeros(A.shape[0], dtype=DTYPE) if c is None else c.clone())

    def forward(self, s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return s @ self.A.T + a @ self.B.T + self.c


class TanhModel(nn.Module):
    """A nonlinear local model: s' = s + 0.5 tanh(W s + V a + c)."""

    def __init__(self, generator: torch.Generator) -> None:
        super().__init__()
        self.W = nn.Parameter(0.8 * torch.randn(STATE, STATE, generator=generator, dtype=DTYPE))
        self.V = nn.Parameter(0.8 * torch.randn(STATE, ACTION, generator=generator, dtype=DTYPE))
        self.c = nn.Parameter(0.3 * torch.randn(STATE, generator=generator, dtype=DTYPE))

    def forward(self, s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return s + 0.5 * torch.tanh(s @ self.W.T + a @ self.V.T + self.c)


class LinearPolicy(nn.Module):
    def __init__(self, K: torch.Tensor, b: torch.Tensor) -> None:
        super().__init__()
        self.K, self.b = nn.Parameter(K.clone()), nn.Parameter(b.clone())

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        return s @ self.K.T + self.b


@dataclass
class Problem:
    A: torch.Tensor
    B: torch.Tensor
    Q: torch.Tensor
    R: torch.Tensor
    K: torch.Tensor
    b: torch.Tensor
    start: torch.Tensor
    generator: torch.Generator


@pytest.fixture
def problem() -> Problem:
    g = torch.Generator().manual_seed(7)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g, dtype=DTYPE)

    M = randn(STATE, STATE)
    return Problem(A=0.9 * torch.eye(STATE, dtype=DTYPE) + 0.2 * randn(STATE, STATE), B=0.5 * randn(STATE, ACTION),
                   Q=M @ M.T / STATE + 0.1 * torch.eye(STATE, dtype=DTYPE),
                   R=torch.diag(torch.tensor([0.2, 0.5], dtype=DTYPE)), K=0.3 * randn(ACTION, STATE),
                   b=0.2 * randn(ACTION), start=randn(BATCH, STATE), generator=g)


def reward(next_state: torch.Tensor, action: torch.Tensor, p: Problem) -> torch.Tensor:
    """(N,) r = -s'^T Q s' - a^T R a."""
    return -torch.einsum("ni,ij,nj->n", next_state, p.Q, next_state) - torch.einsum("ni,ij,nj->n", action, p.R, action)


def total_return(states: list[torch.Tensor], actions: list[torch.Tensor], p: Problem) -> torch.Tensor:
    return sum(reward(states[t + 1], actions[t], p).sum() for t in range(len(actions)))


def backprop_return(policy: LinearPolicy, model: nn.Module, p: Problem) -> torch.Tensor:
    """The return of a plain differentiable rollout through ``model`` (backprop through time)."""
    state, value = p.start, torch.zeros((), dtype=DTYPE)
    for _ in range(HORIZON):
        action = policy(state)
        state = model(state, action)
        value = value + reward(state, action, p).sum()
    return value


def gradient(value: torch.Tensor, policy: LinearPolicy) -> np.ndarray:
    grad_K, grad_b = torch.autograd.grad(value, [policy.K, policy.b])
    return np.concatenate([grad_K.flatten().numpy(), grad_b.numpy()])


def finite_difference_gradient(p: Problem, eps: float = 1e-6) -> np.ndarray:
    """Central differences of the true return w.r.t. (K, b), float64."""
    true = LinearSystem(p.A, p.B)
    theta = np.concatenate([p.K.flatten().numpy(), p.b.numpy()])
    grad = np.zeros_like(theta)
    for i in range(theta.size):
        values = []
        for sign in (1.0, -1.0):
            shifted = theta.copy()
            shifted[i] += sign * eps
            policy = LinearPolicy(torch.from_numpy(shifted[:ACTION * STATE].reshape(ACTION, STATE)),
                                  torch.from_numpy(shifted[ACTION * STATE:]))
            with torch.no_grad():
                values.append(backprop_return(policy, true, p).item())
        grad[i] = (values[0] - values[1]) / (2 * eps)
    return grad


def adjoint_gradient(states: np.ndarray, actions: np.ndarray, jac_s: np.ndarray, jac_a: np.ndarray,
                     p: Problem) -> np.ndarray:
    """dJ/d(K, b) by an explicit backward recursion, given the states, actions and per-step Jacobians.

    ``states`` (H+1, N, n), ``actions`` (H, N, m); ``jac_s[t]`` (N, n, n) = df/ds and ``jac_a[t]`` (N, n, m)
    = df/da at (s_t, a_t). With lam_t = dJ/ds_t (total derivative) and g_t = dJ/da_t (through a_t only):

        lam_H = -2 Q s_H
        g_t   = -2 R a_t + jac_a[t]^T lam_{t+1}
        lam_t = -2 Q s_t + jac_s[t]^T lam_{t+1} + K^T g_t        (t >= 1; r_{t-1} sees s_t)
        dJ/dK = sum_{t,n} g_t s_t^T,   dJ/db = sum_{t,n} g_t
    """
    Q, R, K = p.Q.numpy(), p.R.numpy(), p.K.numpy()
    grad_K, grad_b = np.zeros((ACTION, STATE)), np.zeros(ACTION)
    lam = -2.0 * states[HORIZON] @ Q.T
    for t in reversed(range(HORIZON)):
        g = -2.0 * actions[t] @ R.T + np.einsum("nij,ni->nj", jac_a[t], lam)
        grad_K += np.einsum("ni,nj->ij", g, states[t])
        grad_b += g.sum(0)
        lam = -2.0 * states[t] @ Q.T + np.einsum("nij,ni->nj", jac_s[t], lam) + g @ K
    return np.concatenate([grad_K.flatten(), grad_b])


def linear_jacobians(A: torch.Tensor, B: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    return (np.broadcast_to(A.numpy(), (HORIZON, BATCH, STATE, STATE)),
            np.broadcast_to(B.numpy(), (HORIZON, BATCH, STATE, ACTION)))


def dmo_rollout(policy: LinearPolicy, local: nn.Module, forward_model: nn.Module, start: torch.Tensor,
                encoder: nn.Module | None = None):
    """rollout_decoupled from ``start``, the forward model's next state optionally passed through ``encoder``."""
    def forward_step(s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        following = forward_model(s, a)
        return following if encoder is None else encoder(following)
    return rollout_decoupled(start, policy, local, forward_step, HORIZON)


def as_numpy(rollout) -> tuple[np.ndarray, np.ndarray]:
    return (torch.stack(rollout.states).detach().numpy(), torch.stack(rollout.actions).detach().numpy())


def test_reference_gradient_is_correct(problem: Problem) -> None:
    """The reference itself: backprop through the true system = finite differences = the adjoint recursion."""
    policy = LinearPolicy(problem.K, problem.b)
    backprop = gradient(backprop_return(policy, LinearSystem(problem.A, problem.B), problem), policy)
    np.testing.assert_allclose(backprop, finite_difference_gradient(problem), rtol=1e-6, atol=1e-6)
    true = LinearSystem(problem.A, problem.B)
    states, actions = as_numpy(dmo_rollout(policy, true, true, problem.start))
    hand = adjoint_gradient(states, actions, *linear_jacobians(problem.A, problem.B), problem)
    np.testing.assert_allclose(backprop, hand, rtol=1e-10, atol=1e-10)


def test_offset_local_model_gives_the_true_gradient(problem: Problem) -> None:
    """(a) Same Jacobians, wrong values (offset c): the DMO gradient is the true gradient."""
    policy = LinearPolicy(problem.K, problem.b)
    true_gradient = gradient(backprop_return(policy, LinearSystem(problem.A, problem.B), problem), policy)
    offset = torch.tensor([0.7, -1.1, 0.4], dtype=DTYPE)
    local = LinearSystem(problem.A, problem.B, offset)
    rollout = dmo_rollout(policy, local, LinearSystem(problem.A, problem.B), problem.start)
    dmo_gradient = gradient(total_return(rollout.states, rollout.actions, problem), policy)
    np.testing.assert_allclose(dmo_gradient, true_gradient, rtol=1e-5, atol=1e-5)
    # Guard: backprop through the offset model alone (its own wrong states) gives another gradient.
    model_only = gradient(backprop_return(policy, local, problem), policy)
    assert np.abs(model_only - true_gradient).max() > 0.1


def test_wrong_jacobians_give_the_local_jacobians_gradient(problem: Problem) -> None:
    """(b) Local model A', B' (+ offset): the DMO gradient is the adjoint recursion with A', B' along the
    forward model's states, and it differs from the true gradient."""
    g = problem.generator
    A_local = problem.A + 0.3 * torch.randn(STATE, STATE, generator=g, dtype=DTYPE)
    B_local = problem.B + 0.3 * torch.randn(STATE, ACTION, generator=g, dtype=DTYPE)
    local = LinearSystem(A_local, B_local, torch.tensor([0.2, 0.1, -0.3], dtype=DTYPE))
    policy = LinearPolicy(problem.K, problem.b)
    rollout = dmo_rollout(policy, local, LinearSystem(problem.A, problem.B), problem.start)
    dmo_gradient = gradient(total_return(rollout.states, rollout.actions, problem), policy)

    states, actions = as_numpy(rollout)
    expected = adjoint_gradient(states, actions, *linear_jacobians(A_local, B_local), problem)
    np.testing.assert_allclose(dmo_gradient, expected, rtol=1e-5, atol=1e-5)

    true_gradient = gradient(backprop_return(policy, LinearSystem(problem.A, problem.B), problem), policy)
    assert np.abs(dmo_gradient - true_gradient).max() > 0.1 * np.abs(true_gradient).max()


def test_nonlinear_local_model_uses_its_jacobians_at_the_forward_states(problem: Problem) -> None:
    """A tanh local model: the DMO gradient chains its Jacobians evaluated at the forward model's states
    (each Jacobian computed separately with torch.autograd.functional.jacobian)."""
    local = TanhModel(problem.generator)
    policy = LinearPolicy(problem.K, problem.b)
    rollout = dmo_rollout(policy, local, LinearSystem(problem.A, problem.B), problem.start)
    dmo_gradient = gradient(total_return(rollout.states, rollout.actions, problem), policy)

    states, actions = as_numpy(rollout)
    jac_s = np.zeros((HORIZON, BATCH, STATE, STATE))
    jac_a = np.zeros((HORIZON, BATCH, STATE, ACTION))
    for t in range(HORIZON):
        for n in range(BATCH):
            point = (torch.from_numpy(states[t, n].copy()), torch.from_numpy(actions[t, n].copy()))
            ds, da = torch.autograd.functional.jacobian(lambda s, a: local(s, a), point)
            jac_s[t, n], jac_a[t, n] = ds.numpy(), da.numpy()
    expected = adjoint_gradient(states, actions, jac_s, jac_a, problem)
    np.testing.assert_allclose(dmo_gradient, expected, rtol=1e-5, atol=1e-5)
    # Guard: the Jacobians at the local model's own states would give another gradient.
    assert np.abs(gradient(backprop_return(policy, local, problem), policy) - dmo_gradient).max() > 1e-2


def test_no_gradient_reaches_the_forward_model_or_the_encoder(problem: Problem) -> None:
    """(c) The global model and the encoder that embeds its states get no gradient; the local model does."""
    true = LinearSystem(problem.A, problem.B)
    encoder = nn.Linear(STATE, STATE, dtype=DTYPE)
    with torch.no_grad():
        encoder.weight.copy_(torch.eye(STATE, dtype=DTYPE))
        encoder.bias.zero_()
    policy = LinearPolicy(problem.K, problem.b)
    start = encoder(problem.start)  # the start latent comes from the encoder, with its graph
    assert start.requires_grad
    local = LinearSystem(problem.A + 0.1, problem.B, torch.ones(STATE, dtype=DTYPE))
    rollout = dmo_rollout(policy, local, true, start, encoder)
    total_return(rollout.states, rollout.actions, problem).backward()

    for parameter in [*true.parameters(), *encoder.parameters()]:
        assert parameter.grad is None
    assert all(parameter.grad is not None for parameter in policy.parameters())
    assert local.A.grad is not None and torch.count_nonzero(local.A.grad) > 0


def test_states_are_exactly_the_forward_models(problem: Problem) -> None:
    """(d) The rollout's values are the forward model's own rollout, bit for bit (not only close)."""
    true = LinearSystem(problem.A, problem.B)
    local = TanhModel(problem.generator)
    policy = LinearPolicy(problem.K, problem.b)
    rollout = dmo_rollout(policy, local, true, problem.start)
    with torch.no_grad():
        state = problem.start
        for t in range(HORIZON):
            action = policy(state)
            state = true(state, action)
            assert torch.equal(rollout.actions[t].detach(), action)
            assert torch.equal(rollout.states[t + 1].detach(), state)
    assert torch.equal(rollout.states[0], problem.start) and not rollout.states[0].requires_grad


def test_decoupled_step_value_and_gradient() -> None:
    local_input = torch.tensor([1.0, 2.0], requires_grad=True)
    forward_next = torch.tensor([0.3, -5.0], requires_grad=True)  # a forward output that forgot no_grad
    local_next = 3.0 * local_input
    swapped = decoupled_step(local_next, forward_next)
    assert torch.equal(swapped.detach(), forward_next.detach())
    (swapped * torch.tensor([1.0, 10.0])).sum().backward()
    assert torch.equal(local_input.grad, torch.tensor([3.0, 30.0]))
    assert forward_next.grad is None


@dataclass
class SplitState:
    deter: torch.Tensor
    stoch: torch.Tensor
    step: int = 0


class PairState(NamedTuple):
    deter: torch.Tensor
    stoch: torch.Tensor


@pytest.mark.parametrize("kind", [SplitState, PairState, tuple, dict])
def test_decoupled_step_on_structured_states(kind) -> None:
    """An RSSM-like state (deter, stoch): every part is swapped, the structure is kept."""
    x = torch.tensor([1.0, -2.0], requires_grad=True)

    def build(deter: torch.Tensor, stoch: torch.Tensor):
        if kind is dict:
            return {"deter": deter, "stoch": stoch}
        return kind((deter, stoch)) if kind is tuple else kind(deter, stoch)

    local_next = build(2.0 * x, x.pow(2))
    forward_next = build(torch.tensor([5.0, 6.0]), torch.tensor([7.0, 8.0]))
    swapped = decoupled_step(local_next, forward_next)
    assert type(swapped) is type(local_next)
    parts = list(swapped.values()) if kind is dict else (
        [swapped.deter, swapped.stoch] if kind is not tuple else list(swapped))
    assert torch.equal(parts[0].detach(), torch.tensor([5.0, 6.0]))
    assert torch.equal(parts[1].detach(), torch.tensor([7.0, 8.0]))
    (parts[0].sum() + parts[1].sum()).backward()
    assert torch.allclose(x.grad, 2.0 + 2.0 * x.detach())  # d(2x)/dx + d(x^2)/dx at the local input
    detached = detach_state(swapped)
    assert type(detached) is type(swapped)
    map_state(lambda t: pytest.fail("a detached part requires grad") if t.requires_grad else t, detached)


def test_decoupled_step_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="shape"):
        decoupled_step(torch.zeros(2, 3), torch.zeros(2, 4))


def test_rollout_keeps_policy_extras_and_checks_horizon() -> None:
    def policy(s: torch.Tensor):
        return s * 0.5, s.sum(-1)

    def step(s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return s + a

    rollout = rollout_decoupled(torch.ones(2, 3), policy, step, step, horizon=3)
    assert len(rollout.states) == 4 and len(rollout.actions) == 3 and len(rollout.policy_extras) == 3
    assert torch.equal(rollout.policy_extras[2][0], torch.full((2,), 3 * 1.5 ** 2))
    with pytest.raises(ValueError, match="horizon"):
        rollout_decoupled(torch.ones(2, 3), policy, step, step, horizon=0)
