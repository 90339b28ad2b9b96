"""What every connection of one worker shares, and the states a connection moves through.

A connection is in one `ConnState` at a time, and each state has its deadline: the time a
client gets to do what the state waits for. `NEXT` is the one table of the moves allowed;
`Connection.enter` checks every move against it (closing, allowed from every state, is
made directly), so a move nobody planned fails loudly in
tests instead of leaving a connection with the wrong deadline.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from rootserve.config import Config
from rootserve.observe.access import AccessLog, NullAccessLog, printable
from rootserve.observe.metrics import MeteredLog, Metrics, NullMetrics, shared_metrics
from rootserve.protocol._h2_limits import H2Limits
from rootserve.protocol.events import BadRequest, Head
from rootserve.protocol.exchange import Exchange
from rootserve.protocol.rules import Limits
from rootserve.server.running import Running

__all__ = ["NEXT", "NO_DEADLINE", "ConnState", "Runner", "ServerState"]

logger = logging.getLogger("rootserve.error")

NO_DEADLINE: Final = float("inf")
LINGER_SECONDS: Final = 2.0  # after a closing answer, for the client to read it (see _linger)


class ConnState(enum.IntEnum):
    """An IntEnum, not an Enum: a plain Enum member hashes in Python (`Enum.__hash__`),
    and every move looks its state up in two tables; an int hashes in C."""

    NEW = 0  # accepted, nothing read yet
    IDLE = 1  # waiting for the next request (keep-alive timeout)
    HEAD = 2  # a request head is arriving (header timeout, RFC 9110 section 15.5.9)
    BUSY = 3  # answering a request (no deadline: the app takes the time it takes)
    BODY = 4  # a request body is arriving (body deadline: a minimum rate)
    UPGRADED = 5  # the bytes belong to another protocol's session, which keeps its own time
    LINGER = 6  # answered and closing: reading what the client still sends, then closing
    CLOSED = 7


NEW: Final = ConnState.NEW
IDLE: Final = ConnState.IDLE
HEAD: Final = ConnState.HEAD
BUSY: Final = ConnState.BUSY
BODY: Final = ConnState.BODY
UPGRADED: Final = ConnState.UPGRADED
LINGER: Final = ConnState.LINGER
CLOSED: Final = ConnState.CLOSED

# The moves a connection may make. BODY goes back to BUSY when the body is in while the
# answer goes on, or straight to IDLE/HEAD when the answer was done first. Any state may
# close, and any state that can still answer may linger after a closing answer.
NEXT: Final[Mapping[ConnState, frozenset[ConnState]]] = {
    NEW: frozenset({IDLE, CLOSED}),
    IDLE: frozenset({HEAD, BUSY, BODY, LINGER, CLOSED}),
    HEAD: frozenset({BUSY, BODY, LINGER, CLOSED}),
    BUSY: frozenset({IDLE, HEAD, BODY, UPGRADED, LINGER, CLOSED}),
    BODY: frozenset({IDLE, HEAD, BUSY, LINGER, CLOSED}),
    UPGRADED: frozenset({CLOSED}),
    LINGER: frozenset({CLOSED}),
    CLOSED: frozenset(),
}


class Runner(Protocol):
    """The adapter for one contract (ASGI HTTP, WebSocket or WSGI), as the server uses it."""

    def attach(self, exchange: Exchange) -> None:
        """Make the adapter's cycle for a request that just arrived; it becomes the
        exchange's receiver (a body may be fed to it before its turn comes)."""

    def start(self, exchange: Exchange) -> None:
        """The request's turn: call the app for it."""

    async def aclose(self) -> None: ...


@dataclass(eq=False)
class ServerState:
    """What every connection of one worker shares."""

    runner: Runner
    loop: asyncio.AbstractEventLoop
    limits: Limits
    timeouts: Mapping[ConnState, float]  # seconds per state; 0: none
    min_body_rate: float  # bytes per second a body must keep up once its grace is used
    limit_concurrency: int
    server_header: bytes | None
    date_header: bool
    access_log: AccessLog | NullAccessLog | MeteredLog
    metrics: Metrics | NullMetrics = field(default_factory=NullMetrics)
    websocket: Runner | None = None  # None: --ws off, or a WSGI app
    running: Running = field(default_factory=Running)  # exchanges whose app call goes on
    connections: Running = field(default_factory=Running)
    sessions: Running = field(default_factory=Running)  # after a switch (WebSocket)
    # While stopping: connections whose first request, or one under way, is still
    # arriving; each is answered before it closes.
    arriving: Running = field(default_factory=Running)
    shutting_down: bool = False
    restarting: bool = False  # the stop is a restart: another process takes over
    requests: int = 0  # requests given to the app so far (--limit-max-requests)
    received: int = 0  # bytes read from clients, counted only with --metrics-bind
    # What a connection does beyond HTTP/1.1, each on a cold path of connection.py: HTTP/2
    # when the client speaks it, with these limits (--http auto or h2; None: h1); no
    # HTTP/1.1 request served (h2); and a PROXY header first from these peers (--proxy-protocol).
    h2: H2Limits | None = None
    h2_only: bool = False
    proxy_peers: Any = None  # a TrustedPeers (protocol/forwarded.py, imported only when on)
    # The keep-alive timeout, infinite for none, so that `now + idle_seconds` is the
    # deadline either way (read on the way of every keep-alive response).
    idle_seconds: float = field(init=False)

    def __post_init__(self) -> None:
        self.idle_seconds = self.timeouts[IDLE] or NO_DEADLINE
        # The access log's clock, read as each request arrives only when its lines show a
        # duration: otherwise `timed` returns the runner itself (observe/access.py).
        self.runner = self.access_log.timed(self.runner)
        if self.websocket is not None:
            self.websocket = self.access_log.timed(self.websocket)

    @classmethod
    def from_config(
        cls,
        config: Config,
        *,
        runner: Runner,
        loop: asyncio.AbstractEventLoop,
        websocket: Runner | None = None,
        **overrides: Any,
    ) -> ServerState:
        lines = AccessLog.from_config(config) if config.access_log else NullAccessLog()
        access_log: AccessLog | NullAccessLog | MeteredLog = lines
        metrics: Metrics | NullMetrics = NullMetrics()
        if config.metrics_bind:
            metrics = shared_metrics()
            access_log = MeteredLog(lines, metrics)  # each answered request, counted
        values: dict[str, Any] = {
            "runner": runner,
            "websocket": websocket,
            "loop": loop,
            "limits": Limits.from_config(config),
            "timeouts": timeouts(config),
            "min_body_rate": float(config.min_body_rate),
            "limit_concurrency": config.limit_concurrency,
            "server_header": b"rootserve" if config.server_header else None,
            "date_header": config.date_header,
            "access_log": access_log,
            "metrics": metrics,
            "h2": None if config.http == "h1" else H2Limits.from_config(config),
            "h2_only": config.http == "h2",
        }
        if config.proxy_protocol:
            from rootserve.protocol.forwarded import TrustedPeers

            values["proxy_peers"] = TrustedPeers.from_settings(config.forwarded_allow_ips)
        values.update(overrides)
        return cls(**values)

    def start(self, runner: Runner, exchange: Exchange) -> None:
        """A request's turn, on a connection of either protocol: over --limit-concurrency
        it is answered 503 without calling the app (RFC 9110 section 15.6.4); otherwise it
        is counted as running (a graceful stop waits for it) and its runner calls the app."""
        running = self.running
        if self.limit_concurrency and len(running) >= self.limit_concurrency:
            exchange.refuse(503, "server at its concurrency limit", [])
            return
        running.add(exchange)
        self.requests += 1
        try:
            runner.start(exchange)
        except BaseException:
            running.discard(exchange)  # nothing will run it: it must not hold up a stop
            if not running:
                running.removed()
            raise

    def log_bad_request(self, client: tuple[str, int] | None, event: BadRequest) -> None:
        who = f"{client[0]}:{client[1]}" if client else "-"
        logger.info("%s - rejected: %d %s", who, event.status, printable(event.reason))

    def log_cut_body(self, client: tuple[str, int] | None, request: Head) -> None:
        """The client went away before the end of a request's body: the request failed
        (the app saw http.disconnect, or a wsgi.input read that raised, or was not called)."""
        who = f"{client[0]}:{client[1]}" if client else "-"
        target = printable(request.target.decode("latin-1"))
        logger.info(
            "%s - failed: %s %s: the client left before the end of the body",
            who,
            printable(request.method),
            target,
        )


def timeouts(config: Config) -> dict[ConnState, float]:
    """The deadline of each state, in seconds from entering it (0: none)."""
    return {
        NEW: 0,
        IDLE: config.timeout_keep_alive,
        HEAD: config.timeout_header,
        BUSY: 0,  # Connection._start relies on this (it enters BUSY without a clock read)
        BODY: config.timeout_body,
        UPGRADED: 0,
        LINGER: LINGER_SECONDS,
        CLOSED: 0,
    }
