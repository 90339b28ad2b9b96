"""The reaper: a few times a second, close the connections whose deadline passed (a batch
at a time, so that a crowd of them never stalls the other clients), and do what must
happen on a live loop at a steady pace: a supervisor's worker beats its heart, the metrics
are published, the retirement limits (RetireLimits) are checked."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from rootserve.config import Config
from rootserve.observe.process import rss_bytes
from rootserve.server.state import ServerState

__all__ = ["MAX_TICK", "Reaper", "RetireLimits", "no_heartbeat", "tick"]

MAX_TICK: Final = 1.0  # seconds between reaper passes, at most
# Connections ended in one go before the loop runs its other callbacks and reads its
# sockets again. Ending one costs up to a few hundred microseconds (a 408, a log line, an
# app told of the disconnect): a thousand slow bodies whose deadlines passed at one tick
# stalled every other client for 0.3-0.4 s when ended in one go (measured, under load,
# with tests/e2e/test_hostile_clients.py); a batch stalls them for a few milliseconds.
REAP_BATCH: Final = 16


def tick(config: Config) -> float:
    timeouts = [
        t
        for t in (
            config.timeout_keep_alive,
            config.timeout_header,
            config.timeout_body,
            config.ws_ping_interval,
            config.ws_ping_timeout,
            # A supervisor's worker beats at each pass: four beats per health-check time.
            config.timeout_worker_healthcheck if config.workers else 0,
        )
        if t > 0
    ]
    return min([MAX_TICK, *(t / 4 for t in timeouts)])


def no_heartbeat() -> None:
    return None


@dataclass(frozen=True)
class RetireLimits:
    """When a worker has done enough: --limit-max-requests (plus a random share of
    --max-requests-jitter, drawn once per worker) and --limit-worker-memory."""

    max_requests: int  # 0: no limit
    max_rss: int  # bytes; 0: no limit

    @classmethod
    def from_config(cls, config: Config) -> RetireLimits | None:
        if not (config.limit_max_requests or config.limit_worker_memory):
            return None
        max_requests = config.limit_max_requests
        if max_requests and config.max_requests_jitter:
            max_requests += random.randint(0, config.max_requests_jitter)
        return cls(max_requests, config.limit_worker_memory * 1024 * 1024)

    def reached(self, requests: int) -> str | None:
        """Why this worker should retire now, or None."""
        if self.max_requests and requests >= self.max_requests:
            return (
                f"Served {requests} requests, the limit set for this process "
                f"(--limit-max-requests with --max-requests-jitter: {self.max_requests})"
            )
        if self.max_rss:
            rss = rss_bytes()
            if rss > self.max_rss:
                return (
                    f"Resident memory {rss / 2**20:.0f} MiB is over "
                    f"--limit-worker-memory {self.max_rss // 2**20} MiB"
                )
        return None


class Reaper:
    """Closes connections whose deadline has passed; one pass per tick. Each pass also
    calls `on_pass`: a supervisor's worker beats its heart there, proving that its event
    loop runs, and the retirement limits are checked."""

    def __init__(self, state: ServerState, tick: float, on_pass: Callable[[], None]) -> None:
        self.state = state
        self.tick = tick
        self.on_pass = on_pass
        self._handle: asyncio.TimerHandle | None = None
        self._rest: asyncio.Handle | None = None  # the next batch of a long pass

    def start(self) -> None:
        self._handle = self.state.loop.call_later(self.tick, self._run)

    def _run(self) -> None:
        state = self.state
        now = state.loop.time()
        if self._rest is None:  # else the last pass is still at work: it goes on
            self._reap([c for c in state.connections if c.deadline <= now], now)
        # A switched connection's session (WebSocket) keeps its own time: pings, closes.
        for session in [s for s in state.sessions if s.deadline <= now]:
            session.on_deadline()
        self.on_pass()
        self.start()

    def _reap(self, due: list[Any], now: float) -> None:
        """End the connections of `due` whose deadline is still passed (one may have
        moved on since the pass began), REAP_BATCH at a time."""
        self._rest = None
        for conn in due[:REAP_BATCH]:
            if conn.deadline <= now:
                conn.on_deadline()
        if len(due) > REAP_BATCH:
            self._rest = self.state.loop.call_soon(self._reap, due[REAP_BATCH:], now)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        if self._rest is not None:
            self._rest.cancel()
