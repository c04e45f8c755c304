"""TrainConfig validation: every bad value is refused with the field's name."""

from __future__ import annotations

import pytest

from dmo_ros.training import TrainConfig


@pytest.mark.parametrize("field", ["lr", "weight_decay", "ema_decay", "grad_clip", "time_limit_s"])
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_numbers_are_refused_by_name(field: str, value: float) -> None:
    """nan passes every ``< 0`` check: built from Python (not the command line) it must still be refused."""
    with pytest.raises(ValueError, match=f"{field} must be a finite number"):
        TrainConfig(**{field: value})


def test_non_finite_betas_are_refused() -> None:
    with pytest.raises(ValueError, match="betas must be a finite number"):
        TrainConfig(betas=(0.9, float("nan")))


def test_an_unknown_learning_rate_schedule_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match="lr_schedule must be one of constant, cosine, got 'linear'"):
        TrainConfig(lr_schedule="linear")
