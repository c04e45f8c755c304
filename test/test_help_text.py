"""plain_text: Sphinx inline markup as a terminal shows it (the commands' --help)."""

from __future__ import annotations

import pytest

from dmo_ros.help_text import plain_text


@pytest.mark.parametrize(("rst", "text"), [
    ("``x``", "x"),
    (":func:`~dmo_ros.gates.reward.agent_grid`", "agent_grid"),
    (":class:`dmo_ros.sims.pusht.PushTState`", "dmo_ros.sims.pusht.PushTState"),
    (":ref:`the ladder <ladder>`", "the ladder"),
    (":py:meth:`!draw`", "draw"),
    ("a ``b`` :meth:`~X.y` c, 5 %", "a b y c, 5 %"),
    ("no markup: `single` quotes stay", "no markup: `single` quotes stay"),
])
def test_plain_text(rst: str, text: str) -> None:
    assert plain_text(rst) == text
