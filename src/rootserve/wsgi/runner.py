"""The WSGI runner: a cycle for each exchange, the app threads, and the hand-offs between
the loop thread and them, in batches both ways."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from rootserve.protocol.exchange import Exchange
from rootserve.types import WSGIApp
from rootserve.wsgi.adapter import WSGICycle
from rootserve.wsgi.call import FileWrapper
from rootserve.wsgi.environ import base_environ
from rootserve.wsgi.threads import AppThreads

__all__ = ["WSGIRunner"]

logger = logging.getLogger("rootserve.error")


class WSGIRunner:
    """Makes a WSGI cycle for each exchange and hands it to the app threads."""

    def __init__(
        self,
        app: WSGIApp,
        *,
        threads: int,
        root_path: str,
        multiprocess: bool,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.app = app
        self.root_path = root_path
        self.multiprocess = multiprocess
        self.loop = loop
        self.base_environ = base_environ(
            root_path=root_path, scheme="http", multiprocess=multiprocess, file_wrapper=FileWrapper
        )
        self.pool = AppThreads(threads)
        # Hand-offs go in batches, both ways. Every switch of the GIL between the loop
        # thread and an app thread costs futex calls, and uvloop lets the GIL go between
        # its callbacks; so the requests of one pass of the loop reach the app threads
        # together, after the pass, and the answers of the app threads come back to the
        # loop in one wake-up however many there are (DESIGN.md: the hand-off is on the
        # hot path). An app thread still takes one request at a time.
        self._to_threads: list[WSGICycle] = []
        self._back: deque[tuple[Callable[..., None], tuple[Any, ...]]] = deque()
        self._back_scheduled = False

    def attach(self, exchange: Exchange) -> None:
        exchange.receiver = WSGICycle(exchange, self)

    def start(self, exchange: Exchange) -> None:
        cycle: WSGICycle = exchange.receiver  # type: ignore[assignment]  # attach() made it
        if exchange.request_complete:
            # No body to wait for (every GET): straight to the threads (submit, inlined).
            to_threads = self._to_threads
            to_threads.append(cycle)
            if len(to_threads) == 1:
                self.loop.call_soon(self._submit_all)
        else:
            cycle.start()

    def submit(self, cycle: WSGICycle) -> None:
        """From the loop thread: run `cycle` on an app thread (after this loop pass)."""
        self._to_threads.append(cycle)
        if len(self._to_threads) == 1:
            self.loop.call_soon(self._submit_all)

    def _submit_all(self) -> None:
        cycles, self._to_threads = self._to_threads, []
        # The queue's own put, no Python frame around it per request (with the list's
        # close() skipped in call.py and deliver_whole's inlined _respond, measured:
        # 84.4k -> 82.2k instructions per request, benchmarks/instructions.py --wsgi).
        put = self.pool.put
        for cycle in cycles:
            put(cycle)

    def back(self, callback: Callable[..., None], *args: Any) -> None:
        """From an app thread: run `callback(*args)` on the loop, in order."""
        self._back.append((callback, args))
        if not self._back_scheduled:
            self._back_scheduled = True
            self.loop.call_soon_threadsafe(self._run_back)

    def _run_back(self) -> None:
        # The flag drops before the queue is drained: an item added after the drain sees
        # it down and schedules another pass, so none is left behind.
        self._back_scheduled = False
        popleft = self._back.popleft
        while self._back:
            callback, args = popleft()
            try:
                callback(*args)
            except Exception as exc:  # one answer's failure must not strand the others
                logger.critical("Error handing a WSGI response to the loop", exc_info=exc)

    async def aclose(self) -> None:
        self.pool.stop()
