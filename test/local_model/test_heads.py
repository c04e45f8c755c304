"""symlog / symexp, two-hot encoding, and the two-hot reward head."""

from __future__ import annotations

import pytest
import torch

from dmo_ros.local_model.config import LocalModelConfig
from dmo_ros.local_model.heads import RewardHead, TwoHot, symexp, symlog, symlog_mse


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: on a busy shared machine a second one mostly spins (tens of times slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_symlog_and_symexp_are_inverse() -> None:
    x = torch.cat([torch.linspace(-1e4, 1e4, 1001), torch.linspace(-2, 2, 401)]).double()
    torch.testing.assert_close(symexp(symlog(x)), x)
    torch.testing.assert_close(symlog(symexp(x / 1e3)), x / 1e3)
    assert symlog(torch.tensor(0.0)) == 0 and abs(symlog(torch.tensor(1e-4)).item() - 1e-4) < 1e-7  # ~identity at 0
    assert abs(symlog(torch.tensor(-1e6)).item() + 13.8155) < 1e-3  # -log(1 + 1e6)
    assert symlog_mse(torch.tensor([symlog(torch.tensor(3.0))]), torch.tensor([3.0])).item() == 0


def test_two_hot_encodes_and_decodes_exactly() -> None:
    twohot = TwoHot(-20.0, 20.0, 255)
    x = torch.tensor([-20.0, -3.3, -0.01, 0.0, 0.123, 1.0, 7.77, 20.0])
    weights = twohot.encode(x)
    assert weights.shape == (8, 255)
    torch.testing.assert_close(weights.sum(-1), torch.ones(8))
    assert ((weights > 0).sum(-1) <= 2).all()
    nonzero = [torch.nonzero(w).flatten() for w in weights]
    assert all(len(i) == 1 or i[1] - i[0] == 1 for i in nonzero)  # adjacent bins
    torch.testing.assert_close(twohot.decode(weights), x, atol=1e-5, rtol=0)
    # Values on a bin are one-hot; values outside the range are clipped to the end bins.
    assert twohot.encode(twohot.bins[100:101]).max() == 1.0
    torch.testing.assert_close(twohot.decode(twohot.encode(torch.tensor([-50.0, 50.0]))), torch.tensor([-20.0, 20.0]))


def test_reward_head_starts_at_zero_and_learns_a_constant() -> None:
    torch.manual_seed(0)
    config = LocalModelConfig.preset("tiny", 2)
    head = RewardHead(16, config)
    features = torch.randn(32, 16)
    assert head.mean(head(features)).abs().max() < 1e-6  # zero-initialised output layer: uniform over the bins
    optimizer = torch.optim.Adam(head.parameters(), lr=3e-2)
    for target in (3.7, -0.25):
        for _ in range(150):
            loss = head.loss(head(features), torch.full((32,), target)).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        assert (head.mean(head(features)) - target).abs().max() < 0.02 * max(1.0, abs(target)), target
    # The loss is elementwise: one value per prediction.
    assert head.loss(head(features[:5]), torch.zeros(5)).shape == (5,)
