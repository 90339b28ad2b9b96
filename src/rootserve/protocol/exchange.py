"""The exchange: one request and its answer, the seam between the server and the adapters.

How this works. For each request the server makes one exchange and hands it to the adapter
(the ASGI HTTP cycle, the WebSocket cycle or the WSGI cycle), which sets itself as the
exchange's `receiver`. The request's head is the exchange's own fields (`Head`: method,
target, headers...); the rest comes in through the receiver: body parts as they arrive
(`feed`), the end of the body (`end`), or `disconnect` when the client is gone. The answer
goes out through the exchange: `respond` (the head, and the body with it when that is all),
`send_body`, and `finish` when the app's call is over.

The exchange alone applies the rules every adapter would otherwise repeat: 100-continue (sent
when the adapter first asks for the body, `want_body`), no body for HEAD, 204 and 304, the
500 fallback when the app fails before its answer began (a cut connection after), the
keep-alive decision, and completion. An HTTP/1.1 connection makes them in `server/`; an
HTTP/2 stream is a second implementation of this same interface, with no change to the
adapters. The adapters import this module and `events.py`, never a connection or transport.

Trailer fields (`send_trailers`, after the body) end a response whose head went out without
its end. HTTP/2 carries them always (a HEADERS frame after the DATA, RFC 9113 section 8.1);
HTTP/1.1 only in the last chunk of a chunked body, and rootserve sends them only to a client
that said `TE: trailers` (RFC 9110 section 10.1.4: a client that did not may not read them).
`accepts_trailers` says which requests may get them (the ASGI cycle offers the trailers
extension on HTTP/2, asgi/_scope.py). To any other, and in a response framed without chunks (a
Content-Length, HEAD, 204, 304), the fields are dropped and the response simply ends:
trailers are fields a recipient may discard anyway (RFC 9110 section 6.5.1).

A request that asks to switch protocols (WebSocket) is an exchange too: `switch` sends the
101 and hands the connection's bytes to an `Upgraded` session, which talks back through a
`ByteStream`; any other answer to it (`refuse`, `respond`) turns the switch down and ends
the connection.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Final, Protocol, TypeAlias, cast

from rootserve.protocol.events import Head, Headers

__all__ = [
    "STREAM_EXTENSION",
    "Address",
    "ByteStream",
    "ClientDisconnected",
    "Exchange",
    "Receiver",
    "ResponseError",
    "Upgraded",
    "accepts_trailers",
    "stream_id",
]

Address: TypeAlias = tuple[str, int]

# The ASGI scope extension (a server-specific one, ASGI spec "Extensions") that names the
# HTTP/2 stream of a request, {"stream_id": 3}: what --trace and the inspector show.
STREAM_EXTENSION: Final = "rootserve.http2"


def accepts_trailers(head: Head) -> bool:
    """Whether the answer to this request may carry trailer fields (module docstring):
    any HTTP/2 request; an HTTP/1.1 one whose TE field lists `trailers`."""
    version = head.http_version
    if version == "2":
        return True
    if version != "1.1":
        return False  # HTTP/1.0 has no chunked coding to carry them
    for name, value in head.headers:
        # TE = #( t-codings ), `trailers` never with parameters (RFC 9110 section 10.1.4).
        if name == b"te" and b"trailers" in [
            coding.partition(b";")[0].strip() for coding in value.lower().split(b",")
        ]:
            return True
    return False


class _OnStream(Protocol):
    stream_id: int


def stream_id(exchange: Head) -> int | None:
    """The HTTP/2 stream an exchange is; None for an HTTP/1.1 request, which has none."""
    if exchange.http_version != "2":
        return None
    return cast(_OnStream, exchange).stream_id  # (every HTTP/2 exchange is an H2Exchange)


class ClientDisconnected(OSError):
    """The client went away: sending the response, or reading the rest of the body, is over
    (ASGI HTTP spec 2.4: `send` raises an OSError subclass then)."""


class ResponseError(ValueError):
    """The answer an app gave cannot be sent as HTTP (a bad status, a header name that is
    no token, CR/LF in a value, more body than its Content-Length...). Nothing was written;
    the message names the rule."""


class Receiver(Protocol):
    """The adapter's side of an exchange: what the server tells it about the request."""

    def feed(self, data: bytes) -> None:
        """A part of the request body."""

    def end(self) -> None:
        """The request body is complete."""

    def disconnect(self) -> None:
        """The client is gone, or the request was cut off: no more body, nothing to answer."""

    def writable(self) -> None:
        """The connection drained what was written: a paused sender may go on."""

    def server_stopping(self) -> None:
        """The server drains: a response streaming after the whole request was read may
        be told the client is going (ASGI: http.disconnect); it may still send."""

    def cancel(self) -> None:
        """Graceful shutdown ran out of time: stop the app's call."""


class Exchange(Head, Protocol):
    """One request and its response, as the adapters see it: the request's head (its
    fields are the exchange's own), and the ways to answer it."""

    server: Address | None
    client: Address | None
    receiver: Receiver
    status: int  # the status answered, 0 until the response starts
    scheme: str  # `http` or `https` (TLS, or a trusted proxy's word)
    # A trusted proxy's path prefix (X-Forwarded-Prefix); None: the server's --root-path.
    root_path: str | None

    @property
    def tls(self) -> dict[str, Any] | None:
        """The ASGI TLS extension's dict for this request's connection; None when the
        connection is not TLS."""

    @property
    def disconnected(self) -> bool:
        """The client is gone, or the exchange was cut off."""

    @property
    def response_started(self) -> bool: ...

    @property
    def complete(self) -> bool:
        """The whole response was sent, or will never be (disconnected, failed)."""

    @property
    def request_complete(self) -> bool:
        """The whole request body has arrived."""

    @property
    def write_paused(self) -> bool:
        """The connection holds more than it can send: wait in `drain()` before sending more."""

    def want_body(self) -> None:
        """The app is ready to read the body: sends 100 Continue if the client waits for it
        (RFC 9110 section 10.1.1), and from then on the body has a deadline."""

    def pause_reading(self) -> None:
        """The adapter holds enough unread body: stop reading from the client."""

    def resume_reading(self) -> None: ...

    def respond(
        self, status: int, headers: Iterable[tuple[bytes, bytes]], body: bytes, end: bool
    ) -> None:
        """The response head, with the first part of the body (`end`: and that is all).
        Raises ResponseError, having written nothing, if it cannot be sent as HTTP."""

    def send_body(self, data: bytes, end: bool) -> None:
        """More of the body; `end` finishes the response. Raises ResponseError when the
        body breaks the framing the head declared (the connection is cut)."""

    def send_trailers(self, headers: Iterable[tuple[bytes, bytes]]) -> None:
        """The trailer fields, after the body; they end the response (module docstring:
        dropped where they cannot go). Raises ResponseError, having sent nothing, for a
        field that cannot be a trailer (RFC 9110 section 6.5.1: framing, routing, ...)."""

    def can_send_file(self) -> bool:
        """Whether `send_file` sends from the kernel (zero-copy) on this connection."""

    async def send_file(self, file: Any, offset: int, count: int) -> None:
        """`count` bytes of the open `file` from `offset` as the rest of the body, which the
        head framed with a Content-Length; finishes the response."""

    async def drain(self) -> None:
        """Wait until the connection can take more (see `write_paused`)."""

    def refuse(self, status: int, reason: str, headers: Headers) -> None:
        """A small complete error answer (`reason` as its text) after which the connection
        ends: how a request that asked to switch protocols is turned down."""

    def fail(self) -> None:
        """The answer cannot go on: a 500 when nothing was sent yet, else a cut connection."""

    def finish(self) -> None:
        """The app's call is over. A response it did not complete is completed for it: a
        500 when nothing was sent, a cut connection when the head already went out."""

    # -- switching protocols ---------------------------------------------------------

    def switch(self, headers: Headers, open_session: Callable[[ByteStream], Upgraded]) -> Upgraded:
        """Send 101 Switching Protocols with `headers`, then open the session on the
        connection's byte stream: from now on every byte received goes to it, first those
        the client sent after its request."""


class ByteStream(Protocol):
    """The connection as a byte stream, after a switch of protocols."""

    @property
    def write_paused(self) -> bool: ...

    def write(self, data: bytes) -> None: ...
    async def drain(self) -> None: ...
    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def close(self) -> None:
        """Close after what was written is sent."""

    def abort(self) -> None: ...


class Upgraded(Protocol):
    """A session that owns the connection after a switch (the WebSocket session)."""

    deadline: float  # the loop time at which on_deadline is due (inf: none)

    def data_received(self, data: bytes) -> None: ...
    def writable(self) -> None:
        """The connection drained what was written."""

    def eof_received(self) -> None: ...
    def connection_lost(self) -> None: ...
    def on_deadline(self) -> None: ...
    def shutdown(self, restart: bool) -> None:
        """The server is stopping: close the session (WebSocket: 1012 Service Restart when
        `restart`, another process taking over; 1001 Going Away otherwise)."""
