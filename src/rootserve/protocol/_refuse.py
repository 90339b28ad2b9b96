"""Refusing a request, a part of `HTTP11Connection`: the receive side ends with a BadRequest.

A check made inside an httptools callback raises `_Reject` (`_refuse`): llhttp stops, and
`receive_data` ends the receive side with `BadRequest(status, reason)` (`_fail`). The server
answers that and closes; the app never sees the request, and the requests before it in a
pipeline are answered first. llhttp's own refusals come out as its error messages, which
`_llhttp_error` maps to a status: 505 for the HTTP/2 preface (RFC 9113 section 3.4) or a
version other than 1.0 and 1.1 (RFC 9110 section 6.2), 501 for a method llhttp knows from
another protocol (RTSP's; RFC 9110 section 9.1), 400 for the rest; bytes after a request
that said `Connection: close` are not read at all (RFC 9112 section 9.6).

One refusal needs more than llhttp tells. RFC 9110 section 9.1 answers an unknown method with
501 and a line that is no request line with 400, but llhttp refuses an unknown method at its
first byte it knows no method by, and a method matters only in a request line: method SP
request-target SP HTTP-version CRLF (RFC 9112 section 3). So the refused message is found
again (`_failed_message_start`: a spare parser replays the bytes since the parser was last
idle, a byte at a time, to find where the last complete message ended), and its line is read
as it comes (`_sniff_method`, in the SNIFF_METHOD state) until a byte decides it.

The HTTP/2 preface is a refusal the server may take back. A client with prior knowledge
(RFC 9113 section 3.3) begins the connection with it; llhttp stops there ("Pause on PRI").
When those were the connection's first bytes (no request came before them: none is waiting
for its answer, and none was answered with the connection kept alive), the refusal is a
`PrefaceReceived`, which carries every byte received so far: a server that speaks HTTP/2
hands them, and the connection, to its HTTP/2 side; one that does not answers the 505 as
for any other BadRequest. After a request, the preface is only a bad request.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, NoReturn

import httptools

from rootserve.protocol._h2_frames import sniff_preface
from rootserve.protocol._states import RECEIVE_DONE, RECEIVE_ERROR, SNIFF_METHOD
from rootserve.protocol._switch import SwitchSide
from rootserve.protocol.events import BadRequest, Event
from rootserve.protocol.rules import REQUEST_LINE_START, TCHAR

__all__ = ["NO_HTTP2", "PrefaceReceived", "RefuseSide"]

NO_HTTP2: Final = "HTTP/2 is not supported on this listener"


@dataclass(slots=True, frozen=True)
class PrefaceReceived(BadRequest):
    """The connection began with HTTP/2's preface (see the module's docstring): a
    BadRequest (505) unless the server takes the connection over as HTTP/2, with
    `received`, every byte so far (the preface and whatever followed it)."""

    received: bytes = b""


class _Reject(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class _Counter:
    """Callbacks of the spare parser that finds where a refused message starts."""

    complete = False

    def on_message_complete(self) -> None:
        self.complete = True


# The parts of a request line (REQUEST_LINE_START's groups) that a run of the same bytes
# only lengthens: while a sniffed line ends inside one, such bytes decide nothing new.
_RUNS: Final[dict[str | None, re.Pattern[bytes]]] = {
    "method": re.compile(TCHAR + rb"+"),
    "sp1": re.compile(rb" +"),
    "target": re.compile(rb"[!-~]+"),
    "sp2": re.compile(rb" +"),
}


class RefuseSide(SwitchSide):
    """The refusing layer of HTTP11Connection, over the protocol-switching layer."""

    _events: list[Event]
    _reject: _Reject | None
    _since_idle: bytes | None
    _prefix: bytes | bytearray
    _sniff_start: int
    _sniff_run: re.Pattern[bytes] | None
    _max_url: int
    _data: bytes

    def _fail(self, status: int, reason: str) -> list[Event]:
        self._state = RECEIVE_ERROR
        self._events.append(BadRequest(status, reason))
        return self._events

    def _refuse(self, status: int, reason: str) -> NoReturn:
        self._reject = _Reject(status, reason)
        raise self._reject

    def _llhttp_error(self, reason: str) -> list[Event]:
        if reason.startswith("Pause on PRI"):
            # The HTTP/2 connection preface (RFC 9113 section 3.4) sent to HTTP/1.1.
            since = self._since_idle
            received = self._data if not since else since + self._data
            first = not (self._requests or self.response_keep_alive)  # see the docstring
            if first and since is not None and sniff_preface(received):
                self._state = RECEIVE_ERROR
                self._events.append(PrefaceReceived(505, NO_HTTP2, received))
                return self._events
            return self._fail(505, NO_HTTP2)
        if reason.startswith("Invalid HTTP version"):
            return self._fail(505, "only HTTP/1.0 and HTTP/1.1 are supported")  # RFC 9110 6.2
        if reason.startswith("Invalid method for"):
            # A valid token that names no HTTP method (llhttp knows RTSP's): 501, section 9.1.
            return self._fail(501, "method is not implemented")
        if reason.startswith("Data after `Connection: close`"):
            # RFC 9112 section 9.6: nothing after a request with Connection: close is read.
            self._state = RECEIVE_DONE
            return self._events
        return self._fail(400, reason or "malformed request")

    def _failed_message_start(self, data: bytes) -> bytes | None:
        """The bytes of the message llhttp refused, from its start to the end of `data`.

        Everything since the parser was last idle at the end of a feed is kept (up to
        _REPLAY_MAX_BYTES); replaying it one byte at a time through a spare parser finds
        where the last complete message ended, whatever the chunking was."""
        if self._since_idle is None:
            return None
        region = self._since_idle + data
        counter = _Counter()
        probe = httptools.HttpRequestParser(counter)
        start = 0
        for offset in range(len(region)):
            try:
                probe.feed_data(region[offset : offset + 1])
            except httptools.HttpParserUpgrade:
                probe = httptools.HttpRequestParser(counter)
            except httptools.HttpParserError:
                break
            if counter.complete:
                counter.complete = False
                start = offset + 1
        return region[start:]

    def _sniff_method(self, data: bytes | None) -> list[Event]:
        """Tell an unknown method (501, RFC 9110 section 9.1) from a line that is no request
        line at all (400), once llhttp refused the method at its first byte it knows no
        method by. A method matters only in a request line, so 501 needs the whole line:
        method SP request-target SP HTTP-version CRLF (RFC 9112 section 3). The line is read
        here as it comes, maybe a byte at a time; the verdict falls at the first byte that
        decides it (one that breaks that shape, the end of the line, or one past the
        request-line limit), so it is the same however the bytes were cut up."""
        if self._state is not SNIFF_METHOD:
            self._state = SNIFF_METHOD
            self._prefix = bytearray()
        if data is None:
            return self._fail(400, "invalid method")
        prefix = self._prefix
        prefix += data
        run = self._sniff_run
        if run is not None and run.fullmatch(data):
            # These bytes only lengthen the part of the line the last ones ended in.
            if len(prefix) - self._sniff_start > self._max_url:
                return self._fail(414, "request line too long")
            return self._events
        line = prefix.lstrip(b"\r\n")  # RFC 9112 section 2.2: empty lines before it
        self._sniff_start = len(prefix) - len(line)
        shape = REQUEST_LINE_START.match(line)
        end = shape.end() if shape is not None else 0
        if len(line[:end].rstrip(b"\r\n")) > self._max_url:
            return self._fail(414, "request line too long")  # RFC 9112 section 3
        if shape is not None and (shape["version"] or b"").endswith(b"\n"):
            shown = shape["method"][:32].decode("ascii")
            return self._fail(501, f"method {shown} is not implemented")
        if end < len(line):
            if shape is None or shape["sp1"] is None:
                return self._fail(400, "invalid method token")
            return self._fail(400, "malformed request line")
        self._sniff_run = _RUNS.get(shape.lastgroup if shape is not None else None)
        return self._events
