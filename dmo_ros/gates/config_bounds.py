"""The checks every gate config runs in ``__post_init__``: counts, fractions and finite numbers, each error naming
the field (``--episodes`` on ``dmo-gate``'s command line) and what it takes.

A gate measured with zero episodes or a nan bound writes nan values and ``null`` into ``gate.json``; refusing the
config before anything is measured says which option to fix instead."""

from __future__ import annotations

import math


def check_fields(config: object, *, counts: tuple[str, ...] = (), optional_counts: tuple[str, ...] = (),
                 positive: tuple[str, ...] = (), nonnegative: tuple[str, ...] = (), finite: tuple[str, ...] = (),
                 fractions: tuple[str, ...] = (), correlations: tuple[str, ...] = ()) -> None:
    """Check the named fields of ``config``: ``counts`` integers >= 1, ``optional_counts`` integers >= 0 (0: skip
    it), ``positive`` finite numbers > 0, ``nonnegative`` finite numbers >= 0, ``finite`` any finite number,
    ``fractions`` in [0, 1] and ``correlations`` in [-1, 1].

    Raises ``ValueError`` naming the first field out of its range and its value."""
    def value(name: str) -> float:
        return getattr(config, name)

    for name in counts:
        if value(name) < 1:
            raise ValueError(f"{name} must be >= 1, got {value(name)}")
    for name in optional_counts:
        if value(name) < 0:
            raise ValueError(f"{name} must be >= 0 (0: skip it), got {value(name)}")
    for names, low, high, what in ((positive, 0.0, math.inf, "a number > 0"),
                                   (nonnegative, 0.0, math.inf, "a number >= 0"),
                                   (finite, -math.inf, math.inf, "a finite number"),
                                   (fractions, 0.0, 1.0, "in [0, 1]"),
                                   (correlations, -1.0, 1.0, "in [-1, 1]")):
        for name in names:
            number = float(value(name))
            if not (math.isfinite(number) and low <= number <= high) or (what == "a number > 0" and number == 0):
                raise ValueError(f"{name} must be {what}, got {value(name)}")


__all__ = ["check_fields"]
