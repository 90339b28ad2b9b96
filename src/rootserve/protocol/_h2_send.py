"""The send side of the sans-IO HTTP/2 server connection: response heads, bodies held to
the flow-control windows, trailers, resets.

How this works. A response head is checked and turned into an HTTP/2 field list before h2
sees it: each field as HTTP/1.1 checks it (`check_field`: a token for a name, no CR, LF or
NUL in a value), names lower-cased (RFC 9113 section 8.2.1), the connection-specific fields
an HTTP/1.1 app may send dropped (section 8.2.2), `date` and `server` added. The body of a
HEAD, 204 or 304 answer is dropped (RFC 9110 section 6.4.1) and a Content-Length is held
to, as in HTTP/1.1. Body bytes wait in the stream's queue until both flow-control windows
(the stream's and the connection's, RFC 9113 section 5.2) let them go, a frame at a time;
a WINDOW_UPDATE, or a SETTINGS that grows the windows, lets them go on (`_pump`). A stream
whose queue holds more than SEND_HIGH_WATER is paused: its sender waits. Once the last
byte (and the trailers) went, the stream's sending side is closed. A request still sending
its body then has the rest read and dropped, as HTTP/1.1 does (its windows given back;
still counted against the concurrency limit, and against the body's size limit). RFC 9113
section 8.1 would let us ask the client to stop with RST_STREAM NO_ERROR, but clients that
send the whole body before they read the answer (httpx's httpcore 1.0) then wait forever
for a window; a body refused for its size is reset that way all the same.
`SendSide` is a part of `H2ServerConnection` (http2.py), which holds the state.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Final

import h2.connection
import h2.exceptions
from h2.errors import ErrorCodes
from hpack import NeverIndexedHeaderTuple

from rootserve.protocol._send import check_field, date_value, error_body
from rootserve.protocol.events import Headers
from rootserve.protocol.rules import NO_BODY_STATUS, LocalProtocolError
from rootserve.units import KIB

__all__ = ["SEND_HIGH_WATER", "SendSide", "Stream"]

SEND_HIGH_WATER: Final = 64 * KIB  # queued body bytes of one stream before its sender waits

# RFC 9113 section 8.2.2: fields that only mean something to one HTTP/1.1 connection; an
# HTTP/2 message with one is malformed, so what an app sends of them is dropped. (TE is a
# request field: no response carries it.)
_CONNECTION_SPECIFIC: Final = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade", b"te"}
)
_STATUS: Final = {status: b"%d" % status for status in range(100, 1000)}
# RFC 7541 section 7.1.3: fields whose values are secrets go "never indexed", so that no
# later field on the connection can be compressed against them (a guess at a secret that
# compresses well gives it away).
_NEVER_INDEXED: Final = frozenset(
    {b"authorization", b"proxy-authorization", b"cookie", b"set-cookie"}
)
_WHITESPACE: Final = frozenset({b" ", b"\t"})


def _field(name: bytes, value: bytes) -> tuple[bytes, bytes]:
    """An HTTP/2 response field from a checked (`check_field`), lower-cased one: RFC 9113
    section 8.2.1 makes a value with whitespace at either end malformed, where HTTP/1.1
    reads it as optional whitespace, so it is stripped. (This, the check and the
    lower-casing are the only checks on our fields: h2's own outbound validation and
    normalization, which repeated them, are off: 50,356 instructions fewer per GET,
    callgrind of an in-memory client and server.)"""
    if value[:1] in _WHITESPACE or value[-1:] in _WHITESPACE:
        value = value.strip(b" \t")
    if name in _NEVER_INDEXED:
        return NeverIndexedHeaderTuple(name, value)
    return (name, value)


@dataclass(slots=True, eq=False)
class Stream:
    """One request's stream, from its head to the end of both sides."""

    stream_id: int
    method: str
    receiving: bool  # the request's body is still arriving
    received: int = 0  # body bytes received (counted against max_body_bytes)
    refused: bool = False  # the body broke its limit: what still comes of it is dropped
    answered: bool = False  # the response head went out
    no_body: bool = False  # HEAD, 204, 304: body bytes are dropped
    remaining: int = -1  # Content-Length bytes still owed; -1: no Content-Length
    queue: deque[bytes] = field(default_factory=deque)
    offset: int = 0  # bytes of queue[0] already sent
    queued: int = 0  # bytes waiting in queue (less offset)
    ending: bool = False  # the end was given: sent once the queue is empty
    trailers: Headers | None = None
    paused: bool = False  # queued passed SEND_HIGH_WATER; cleared once below it
    # When the queue began to wait on a window the client keeps shut, with nothing sent
    # since (0: it is not waiting): the zero-window stall `stalled` finds.
    stalled_since: float = 0.0


class SendSide:
    """The send half of H2ServerConnection (which sets these attributes up)."""

    _h2: h2.connection.H2Connection
    _streams: dict[int, Stream]
    _clock: Callable[[], float]
    _server_header: bytes | None
    _date_header: bool
    _resumed: list[int]  # streams that were paused and may go on: reported as events
    # Answered streams whose request body still arrives, to be dropped: the bytes so far.
    _discarding: dict[int, int]

    # -- heads ---------------------------------------------------------------------------

    def send_informational(self, stream_id: int, status: int = 100) -> None:
        """An interim answer (100 Continue, RFC 9110 section 15.2) before the final one."""
        stream = self._streams.get(stream_id)
        if stream is not None and not stream.answered:
            with contextlib.suppress(h2.exceptions.ProtocolError):  # (the stream is closing)
                self._h2.send_headers(stream_id, [(b":status", _STATUS[status])])

    def send_response(
        self,
        stream_id: int,
        status: int,
        headers: Iterable[tuple[bytes, bytes]],
        body: bytes = b"",
        end: bool = False,
    ) -> None:
        """The final response head with the first part of its body (`end`: and that is
        all). Raises LocalProtocolError or TypeError, having sent nothing, when the head
        cannot be sent. A stream already gone (reset) takes nothing."""
        stream = self._streams.get(stream_id)
        if stream is None:
            return
        if stream.answered:
            raise LocalProtocolError("the response was already started")
        if type(status) is not int or not 200 <= status <= 999:
            raise LocalProtocolError(f"final status must be 200-999, got {status!r}")
        fields: list[tuple[bytes, bytes]] = [(b":status", _STATUS[status])]
        length = -1
        for name, value in headers:
            kind = check_field(name, value)
            name = name.lower()
            if name in _CONNECTION_SPECIFIC:
                continue
            if name == b"content-length":
                if length >= 0:
                    raise LocalProtocolError("more than one content-length")
                length = kind
                if status == 204:
                    continue  # RFC 9110 section 8.6: never in a 204
            fields.append(_field(name, value))
        if self._server_header:
            fields.append((b"server", self._server_header))
        if self._date_header:
            fields.append((b"date", date_value()))
        no_body = status in NO_BODY_STATUS or stream.method == "HEAD"
        remaining = -1
        if no_body:
            if end and length < 0 and status not in NO_BODY_STATUS:
                fields.append((b"content-length", b"%d" % len(body)))
            body = b""
        elif length >= 0:
            remaining = length - len(body)
            if remaining < 0 or (end and remaining):
                raise LocalProtocolError(f"{len(body)} body bytes for a Content-Length of {length}")
        elif end:
            fields.append((b"content-length", b"%d" % len(body)))
        try:
            self._h2.send_headers(stream_id, fields, end_stream=end and not body)
        except h2.exceptions.ProtocolError as exc:  # a value h2 finds no field value
            raise LocalProtocolError(f"cannot send the response head: {exc}") from None
        stream.answered = True
        stream.no_body = no_body
        stream.remaining = remaining
        if body or end:
            self._queue(stream, body, end, sent_end=end and not body)

    def send_error(self, stream_id: int, status: int, reason: str) -> None:
        """A small complete text answer of the server's own (a 500, a 431, a 503...)."""
        body = error_body(status, reason)
        headers = [(b"content-type", b"text/plain; charset=utf-8")]
        self.send_response(stream_id, status, headers, body, True)

    # -- bodies --------------------------------------------------------------------------

    def send_data(self, stream_id: int, data: bytes, end: bool = False) -> None:
        """More of the body; `end` finishes it. Raises LocalProtocolError, having reset
        the stream, when the body breaks its Content-Length."""
        stream = self._streams.get(stream_id)
        if stream is None:
            return
        if not stream.answered or stream.ending:
            raise LocalProtocolError("body sent outside a response in progress")
        if stream.no_body:
            data = b""
        elif stream.remaining >= 0:
            stream.remaining -= len(data)
            if stream.remaining < 0 or (end and stream.remaining):
                self.reset(stream_id, ErrorCodes.INTERNAL_ERROR)
                raise LocalProtocolError("the body does not match the response's Content-Length")
        self._queue(stream, data, end)

    def send_trailers(self, stream_id: int, headers: Headers) -> None:
        """Trailer fields after the body (RFC 9113 section 8.1); they end the response."""
        stream = self._streams.get(stream_id)
        if stream is None:
            return
        if not stream.answered or stream.ending:
            raise LocalProtocolError("trailers sent outside a response in progress")
        if stream.remaining > 0:  # short of its Content-Length, as send_data's end checks
            self.reset(stream_id, ErrorCodes.INTERNAL_ERROR)
            raise LocalProtocolError("the body does not match the response's Content-Length")
        trailers = []
        for name, value in headers:
            check_field(name, value)
            name = name.lower()
            if name not in _CONNECTION_SPECIFIC:
                trailers.append(_field(name, value))
        stream.trailers = trailers
        self._queue(stream, b"", True)

    def earliest_stall(self) -> float:
        """Since when the longest-waiting stream has waited on a shut window with nothing
        sent (inf: none waits)."""
        return min(
            (stream.stalled_since for stream in self._streams.values() if stream.stalled_since),
            default=float("inf"),
        )

    def stalled(self, since: float) -> list[int]:
        """The streams that have waited on a shut window, nothing sent, from `since` or
        longer (a zero-window stall: the client keeps reading nothing of them)."""
        return [
            stream.stream_id
            for stream in self._streams.values()
            if stream.stalled_since and stream.stalled_since <= since
        ]

    def send_paused(self, stream_id: int) -> bool:
        """Whether the stream's queue is too full for its sender to go on."""
        stream = self._streams.get(stream_id)
        return stream is not None and stream.paused

    def reset(self, stream_id: int, code: int = ErrorCodes.CANCEL) -> None:
        """End a stream both ways with RST_STREAM (RFC 9113 section 6.4)."""
        self._discarding.pop(stream_id, None)
        stream = self._streams.pop(stream_id, None)
        if stream is not None:
            stream.queue.clear()
            stream.queued = 0
        # (Closed already, h2's StreamClosedError; or the connection is over.)
        with contextlib.suppress(h2.exceptions.ProtocolError):
            self._h2.reset_stream(stream_id, code)

    # -- the windows ---------------------------------------------------------------------

    def _queue(self, stream: Stream, data: bytes, end: bool, sent_end: bool = False) -> None:
        if data:
            stream.queue.append(data)
            stream.queued += len(data)
        if end:
            stream.ending = True
        if sent_end:
            self._sent_all(stream)
            return
        self._pump(stream)
        if stream.queued > SEND_HIGH_WATER:
            stream.paused = True

    def _pump_all(self) -> None:
        for stream in list(self._streams.values()):
            if stream.queued or stream.ending:
                self._pump(stream)

    def _pump(self, stream: Stream) -> None:
        """Send what the windows allow of the stream's queue, then its end."""
        conn = self._h2
        stream_id = stream.stream_id
        queue = stream.queue
        sent = False
        try:
            while stream.queued:
                window = min(
                    conn.local_flow_control_window(stream_id), conn.max_outbound_frame_size
                )
                if window <= 0:
                    break
                first = queue[0]
                offset = stream.offset
                if len(first) - offset <= window:
                    piece = first[offset:] if offset else first
                    queue.popleft()
                    stream.offset = 0
                else:
                    piece = first[offset : offset + window]
                    stream.offset = offset + window
                stream.queued -= len(piece)
                last = stream.ending and not stream.queued and stream.trailers is None
                conn.send_data(stream_id, piece, end_stream=last)
                sent = True
                if last:
                    self._sent_all(stream)
                    return
            if stream.ending and not stream.queued:
                if stream.trailers is not None:
                    conn.send_headers(stream_id, stream.trailers, end_stream=True)
                else:
                    conn.end_stream(stream_id)
                self._sent_all(stream)
                return
        except h2.exceptions.ProtocolError:
            # The stream was closed under us (a reset crossing our data): nothing more
            # can go on it.
            self._streams.pop(stream_id, None)
            return
        if not stream.queued:
            stream.stalled_since = 0.0
        elif sent or not stream.stalled_since:
            stream.stalled_since = self._clock()  # waiting on the window from now
        if stream.paused and stream.queued <= SEND_HIGH_WATER:
            stream.paused = False
            self._resumed.append(stream_id)

    def _sent_all(self, stream: Stream) -> None:
        """The response went out whole: the stream is done on our side."""
        self._streams.pop(stream.stream_id, None)
        if stream.paused:
            self._resumed.append(stream.stream_id)
        if stream.refused:
            # The client was told its body is too large: RFC 9113 section 8.1's NO_ERROR
            # reset asks it to stop sending the rest.
            with contextlib.suppress(h2.exceptions.ProtocolError):
                self._h2.reset_stream(stream.stream_id, ErrorCodes.NO_ERROR)
        elif stream.receiving:
            self._discarding[stream.stream_id] = stream.received  # see the docstring
