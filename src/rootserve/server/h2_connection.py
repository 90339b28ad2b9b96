"""One HTTP/2 client connection: socket events in, the sans-IO protocol's events out, one
exchange per stream.

How this works. `connection_made` queues the server's preface (its SETTINGS);
`data_received` feeds the protocol (protocol/http2.py) and acts on its events: each request
head becomes an `H2Exchange` (the protocol makes them of that class), which the adapter
(`Runner.attach`) answers through and which starts at once (`Runner.start`): streams run
side by side, unlike HTTP/1.1's pipeline. Body parts, the end of a body, a client's reset
and a window that opened go to their stream's exchange. After each batch of events, and
after each step of an answer, what the protocol has to send is written (`flush`).

Limits are the server's own, as for HTTP/1.1: --limit-concurrency answers a request over it
with 503 (its stream only), --max-body-size with 413 (the protocol). The connection's
deadline is the keep-alive timeout while no stream is open; when it passes, the connection
says GOAWAY and closes. While a request's body is owed, the deadline is the body timeout
from the last body bytes received; when it passes, the requests still owed their body are
answered 408 (their streams only). While no stream is open and a frame has begun arriving
(a request's head, most often), it is the header timeout from its first bytes. A graceful stop
(`shutdown`) says GOAWAY with the last stream opened: those streams are answered, the
client opens no more, and the connection closes once the last answer went out. When the
protocol ends the connection (a client's GOAWAY, a broken rule, a flood) every exchange
still answering is told the client is gone.

Over TLS the loop completes the handshake before `connection_made`; the exchanges are
https and carry the TLS facts (server/tls.py).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final

from rootserve.protocol.events import BadRequest
from rootserve.protocol.exchange import Address
from rootserve.protocol.http2 import (
    BodyEnded,
    BodyReceived,
    ConnectionEnded,
    H2Event,
    H2Limits,
    H2ServerConnection,
    RequestReceived,
    StreamReset,
    Writable,
)
from rootserve.server._deadlines import _BODY_TIMEOUT
from rootserve.server.connection import _address
from rootserve.server.h2_exchange import H2Exchange
from rootserve.server.state import BODY, HEAD, NO_DEADLINE, ServerState
from rootserve.server.tls import ConnectionTLS
from rootserve.units import KIB

__all__ = ["H2Connection"]

logger = logging.getLogger("rootserve.error")

WRITE_HIGH_WATER: Final = 64 * KIB


class H2Connection(asyncio.Protocol):
    """One HTTP/2 connection of a worker (see the module's docstring). The reaper reads
    `deadline` and calls `on_deadline`; the worker's stop calls `shutdown`, then `close`."""

    def __init__(self, state: ServerState, limits: H2Limits | None = None) -> None:
        self.state = state
        self.proto = H2ServerConnection(
            limits,
            request_class=H2Exchange,
            server_header=state.server_header,
            date_header=state.date_header,
            clock=state.loop.time,
            max_body_bytes=state.limits.max_body_bytes,
        )
        self.transport: Any = None
        self.server_addr: tuple[str, int] | None = None
        self.client_addr: tuple[str, int] | None = None
        self.tls: ConnectionTLS | None = None
        self.exchanges: dict[int, H2Exchange] = {}  # by stream, until answered
        self.deadline = NO_DEADLINE
        self.write_paused = False  # the transport's buffer is over WRITE_HIGH_WATER
        self._stopping = False  # a graceful GOAWAY went out: close once all is answered
        self._body_seen = 0.0  # loop time of the last request body bytes, or request
        self._frame_since = NO_DEADLINE  # loop time a frame began arriving, while no stream
        self._closed = False
        self._flush_due = False  # a flush is scheduled (see `flush`)
        self._metered = state.metrics.enabled

    # -- asyncio.Protocol -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.server_addr = _address(transport.get_extra_info("sockname"))
        self.client_addr = _address(transport.get_extra_info("peername"))
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            self.tls = ConnectionTLS(ssl_object)
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)  # type: ignore[attr-defined]
        self.state.connections.add(self)
        self.state.metrics.http2_connections(1)
        if not self.proto.initiated:  # (an h2c upgrade began it: `take_over`)
            self.proto.initiate()
        if self.state.shutting_down:
            self.shutdown()  # accepted as the listener closed: no stream will be served
        else:
            self._write_out()
            self._settle()

    def take_over(
        self,
        transport: asyncio.BaseTransport,
        received: bytes,
        *,
        addresses: tuple[Address | None, Address | None] | None = None,
        events: list[H2Event] | None = None,
    ) -> None:
        """Serve a connection another protocol accepted and found to be HTTP/2 (ALPN "h2",
        a first read that starts with the preface, or an h2c upgrade: h2_detect.py): the
        transport calls this protocol from now on, and `received` is what was read so far
        and not consumed. `addresses`: (server, client) as that protocol knew them (a PROXY
        header's); `events`: what the protocol made already (an upgrade's stream 1)."""
        transport.set_protocol(self)
        self.connection_made(transport)
        if addresses is not None:
            self.server_addr, self.client_addr = addresses
        if events:
            self._dispatch(events)
        if received and not self._closed:
            # (Not data_received: a metered connection counted these bytes already.)
            self._dispatch(self.proto.receive_data(received))

    def data_received(self, data: bytes) -> None:
        if self._closed:
            return
        if self._metered:  # --metrics-bind (HTTP/1.1's Connection counts the same)
            self.state.received += len(data)
        self._dispatch(self.proto.receive_data(data))

    def _dispatch(self, events: list[H2Event]) -> None:
        # (isinstance, not type(event) is: h2's own work per frame dwarfs the difference.)
        for event in events:
            if isinstance(event, BodyReceived):
                exchange = self.exchanges.get(event.stream_id)
                self._body_seen = self.state.loop.time()
                if exchange is not None:
                    exchange.feed(event.data, event.flow_length)
                else:  # answered already: the rest of its body is dropped
                    self.proto.ack(event.stream_id, event.flow_length)
            elif isinstance(event, RequestReceived):
                self._on_request(event.stream_id, event.request)  # type: ignore[arg-type]
            elif isinstance(event, BodyEnded):
                exchange = self.exchanges.get(event.stream_id)
                if exchange is not None:
                    exchange.end()
            elif isinstance(event, StreamReset):
                self._on_reset(event)
            elif isinstance(event, Writable):
                exchange = self.exchanges.get(event.stream_id)
                if exchange is not None:
                    exchange.writable()
            elif isinstance(event, ConnectionEnded):
                self._on_ended(event)
                return
            # TrailersReceived: neither ASGI nor WSGI has request trailers to give them to.
        self._write_out()
        self._settle()

    def eof_received(self) -> bool:
        # HTTP/2 has no half-close: a client that stops sending ends its streams.
        self._disconnect_all()
        return False  # the transport closes

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self.deadline = NO_DEADLINE
        connections = self.state.connections
        connections.discard(self)
        self.state.metrics.http2_connections(-1)
        if not connections:
            connections.removed()
        self._disconnect_all()

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        for exchange in list(self.exchanges.values()):
            exchange.writable()

    # -- what an exchange uses -------------------------------------------------------

    def flush(self) -> None:
        """Write what the protocol has to send, on the loop's next pass (before what it
        reads then is handled): the answers of many streams, and their WINDOW_UPDATEs, go
        out in one write, not one each."""
        if not self._flush_due:
            self._flush_due = True
            self.state.loop.call_soon(self._write_out)

    def _write_out(self) -> None:
        self._flush_due = False
        data = self.proto.data_to_send()
        if data and not self._closed:
            self.transport.write(data)
            if self.exchanges and self.proto.earliest_stall() != NO_DEADLINE:
                self._settle()  # an answer now waits on a shut window: its deadline
        # Streams a send just finished or un-paused (their last bytes went at once).
        for event in self.proto.take_resumed():
            exchange = self.exchanges.get(event.stream_id)
            if exchange is not None:
                exchange.writable()

    def body_due(self) -> None:
        """An exchange asked for its body (100 Continue, or reading resumed): the client
        owes it from now on."""
        self._body_seen = self.state.loop.time()
        self._settle()

    def response_complete(self, exchange: H2Exchange) -> None:
        if self.exchanges.pop(exchange.stream_id, None) is None:
            return
        exchange.release()  # what it held back of the windows, now no one will read it
        if not exchange.disconnected:
            self.state.access_log.log(exchange.client, exchange, exchange.status)
        self._settle()

    # -- the reaper and the worker's stop --------------------------------------------

    def on_deadline(self) -> None:
        """No stream open: idle for the keep-alive timeout, or a frame begun and not
        whole within the header timeout; GOAWAY, and close (RFC 9113 section 9.1). Else no
        request body bytes for the body timeout while some are owed: those requests are
        answered 408 (their streams reset, if the answer had begun)."""
        if not (self.exchanges or self.proto.open_streams):
            self.close()
            return
        stall = self.proto.limits.stall_timeout
        if stall:
            # Answers that waited on a window the client keeps shut, nothing sent, for
            # the stall timeout: their streams are reset, their apps told the client left.
            for stream_id in self.proto.stalled(self.state.loop.time() - stall):
                self.proto.reset(stream_id)  # (CANCEL)
                exchange = self.exchanges.pop(stream_id, None)
                if exchange is not None:
                    logger.info(
                        "%s - HTTP/2 stream %d reset: its answer waited %.0f s on a shut "
                        "flow-control window (--h2-stall-timeout)",
                        _who(self.client_addr),
                        stream_id,
                        stall,
                    )
                    exchange.release()
                    exchange.disconnect()
        for exchange in [e for e in self.exchanges.values() if e.waits_for_body]:
            del self.exchanges[exchange.stream_id]
            self.state.log_bad_request(self.client_addr, _BODY_TIMEOUT)
            self.proto.refuse_body(exchange.stream_id, _BODY_TIMEOUT.status, _BODY_TIMEOUT.reason)
            exchange.release()
            exchange.disconnect()
        self._write_out()
        self._settle()

    def shutdown(self) -> None:
        """Graceful stop: GOAWAY with the last stream opened; close once all are answered."""
        self._stopping = True
        self.proto.goaway()
        self._write_out()
        self._settle()

    def close(self) -> None:
        if not self._closed:
            self.proto.close()
            self._write_out()
            self._closed = True
            self.deadline = NO_DEADLINE
            self.transport.close()

    # -- streams ---------------------------------------------------------------------

    def _on_request(self, stream_id: int, exchange: H2Exchange) -> None:
        state = self.state
        exchange.bind(self, stream_id, self.server_addr, self.client_addr)
        if exchange.has_body:
            self._body_seen = state.loop.time()
        self.exchanges[stream_id] = exchange
        runner = state.runner
        runner.attach(exchange)
        state.start(runner, exchange)

    def _on_reset(self, event: StreamReset) -> None:
        exchange = self.exchanges.pop(event.stream_id, None)
        if exchange is not None:
            if event.reason:
                self.state.log_bad_request(self.client_addr, BadRequest(413, event.reason))
            elif not exchange.request_complete:
                self.state.log_cut_body(self.client_addr, exchange)
            exchange.release()
            exchange.disconnect()

    def _on_ended(self, event: ConnectionEnded) -> None:
        if event.reason:
            logger.info(
                "%s - HTTP/2 connection ended (error %d): %s",
                _who(self.client_addr),
                event.error_code,
                event.reason,
            )
        self._disconnect_all()
        self._write_out()  # the GOAWAY
        if not self._closed:
            self._closed = True
            self.deadline = NO_DEADLINE
            self.transport.close()

    def _disconnect_all(self) -> None:
        exchanges = list(self.exchanges.values())
        self.exchanges.clear()
        for exchange in exchanges:
            if not exchange.request_complete:
                self.state.log_cut_body(self.client_addr, exchange)
            exchange.disconnect()

    def _settle(self) -> None:
        """The deadline the facts call for; or, stopping with nothing left, the close."""
        if self._closed:
            return
        state = self.state
        if self.exchanges or self.proto.open_streams:
            self._frame_since = NO_DEADLINE
            # A body owed gets the body timeout from its last bytes (HTTP/1.1 asks a
            # minimum rate as well; here the connection's last body bytes count for all).
            timeout = state.timeouts[BODY]
            if timeout and any(e.waits_for_body for e in self.exchanges.values()):
                self.deadline = self._body_seen + timeout
            else:
                self.deadline = NO_DEADLINE
            stall = self.proto.limits.stall_timeout
            if stall:  # (a zero-window stall: see on_deadline)
                self.deadline = min(self.deadline, self.proto.earliest_stall() + stall)
        elif self._stopping:
            self.close()
        elif self.proto.frame_in_progress and state.timeouts[HEAD]:
            # A frame is arriving (a request's head, most often): the header timeout
            # from its first bytes, as for HTTP/1.1's head (slowloris), however it trickles.
            if self._frame_since == NO_DEADLINE:
                self._frame_since = state.loop.time()
            self.deadline = self._frame_since + state.timeouts[HEAD]
        else:
            self._frame_since = NO_DEADLINE
            self.deadline = state.loop.time() + state.idle_seconds


def _who(address: Address | None) -> str:
    return f"{address[0]}:{address[1]}" if address else "-"
