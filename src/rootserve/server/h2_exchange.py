"""`H2Exchange`: one request on an HTTP/2 stream, and its answer.

How this works. The HTTP/2 connection (h2_connection.py) makes an exchange for each stream
whose request head arrived (the sans-IO protocol, protocol/http2.py, makes its requests of
this class) and hands it to the same adapters an HTTP/1.1 request goes to; they answer
through the interface in protocol/exchange.py. The rules are those of HTTP11Exchange, as
HTTP/2 has them:

- 100-continue: an interim HEADERS frame, sent when the adapter first wants the body of a
  request that asked for it (RFC 9110 section 10.1.1). No connection is at stake: the rest
  of the body of a stream answered before it came is dropped by the protocol.
- HEAD, 204 and 304 carry no body, and a Content-Length is held to: the protocol.
- The 500 fallback: an app whose call ends before its answer began gets a 500; one whose
  answer began and did not end gets its stream reset (INTERNAL_ERROR), not the connection.
- Flow control, both ways: `write_paused` while the stream's queue waits for its window or
  the socket's buffer is full; `pause_reading` withholds the WINDOW_UPDATEs of the bytes fed
  from then on, so that the client stops once the window it had is used, and
  `resume_reading` gives them back.
- Trailers: a HEADERS frame that ends the stream (RFC 9113 section 8.1), the fields
  checked as HTTP/1.1 checks them (`check_trailers`).
- No protocol switch: HTTP/2 has no 101 (RFC 9113 section 8.6); `switch` is refused, and
  with the kernel's sendfile not usable under HTTP/2's framing, `can_send_file` is False.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final, Protocol

from rootserve.protocol._send import error_body
from rootserve.protocol._trailers import check_trailers
from rootserve.protocol.events import Headers
from rootserve.protocol.exchange import (
    Address,
    ByteStream,
    ResponseError,
    Upgraded,
)
from rootserve.protocol.http2 import ErrorCodes, H2ServerConnection
from rootserve.protocol.rules import LocalProtocolError
from rootserve.server._answer import (
    CUT,
    DONE,
    INTERNAL_ERROR,
    NO_RECEIVER,
    STREAMING,
    WAITING,
    AnswerSide,
    not_streaming,
    not_waiting,
)
from rootserve.server.state import ServerState
from rootserve.server.tls import ConnectionTLS

__all__ = ["H2Exchange"]

_GONE: Final = "the client reset the stream"  # what ClientDisconnected says here


class Connection(Protocol):
    """What an exchange uses of its HTTP/2 connection (h2_connection.py), declared here so
    that the two modules do not import each other."""

    proto: H2ServerConnection
    state: ServerState
    tls: ConnectionTLS | None
    write_paused: bool  # the socket's buffer is over its high-water mark

    def flush(self) -> None:
        """Write what the protocol has to send (on the loop's next pass)."""

    def response_complete(self, exchange: H2Exchange) -> None:
        """`exchange` is answered (or cut): the stream is done with."""

    def body_due(self) -> None:
        """An exchange now waits for its body: the body's deadline starts."""


@dataclass(slots=True, eq=False, init=False)
class H2Exchange(AnswerSide):
    """One request on an HTTP/2 stream (see the module's docstring): the `Request` the
    protocol makes, with the answer's side added."""

    # Set by `bind`, as the stream's request arrives.
    conn: Connection
    stream_id: int
    _reading_paused: bool
    _unacked: int  # flow-controlled bytes fed while reading was paused
    _drain: asyncio.Future[None] | None

    def _connection_tls(self) -> ConnectionTLS | None:
        return self.conn.tls

    def bind(
        self, conn: Connection, stream_id: int, server: Address | None, client: Address | None
    ) -> None:
        self.conn = conn
        self.stream_id = stream_id
        self.server = server
        self.client = client
        self._reading_paused = False
        self._unacked = 0
        self._drain = None
        self.request_complete = not self.has_body
        self.awaiting_continue = self.expect_continue
        if conn.tls is not None:
            self.scheme = "https"
        conn.state.metrics.http2_stream()

    # -- what the connection tells it --------------------------------------------------

    def feed(self, data: bytes, flow_length: int) -> None:
        self.awaiting_continue = False  # the body comes whether we asked or not
        self.receiver.feed(data)
        if self._reading_paused:
            self._unacked += flow_length
        else:
            self.conn.proto.ack(self.stream_id, flow_length)

    def end(self) -> None:
        self.request_complete = True
        self.receiver.end()

    def disconnect(self) -> None:
        if self._answer is not DONE:
            self._answer = CUT
        self.receiver.disconnect()
        self.writable()

    def writable(self) -> None:
        """The stream's window opened, or the socket drained: a paused sender may go on."""
        if self.write_paused and self._answer is not CUT:
            return
        self.receiver.writable()
        drain = self._drain
        if drain is not None:
            self._drain = None
            if not drain.done():
                drain.set_result(None)

    @property
    def waits_for_body(self) -> bool:
        """The client owes body bytes now (not paused by us, not waiting for 100)."""
        return not (
            self.request_complete
            or self._reading_paused
            or self.awaiting_continue
            or self._answer is CUT
        )

    # -- the adapter's side --------------------------------------------------------------

    @property
    def write_paused(self) -> bool:
        return self.conn.write_paused or self.conn.proto.send_paused(self.stream_id)

    async def drain(self) -> None:
        if self.write_paused and self._answer is not CUT:
            if self._drain is None:
                self._drain = asyncio.get_running_loop().create_future()
            await self._drain

    def want_body(self) -> None:
        if self.awaiting_continue and self._answer is WAITING:
            self.awaiting_continue = False
            self.conn.proto.send_informational(self.stream_id, 100)
            self.conn.flush()
            self.conn.body_due()

    def pause_reading(self) -> None:
        self._reading_paused = True

    def resume_reading(self) -> None:
        if self._reading_paused:
            self.release()
            self.conn.flush()
            self.conn.body_due()

    def release(self) -> None:
        """Give back the window held by the body fed while reading was paused."""
        self._reading_paused = False
        unacked, self._unacked = self._unacked, 0
        if unacked:
            self.conn.proto.ack(self.stream_id, unacked)

    def respond(
        self, status: int, headers: Iterable[tuple[bytes, bytes]], body: bytes, end: bool
    ) -> None:
        answer = self._answer
        if answer is not WAITING:
            raise not_waiting(answer, _GONE)
        try:
            self.conn.proto.send_response(self.stream_id, status, headers, body, end)
        except TypeError as exc:  # names or values that are not bytes
            raise TypeError(f"headers must be (name, value) pairs of bytes: {exc}") from None
        except (LocalProtocolError, ValueError) as exc:
            raise ResponseError(f"cannot send the response head: {exc}") from None
        self.status = status
        self.response_headers = headers
        self.sent = len(body)
        if end:
            self._complete()
        else:
            self._answer = STREAMING
            self.conn.flush()

    def send_body(self, data: bytes, end: bool) -> None:
        answer = self._answer
        if answer is not STREAMING:
            raise not_streaming(answer, _GONE)
        try:
            self.conn.proto.send_data(self.stream_id, data, end)
        except LocalProtocolError as exc:
            # The body breaks the head's Content-Length: the protocol reset the stream.
            self._answer = CUT
            self.conn.response_complete(self)
            self.conn.flush()
            raise ResponseError(str(exc)) from None
        self.sent += len(data)
        if end:
            self._complete()
        else:
            self.conn.flush()

    def send_trailers(self, headers: Iterable[tuple[bytes, bytes]]) -> None:
        answer = self._answer
        if answer is not STREAMING:
            raise not_streaming(answer, _GONE, "trailers")
        try:
            fields = check_trailers(headers)
        except LocalProtocolError as exc:
            raise ResponseError(str(exc)) from None  # nothing was sent
        if not fields:
            self.send_body(b"", True)  # (an empty HEADERS frame would say nothing)
            return
        try:
            self.conn.proto.send_trailers(self.stream_id, fields)
        except LocalProtocolError as exc:
            self._answer = CUT  # see send_body
            self.conn.response_complete(self)
            self.conn.flush()
            raise ResponseError(str(exc)) from None
        self._complete()

    def can_send_file(self) -> bool:
        return False

    async def send_file(self, file: Any, offset: int, count: int) -> None:
        raise ResponseError("send_file is not available on HTTP/2 (see can_send_file)")

    def refuse(self, status: int, reason: str, headers: Headers) -> None:
        if self._answer is not WAITING:
            raise ResponseError("the response was already started")
        self.status = status
        self._error_answer(status, reason)

    def fail(self) -> None:
        """Answer 500 if nothing was sent yet; otherwise reset the stream."""
        answer = self._answer
        if answer is WAITING or answer is STREAMING:
            self.conn.state.metrics.app_exception()
        if answer is WAITING:
            self.status = 500
            self._error_answer(500, INTERNAL_ERROR)
        elif answer is STREAMING:
            self._answer = CUT
            self.conn.proto.reset(self.stream_id, ErrorCodes.INTERNAL_ERROR)
            self.conn.response_complete(self)
            self.conn.flush()

    def finish(self) -> None:
        running = self.conn.state.running
        running.discard(self)
        if not running:
            running.removed()
        self.receiver = NO_RECEIVER  # see HTTP11Exchange.finish: no cycle left behind
        if self._answer is not DONE:
            self.fail()

    def cancel(self) -> None:
        self.receiver.cancel()

    def switch(self, headers: Headers, open_session: Callable[[ByteStream], Upgraded]) -> Upgraded:
        # Nothing runs a WebSocket session on a stream: the connection gives its requests
        # to the HTTP runner only (RFC 8441's extended CONNECT is not offered).
        raise ResponseError("HTTP/2 has no 101 Switching Protocols (RFC 9113 section 8.6)")

    def _error_answer(self, status: int, reason: str) -> None:
        self.conn.proto.send_error(self.stream_id, status, reason)
        self.response_headers = ()
        self.sent = len(error_body(status, reason))
        self._complete()

    def _complete(self) -> None:
        self._answer = DONE
        self.conn.response_complete(self)  # (it may give windows back: flushed below)
        self.conn.flush()
