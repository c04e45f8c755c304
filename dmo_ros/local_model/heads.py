"""DreamerV3's symlog transform and two-hot reward head.

Rewards are predicted as a categorical distribution over fixed bins in symlog space
(``symlog(x) = sign(x) log(1 + |x|)``): the target is the *two-hot* encoding of
``symlog(reward)`` (weights on the two nearest bins that interpolate it exactly), the loss is
the cross-entropy, and the prediction is ``symexp`` of the expected bin. Why: the loss's scale
does not depend on the reward's, so one set of hyper-parameters fits any reward magnitude.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dmo_ros.local_model.config import LocalModelConfig


def symlog(x: torch.Tensor) -> torch.Tensor:
    """sign(x) log(1 + |x|): compresses large magnitudes, about the identity near 0."""
    return torch.sign(x) * torch.log1p(x.abs())


def symexp(x: torch.Tensor) -> torch.Tensor:
    """sign(x) (exp(|x|) - 1), the inverse of :func:`symlog`."""
    return torch.sign(x) * torch.expm1(x.abs())


def symlog_mse(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Elementwise (prediction - symlog(target))^2: a regression loss whose scale ignores the target's."""
    return (prediction - symlog(target)).pow(2)


class TwoHot(nn.Module):
    """Two-hot encoding over fixed, evenly spaced bins (in whatever space the values are given).

    ``encode(x)`` puts weight on the two bins around ``x`` (clipped to the bins' range) so that
    the weighted mean of the bins is exactly ``x``; ``decode(probs)`` is that weighted mean.
    """

    def __init__(self, low: float, high: float, num_bins: int) -> None:
        super().__init__()
        if num_bins < 2 or not low < high:
            raise ValueError(f"need num_bins >= 2 and low < high, got {num_bins}, {low}, {high}")
        self.register_buffer("bins", torch.linspace(low, high, num_bins), persistent=False)

    @property
    def num_bins(self) -> int:
        return self.bins.numel()

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(...) values -> (..., num_bins) weights (two non-zero, summing to 1)."""
        bins = self.bins
        x = x.float().clamp(bins[0], bins[-1])
        below = (torch.searchsorted(bins, x.contiguous(), right=True) - 1).clamp(0, self.num_bins - 2)
        above = below + 1
        weight_above = ((x - bins[below]) / (bins[above] - bins[below])).clamp(0.0, 1.0)
        return (F.one_hot(below, self.num_bins) * (1.0 - weight_above)[..., None]
                + F.one_hot(above, self.num_bins) * weight_above[..., None])

    def decode(self, probs: torch.Tensor) -> torch.Tensor:
        """(..., num_bins) probabilities -> (...) expected bin value."""
        return (probs.float() * self.bins).sum(-1)


class RewardHead(nn.Module):
    """Latent features (..., F) -> reward logits (..., bins); :meth:`mean` decodes, :meth:`loss` trains."""

    def __init__(self, feature_size: int, config: LocalModelConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width_in = feature_size
        for _ in range(config.head_layers):
            layers += [nn.Linear(width_in, config.hidden_size, bias=False),
                       nn.LayerNorm(config.hidden_size, eps=1e-3), nn.SiLU()]
            width_in = config.hidden_size
        self.mlp = nn.Sequential(*layers)
        self.out = nn.Linear(width_in, config.reward_bins)
        # Zero output layer (DreamerV3): the first predictions are exactly 0, not large random rewards
        # that the policy would chase before the head has learned anything.
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.twohot = TwoHot(config.reward_low, config.reward_high, config.reward_bins)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.out(self.mlp(features))

    def mean(self, logits: torch.Tensor) -> torch.Tensor:
        """(..., bins) logits -> (...) predicted reward: symexp of the expected symlog bin."""
        return symexp(self.twohot.decode(logits.float().softmax(-1)))

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Elementwise (...) cross-entropy of the logits against the two-hot encoding of symlog(target)."""
        return -(self.twohot.encode(symlog(target.float())) * logits.float().log_softmax(-1)).sum(-1)


__all__ = ["RewardHead", "TwoHot", "symexp", "symlog", "symlog_mse"]
