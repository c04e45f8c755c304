"""The twin critics: averaging, Polyak targets, gradients to the features only."""

from __future__ import annotations

import pytest
import torch

from dmo_ros.dmo.critics import TwinCritics


def test_twin_critics_average_and_targets() -> None:
    torch.manual_seed(0)
    critics = TwinCritics(features=3, hidden=8, layers=1)
    with torch.no_grad():
        for i, critic in enumerate(critics.online):
            critic.head.weight.normal_()
            critic.head.bias.fill_(float(i))
    features = torch.randn(6, 3)
    values = critics.values(features)
    assert values.shape == (2, 6)
    assert not torch.allclose(values[0], values[1])
    torch.testing.assert_close(critics(features), 0.5 * (values[0] + values[1]))
    torch.testing.assert_close(critics(features), (critics.online[0](features) + critics.online[1](features)) / 2)

    # Targets start as copies of the initial critics (zero heads), then follow by Polyak averaging.
    assert torch.equal(critics.target(features), torch.zeros(6))
    assert not any(p.requires_grad for p in critics.targets.parameters())
    before = [p.clone() for p in critics.targets.parameters()]
    critics.update_targets(0.25)
    for old, target, online in zip(before, critics.targets.parameters(), critics.online.parameters(), strict=True):
        torch.testing.assert_close(target, 0.25 * old + 0.75 * online)
    critics.update_targets(0.0)
    torch.testing.assert_close(critics.target(features), critics(features))
    with pytest.raises(ValueError, match="ema"):
        critics.update_targets(1.0)


def test_target_values_pass_gradient_to_features_only() -> None:
    critics = TwinCritics(features=3, hidden=8, layers=1)
    with torch.no_grad():
        for critic in critics.online:
            critic.head.weight.normal_()
    critics.update_targets(0.0)
    features = torch.randn(4, 3, requires_grad=True)
    critics.target(features).sum().backward()
    assert features.grad is not None and features.grad.abs().sum() > 0
    assert all(p.grad is None for p in critics.parameters())
