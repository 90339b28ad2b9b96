"""One client connection: socket events in, protocol events out, one ASGI cycle at a time.

How this works. `data_received` feeds the sans-IO protocol and dispatches its events: a
`Request` makes an `Cycle`; it starts at once when nothing else is being answered, or
waits in `pipeline` (answers go out in request order, RFC 9112 section 9.3.2). `Data` and
`EndOfMessage` go to the cycle whose body is being read. A `BadRequest` is answered after
every earlier request, then the connection closes. Flow control runs both ways: reading
pauses while a cycle's unread body or the pipeline is too large, and `send()` waits in
`drain()` while the transport's write buffer is above its high-water mark.

A request that asks to switch to WebSocket (the protocol holds the bytes after it) gets a
`WebSocketCycle` when the app is ASGI and `--ws` is on, else it is answered as a plain request
and parsing resumes. Once the app accepts, the 101 goes out and every byte received goes to
the session (`switch_protocol`), never to the HTTP parser again. While the request is held,
what the client sends is buffered, up to MAX_HELD_BYTES before reading pauses.

Timeouts are deadlines, not timers: the worker's reaper looks at `deadline` once per tick,
so a request costs one clock read instead of a timer created and cancelled. A WebSocket
session uses the same deadline for its pings and its close timeout.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from rootserve.asgi.websocket import WebSocketCycle
from rootserve.protocol.events import (
    BadRequest,
    ConnectionClosed,
    Data,
    EndOfMessage,
    Event,
    Request,
)
from rootserve.protocol.http11 import HTTP11Connection

if TYPE_CHECKING:
    from rootserve.server.worker import Cycle, ServerState

__all__ = ["Connection"]

MAX_PIPELINE: Final = 16  # queued requests before reading pauses
WRITE_HIGH_WATER: Final = 64 * 1024
NO_DEADLINE: Final = float("inf")
LINGER_SECONDS: Final = 2.0
LINGER_MAX_BYTES: Final = 4 * 1024 * 1024
MAX_HELD_BYTES: Final = 64 * 1024  # received after a WebSocket handshake, before its answer


class Connection(asyncio.Protocol):
    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.proto = HTTP11Connection(
            state.limits,
            server_header=state.server_header,
            date_header=state.date_header,
        )
        self.transport: Any = None
        self.server_addr: tuple[str, int] | None = None
        self.client_addr: tuple[str, int] | None = None
        self.current: Cycle | None = None  # the cycle being answered
        self.receiving: Cycle | None = None  # the cycle whose body is being read
        self.pipeline: deque[Cycle | BadRequest] = deque()
        self.websocket: WebSocketCycle | None = None  # from a WebSocket handshake on
        # Where received bytes go instead of the HTTP parser: nowhere while lingering, the
        # held bytes while a WebSocket handshake waits for its answer, then the session.
        self._sink: Callable[[bytes], None] | None = None
        self.write_paused = False
        self._drain: asyncio.Future[None] | None = None
        self._read_paused = False
        self._eof = False
        self.closed = False
        self.deadline = NO_DEADLINE
        self.deadline_kind = "idle"
        self.lingering = False
        self._lingered = 0
        self._dispatching = False

    # -- asyncio.Protocol -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.server_addr = _address(transport.get_extra_info("sockname"))
        self.client_addr = _address(transport.get_extra_info("peername"))
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)  # type: ignore[attr-defined]
        self.state.connections.add(self)
        self._set_deadline("idle", self.state.timeout_keep_alive)
        if self.state.shutting_down:
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.state.connections.discard(self)
        self.state.runner.release(self)
        for cycle in (self.current, self.receiving):
            if cycle is not None:
                cycle.disconnect()
        self.pipeline.clear()
        if self.websocket is not None:
            self.websocket.disconnect()
            self.state.websockets.discard(self)
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    def eof_received(self) -> bool:
        # A half-close (RFC 9112 section 9.6): requests already received are still
        # answered; a request whose body was cut short sees http.disconnect.
        self._eof = True
        if self.lingering:
            self.close()
            return True
        websocket = self.websocket
        if websocket is not None:
            if websocket is self.current:
                websocket.eof()
                return True
            if websocket in self.pipeline:
                self.pipeline.remove(websocket)  # still waiting: it will never be answered
        self.proto.receive_data(b"")
        receiving = self.receiving
        if receiving is not None and not receiving.request_complete:
            # That request can never be whole: end the connection, and with it the
            # request (its app sees http.disconnect).
            self.close()
        elif self.current is None and not self.pipeline:
            self.close()
        return True

    def data_received(self, data: bytes) -> None:
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
            if kind is Request:
                if event.upgrade and event is self.proto.upgrade_request:  # type: ignore[union-attr]
                    self._on_upgrade(event, events)
                else:
                    self._on_request(event)  # type: ignore[arg-type]
            elif kind is Data:
                if self.receiving is not None:
                    self.receiving.feed(event.data)  # type: ignore[union-attr]
            elif kind is EndOfMessage:
                if self.receiving is not None:
                    self.receiving.end()
                    self.receiving = None
            elif kind is BadRequest:
                self._on_bad_request(event)  # type: ignore[arg-type]
            elif kind is ConnectionClosed:
                pass
        self._dispatching = False
        if (
            self.current is None
            and not self.pipeline
            and not self.closed
            and not self.proto.receiving
            and not self.lingering
            and self._sink is None
        ):
            self.close()  # the receive side ended while a response finished above
            return
        # RFC 9110 section 15.5.9: a head must arrive within timeout_header once it has
        # begun, while the connection is otherwise idle.
        if self.proto.head_in_progress:
            if self.current is None and self.deadline_kind != "head":
                self._set_deadline("head", self.state.timeout_header)
        elif self.deadline_kind == "head":
            self.deadline = NO_DEADLINE
            self.deadline_kind = "busy"

    def _drop_lingering(self, data: bytes) -> None:
        self._lingered += len(data)
        if self._lingered > LINGER_MAX_BYTES:
            self.close()

    def _hold(self, data: bytes) -> None:
        self.proto.receive_data(data)  # kept by the protocol until the handshake's answer
        if self.proto.held_bytes > MAX_HELD_BYTES:
            self.pause_reading()

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.current is not None:
            self.current.writable()
        if self._drain is not None:
            drain, self._drain = self._drain, None
            if not drain.done():
                drain.set_result(None)

    # -- what the cycle uses (the Channel protocol) -----------------------------------

    def write(self, data: bytes) -> None:
        if not self.closed:
            self.transport.write(data)

    async def drain(self) -> None:
        if self.write_paused and not self.closed:
            if self._drain is None:
                self._drain = asyncio.get_running_loop().create_future()
            await self._drain

    def pause_reading(self) -> None:
        if not self._read_paused and not self.closed:
            self._read_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self._read_paused and not self.closed and len(self.pipeline) < MAX_PIPELINE:
            self._read_paused = False
            self.transport.resume_reading()

    def response_complete(self, keep_alive: bool) -> None:
        cycle = self.current
        if cycle is not None:
            self.state.access_log.log(self.client_addr, cycle.request, cycle.status)
        self.current = None
        if not keep_alive or self.state.shutting_down:
            self.close()
            return
        if self.pipeline:
            self._start_next()
        elif self._eof or (not self.proto.receiving and not self._dispatching):
            self.close()
        elif self.proto.head_in_progress:
            self._set_deadline("head", self.state.timeout_header)
        else:
            state = self.state
            self.deadline_kind = "idle"
            self.deadline = state.loop.time() + (state.timeout_keep_alive or NO_DEADLINE)
            if self._read_paused:
                self.resume_reading()

    def abort(self) -> None:
        if not self.closed:
            self.closed = True
            self.transport.abort()

    # -- what a WebSocket session uses besides (the WebSocketChannel protocol) ----------

    def switch_protocol(self, data_received: Callable[[bytes], None]) -> bytes:
        """The 101 is written: from now on every byte received goes to `data_received`, the
        WebSocket session's. Returns what arrived after the handshake request."""
        if self.current is not None:
            self.state.access_log.log(self.client_addr, self.current.request, 101)
        held = self.proto.take_upgrade_data()
        self._sink = data_received
        self.state.websockets.add(self)
        self.deadline_kind = "websocket"  # the session sets `deadline` (pings, close timeout)
        if self._read_paused:
            self.resume_reading()
        return held

    def answered(self) -> None:
        """A WebSocket handshake was answered with an HTTP refusal; the connection ends."""
        cycle = self.current
        if cycle is not None:
            self.state.access_log.log(self.client_addr, cycle.request, cycle.status)
        self.current = None
        self._linger()

    # -- requests ---------------------------------------------------------------------

    def _on_request(self, request: Request) -> None:
        cycle = self.state.runner.cycle(request, self)
        if request.has_body:
            self.receiving = cycle
        if self.current is None and not self.pipeline:
            self._start(cycle)
        else:
            self.pipeline.append(cycle)
            if len(self.pipeline) >= MAX_PIPELINE:
                self.pause_reading()

    def _start(self, cycle: Cycle) -> None:
        state = self.state
        self.current = cycle
        self.deadline = NO_DEADLINE
        self.deadline_kind = "busy"
        runner = state.runner
        if state.limit_concurrency and len(runner.running) >= state.limit_concurrency:
            # Over the limit: answer 503 without calling the app (RFC 9110 15.6.4).
            self.proto.abandon()
            self.write(self.proto.error_response(503, "server at its concurrency limit"))
            cycle.status = 503
            self.response_complete(False)
            return
        runner.start(cycle)

    def _start_next(self) -> None:
        item = self.pipeline.popleft()
        if isinstance(item, BadRequest):
            self._answer_bad_request(item)
        elif item is self.websocket:
            self._start_websocket(item)
            self.resume_reading()
        else:
            self._start(item)
            self.resume_reading()

    def _on_upgrade(self, request: Request, events: list[Event]) -> None:
        """A request asked to switch to WebSocket; the protocol holds the bytes after it."""
        runner = self.state.websocket
        if runner is None:
            # --ws off, or a WSGI app: a plain request (RFC 9110 section 7.8 lets a server
            # ignore Upgrade), and what follows it is HTTP again. Its events go to the end
            # of the list being dispatched, right after this request's EndOfMessage.
            self._on_request(request)
            events += self.proto.resume_after_upgrade()
            return
        cycle = self.websocket = runner.cycle(request, self)
        self._sink = self._hold
        if self.current is None and not self.pipeline:
            self._start_websocket(cycle)
        else:
            self.pipeline.append(cycle)

    def _start_websocket(self, cycle: WebSocketCycle) -> None:
        state = self.state
        self.current = cycle
        self.deadline = NO_DEADLINE
        self.deadline_kind = "busy"
        if state.limit_concurrency and len(state.runner.running) >= state.limit_concurrency:
            cycle.status = 503
            self.write(self.proto.refuse_upgrade(503, "server at its concurrency limit"))
            self.answered()
            return
        assert state.websocket is not None
        state.websocket.start(cycle)

    def _on_bad_request(self, event: BadRequest) -> None:
        receiving = self.receiving
        if receiving is not None:
            # The body of a request whose head was fine broke a rule (a bad chunk, a 413
            # by chunked size): that request is over.
            self.receiving = None
            if receiving is not self.current:
                # Still waiting in the pipeline: the app never sees it.
                self.pipeline.remove(receiving)
            elif not receiving.response_started:
                # The app is reading it and has not answered: the refusal answers it.
                receiving.disconnect()
                self.current = None
                self.proto.abandon()
                self._answer_bad_request(event)
                return
            else:
                # The app already answered in part: the connection can only be cut.
                receiving.disconnect()
                self.abort()
                return
        if self.current is None and not self.pipeline:
            self._answer_bad_request(event)
        else:
            self.pipeline.append(event)

    def _answer_bad_request(self, event: BadRequest) -> None:
        self.state.log_bad_request(self.client_addr, event)
        self.write(self.proto.error_response(event.status, event.reason))
        self._linger()

    def _linger(self) -> None:
        """Close after an error answer without losing it. Closing a socket with unread
        bytes makes the kernel reset the connection, and a reset can destroy the answer
        before the client reads it; so stop sending (FIN), drop what the client still
        sends for up to LINGER_SECONDS or LINGER_MAX_BYTES, then close."""
        if self.closed:
            return
        try:
            self.transport.write_eof()
        except (NotImplementedError, OSError, RuntimeError):
            self.close()
            return
        self.lingering = True
        self._sink = self._drop_lingering
        self.deadline_kind = "linger"
        self.deadline = self.state.loop.time() + LINGER_SECONDS
        if self._read_paused:
            self._read_paused = False
            self.transport.resume_reading()

    # -- closing and deadlines ---------------------------------------------------------

    def _set_deadline(self, kind: str, seconds: float) -> None:
        # 0 means "no timeout" for every timeout setting.
        self.deadline_kind = kind
        self.deadline = self.state.loop.time() + seconds if seconds else NO_DEADLINE

    def on_deadline(self) -> None:
        """Called by the reaper once `deadline` has passed."""
        if self.deadline_kind == "websocket" and self.websocket is not None:
            self.websocket.on_deadline()
            return
        if self.deadline_kind == "head":
            # RFC 9110 section 15.5.9: 408 for a request that did not arrive in time.
            self.write(self.proto.error_response(408, "request headers not received in time"))
        self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.deadline = NO_DEADLINE
            self.transport.close()

    def shutdown(self) -> None:
        """Graceful stop: close when idle; otherwise after the response in progress,
        whose head (if not sent yet) says so (RFC 9112 section 9.6). A WebSocket session
        closes with 1012 (Service Restart)."""
        if self.websocket is not None and self.websocket is self.current:
            self.websocket.shutdown()
        elif self.current is None:
            self.close()
        else:
            self.proto.close_after_response()


def _address(info: Any) -> tuple[str, int] | None:
    if isinstance(info, tuple) and len(info) >= 2:
        return (str(info[0]), int(info[1]))
    return None
