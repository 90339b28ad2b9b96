"""One client connection: socket events in, protocol events out, one exchange at a time.

How this works. `data_received` feeds the sans-IO protocol and dispatches its events: each
`Request` is an `HTTP11Exchange` (the protocol makes them of that class), which the adapter
(`Runner.attach`) answers through; it starts at once when nothing else is being answered,
or waits in `pipeline` (answers go out in request order, RFC 9112 section 9.3.2). `Data`
and `EndOfMessage` go to the exchange whose body is being read. A `BadRequest` is answered
after every earlier request, then the connection closes. HTTP/2 (h2_detect.py, with --http
auto or h2) and a PROXY header (proxied.py) are met on cold paths. Flow control runs both
ways: reading pauses while an adapter holds enough unread body or the pipeline is full, and
senders wait in `drain()` while the transport's write buffer is above its high-water mark.

The connection is in one `ConnState` at a time (server/state.py: the table of moves and the
deadline of each). Timeouts are deadlines, not timers: the worker's reaper looks at
`deadline` once per tick, so a request costs a clock read instead of a timer made and
cancelled. A body must keep a minimum rate once its grace time is used (`_on_body`).

A request that asks to switch to WebSocket (the protocol holds the bytes after it) goes to
the WebSocket runner when there is one, else it is answered as a plain request and parsing
resumes. After a 101 every byte received goes to the session (`switch`), which keeps its own
deadline; the connection is then only its byte stream.

Over TLS the loop completes the handshake before `connection_made`; the connection keeps
the TLS facts (`ConnectionTLS`, server/tls.py) and makes its requests https.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any, Final

from rootserve.protocol._refuse import PrefaceReceived
from rootserve.protocol.events import (
    BadRequest,
    ConnectionClosed,
    Data,
    EndOfMessage,
    Event,
)
from rootserve.protocol.exchange import ByteStream, Upgraded
from rootserve.protocol.http11 import HTTP11Connection
from rootserve.server import h2_detect
from rootserve.server._deadlines import DeadlineSide
from rootserve.server.exchange import HTTP11Exchange
from rootserve.server.state import (
    BODY,
    BUSY,
    CLOSED,
    IDLE,
    LINGER,
    NEW,
    NO_DEADLINE,
    UPGRADED,
    Runner,
    ServerState,
)
from rootserve.server.tls import ConnectionTLS
from rootserve.units import KIB

__all__ = ["Connection"]

MAX_PIPELINE: Final = 16  # queued requests before reading pauses
WRITE_HIGH_WATER: Final = 64 * KIB
MAX_HELD_BYTES: Final = 64 * KIB  # received after a WebSocket handshake, before its answer


class Connection(DeadlineSide):
    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.proto = HTTP11Connection(
            state.limits,
            server_header=state.server_header,
            date_header=state.date_header,
            request_class=HTTP11Exchange,
        )
        self.transport = None
        self.server_addr: tuple[str, int] | None = None
        self.client_addr = None
        self.current = None  # the exchange being answered
        self.receiving = None  # the exchange whose body is arriving
        self.pipeline = deque()
        self.upgrade = None  # a request that asked to switch
        self.tls = None  # on a TLS listener, once connected
        self.session = None  # after the switch
        # Where received bytes go instead of the HTTP parser: nowhere while lingering, the
        # protocol's held bytes while a switch waits for its answer, then the session.
        self._sink = None
        self.at = NEW
        self.deadline = NO_DEADLINE
        self.write_paused = False
        self._drain: asyncio.Future[None] | None = None
        self._read_paused = False
        self._eof = False
        self._lingered = 0
        self._dispatching = False
        self._metered = state.metrics.enabled  # --metrics-bind: count the bytes read
        self._h1_refused = state.h2_only  # --http h2
        self.preamble = None

    # -- asyncio.Protocol -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        ssl_object = transport.get_extra_info("ssl_object")
        h2 = self.state.h2 is not None
        if h2 and ssl_object is not None and ssl_object.selected_alpn_protocol() == "h2":
            h2_detect.successor(self).take_over(transport, b"")
            return  # this object was never one of the worker's connections
        self.transport = transport
        self.server_addr = _address(transport.get_extra_info("sockname"))
        self.client_addr = _address(transport.get_extra_info("peername"))
        if ssl_object is not None:  # the handshake is done: the loop calls us only then
            self.tls = ConnectionTLS(ssl_object)
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)  # type: ignore[attr-defined]
        self.state.connections.add(self)
        self.enter(IDLE)
        if self.state.shutting_down:
            # Accepted as the listener closed: the client connected before the stop, so
            # it gets its one request answered (with Connection: close), not a reset.
            self.state.arriving.add(self)
            self.proto.close_after_response()
        if self.state.proxy_peers is not None:
            from rootserve.server.proxied import ProxyHeader  # (only with --proxy-protocol)

            ProxyHeader.expect(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.at = CLOSED
        self.deadline = NO_DEADLINE
        arriving = self.state.arriving
        if self in arriving:
            arriving.discard(self)
            if not arriving:
                arriving.removed()
        connections = self.state.connections
        connections.discard(self)
        if not connections:
            connections.removed()
        receiving = self.receiving
        if receiving is not None and not receiving.request_complete:
            self.state.log_cut_body(self.client_addr, receiving)
        for exchange in (self.current, receiving):
            if exchange is not None:
                exchange.disconnect()
        self.pipeline.clear()
        if self.session is not None:
            self.session.connection_lost()
            sessions = self.state.sessions
            sessions.discard(self.session)
            if not sessions:
                sessions.removed()
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    def data_received(self, data: bytes) -> None:
        if self._metered:
            self.state.received += len(data)
        sink = self._sink
        if sink is not None:
            sink(data)
            return
        events = self.proto.receive_data(data)
        # While these events are dispatched, an app that answers at once (an eager task
        # factory the app set on the loop) can finish its response before the events after
        # its request are seen.
        self._dispatching = True
        for event in events:
            kind = type(event)
            if kind is HTTP11Exchange:
                # The protocol makes its requests of the exchange's class.
                if event.upgrade:  # type: ignore[union-attr]
                    self._on_upgrade(event, events)  # type: ignore[arg-type]
                else:
                    self._on_request(event)  # type: ignore[arg-type]
            elif kind is Data:
                if self.receiving is not None:
                    self._on_body(self.receiving, event.data)  # type: ignore[union-attr]
            elif kind is EndOfMessage:
                if self.receiving is not None:
                    self._body_done(self.receiving)
            elif kind is BadRequest:
                self._on_bad_request(event)  # type: ignore[arg-type]
            elif kind is ConnectionClosed:
                pass
            elif kind is PrefaceReceived:
                self._on_preface(event)  # type: ignore[arg-type]
        self._dispatching = False
        if self.current is not None and self.receiving is None and not self.proto.head_in_progress:
            return  # answering a request, and nothing more has begun: the common case
        at = self.at
        if at is CLOSED or at is LINGER or self._sink is not None:
            return
        if self.current is None and not self.pipeline and not self.proto.receiving:
            self.close()  # the receive side ended while a response finished above
            return
        self._settle()

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.session is not None:
            self.session.writable()
        if self.current is not None:
            self.current.receiver.writable()
        if self._drain is not None:
            drain, self._drain = self._drain, None
            if not drain.done():
                drain.set_result(None)

    # -- what an exchange uses -------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self.at is not CLOSED:
            self.transport.write(data)

    def writelines(self, parts: tuple[bytes, bytes]) -> None:
        if self.at is not CLOSED:
            self.transport.writelines(parts)

    async def drain(self) -> None:
        if self.write_paused and self.at is not CLOSED:
            if self._drain is None:
                self._drain = asyncio.get_running_loop().create_future()
            await self._drain

    def pause_reading(self) -> None:
        if not self._read_paused and self.at is not CLOSED:
            self._read_paused = True
            self.transport.pause_reading()
            if self.at is BODY:
                self.enter(BUSY)  # the wait is ours, not the client's: no body deadline

    def resume_reading(self) -> None:
        if self._read_paused and self.at is not CLOSED and len(self.pipeline) < MAX_PIPELINE:
            self._read_paused = False
            self.transport.resume_reading()
            if self.receiving is not None and self.at is BUSY:
                self._settle()

    def response_complete(
        self, exchange: HTTP11Exchange, keep_alive: bool, last: bytes, rest: bytes = b""
    ) -> None:
        """`exchange` answered: `last` are the response's last bytes, written here (one
        call instead of two on the way of every response), and `rest` a large body after
        them, its own buffer in the same writev."""
        if last and self.at is not CLOSED:
            if rest:
                self.transport.writelines((last, rest))
            else:
                self.transport.write(last)
        state = self.state
        state.access_log.log(exchange.client, exchange, exchange.status)
        if exchange is not self.current:
            return  # a late answer to a request cut off by a refusal
        self.current = None
        if not keep_alive:
            self._linger()
        elif self.pipeline:
            self._start_next()
        elif self._eof or (not self.proto.receiving and not self._dispatching):
            self.close()
        else:
            if self.receiving is None and not self.proto.head_in_progress:
                # enter(IDLE), written out: every keep-alive response passes here, from
                # BUSY (no body is arriving), a move the table allows.
                self.at = IDLE
                self.deadline = state.loop.time() + state.idle_seconds
            else:
                self._settle()
            if self._read_paused:
                self.resume_reading()

    def switch(
        self, exchange: HTTP11Exchange, open_session: Callable[[ByteStream], Upgraded]
    ) -> Upgraded:
        """The 101 is written: the session opens on this connection, and from now on every
        byte received goes to it, first what arrived after the request."""
        self.state.access_log.log(exchange.client, exchange, 101)
        held = self.proto.take_upgrade_data()
        session = open_session(self)
        self.current = self.upgrade = None
        self.session = session
        self._sink = session.data_received
        self.state.sessions.add(session)
        self.enter(UPGRADED)
        if self._read_paused:
            self._read_paused = False
            self.transport.resume_reading()
        if held:
            session.data_received(held)
        if self.state.shutting_down:
            session.shutdown(self.state.restarting)  # accepted while stopping: closes at once
        return session

    # -- requests ---------------------------------------------------------------------

    def _on_request(self, exchange: HTTP11Exchange) -> None:
        if self._h1_refused:
            self._on_bad_request(h2_detect.HTTP2_ONLY)
            return
        # exchange.bind(self), written out: every request passes here.
        exchange.conn = self
        exchange.server = self.server_addr
        exchange.client = self.client_addr
        if self.tls is not None:
            exchange.scheme = "https"
        if exchange.has_body:
            exchange.request_complete = False
            exchange.awaiting_continue = exchange.expect_continue
            self.receiving = exchange
        runner = self.state.runner
        runner.attach(exchange)
        if self.current is None and not self.pipeline:
            self._start(exchange, runner)
        else:
            self._queue(exchange)

    def _on_upgrade(self, exchange: HTTP11Exchange, events: list[Event]) -> None:
        """A request with Upgrade. The protocol holds the bytes after it only when it asked
        for WebSocket (`upgrade_request`); any other Upgrade was ignored as it arrived."""
        if self._h1_refused:
            self._on_bad_request(h2_detect.HTTP2_ONLY)
            return
        if self.state.h2 is not None and h2_detect.upgrades_to_h2c(self, exchange):
            return
        websocket = self.state.websocket
        if exchange is not self.proto.upgrade_request:
            self._on_request(exchange)
        elif websocket is None:
            # --ws off, or a WSGI app: a plain request (RFC 9110 section 7.8 lets a server
            # ignore Upgrade), and what follows it is HTTP again. Its events go to the end
            # of the list being dispatched, right after this request's EndOfMessage.
            self._on_request(exchange)
            events += self.proto.resume_after_upgrade()
        else:
            exchange.bind(self)
            if self.tls is not None:
                exchange.scheme = "https"  # (wss)
            self.upgrade = exchange
            self._sink = self._hold
            websocket.attach(exchange)
            self._queue(exchange)

    def _on_preface(self, event: PrefaceReceived) -> None:
        """The connection began with HTTP/2's preface: h2_detect.py hands it over to an
        HTTP/2 connection, or where HTTP/2 is off (--http h1) it is refused (505)."""
        if self.state.h2 is None:
            self._on_bad_request(event)
        else:
            h2_detect.take_over_at_preface(self, event)

    def _queue(self, exchange: HTTP11Exchange) -> None:
        if self.current is None and not self.pipeline:
            self._start(exchange, self._runner_for(exchange))
        else:
            self.pipeline.append(exchange)
            if len(self.pipeline) >= MAX_PIPELINE:
                self.pause_reading()

    def _runner_for(self, exchange: HTTP11Exchange) -> Runner:
        state = self.state
        if exchange is self.upgrade and state.websocket is not None:
            return state.websocket
        return state.runner

    def _start(self, exchange: HTTP11Exchange, runner: Runner) -> None:
        state = self.state
        self.current = exchange
        if self.receiving is not None:
            self._settle()
        else:
            # enter(BUSY), written out: every request passes here. The move is one the
            # table allows from every state a request can start in (IDLE, HEAD, BUSY after
            # a pipelined answer; tests/server/test_states.py checks that), and BUSY has
            # no deadline (timeouts() in state.py).
            self.at = BUSY
            self.deadline = NO_DEADLINE
        state.start(runner, exchange)

    def _start_next(self) -> None:
        item = self.pipeline.popleft()
        if isinstance(item, BadRequest):
            self._answer_bad_request(item)
        else:
            self._start(item, self._runner_for(item))
            self.resume_reading()

    def _hold(self, data: bytes) -> None:
        self.proto.receive_data(data)  # kept by the protocol until the switch's answer
        if self.proto.held_bytes > MAX_HELD_BYTES:
            self.pause_reading()


def _address(info: Any) -> tuple[str, int] | None:
    if isinstance(info, tuple) and len(info) >= 2:
        return (str(info[0]), int(info[1]))
    return None
