"""RSSM: shapes, the action convention of observe, straight-through gradients through prior_step, unimix, KL."""

from __future__ import annotations

import math

import pytest
import torch

from dmo_ros.local_model.config import LocalModelConfig
from dmo_ros.local_model.rssm import (
    RSSM,
    RSSMState,
    categorical_kl,
    features,
    gaussian_kl,
    kl_loss,
    latent_mode_error,
    straight_through_sample,
)


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: on a busy shared machine a second one mostly spins (tens of times slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

B, A = 3, 2


@pytest.fixture
def config() -> LocalModelConfig:
    return LocalModelConfig.preset("tiny", A, [0.5, 0.5], image_size=16)


@pytest.fixture
def rssm(config: LocalModelConfig) -> RSSM:
    torch.manual_seed(0)
    return RSSM(config)


def test_shapes(rssm: RSSM, config: LocalModelConfig) -> None:
    d, s, k, e = config.deter_size, config.stoch_size, config.classes, config.embed_size
    state = rssm.initial(B, "cpu")
    assert state.deter.shape == (B, d) and state.stoch.shape == (B, s, k) and state.params.shape == (B, s, k)
    prior = rssm.prior_step(state, torch.zeros(B, A))
    posterior = rssm.posterior(prior, torch.randn(B, e))
    assert posterior.stoch.shape == (B, s, k) and torch.equal(posterior.deter, prior.deter)
    assert features(posterior).shape == (B, d + s * k) == (B, config.feature_size)
    assert torch.equal(rssm.posterior(prior.deter, torch.zeros(B, e), sample=False).deter, prior.deter)
    posteriors, priors = rssm.observe(torch.randn(B, 5, e), torch.randn(B, 5, A))
    assert posteriors.deter.shape == (B, 5, d) and priors.stoch.shape == (B, 5, s, k)
    assert features(posteriors).shape == (B, 5, config.feature_size)
    assert posteriors.at(2).deter.shape == (B, d)
    assert rssm.imagine(state, torch.zeros(B, 4, A)).params.shape == (B, 4, s, k)
    # Samples are exact one-hots in value (the straight-through term adds zero).
    for z in (prior.stoch, posteriors.stoch):
        assert torch.all((z == 0) | (z == 1)) and torch.all(z.sum(-1) == 1)


def test_observe_follows_the_action_convention(rssm: RSSM, config: LocalModelConfig) -> None:
    """Frame 0 from the initial state and a zero action; frame t + 1 from posterior t and actions[:, t]."""
    embeds, actions = torch.randn(B, 4, config.embed_size), torch.randn(B, 4, A)
    posteriors, priors = rssm.observe(embeds, actions, sample=False)
    state, prior = rssm.observe_step(rssm.initial(B), torch.zeros(B, A), embeds[:, 0], sample=False)
    torch.testing.assert_close(posteriors.at(0).params, state.params)
    for t in range(3):
        state, prior = rssm.observe_step(state, actions[:, t], embeds[:, t + 1], sample=False)
        torch.testing.assert_close(priors.at(t + 1).deter, prior.deter)
        torch.testing.assert_close(posteriors.at(t + 1).params, state.params)
    # The last action leads out of the sequence: it changes nothing.
    changed = actions.clone()
    changed[:, -1] = 5.0
    again, _ = rssm.observe(embeds, changed, sample=False)
    torch.testing.assert_close(again.params, posteriors.params)
    # ... while an earlier action changes the later states.
    changed[:, 1] = 5.0
    assert not torch.allclose(rssm.observe(embeds, changed, sample=False)[0].deter[:, 2], posteriors.deter[:, 2])


@pytest.mark.parametrize("sample", [True, False])
def test_gradient_reaches_action_and_previous_state(rssm: RSSM, config: LocalModelConfig, sample: bool) -> None:
    """DMO's path: a loss on the prior's features is differentiable w.r.t. the action, h and z of the step before."""
    torch.manual_seed(1)
    start = rssm.posterior(rssm.prior_step(rssm.initial(B), torch.zeros(B, A)), torch.randn(B, config.embed_size))
    deter = start.deter.detach().requires_grad_(True)
    stoch = start.stoch.detach().requires_grad_(True)
    action = torch.full((B, A), 0.1, requires_grad=True)
    prior = rssm.prior_step(RSSMState(deter, stoch, start.params.detach()), action, sample=sample)
    weights = torch.randn(config.feature_size)
    (features(prior) * weights).sum().backward()
    for name, grad in (("action", action.grad), ("deter", deter.grad), ("stoch", stoch.grad)):
        assert grad is not None and torch.isfinite(grad).all(), name
        assert grad.abs().sum() > 0, name
    # The stochastic part alone carries gradient too (straight-through, not a dead one-hot).
    action.grad = None
    rssm.prior_step(RSSMState(deter, stoch, start.params), action, sample=sample).stoch.mul(
        torch.randn(config.stoch_size, config.classes)).sum().backward()
    assert action.grad.abs().sum() > 0


def test_unimix_keeps_every_probability_above_its_floor(rssm: RSSM, config: LocalModelConfig) -> None:
    with torch.no_grad():
        for head in (rssm.prior_head, rssm.posterior_head):
            head[-1].weight.mul_(1e4)  # extreme logits: a plain softmax would give probabilities of 0
    prior = rssm.prior_step(rssm.initial(B), torch.ones(B, A))
    posterior = rssm.posterior(prior, torch.randn(B, config.embed_size) * 10)
    floor = config.unimix / config.classes
    for state in (prior, posterior):
        probs = state.probs
        assert probs.min() >= floor * (1 - 1e-5)
        torch.testing.assert_close(probs.sum(-1), torch.ones(B, config.stoch_size))
        assert torch.isfinite(state.params).all()
    assert torch.isfinite(categorical_kl(posterior.params, prior.params)).all()


def test_straight_through_sample_draws_from_the_distribution() -> None:
    torch.manual_seed(0)
    logits = torch.log(torch.tensor([0.7, 0.2, 0.1])).expand(20000, 1, 3)
    frequencies = straight_through_sample(logits).detach().mean((0, 1))
    torch.testing.assert_close(frequencies, torch.tensor([0.7, 0.2, 0.1]), atol=0.015, rtol=0)
    assert torch.equal(straight_through_sample(logits[:1], sample=False).detach(), torch.tensor([[[1.0, 0, 0]]]))


def _state(probs: list[list[float]], requires_grad: bool = False) -> RSSMState:
    logits = torch.tensor([probs]).log().requires_grad_(requires_grad)  # (1, S, K)
    return RSSMState(torch.zeros(1, 1), torch.zeros_like(logits), logits)


def test_kl_balancing_and_free_bits_by_hand(config: LocalModelConfig) -> None:
    kl_one = 0.9 * math.log(0.9 / 0.5) + 0.1 * math.log(0.1 / 0.5)  # KL([0.9, 0.1] || [0.5, 0.5]) = 0.368 nats
    post, prior = _state([[0.9, 0.1]], True), _state([[0.5, 0.5]], True)
    torch.testing.assert_close(categorical_kl(post.params, prior.params), torch.tensor([kl_one]))

    # Below the free bits (1 nat): both terms are clipped to 1, and give no gradient.
    terms = kl_loss(post, prior, config)
    torch.testing.assert_close(terms.loss, torch.tensor(0.5 * 1.0 + 0.1 * 1.0))
    assert abs(terms.value.item() - kl_one) < 1e-6
    terms.loss.backward()
    assert post.params.grad.abs().sum() == 0 and prior.params.grad.abs().sum() == 0

    # Without free bits: 0.5 x KL + 0.1 x KL, the dynamics part trains only the prior, the representation
    # part only the posterior.
    free = LocalModelConfig.preset("tiny", A, free_bits=0.0)
    torch.testing.assert_close(kl_loss(post, prior, free).loss, torch.tensor(0.6 * kl_one))
    for dyn, rep, trained, frozen in ((1.0, 0.0, prior, post), (0.0, 1.0, post, prior)):
        post.params.grad, prior.params.grad = None, None
        only = LocalModelConfig.preset("tiny", A, free_bits=0.0, kl_dyn_scale=dyn, kl_rep_scale=rep)
        kl_loss(post, prior, only).loss.backward()
        assert trained.params.grad.abs().sum() > 0
        assert frozen.params.grad is None or frozen.params.grad.abs().sum() == 0

    # Free bits apply to the sum over the categoricals: 4 x 0.368 = 1.47 nats > 1 is not clipped.
    post4, prior4 = _state([[0.9, 0.1]] * 4), _state([[0.5, 0.5]] * 4)
    torch.testing.assert_close(kl_loss(post4, prior4, config).loss, torch.tensor(0.6 * 4 * kl_one))
    # Clipping is per item before the mean: items of 0.368 and 1.47 nats -> mean(1, 1.47).
    mixed_post = RSSMState(torch.zeros(2, 1), torch.zeros(2, 4, 2),
                           torch.stack([post4.params[0], torch.tensor([[0.9, 0.1]] + [[0.5, 0.5]] * 3).log()]))
    mixed_prior = RSSMState(torch.zeros(2, 1), torch.zeros(2, 4, 2), torch.cat([prior4.params] * 2))
    torch.testing.assert_close(kl_loss(mixed_post, mixed_prior, config).dyn, torch.tensor((4 * kl_one + 1.0) / 2))


# -- the Gaussian latent (PlaNet / DreamerV1) ---------------------------------------------------


@pytest.fixture
def gaussian_config() -> LocalModelConfig:
    return LocalModelConfig.preset("tiny", A, [0.5, 0.5], image_size=16, latent="gaussian", min_std=0.1)


def test_gaussian_latent_shapes_and_modes(gaussian_config: LocalModelConfig) -> None:
    torch.manual_seed(0)
    rssm = RSSM(gaussian_config)
    d, s, e = gaussian_config.deter_size, gaussian_config.stoch_size, gaussian_config.embed_size
    state = rssm.initial(B)
    assert state.stoch.shape == (B, s, 1) and state.params.shape == (B, s, 2)
    assert gaussian_config.feature_size == d + s and features(state).shape == (B, d + s)
    prior = rssm.prior_step(state, torch.zeros(B, A), sample=False)
    torch.testing.assert_close(prior.stoch[..., 0], prior.params[..., 0])  # the mode is the mean
    assert (prior.params[..., 1] >= 0.1).all()  # the standard deviation's floor
    posteriors, priors = rssm.observe(torch.randn(B, 5, e), torch.randn(B, 5, A))
    assert posteriors.stoch.shape == (B, 5, s, 1) and features(priors).shape == (B, 5, d + s)
    # Draws spread around the mean by the standard deviation.
    many = rssm.prior_step(RSSMState(*(x.expand(4000, *x.shape[1:]) for x in (state.deter[:1], state.stoch[:1],
                                                                                state.params[:1]))),
                           torch.zeros(4000, A))
    torch.testing.assert_close(many.stoch[..., 0].std(0), many.params[0, :, 1], rtol=0.1, atol=0.0)
    torch.testing.assert_close(many.stoch[..., 0].mean(0), many.params[0, :, 0], rtol=0.0, atol=0.05)


def test_gaussian_kl_and_mode_error_by_hand(gaussian_config: LocalModelConfig) -> None:
    p = torch.tensor([[[0.0, 1.0], [1.0, 0.5]]])  # (1, S=2, [mean, std])
    q = torch.tensor([[[1.0, 2.0], [1.0, 0.5]]])
    expected = math.log(2.0) + (1.0 + 1.0) / (2 * 4.0) - 0.5  # KL(N(0, 1) || N(1, 2)); the second term is 0
    torch.testing.assert_close(gaussian_kl(p, q), torch.tensor([expected]))
    torch.testing.assert_close(gaussian_kl(p, p), torch.tensor([0.0]))
    torch.testing.assert_close(latent_mode_error(p, q, gaussian_config), torch.tensor([(1.0 / 2.0 + 0.0) / 2]))
    # Free bits and balancing apply to the Gaussian KL as to the categorical one.
    free = LocalModelConfig.preset("tiny", A, latent="gaussian", free_bits=0.0)
    state = lambda params: RSSMState(torch.zeros(1, 1), params[..., :1], params)  # noqa: E731
    torch.testing.assert_close(kl_loss(state(p), state(q), free).loss, torch.tensor(0.6 * expected))


@pytest.mark.parametrize("sample", [True, False])
def test_gaussian_gradient_reaches_action_and_previous_state(gaussian_config: LocalModelConfig, sample: bool) -> None:
    torch.manual_seed(0)
    rssm = RSSM(gaussian_config)
    start = rssm.initial(B)
    deter, stoch = (x.detach().clone().requires_grad_(True) for x in (start.deter, start.stoch))
    action = torch.randn(B, A, requires_grad=True)
    rssm.prior_step(RSSMState(deter, stoch, start.params.detach()), action, sample=sample).stoch.pow(2).sum().backward()
    for tensor in (deter, stoch, action):
        assert tensor.grad is not None and tensor.grad.abs().sum() > 0


def test_unknown_latent_and_bad_min_std_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown latent 'vq'"):
        LocalModelConfig.preset("tiny", A, latent="vq")
    with pytest.raises(ValueError, match="min_std"):
        LocalModelConfig.preset("tiny", A, latent="gaussian", min_std=0.0)


def test_a_residual_prior_predicts_the_change_of_z() -> None:
    """With ``prior_residual`` the prior's mean is the previous z plus the head's output (Gaussian latent only)."""
    config = LocalModelConfig.preset("tiny", A, [0.5, 0.5], image_size=16, latent="gaussian", prior_residual=True)
    torch.manual_seed(0)
    rssm = RSSM(config)
    state = rssm.initial(B)
    moved = RSSMState(state.deter, state.stoch + 3.0, state.params)
    action = torch.randn(B, A)
    prior = rssm.prior_step(moved, action, sample=False)
    head_only = rssm._prior_params(prior.deter, rssm.scale_action(action))  # no previous z: the head's output
    torch.testing.assert_close(prior.stoch, moved.stoch + head_only[..., :1])
    torch.testing.assert_close(prior.params[..., 1], head_only[..., 1])  # the standard deviation is the head's
    with pytest.raises(ValueError, match="prior_residual needs latent 'gaussian'"):
        LocalModelConfig.preset("tiny", A, prior_residual=True)
