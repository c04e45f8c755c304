"""The squashed-Gaussian actor: density, bounds, entropy estimate, mode."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Normal, TanhTransform, TransformedDistribution

from dmo_ros.policy.actor import SquashedGaussian, SquashedGaussianActor


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: on a busy shared machine a second one mostly spins."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_log_prob_is_the_change_of_variables_density() -> None:
    """1-D: log p(a) = log N(atanh a; mu, sigma) - log(1 - a^2), and the density integrates to 1 on (-1, 1)."""
    mu, sigma = 0.4, 0.7
    distribution = SquashedGaussian(torch.tensor([[mu]], dtype=torch.float64),
                                    torch.tensor([[math.log(sigma)]], dtype=torch.float64))
    a = torch.linspace(-0.999, 0.999, 4001, dtype=torch.float64)
    log_p = distribution.log_prob(a[:, None])
    u = torch.atanh(a)
    by_hand = -0.5 * ((u - mu) / sigma) ** 2 - math.log(sigma) - 0.5 * math.log(2 * math.pi) - torch.log(1 - a**2)
    torch.testing.assert_close(log_p, by_hand, rtol=1e-9, atol=1e-9)
    # PyTorch's own tanh-transformed Normal as a second, independent reference.
    reference = TransformedDistribution(Normal(torch.tensor(mu, dtype=torch.float64),
                                               torch.tensor(sigma, dtype=torch.float64)), TanhTransform())
    torch.testing.assert_close(log_p, reference.log_prob(a), rtol=1e-7, atol=1e-7)
    mass = torch.trapezoid(log_p.exp(), a).item()
    assert mass == pytest.approx(1.0, abs=2e-3)  # the tails beyond |a| = 0.999 carry ~1e-3


def test_sample_log_prob_matches_log_prob_of_the_sample() -> None:
    torch.manual_seed(0)
    distribution = SquashedGaussian(torch.randn(64, 3), torch.randn(64, 3).clamp(-2, 0.5))
    action, log_prob = distribution.rsample()
    assert action.shape == (64, 3) and log_prob.shape == (64,)
    # Away from the saturated ends the two agree (log_prob recomputes u by atanh).
    inside = action.abs().amax(-1) < 0.99
    torch.testing.assert_close(log_prob[inside], distribution.log_prob(action)[inside], rtol=1e-3, atol=1e-3)


def test_actor_outputs_are_bounded_finite_and_differentiable() -> None:
    torch.manual_seed(0)
    actor = SquashedGaussianActor(features=5, action_size=2, hidden=16, layers=2)
    features = 100.0 * torch.randn(256, 5)  # large inputs push the means far into the tanh's saturation
    with torch.no_grad():
        actor.head.weight.mul_(1e4)
    action, log_prob = actor(features)
    assert action.shape == (256, 2) and log_prob.shape == (256,)
    assert action.abs().max() <= 1.0
    assert torch.isfinite(log_prob).all()
    (action.sum() + log_prob.sum()).backward()
    assert all(torch.isfinite(p.grad).all() for p in actor.parameters())
    assert actor.head.weight.grad.abs().sum() > 0


def test_deterministic_mode_is_tanh_of_the_mean() -> None:
    torch.manual_seed(0)
    actor = SquashedGaussianActor(features=4, action_size=3, hidden=8, layers=1)
    features = torch.randn(10, 4)
    torch.testing.assert_close(actor.deterministic(features), torch.tanh(actor.distribution(features).mean))
    assert not torch.equal(actor(features)[0], actor.deterministic(features))  # sampling adds noise


def test_initial_std_and_log_std_bounds() -> None:
    actor = SquashedGaussianActor(features=4, action_size=2, hidden=8, layers=1, init_std=0.5,
                                  min_log_std=-5.0, max_log_std=1.0)
    distribution = actor.distribution(torch.randn(7, 4))
    torch.testing.assert_close(distribution.log_std.exp(), torch.full((7, 2), 0.5), rtol=1e-2, atol=1e-2)
    with torch.no_grad():
        actor.head.bias.fill_(1e3)
    assert actor.distribution(torch.randn(3, 4)).log_std.max() <= 1.0
    with pytest.raises(ValueError, match="init_std"):
        SquashedGaussianActor(features=4, action_size=2, init_std=10.0, max_log_std=1.0)


def test_entropy_estimate() -> None:
    """-log p of samples averages to the entropy: the Gaussian's when the tanh is nearly linear, and the
    Monte Carlo entropy of the reference tanh-Normal in general."""
    torch.manual_seed(0)
    samples, sigma = 200_000, 0.01
    narrow = SquashedGaussian(torch.zeros(samples, 1), torch.full((samples, 1), math.log(sigma)))
    _, entropy = narrow.entropy_estimate()
    assert entropy.mean().item() == pytest.approx(0.5 * math.log(2 * math.pi * math.e * sigma**2), abs=0.01)

    mean, log_std = torch.tensor([0.5, -1.0]), torch.tensor([0.0, -0.5])
    wide = SquashedGaussian(mean.expand(samples, 2), log_std.expand(samples, 2))
    _, entropy = wide.entropy_estimate()
    reference = TransformedDistribution(Normal(mean, log_std.exp()), TanhTransform())
    reference_samples = reference.sample((samples,)).clamp(-1 + 1e-6, 1 - 1e-6)
    reference_entropy = -reference.log_prob(reference_samples).sum(-1).mean().item()
    assert entropy.mean().item() == pytest.approx(reference_entropy, abs=0.02)
    # The squash lowers the entropy below the Gaussian's.
    assert entropy.mean().item() < Normal(mean, log_std.exp()).entropy().sum().item()
