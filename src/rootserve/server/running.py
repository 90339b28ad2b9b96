"""The set of requests whose app call is in progress, and a way to wait until it is empty."""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["Running"]


class Running(set[Any]):
    """Exchanges whose app call has not returned (or connections still open). The event
    loop's thread only. A set, so that adding, removing, counting and iterating cost what
    a set's do (C, no Python call on the way of every request); whoever removes an item
    calls `removed()` if the set is then empty, which wakes a `wait_empty`."""

    __slots__ = ("_empty",)

    def __init__(self) -> None:
        super().__init__()
        self._empty: asyncio.Event | None = None  # made when someone waits

    def removed(self) -> None:
        """The last item was removed: wake whoever waits for that."""
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
