"""The adapters in memory: a fake connection that a real `HTTP11Exchange` runs on.

`FakeConnection` stands in for `rootserve.server.connection.Connection`, with no socket: it
has the real sans-IO protocol (`proto`), records what the exchange and the WebSocket session
ask of it (bytes written, keep-alive decisions, pauses, aborts, closes), and dispatches the
protocol's events the way the connection does (`open`, `received`): a `Request` makes an
`HTTP11Exchange` that the runner `attach`es its cycle to, `Data` and `EndOfMessage` go to
`exchange.feed` and `exchange.end`. `start` is the request's turn (the connection's
`_start`): the exchange joins the running set and the runner starts the app's call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

from rootserve.config import Config
from rootserve.observe.access import NullAccessLog
from rootserve.protocol.events import Data, EndOfMessage, Event, Request
from rootserve.protocol.exchange import Upgraded
from rootserve.protocol.http11 import HTTP11Connection
from rootserve.protocol.rules import Limits
from rootserve.server.exchange import HTTP11Exchange
from rootserve.server.state import ServerState, timeouts

SERVER = ("127.0.0.1", 8000)
CLIENT = ("127.0.0.1", 50000)
POLL_SECONDS = 0.005
WAIT = 10.0


def parse_request(raw: bytes) -> Request:
    """The first request in `raw`, as the protocol parses it."""
    request = HTTP11Connection().receive_data(raw)[0]
    assert isinstance(request, Request)
    return request


def fake_state(loop: asyncio.AbstractEventLoop | None) -> ServerState:
    """What an exchange and a session use of the worker's `ServerState`: a real one (mypyc
    compiles the class, which then takes no subclass), with no runner; without a loop, a
    loop that refuses every call (AbstractEventLoop's own methods raise)."""
    return ServerState(
        runner=cast(Any, None),
        loop=loop if loop is not None else asyncio.AbstractEventLoop(),
        limits=Limits(),
        timeouts=timeouts(Config()),
        min_body_rate=0.0,
        limit_concurrency=0,
        server_header=None,
        date_header=False,
        access_log=NullAccessLog(),
    )


class FakeConnection:
    """What `HTTP11Exchange` and `WebSocketSession` use of a connection, recorded."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        if loop is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
        self.proto = HTTP11Connection(request_class=HTTP11Exchange)
        self.state = fake_state(loop)
        self.server_addr: tuple[str, int] | None = SERVER
        self.client_addr: tuple[str, int] | None = CLIENT
        self.transport: Any = None
        self.write_paused = False
        self.writes: list[bytes] = []
        self.completed: list[bool] = []  # keep_alive of each response_complete
        self.bodies_due = 0  # body_due calls: 100 Continue went out
        self.pauses = 0
        self.resumes = 0
        self.drains = 0
        self.aborted = False
        self.closed = False
        self.runner: Any = None  # the runner of the requests `open` received
        self.events: list[Event] = []
        self.exchanges: list[HTTP11Exchange] = []
        self.receiving: HTTP11Exchange | None = None
        self.upgrade: HTTP11Exchange | None = None  # a request that asked to switch
        self.session: Upgraded | None = None  # after the switch

    @property
    def wire(self) -> bytes:
        return b"".join(self.writes)

    # -- what the server does ------------------------------------------------------------

    def open(self, raw: bytes, runner: Any, *, deliver_body: bool = True) -> HTTP11Exchange:
        """Receive `raw`, make the exchange of its first request, and attach `runner`'s cycle
        to it; its body goes in now when `deliver_body`, else the test feeds it."""
        self.runner = runner
        self._dispatch(self.proto.receive_data(raw), deliver_body)
        return self.exchanges[0]

    def received(self, data: bytes) -> None:
        """Bytes from the client: to the session after a switch, else to the protocol."""
        if self.session is not None:
            self.session.data_received(data)
        else:
            self._dispatch(self.proto.receive_data(data), True)

    def _dispatch(self, events: list[Event], deliver_body: bool) -> None:
        self.events += events
        for event in events:
            if isinstance(event, HTTP11Exchange):
                exchange = event
                exchange.bind(self)  # type: ignore[arg-type]
                if event.upgrade and event is self.proto.upgrade_request:
                    self.upgrade = exchange
                self.runner.attach(exchange)
                self.exchanges.append(exchange)
                if event.has_body:
                    self.receiving = exchange
            elif not deliver_body or self.receiving is None:
                continue
            elif isinstance(event, Data):
                self.receiving.feed(event.data)
            elif isinstance(event, EndOfMessage):
                self.receiving.end()
                self.receiving = None

    def start(self, runner: Any, exchange: HTTP11Exchange) -> None:
        """The request's turn: it runs until `exchange.finish()` (Connection._start)."""
        self.state.running.add(exchange)
        runner.start(exchange)

    def resume_writing(self) -> None:
        """The transport drained (Connection.resume_writing)."""
        self.write_paused = False
        if self.session is not None:
            self.session.writable()
        for exchange in self.exchanges:
            exchange.receiver.writable()

    def shutdown(self, restart: bool = False) -> None:
        """Graceful stop (the worker's _shutdown, then Connection.shutdown)."""
        self.state.shutting_down = True
        self.state.restarting = restart
        if self.session is not None:
            self.session.shutdown(restart)
        else:
            self.proto.close_after_response()

    # -- what an exchange and a session use ----------------------------------------------

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    async def drain(self) -> None:
        self.drains += 1

    def pause_reading(self) -> None:
        self.pauses += 1

    def resume_reading(self) -> None:
        self.resumes += 1

    def response_complete(
        self, exchange: HTTP11Exchange, keep_alive: bool, last: bytes, rest: bytes = b""
    ) -> None:
        if last:
            self.write(last + rest)
        self.completed.append(keep_alive)

    def writelines(self, parts: tuple[bytes, bytes]) -> None:
        self.write(b"".join(parts))

    def body_due(self, exchange: HTTP11Exchange) -> None:
        self.bodies_due += 1

    def abort(self) -> None:
        self.aborted = True

    def close(self) -> None:
        self.closed = True

    def switch(
        self, exchange: HTTP11Exchange, open_session: Callable[[FakeConnection], Upgraded]
    ) -> Upgraded:
        """The 101 is written: the session opens, and gets the bytes that followed the
        request (Connection.switch)."""
        held = self.proto.take_upgrade_data()
        session = open_session(self)
        self.upgrade = None
        self.session = session
        if held:
            session.data_received(held)
        if self.state.shutting_down:
            session.shutdown(self.state.restarting)  # accepted while stopping: closes at once
        return session


async def settle() -> None:
    """Let every ready task run until it waits for something."""
    for _ in range(5):
        await asyncio.sleep(0)


async def wait_until(condition: Callable[[], bool], timeout: float = WAIT) -> None:
    """Wait (on the loop) for a condition an app thread or a task makes true."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(POLL_SECONDS)
