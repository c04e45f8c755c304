"""A stop handler's ``received`` list that lets a second signal in right after the first append: what a second signal
does when it lands between two bytecodes of the first one's handler (CPython runs the handler again, nested). Shared
by the tests of every handler that decides "first stop or again" (the node template's and the trainers')."""

from __future__ import annotations

from collections.abc import Callable


class SecondSignalRightAfterAppend(list):
    """``deliver_second()`` runs inside the first ``append``, after the entry is in the list."""

    def __init__(self, deliver_second: Callable[[], None]) -> None:
        super().__init__()
        self.deliver_second = deliver_second

    def append(self, item) -> None:
        super().append(item)
        if len(self) == 1:
            self.deliver_second()
