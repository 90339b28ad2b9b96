"""The set of requests whose app call is in progress, and a way to wait until it is empty."""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["Running"]


class Running(set[Any]):
    """Cycles whose app call has not returned (or connections still open). The event
    loop's thread only. A set, so that adding, counting and iterating cost what a set's
    do; only `discard` does more, to wake a `wait_empty`."""

    __slots__ = ("_empty",)

    def __init__(self) -> None:
        super().__init__()
        self._empty: asyncio.Event | None = None  # made when someone waits

    def discard(self, item: Any) -> None:
        set.discard(self, item)
        if not self and self._empty is not None:
            self._empty.set()

    async def wait_empty(self, timeout: float | None) -> bool:
        """Wait until nothing runs, at most `timeout` seconds; True if it emptied."""
        if not self:
            return True
        self._empty = asyncio.Event()
        try:
            await asyncio.wait_for(self._empty.wait(), timeout)
        except TimeoutError:
            return False
        return True
