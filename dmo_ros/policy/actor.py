"""The deployable actor on latent features: a tanh-squashed Gaussian (SAPO's, SAC's).

Actions come out in [-1, 1] per component (the caller scales them to robot units, e.g. x 0.25 m/s for
Push-T). The trainers' critics (:mod:`dmo_ros.dmo.critics`) build on :func:`mlp` from here; nothing in
this module knows about training.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_LOG_2 = math.log(2.0)
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def mlp(size_in: int, hidden: int, layers: int) -> nn.Sequential:
    """``layers`` x (Linear, LayerNorm, SiLU), DreamerV3's MLP block; the identity for ``layers = 0``."""
    blocks: list[nn.Module] = []
    for i in range(layers):
        blocks += [nn.Linear(size_in if i == 0 else hidden, hidden), nn.LayerNorm(hidden), nn.SiLU()]
    return nn.Sequential(*blocks)


def log_one_minus_tanh_squared(u: Tensor) -> Tensor:
    """log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)), finite where tanh(u) rounds to +-1."""
    return 2.0 * (_LOG_2 - u - F.softplus(-2.0 * u))


class SquashedGaussian:
    """``a = tanh(u)``, ``u ~ N(mean, std^2)`` per component; log-probabilities are summed over components.

    Change of variables: ``log p(a) = sum_i [log N(u_i; mean_i, std_i) - log(1 - tanh(u_i)^2)]``.
    """

    def __init__(self, mean: Tensor, log_std: Tensor) -> None:
        self.mean = mean
        """(..., A) mean of the Gaussian before the tanh."""
        self.log_std = log_std
        """(..., A) log standard deviation before the tanh."""

    def _log_prob_pre_tanh(self, u: Tensor) -> Tensor:
        z = (u - self.mean) * torch.exp(-self.log_std)
        gaussian = -0.5 * z.pow(2) - self.log_std - _HALF_LOG_2PI
        return (gaussian - log_one_minus_tanh_squared(u)).sum(-1)

    def rsample(self) -> tuple[Tensor, Tensor]:
        """A reparameterised sample ``a`` (..., A) and its log-probability (...); both differentiable."""
        u = self.mean + torch.exp(self.log_std) * torch.randn_like(self.mean)
        return torch.tanh(u), self._log_prob_pre_tanh(u)

    def log_prob(self, action: Tensor, eps: float = 1e-6) -> Tensor:
        """log p(action) for actions in (-1, 1) (clamped ``eps`` inside so atanh stays finite)."""
        u = torch.atanh(action.clamp(-1.0 + eps, 1.0 - eps))
        return self._log_prob_pre_tanh(u)

    @property
    def mode(self) -> Tensor:
        """The deterministic action ``tanh(mean)`` (the policy a robot runs at evaluation)."""
        return torch.tanh(self.mean)

    def entropy_estimate(self) -> tuple[Tensor, Tensor]:
        """A sample and ``-log p(sample)``: an unbiased, differentiable estimate of the entropy (no closed
        form exists after the tanh), as SAC and SAPO use it."""
        action, log_prob = self.rsample()
        return action, -log_prob


class SquashedGaussianActor(nn.Module):
    """pi(a | features): an MLP to a mean and a bounded, state-dependent log-std, squashed by tanh."""

    def __init__(self, features: int, action_size: int, hidden: int = 256, layers: int = 2,
                 init_std: float = 0.5, min_log_std: float = -5.0, max_log_std: float = 1.0) -> None:
        super().__init__()
        if not min_log_std < math.log(init_std) < max_log_std:
            raise ValueError(f"init_std {init_std} must lie strictly between exp({min_log_std}) and "
                             f"exp({max_log_std})")
        self.action_size = action_size
        self.min_log_std, self.max_log_std = min_log_std, max_log_std
        self.trunk = mlp(features, hidden, layers)
        self.head = nn.Linear(hidden if layers else features, 2 * action_size)
        # Small initial means (actions near 0) and std = init_std everywhere: the first rollouts explore
        # around "stay still" instead of saturating the tanh.
        nn.init.uniform_(self.head.weight, -1e-3, 1e-3)
        nn.init.zeros_(self.head.bias)
        fraction = (math.log(init_std) - min_log_std) / (max_log_std - min_log_std)
        self.log_std_offset = math.log(fraction / (1.0 - fraction))

    def distribution(self, features: Tensor) -> SquashedGaussian:
        mean, raw_std = self.head(self.trunk(features)).chunk(2, dim=-1)
        # A sigmoid keeps log-std in [min, max] with a smooth gradient (DreamerV3 bounds its std the same way).
        span = self.max_log_std - self.min_log_std
        log_std = self.min_log_std + span * torch.sigmoid(raw_std + self.log_std_offset)
        return SquashedGaussian(mean, log_std)

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor]:
        """A sampled action (..., A) in [-1, 1] and its log-probability (...), both differentiable."""
        return self.distribution(features).rsample()

    def deterministic(self, features: Tensor) -> Tensor:
        """The mode ``tanh(mean)`` (..., A)."""
        return self.distribution(features).mode


__all__ = ["SquashedGaussian", "SquashedGaussianActor", "log_one_minus_tanh_squared", "mlp"]
