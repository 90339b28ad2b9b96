"""The set of requests whose app call is in progress, and a way to wait until it is empty."""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["Running"]


class Running:
    """Cycles whose app call has not returned. The event loop's thread only."""

    def __init__(self) -> None:
        self._items: set[Any] = set()
        self._empty: asyncio.Event | None = None  # made when someone waits

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Any:
        return iter(list(self._items))

    def add(self, item: Any) -> None:
        self._items.add(item)

    def discard(self, item: Any) -> None:
        self._items.discard(item)
        if not self._items and self._empty is not None:
            self._empty.set()

    async def wait_empty(self, timeout: float | None) -> bool:
        """Wait until nothing runs, at most `timeout` seconds; True if it emptied."""
        if not self._items:
            return True
        self._empty = asyncio.Event()
        try:
            await asyncio.wait_for(self._empty.wait(), timeout)
        except TimeoutError:
            return False
        return True
