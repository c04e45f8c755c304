"""DreamerV3's recurrent state-space model (RSSM) with categorical (or Gaussian) latents, and its balanced KL loss.

State: a deterministic GRU state ``h`` (B, D) and a stochastic state ``z`` of S categoricals with
K classes each (B, S, K), one-hot samples with straight-through gradients — or, with
``LocalModelConfig.latent = "gaussian"``, S dimensions of a diagonal Gaussian (B, S, 1), reparameterised
samples (PlaNet, DreamerV1). Per step:

    h' = GRU(h, [z, a])                 deterministic transition (prior_step)
    z' ~ p(z' | h')                     prior: what the model predicts before seeing the frame
                                        (p(z' | h', a) with ``prior_action_input``)
    z' ~ q(z' | h', embed(frame'))      posterior: the same h', corrected by the frame (posterior)

Every categorical mixes in 1 % of the uniform distribution (unimix); a sample is
``onehot + probs - sg(probs)``: the value is the one-hot, the gradient that of the
probabilities. A Gaussian sample is ``mean + std * noise`` (its mode the mean). Either way the prior
state is differentiable with respect to the previous state (deter and stoch) and the action — DMO's
policy gradient flows through :meth:`RSSM.prior_step`.

Action convention (the datasets' Window docs): ``actions[t]`` acts between frame ``t`` and
frame ``t + 1``. So the state of frame ``t + 1`` is ``posterior(prior_step(state_t, actions[t]),
embed[t + 1])``; the first frame's state comes from the initial state with a zero action.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Normal, kl_divergence

from dmo_ros.local_model.config import LocalModelConfig


@dataclass
class RSSMState:
    """One RSSM state (B, ...) or a sequence of them (B, T, ...): every field has the same leading dims."""

    deter: torch.Tensor
    """h, (..., D): the GRU's deterministic state."""
    stoch: torch.Tensor
    """z, (..., S, K): one-hot sample per categorical with straight-through gradient (value one-hot); for a
    Gaussian latent (..., S, 1), the sample's value."""
    params: torch.Tensor
    """z's distribution. Categorical: (..., S, K) log-probabilities, unimix included (softmax(params) = probs).
    Gaussian: (..., S, 2), each dimension's mean and standard deviation."""

    @property
    def probs(self) -> torch.Tensor:
        """(..., S, K): the class probabilities of a categorical z (unimix included; each >= unimix / K)."""
        return self.params.softmax(-1)

    def detach(self) -> RSSMState:
        return RSSMState(self.deter.detach(), self.stoch.detach(), self.params.detach())

    def at(self, t: int | slice) -> RSSMState:
        """Time step(s) ``t`` of a sequence state (B, T, ...)."""
        return RSSMState(self.deter[:, t], self.stoch[:, t], self.params[:, t])

    def flatten_time(self) -> RSSMState:
        """A sequence state (B, T, ...) as one batch (B x T, ...)."""
        return RSSMState(self.deter.flatten(0, 1), self.stoch.flatten(0, 1), self.params.flatten(0, 1))

    @staticmethod
    def stack(states: Sequence[RSSMState], dim: int = 1) -> RSSMState:
        """Per-step states (B, ...) to one sequence state (B, T, ...)."""
        return RSSMState(torch.stack([s.deter for s in states], dim), torch.stack([s.stoch for s in states], dim),
                         torch.stack([s.params for s in states], dim))


def features(state: RSSMState) -> torch.Tensor:
    """(..., D + S x K), or (..., D + S) for a Gaussian z: h and the flattened z, the input of every head (and of
    the policy)."""
    return torch.cat([state.deter, state.stoch.flatten(-2)], dim=-1)


def unimix_logits(raw: torch.Tensor, unimix: float) -> torch.Tensor:
    """Log-probabilities of ``(1 - unimix) softmax(raw) + unimix / K`` over the last dim (in float32)."""
    probs = raw.float().softmax(-1)
    if unimix > 0:
        probs = (1.0 - unimix) * probs + unimix / probs.shape[-1]
    return probs.log()


def straight_through_sample(logits: torch.Tensor, sample: bool = True) -> torch.Tensor:
    """One-hot draw (or the mode, ``sample=False``) per categorical, with the gradient of the probabilities."""
    probs = logits.softmax(-1)
    if sample:
        # Gumbel-max: argmax(logits + Gumbel noise) is an exact draw from softmax(logits).
        gumbel = -torch.log(-torch.log(torch.rand_like(probs).clamp(1e-20, 1.0 - 1e-7)))
        index = (logits.detach() + gumbel).argmax(-1)
    else:
        index = logits.detach().argmax(-1)
    onehot = F.one_hot(index, probs.shape[-1]).to(probs.dtype)
    return onehot + (probs - probs.detach())  # value exactly the one-hot (x - x = 0), gradient of probs


def gaussian_params(raw: torch.Tensor, min_std: float) -> torch.Tensor:
    """(..., S, 2) raw head outputs -> (..., S, 2) mean and standard deviation ``softplus(raw) + min_std``
    (DreamerV1), in float32."""
    mean, std = raw.float().unbind(-1)
    return torch.stack([mean, F.softplus(std) + min_std], -1)


def gaussian_sample(params: torch.Tensor, sample: bool = True) -> torch.Tensor:
    """(..., S, 1): a reparameterised draw ``mean + std * noise`` of (..., S, 2) parameters, or the mean."""
    mean, std = params[..., :1], params[..., 1:]
    return Normal(mean, std, validate_args=False).rsample() if sample else mean


def latent_sample(params: torch.Tensor, config: LocalModelConfig, sample: bool = True) -> torch.Tensor:
    """z from its distribution's parameters (:attr:`RSSMState.params`): a draw, or the mode with ``sample=False``."""
    if config.latent == "gaussian":
        return gaussian_sample(params, sample)
    return straight_through_sample(params, sample)


class BlockGRUCell(nn.Module):
    """DreamerV3's GRU cell: one normalised linear layer for all gates, update gate biased toward keeping h."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.linear = nn.Linear(input_size + hidden_size, 3 * hidden_size, bias=False)
        self.norm = nn.LayerNorm(3 * hidden_size, eps=1e-3)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        reset, candidate, update = self.norm(self.linear(torch.cat([x, h], -1))).chunk(3, -1)
        reset = torch.sigmoid(reset)
        candidate = torch.tanh(reset * candidate)
        update = torch.sigmoid(update - 1.0)  # -1: start out mostly keeping the previous state
        return update * candidate + (1.0 - update) * h


def _mlp_layer(size_in: int, size_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(size_in, size_out, bias=False), nn.LayerNorm(size_out, eps=1e-3), nn.SiLU())


class RSSM(nn.Module):
    """The transition (prior) and the filter (posterior) over :class:`RSSMState`; see the module doc."""

    def __init__(self, config: LocalModelConfig) -> None:
        super().__init__()
        self.config = config
        stoch_flat = config.stoch_size * config.stoch_width
        params_flat = config.stoch_size * (2 if config.latent == "gaussian" else config.classes)
        self.register_buffer("action_scale", torch.tensor(config.action_scale, dtype=torch.float32), persistent=False)
        self.input_layer = _mlp_layer(stoch_flat + config.action_size, config.hidden_size)
        self.cell = BlockGRUCell(config.hidden_size, config.deter_size)
        prior_in = config.deter_size + (config.action_size if config.prior_action_input else 0)
        self.prior_head = nn.Sequential(_mlp_layer(prior_in, config.hidden_size),
                                        nn.Linear(config.hidden_size, params_flat))
        self.posterior_head = nn.Sequential(_mlp_layer(config.deter_size + config.embed_size, config.hidden_size),
                                            nn.Linear(config.hidden_size, params_flat))
        # DreamerV3's learned initial state: h0 = tanh(W), z0 = the prior's mode for h0.
        self.initial_deter = nn.Parameter(torch.zeros(config.deter_size))

    # -- pieces --------------------------------------------------------------------------

    def _stoch_params(self, head: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """The distribution parameters :attr:`RSSMState.params` a head gives for its input ``x`` (..., in)."""
        if self.config.latent == "gaussian":
            return gaussian_params(head(x).reshape(*x.shape[:-1], self.config.stoch_size, 2), self.config.min_std)
        raw = head(x).reshape(*x.shape[:-1], self.config.stoch_size, self.config.classes)
        return unimix_logits(raw, self.config.unimix)

    def _prior_params(self, deter: torch.Tensor, scaled_action: torch.Tensor,
                      previous_stoch: torch.Tensor | None = None) -> torch.Tensor:
        """p(z' | h') -- or p(z' | h', a) with ``prior_action_input`` -- for a scaled action (B, A); with
        ``prior_residual`` the mean is ``previous_stoch`` (B, S, 1) plus the head's output."""
        if self.config.prior_action_input:
            deter = torch.cat([deter, scaled_action.to(deter.dtype).expand(*deter.shape[:-1], -1)], -1)
        params = self._stoch_params(self.prior_head, deter)
        if self.config.prior_residual and previous_stoch is not None:
            params = torch.cat([params[..., :1] + previous_stoch.to(params.dtype), params[..., 1:]], -1)
        return params

    def scale_action(self, action: torch.Tensor) -> torch.Tensor:
        """Raw action (robot units) -> O(1) input: divided by action_scale, then squashed into [-1, 1] where
        larger (DreamerV3's ``a / max(1, |a|)`` with a stopped factor, so in-range actions keep gradient 1)."""
        a = action.float() / self.action_scale
        return a / a.abs().clamp_min(1.0).detach()

    # -- the API -------------------------------------------------------------------------

    def initial(self, batch: int, device: torch.device | str | None = None) -> RSSMState:
        """The learned start state for ``batch`` sequences (before the first frame is seen)."""
        device = device if device is not None else self.initial_deter.device
        deter = torch.tanh(self.initial_deter).to(device).expand(batch, -1)
        params = self._prior_params(deter, deter.new_zeros(batch, self.config.action_size))
        return RSSMState(deter, latent_sample(params, self.config, sample=False).detach(), params)

    def prior_step(self, state: RSSMState, action: torch.Tensor, sample: bool = True) -> RSSMState:
        """The prior state one step after ``state`` under raw ``action`` (B, A): h' = GRU(h, [z, a]), z' ~ p(z'|h').

        Differentiable with respect to ``state`` (deter and stoch) and ``action``. ``sample=False``
        takes each categorical's mode (still with straight-through gradients), or the Gaussian's mean, instead of
        a draw.
        """
        scaled = self.scale_action(action).to(state.deter.dtype)
        x = self.input_layer(torch.cat([state.stoch.flatten(-2), scaled], -1))
        deter = self.cell(x, state.deter)
        params = self._prior_params(deter, scaled, state.stoch)
        return RSSMState(deter, latent_sample(params, self.config, sample), params)

    def posterior(self, prior: RSSMState | torch.Tensor, embed: torch.Tensor, sample: bool = True) -> RSSMState:
        """The posterior for a frame: z ~ q(z | h, embed) with the prior's h (``prior`` may be h itself, (B, D))."""
        deter = prior.deter if isinstance(prior, RSSMState) else prior
        params = self._stoch_params(self.posterior_head, torch.cat([deter, embed.to(deter.dtype)], -1))
        return RSSMState(deter, latent_sample(params, self.config, sample), params)

    def observe_step(self, state: RSSMState, action: torch.Tensor, embed: torch.Tensor,
                     sample: bool = True) -> tuple[RSSMState, RSSMState]:
        """(posterior, prior) of the frame reached from ``state`` by ``action``; ``embed`` is that frame's."""
        prior = self.prior_step(state, action, sample)
        return self.posterior(prior, embed, sample), prior

    def observe(self, embeds: torch.Tensor, actions: torch.Tensor, initial: RSSMState | None = None,
                first_action: torch.Tensor | None = None, sample: bool = True) -> tuple[RSSMState, RSSMState]:
        """Filter a sequence: (posteriors, priors), each (B, T, ...), for embeds (B, T, E) and actions (B, T, A).

        ``actions[:, t]`` leads from frame ``t`` to frame ``t + 1`` (the last one leads out of the
        sequence and is unused). Frame 0's prior comes from ``initial`` (default: the learned
        initial state) under ``first_action`` (default: zeros); frame ``t + 1``'s prior is
        ``prior_step(posterior_t, actions[:, t])`` — the one-step prediction.
        """
        batch, length = embeds.shape[:2]
        if actions.shape[:2] != (batch, length):
            raise ValueError(f"embeds {tuple(embeds.shape)} and actions {tuple(actions.shape)} need the same (B, T)")
        state = initial if initial is not None else self.initial(batch, embeds.device)
        action = first_action if first_action is not None else torch.zeros_like(actions[:, 0])
        posteriors, priors = [], []
        for t in range(length):
            state, prior = self.observe_step(state, action, embeds[:, t], sample)
            posteriors.append(state)
            priors.append(prior)
            action = actions[:, t]
        return RSSMState.stack(posteriors), RSSMState.stack(priors)

    def imagine(self, state: RSSMState, actions: torch.Tensor, sample: bool = True) -> RSSMState:
        """Prior states (B, T, ...) reached from ``state`` by actions (B, T, A), with no frames seen."""
        priors = []
        for t in range(actions.shape[1]):
            state = self.prior_step(state, actions[:, t], sample)
            priors.append(state)
        return RSSMState.stack(priors)


# -- the KL loss -----------------------------------------------------------------------------


def categorical_kl(p_logits: torch.Tensor, q_logits: torch.Tensor) -> torch.Tensor:
    """KL(p || q) of (..., S, K) log-probabilities, summed over the S categoricals -> (...)."""
    p_logits, q_logits = p_logits.float(), q_logits.float()
    return (p_logits.exp() * (p_logits - q_logits)).sum((-2, -1))


def gaussian_kl(p_params: torch.Tensor, q_params: torch.Tensor) -> torch.Tensor:
    """KL(p || q) of diagonal Gaussians given as (..., S, 2) means and standard deviations, summed over S -> (...)."""
    p, q = (Normal(*params.float().unbind(-1), validate_args=False) for params in (p_params, q_params))
    return kl_divergence(p, q).sum(-1)


def latent_kl(p_params: torch.Tensor, q_params: torch.Tensor, config: LocalModelConfig) -> torch.Tensor:
    """KL(p || q) of two z distributions (:attr:`RSSMState.params`) of the config's kind, summed over z -> (...)."""
    return gaussian_kl(p_params, q_params) if config.latent == "gaussian" else categorical_kl(p_params, q_params)


def latent_mode_error(predicted: torch.Tensor, target: torch.Tensor, config: LocalModelConfig) -> torch.Tensor:
    """How far a predicted z distribution's mode is from a target's, per item (...): categorical, the fraction of
    the S categoricals whose most likely class differs; Gaussian, the mean |difference| of the means in units of
    the target's standard deviation."""
    if config.latent == "gaussian":
        return ((predicted[..., 0] - target[..., 0]).abs() / target[..., 1]).mean(-1)
    return (predicted.argmax(-1) != target.argmax(-1)).float().mean(-1)


class KLTerms(NamedTuple):
    """The balanced KL loss of :func:`kl_loss` and its parts (means over batch and time)."""

    loss: torch.Tensor
    """kl_dyn_scale x dyn + kl_rep_scale x rep: what the model minimises."""
    dyn: torch.Tensor
    """mean of max(free_bits, KL(sg(posterior) || prior)): trains the prior."""
    rep: torch.Tensor
    """mean of max(free_bits, KL(posterior || sg(prior))): trains the posterior (and encoder)."""
    value: torch.Tensor
    """mean of KL(posterior || prior), unclipped and without gradient (for logs)."""


def kl_loss(posterior: RSSMState, prior: RSSMState, config: LocalModelConfig) -> KLTerms:
    """DreamerV3's KL balancing with free bits; each term is clipped per (batch, time) item, then averaged."""
    dyn = latent_kl(posterior.params.detach(), prior.params, config)
    rep = latent_kl(posterior.params, prior.params.detach(), config)
    value = dyn.detach()
    dyn = dyn.clamp_min(config.free_bits).mean()
    rep = rep.clamp_min(config.free_bits).mean()
    return KLTerms(config.kl_dyn_scale * dyn + config.kl_rep_scale * rep, dyn, rep, value.mean())


__all__ = [
    "RSSM",
    "BlockGRUCell",
    "KLTerms",
    "RSSMState",
    "categorical_kl",
    "features",
    "gaussian_kl",
    "gaussian_params",
    "gaussian_sample",
    "kl_loss",
    "latent_kl",
    "latent_mode_error",
    "latent_sample",
    "straight_through_sample",
    "unimix_logits",
]
