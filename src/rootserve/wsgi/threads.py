"""The app threads: a fixed set of threads taking WSGI cycles from one queue.

The hand-off is a `queue.SimpleQueue` (a C queue: one put and one get per request) and the
way back is `loop.call_soon_threadsafe`. Measured on this project's machine (DESIGN.md), that
pair costs about a third of what `loop.run_in_executor` does per request.
"""

from __future__ import annotations

import contextvars
import logging
import queue
import threading
from typing import Any, Protocol

__all__ = ["AppThreads"]

logger = logging.getLogger("rootserve.error")


class _Runnable(Protocol):
    def run(self) -> None: ...


class AppThreads:
    def __init__(self, count: int, *, name: str = "rootserve-app") -> None:
        if count < 1:
            raise ValueError("at least one app thread is needed")
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{n}", daemon=True)
            for n in range(count)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, job: _Runnable) -> None:
        self._queue.put(job)

    def _work(self) -> None:
        get = self._queue.get
        while True:
            job = get()
            if job is None:
                return
            try:
                # Each request in a context of its own, as an ASGI request gets with its
                # task: a contextvar one request sets never shows in the next on this thread.
                contextvars.Context().run(job.run)
            except BaseException as exc:  # the thread must outlive any one request
                logger.critical("App thread error outside the app", exc_info=exc)

    def stop(self, timeout: float = 5.0) -> None:
        """Let queued jobs finish, then end the threads (waiting up to `timeout` each)."""
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout)
