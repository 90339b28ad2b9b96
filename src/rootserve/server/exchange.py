"""`HTTP11Exchange`: one request on an HTTP/1.1 connection, and its answer.

How this works. The connection makes an exchange for each `Request` event and hands it to
the adapter, which answers through it (the interface is `protocol/exchange.py`). The
exchange frames the answer with the connection's sans-IO protocol, writes it, and applies
the rules that are the same for every adapter, each here once:

- 100-continue: sent when the adapter first wants the body, if the response has not begun
  (RFC 9110 section 10.1.1); a client still waiting for it when the answer goes out may or
  may not send its body, so the connection ends after that answer.
- HEAD, 1xx, 204 and 304 carry no body: the protocol drops it (RFC 9110 section 6.4.1).
- The 500 fallback: an app whose call ends before its answer began gets a 500 for it; one
  whose answer began and did not end gets a cut connection, the only way to say so.
- Keep-alive: what the request and the response head allow (the protocol), unless the
  100-continue rule above or a graceful stop says otherwise: the connection only does what
  the exchange decided.
- Completion: the connection is told once, and goes on to the next request or closes.

A request that asked to switch protocols is answered with `switch` (101), or with any
other response, which refuses the switch and ends the connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final, Protocol

from rootserve.protocol._trailers import check_trailers, end_with_trailers
from rootserve.protocol.events import Headers
from rootserve.protocol.exchange import (
    Address,
    ByteStream,
    ClientDisconnected,
    ResponseError,
    Upgraded,
    accepts_trailers,
)
from rootserve.protocol.http11 import HTTP11Connection
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

__all__ = ["HTTP11Exchange"]

_GONE: Final = "the client closed the connection"  # what ClientDisconnected says here


class Connection(ByteStream, Protocol):
    """What an exchange uses of its connection (server/connection.py): the protocol, the
    writes and reads, and the completion. Declared here, not imported, so that the
    connection (which makes exchanges) and the exchange do not import each other."""

    proto: HTTP11Connection
    state: ServerState
    transport: Any
    server_addr: Address | None
    client_addr: Address | None
    upgrade: HTTP11Exchange | None  # the exchange of a request that asked to switch
    tls: ConnectionTLS | None  # None: not a TLS connection

    def response_complete(
        self, exchange: HTTP11Exchange, keep_alive: bool, last: bytes, rest: bytes = b""
    ) -> None:
        """`exchange` is answered; `last` are its last bytes, to write first (and `rest`
        after them, a large body not copied behind its head: see `_JOIN_MAX`)."""

    def writelines(self, parts: tuple[bytes, bytes]) -> None:
        """Write both, in one system call (writev) where the transport can."""

    def body_due(self, exchange: HTTP11Exchange) -> None:
        """100 Continue went out: the client owes the body now."""

    def switch(
        self, exchange: HTTP11Exchange, open_session: Callable[[ByteStream], Upgraded]
    ) -> Upgraded:
        """The 101 went out: the session takes the connection over."""


# A body at least this large goes out as a buffer of its own behind the head (writev)
# instead of copied into one bytes object with it. Measured (benchmarks/instructions.py
# --asgi-post): the copy of a 64 KiB body was about 4% of an echoed upload's instructions;
# below a few KiB the copy costs less than the second buffer does.
_JOIN_MAX: Final = 16 * 1024


@dataclass(slots=True, eq=False, init=False)
class HTTP11Exchange(AnswerSide):
    """One request on an HTTP/1.1 connection (see the module's docstring). It is the
    `Request` event itself, which the protocol makes of this class (`request_class`), with
    the answer's side added: one object per request, not two. (Measured: a Python object
    costs about 1,700 instructions to make and free on 3.11, 2% of a whole request; this
    is what keeps the exchange within the old per-request count.)"""

    conn: Connection  # set by the connection as the request arrives

    def _connection_tls(self) -> ConnectionTLS | None:
        return self.conn.tls

    def bind(self, conn: Connection) -> None:
        """The connection takes this request (for tests and the rare paths; the common
        path in `Connection._on_request` writes the same stores out)."""
        self.conn = conn
        self.server = conn.server_addr
        self.client = conn.client_addr
        self.request_complete = not self.has_body
        self.awaiting_continue = self.expect_continue

    # -- what the connection tells it --------------------------------------------------

    def feed(self, data: bytes) -> None:
        self.awaiting_continue = False  # the body comes whether we asked or not
        self.receiver.feed(data)

    def end(self) -> None:
        self.request_complete = True
        self.receiver.end()

    def disconnect(self) -> None:
        if self._answer is not DONE:
            self._answer = CUT
        self.receiver.disconnect()

    # -- the adapter's side --------------------------------------------------------------

    @property
    def write_paused(self) -> bool:
        return self.conn.write_paused

    def want_body(self) -> None:
        if self.awaiting_continue and self._answer is WAITING:
            # RFC 9110 section 10.1.1: ask for the body only once the app wants it.
            self.awaiting_continue = False
            self.conn.write(self.conn.proto.send_informational(100))
            self.conn.body_due(self)

    def pause_reading(self) -> None:
        self.conn.pause_reading()

    def resume_reading(self) -> None:
        self.conn.resume_reading()

    async def drain(self) -> None:
        await self.conn.drain()

    def respond(
        self, status: int, headers: Iterable[tuple[bytes, bytes]], body: bytes, end: bool
    ) -> None:
        answer = self._answer
        if answer is not WAITING:
            raise not_waiting(answer, _GONE)
        conn = self.conn
        proto = conn.proto
        if (self.awaiting_continue and not self.request_complete) or conn.upgrade is self:
            # A client still waiting for 100 Continue may or may not send its body; the
            # bytes after a request that asked to switch were never parsed as HTTP: either
            # way this connection ends with this answer (RFC 9110 sections 10.1.1, 7.8).
            proto.close_after_response()
        rest = b""
        try:
            if end:
                # The common answer: the head and the whole body, one write.
                if len(body) < _JOIN_MAX:
                    data = proto.send_whole_response(status, headers, body)
                else:
                    data, rest = proto.send_whole_response_apart(status, headers, body)
            else:
                data = proto.send_response(status, headers)
                if body:
                    if len(body) < _JOIN_MAX:
                        data += proto.send_data(body)
                    else:
                        rest = proto.send_data(body)
        except TypeError as exc:  # names or values that are not bytes
            raise TypeError(f"headers must be (name, value) pairs of bytes: {exc}") from None
        except (LocalProtocolError, ValueError) as exc:
            raise ResponseError(f"cannot send the response head: {exc}") from None
        self.status = status
        self.response_headers = headers
        self.sent = len(body)
        if not end:
            self._answer = STREAMING
            if rest:
                conn.writelines((data, rest))
            else:
                conn.write(data)
        elif self.awaiting_continue and not self.request_complete:
            self._complete(False, data, rest)  # see _complete (inlined for the common answer)
        else:
            self._answer = DONE
            conn.response_complete(
                self, proto.response_keep_alive and not conn.state.shutting_down, data, rest
            )

    def send_body(self, data: bytes, end: bool) -> None:
        answer = self._answer
        if answer is not STREAMING:
            raise not_streaming(answer, _GONE)
        conn = self.conn
        proto = conn.proto
        try:
            out = proto.send_data(data) if data else b""
        except LocalProtocolError as exc:
            # More body than the head's Content-Length (RFC 9112 section 6.3).
            self._cut()
            raise ResponseError(str(exc)) from None
        self.sent += len(data)
        if not end:
            if out:
                conn.write(out)
            return
        try:
            out += proto.send_end()
        except LocalProtocolError as exc:
            # Less body than its Content-Length: the client would wait for bytes that never
            # come; closing is the only way to tell it (RFC 9112 section 6.3).
            conn.write(out)
            self._cut()
            raise ResponseError(str(exc)) from None
        self._complete(proto.response_keep_alive, out)

    def can_send_file(self) -> bool:
        # loop.sendfile sends from the kernel's page cache (os.sendfile) on asyncio's own
        # transports of a socket; uvloop's have no sendfile, nor has rootserve.testing's
        # in-memory transport (which has no socket).
        conn = self.conn
        return (
            isinstance(conn.state.loop, asyncio.BaseEventLoop)
            and conn.transport.get_extra_info("socket") is not None
        )

    async def send_file(self, file: Any, offset: int, count: int) -> None:
        if self._answer is not STREAMING:
            raise ResponseError("send_file needs a response head sent without its end")
        conn = self.conn
        proto = conn.proto
        try:
            sent = await conn.state.loop.sendfile(conn.transport, file, offset, count)
            self.sent += sent
            proto.send_data_sent_elsewhere(sent)
            end = proto.send_end()
        except (OSError, RuntimeError, LocalProtocolError) as exc:
            # The client left while the file was going: a reset or a broken pipe says so too.
            disconnected = self.disconnected or isinstance(exc, ConnectionError)
            self._cut()
            if disconnected:
                raise ClientDisconnected("the client closed the connection") from None
            raise ResponseError(f"sendfile failed: {exc}") from None
        self._complete(proto.response_keep_alive, end)

    def finish(self) -> None:
        running = self.conn.state.running
        running.discard(self)
        if not running:
            running.removed()
        # The adapter's cycle and its exchange point at each other; forgetting the cycle
        # here lets reference counting free both as soon as the connection moves on,
        # instead of the cyclic garbage collector (measured: a fifth of a request's
        # instructions when each request left a cycle behind).
        self.receiver = NO_RECEIVER
        if self._answer is not DONE:
            self.fail()  # a 500, or a cut connection (nothing, if it is cut already)

    def refuse(self, status: int, reason: str, headers: Headers) -> None:
        if self._answer is not WAITING:
            raise ResponseError("the response was already started")
        conn = self.conn
        proto = conn.proto
        if conn.upgrade is self:
            data = proto.refuse_upgrade(status, reason, headers)
        else:
            proto.abandon()
            data = proto.error_response(status, reason)
        self.status = status
        self._error_answer(data)
        self._complete(False, data)

    def fail(self) -> None:
        """Answer 500 if nothing was sent yet; otherwise cut the connection."""
        if self._answer is WAITING or self._answer is STREAMING:
            self.conn.state.metrics.app_exception()
        if self._answer is WAITING:
            conn = self.conn
            proto = conn.proto
            self.status = 500
            proto.abandon()
            data = proto.error_response(500, INTERNAL_ERROR)
            self._error_answer(data)
            self._complete(False, data)
        elif self._answer is STREAMING:
            self._cut()

    def _error_answer(self, data: bytes) -> None:
        """For the access log: a whole answer of the server's own, head and body."""
        self.response_headers = ()
        self.sent = len(data) - data.index(b"\r\n\r\n") - 4

    def _cut(self) -> None:
        self._answer = CUT
        self.conn.abort()

    def _complete(self, keep_alive: bool, last: bytes, rest: bytes = b"") -> None:
        # A client told to wait for 100 Continue that never got it may or may not send the
        # body: the connection cannot carry another request (RFC 9110 section 10.1.1).
        if self.awaiting_continue and not self.request_complete:
            keep_alive = False
        elif self.conn.state.shutting_down:
            keep_alive = False  # a graceful stop: no next request (RFC 9112 section 9.6)
        self._answer = DONE
        self.conn.response_complete(self, keep_alive, last, rest)

    def send_trailers(self, headers: Iterable[tuple[bytes, bytes]]) -> None:
        # In the last chunk, to a client that said `TE: trailers`; dropped otherwise (see
        # protocol/exchange.py).
        answer = self._answer
        if answer is not STREAMING:
            raise not_streaming(answer, _GONE, "trailers")
        try:
            fields = check_trailers(headers)
        except LocalProtocolError as exc:
            raise ResponseError(str(exc)) from None  # nothing was written
        proto = self.conn.proto
        try:
            last = end_with_trailers(proto, fields if accepts_trailers(self) else [])
        except LocalProtocolError as exc:
            self._cut()  # short of its Content-Length: see send_body
            raise ResponseError(str(exc)) from None
        self._complete(proto.response_keep_alive, last)

    # -- switching protocols -------------------------------------------------------------

    def switch(self, headers: Headers, open_session: Callable[[ByteStream], Upgraded]) -> Upgraded:
        if self._answer is not WAITING:
            raise ResponseError("the response was already started")
        conn = self.conn
        try:
            head = conn.proto.send_switching_protocols(headers)
        except (LocalProtocolError, TypeError, ValueError) as exc:
            raise ResponseError(f"cannot send the 101 response: {exc}") from None
        self.status = 101
        self.response_headers = headers
        self.sent = 0
        self._answer = DONE
        conn.write(head)
        return conn.switch(self, open_session)

    def cancel(self) -> None:
        self.receiver.cancel()
