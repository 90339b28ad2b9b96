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
import time
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
        # submit() without its frame, for the runner's batches (runner.py).
        self.put = self._queue.put

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

    def stop(self, timeout: float = 1.0) -> None:
        """Let queued jobs finish, then end the threads, waiting up to `timeout` for all of
        them together: a thread still in the app by then (one graceful shutdown gave up on)
        is left to end with the process (app threads are daemons). Each thread waited in
        turn with a timeout of its own made a stop with stuck threads take seconds per
        thread past --timeout-graceful (tests/e2e/test_app_faults.py)."""
        for _ in self._threads:
            self._queue.put(None)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        stuck = [thread.name for thread in self._threads if thread.is_alive()]
        if stuck:
            logger.warning(
                "App thread(s) still in the app, left to end with the process: %s", ", ".join(stuck)
            )
