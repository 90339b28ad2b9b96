"""Sans-IO HTTP/1.1 for a server: bytes in, events out; events in, bytes out.

How this works. `HTTP11Connection.receive_data(bytes)` feeds llhttp (through httptools), whose
callbacks build `Request`, `Data` and `EndOfMessage` events. llhttp already enforces most of
RFC 9112's message grammar (bare CR or LF, obs-fold, whitespace before a colon, control bytes,
Content-Length with Transfer-Encoding, duplicate or malformed Content-Length, bad chunk sizes
and chunk line ends). The checks llhttp leaves to its user are made here, each citing its
RFC section: Host, the request-target form, fragments, the HTTP version, transfer codings
other than chunked, expectations, and the size limits. A request that breaks a rule ends the
receive side with `BadRequest(status, reason)`: the server answers it and closes, and the app
never sees that request (requests before it in a pipeline are answered first, in order).

The send side frames each response for the request at the head of the pipeline: it checks
the app's header fields (no CR, LF or NUL: response splitting), decides Content-Length,
chunked or close-delimited framing (RFC 9112 section 6), drops the body of HEAD, 1xx, 204 and
304 answers (RFC 9110 section 6.4.1), adds `Date` and `Server`, and decides keep-alive.

Switching protocols (RFC 9110 section 7.8). A bodiless HTTP/1.1 request whose Upgrade names
`websocket` (with `Connection: upgrade`) stops the receive side: the request comes out, and
the bytes after it are held, not parsed. The server then either switches
(`send_switching_protocols` writes the 101, `take_upgrade_data` hands over the held bytes,
which belong to the new protocol), refuses (`refuse_upgrade`, and the connection closes), or
goes on with HTTP (`resume_after_upgrade`: the request is answered as a plain one and the
held bytes are parsed as what follows it). Any other Upgrade is ignored, as section 7.8
allows, and parsing goes on.

This module imports no asyncio, socket or threading: a test guards that.
"""

from __future__ import annotations

import enum
import time
from collections import deque
from collections.abc import Iterable
from email.utils import formatdate
from typing import Final, NoReturn

import httptools

from rootserve.protocol.events import (
    END_OF_MESSAGE,
    BadRequest,
    ConnectionClosed,
    Data,
    EndOfMessage,
    Event,
    Headers,
    InformationalResponse,
    Request,
    Response,
)
from rootserve.protocol.rules import (
    _STATUS_LINES,
    FIELD_VALUE_FORBIDDEN,
    HOST,
    KIB,
    TOKEN,
    Limits,
    LocalProtocolError,
    status_line,
)

__all__ = ["HTTP11Connection", "error_response"]

_OWS: Final = b" \t"
_HEADER_OVERHEAD: Final = 4  # ": " and CRLF around each field line
_SPECIAL: Final = frozenset(
    {b"host", b"content-length", b"transfer-encoding", b"expect", b"upgrade"}
)
_METHODS: Final = {
    m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH")
}
_NO_BODY_STATUS: Final = frozenset({204, 304})
_CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"


class _Receive(enum.Enum):
    OPEN = "open"  # parsing requests
    SNIFF_METHOD = "sniff"  # llhttp refused a method: read the token to tell 400 from 501
    DONE = "done"  # the last request said Connection: close; what follows is ignored
    UPGRADE = "upgrade"  # a request asked for WebSocket: bytes after it are held, not parsed
    SWITCHED = "switched"  # a 101 was sent: the bytes belong to another protocol
    ERROR = "error"  # a BadRequest was emitted; everything after it is ignored
    CLOSED = "closed"  # the peer sent EOF


class _Framing(enum.Enum):
    LENGTH = "content-length"
    CHUNKED = "chunked"
    CLOSE = "close-delimited"
    NONE = "no body"


class _Reject(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


# RFC 9110 section 6.6.1: a server with a clock sends Date; one formatting per second.
_date_expires = 0.0
_date_line = b""


def _date_header() -> bytes:
    global _date_expires, _date_line
    now = time.time()
    if now >= _date_expires:
        second = int(now)
        _date_expires = second + 1.0
        _date_line = b"date: " + formatdate(second, usegmt=True).encode("ascii") + b"\r\n"
    return _date_line


_REPLAY_MAX_BYTES: Final = 16 * KIB
_SWITCHABLE: Final = b"websocket"  # RFC 6455 section 4.1: the Upgrade token of WebSocket
_SWITCHING_LINE: Final = b"HTTP/1.1 101 Switching Protocols\r\n"


class _Counter:
    """Callbacks of the spare parser that finds where a refused message starts."""

    complete = False

    def on_message_complete(self) -> None:
        self.complete = True


def _says_http(region: bytes, target: bytes) -> bool:
    # The slow path of the protocol-name check: more than one space before the version.
    at = region.find(target)
    if at < 0:
        return True  # the head began before what we kept: nothing to check against
    at += len(target)
    while region[at : at + 1] == b" ":
        at += 1
    return region.startswith(b"HTTP/", at)


def _names_switchable(upgrade: bytes) -> bool:
    # RFC 9110 section 7.8: Upgrade is a list of protocols, compared case-insensitively.
    return any(p.strip().lower() == _SWITCHABLE for p in upgrade.split(b","))


def error_response(
    status: int,
    reason: str,
    *,
    server_header: bytes = b"",
    extra_headers: bytes = b"",
    connection: bytes = b"close",
) -> bytes:
    """A complete small text/plain answer that closes the connection. `extra_headers` are
    whole field lines (each ending in CRLF), already checked; `connection` is the value of
    the Connection field, which must include `close`."""
    body = f"{status_line(status)[9:].decode('ascii').strip()}: {reason}\n".encode(
        "ascii", "replace"
    )
    return b"".join(
        [
            status_line(status),
            b"content-type: text/plain; charset=utf-8\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: " + connection + b"\r\n",
            extra_headers,
            server_header,
            _date_header(),
            b"\r\n",
            body,
        ]
    )


class HTTP11Connection:
    """One server-side HTTP/1.1 connection, without I/O.

    Feed received bytes to `receive_data` (b"" for EOF) and act on the events it returns;
    turn responses into bytes with `send` (or the `send_*` methods it dispatches to) and
    write them. Responses are answered in request order.
    """

    def __init__(
        self,
        limits: Limits | None = None,
        *,
        server_header: bytes | None = b"rootserve",
        date_header: bool = True,
    ) -> None:
        self.limits = limits = limits or Limits()
        self._max_url = limits.max_request_line_bytes
        self._max_header_bytes = limits.max_header_bytes
        self._max_header_count = limits.max_header_count
        self._max_body = limits.max_body_bytes
        self._max_raw_head = limits.max_header_bytes + limits.max_request_line_bytes
        self._server_line = b"server: " + server_header + b"\r\n" if server_header else b""
        self._add_date = date_header
        self._parser = httptools.HttpRequestParser(self)
        self._state = _Receive.OPEN
        self._events: list[Event] = []
        self._reject: _Reject | None = None
        self._idle = True  # between messages
        # Bytes since the parser was last idle at the end of a feed (None past the cap):
        # where a refused method starts (see _failed_message_start).
        self._since_idle: bytes | None = b""
        self._prefix = b""  # a refused method's bytes so far, while its token is read
        # Bytes fed since the last callback that proves progress: bounds what httptools
        # buffers of an unfinished head or trailer line.
        self._raw = 0
        self._data = b""  # the current feed (for the request-line check)
        self._upgrade_length = 0  # Content-Length of an Upgrade request llhttp will skip
        self._body_left = 0  # body bytes of such a request still to take
        self.head_in_progress = False
        # The request that asked to switch protocols, and the bytes after it (see the top).
        self.upgrade_request: Request | None = None
        self._held = b""
        self._held_eof = False
        self._host_checked = b""  # the last Host value found valid (keep-alive repeats it)
        # The per-message fields, set anew in on_message_begin.
        self._url = b""
        self._headers: Headers = []
        self._header_bytes = 0
        self._host: bytes | None = None
        self._rare: dict[bytes, bytes] | None = None  # Content-Length, TE, Expect, Upgrade
        self._body_bytes = 0
        # The response being sent: for the request at the head of `_requests`.
        self._requests: deque[Request] = deque()
        self._started = False
        self._framing = _Framing.NONE
        self._remaining = 0
        self._keep_alive = False
        self._close_after = False
        self.last_keep_alive = False
        self.response_keep_alive = False

    # -- receiving ---------------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[Event]:
        """Events for `data`; b"" means the peer closed its sending side."""
        if self._state is not _Receive.OPEN:
            if self._state is _Receive.UPGRADE:
                return self._hold(data)
            if self._state is _Receive.SWITCHED:
                raise LocalProtocolError(
                    "the connection switched protocols (RFC 9110 section 7.8): its bytes are "
                    "not HTTP any more"
                )
            if self._state is _Receive.SNIFF_METHOD and data:
                self._events = []
                return self._sniff_method(data)
            if self._state is _Receive.DONE and not data:
                self._state = _Receive.CLOSED
                return [ConnectionClosed()]
            return []
        if not data:
            self._state = _Receive.CLOSED
            return [ConnectionClosed()]
        events: list[Event] = []
        self._events = events
        self._data = data
        if self._body_left:
            data = self._upgrade_body(data)
            if not data:
                return events
        self._raw += len(data)
        parser = self._parser
        try:
            while True:
                try:
                    parser.feed_data(data)
                    break
                except httptools.HttpParserUpgrade as exc:
                    if self.upgrade_request is not None:
                        self._state = _Receive.UPGRADE
                        self._held = data[exc.args[0] :]
                        break
                    data = self._after_upgrade(data[exc.args[0] :])
                    if not data:
                        break
        except httptools.HttpParserInvalidMethodError:
            # RFC 9110 section 9.1: an unknown method is 501, a malformed one 400. llhttp
            # stops at the first byte that starts no method it knows: read the token.
            return self._sniff_method(self._failed_message_start(data))
        except httptools.HttpParserCallbackError:
            reject = self._reject or _Reject(400, "invalid request")
            return self._fail(reject.status, reject.reason)
        except httptools.HttpParserError as exc:
            return self._llhttp_error(str(exc))
        if self._idle:
            if self._since_idle:
                self._since_idle = b""
        elif self._since_idle is not None:
            since = self._since_idle + data
            self._since_idle = since if len(since) <= _REPLAY_MAX_BYTES else None
        if self._raw > self._max_raw_head:
            return self._fail(431, "request head or trailer section too large")
        return events

    def _llhttp_error(self, reason: str) -> list[Event]:
        if reason.startswith("Pause on PRI"):
            # The HTTP/2 connection preface (RFC 9113 section 3.4) sent to HTTP/1.1.
            return self._fail(505, "HTTP/2 is not supported on this listener")
        if reason.startswith("Invalid HTTP version"):
            return self._fail(505, "only HTTP/1.0 and HTTP/1.1 are supported")  # RFC 9110 6.2
        if reason.startswith("Invalid method for"):
            # A valid token that names no HTTP method (llhttp knows RTSP's): 501, section 9.1.
            return self._fail(501, "method is not implemented")
        if reason.startswith("Data after `Connection: close`"):
            # RFC 9112 section 9.6: nothing after a request with Connection: close is read.
            self._state = _Receive.DONE
            return self._events
        return self._fail(400, reason or "malformed request")

    def _after_upgrade(self, rest: bytes) -> bytes:
        """llhttp paused after a request carrying an Upgrade we do not switch to, skipping
        any body. We answer it as plain HTTP (RFC 9110 section 7.8 lets a server ignore
        Upgrade), so its body is taken here, by its Content-Length, before
        parsing goes on: never parsed as a request of its own (RFC 9112 section 11.2)."""
        if self._upgrade_length:
            self._events.pop()  # the EndOfMessage llhttp gave too early
            self._body_left = self._upgrade_length
            self._upgrade_length = 0
            return self._upgrade_body(rest)
        return rest

    def _hold(self, data: bytes) -> list[Event]:
        if data:
            self._held += data
            return []
        if self._held_eof:
            return []
        self._held_eof = True
        return [ConnectionClosed()]

    def _upgrade_body(self, data: bytes) -> bytes:
        take = data[: self._body_left]
        self._body_left -= len(take)
        if take:
            self._events.append(Data(take))
        if self._body_left:
            return b""
        self._events.append(END_OF_MESSAGE)
        return data[len(take) :]

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
        self._state = _Receive.SNIFF_METHOD
        if data is None:
            return self._fail(400, "invalid method")
        self._prefix += data
        line = self._prefix.lstrip(b"\r\n")
        space = line.find(b" ")
        token = line if space < 0 else line[:space]
        if token and TOKEN.fullmatch(token) is None:
            return self._fail(400, "invalid method token")
        if space < 0:
            if len(line) > self._max_url:
                return self._fail(414, "request line too long")
            return self._events
        if not token:
            return self._fail(400, "invalid request line")
        shown = token[:32].decode("ascii")
        return self._fail(501, f"method {shown} is not implemented")

    def _fail(self, status: int, reason: str) -> list[Event]:
        self._state = _Receive.ERROR
        self._events.append(BadRequest(status, reason))
        return self._events

    def _refuse(self, status: int, reason: str) -> NoReturn:
        self._reject = _Reject(status, reason)
        raise self._reject

    # httptools callbacks (called from inside feed_data)

    def on_message_begin(self) -> None:
        self.head_in_progress = True
        self._idle = False
        self._url = b""
        self._headers = []
        self._header_bytes = 0
        self._host = None
        self._rare = None
        self._body_bytes = 0

    def on_url(self, piece: bytes) -> None:
        url = self._url + piece if self._url else piece
        if len(url) > self._max_url:
            self._refuse(414, f"request target longer than {self._max_url} bytes")
        self._url = url

    def on_header(self, name: bytes, value: bytes) -> None:
        # Trailer fields (RFC 9112 section 7.1.2) come here too, after the head: they are
        # counted against the limit and collected in a list nobody reads.
        size = self._header_bytes + len(name) + len(value) + _HEADER_OVERHEAD
        self._header_bytes = size
        if size > self._max_header_bytes:
            self._refuse(431, f"header fields larger than {self._max_header_bytes} bytes")
        name = name.lower()
        if value and value[-1] in _OWS:
            value = value.rstrip(_OWS)  # RFC 9110 section 5.5: OWS is not part of the value
        if name in _SPECIAL:
            if name == b"host":
                if self._host is not None:
                    # RFC 9112 section 3.2: more than one Host line is a 400 (and RFC 9110
                    # section 6.5.1 keeps Host out of trailers).
                    self._refuse(400, "more than one Host header")
                self._host = value
            else:
                rare = self._rare
                if rare is None:
                    rare = self._rare = {}
                if name in rare:
                    # Several Transfer-Encoding lines form one list (RFC 9110 section 5.3).
                    value = rare[name] + b"," + value
                rare[name] = value
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        parser = self._parser
        version = parser.get_http_version()
        http10 = version == "1.0"
        if not http10 and version != "1.1":
            # RFC 9110 section 15.6.6; HTTP/0.9 has no headers to frame anything with.
            self._refuse(505, f"HTTP/{version} is not supported")
        method_bytes = parser.get_method()
        method = _METHODS.get(method_bytes) or method_bytes.decode("ascii")
        target = self._url
        headers = self._headers
        if len(headers) > self._max_header_count:
            self._refuse(431, f"more than {self._max_header_count} header fields")
        if target[:1] == b"/":
            path, _, query = target.partition(b"?")
            # RFC 9112 section 3.2: the request-target never carries a fragment.
            if b"#" in target:
                self._refuse(400, "request target has a fragment")
        else:
            path, query, headers = self._other_form(method, target, headers)
        # RFC 9112 section 3.2: exactly one valid Host in an HTTP/1.1 request (a second one
        # was refused as it arrived).
        host = self._host
        if host is None:
            if not http10:
                self._refuse(400, "HTTP/1.1 request without a Host header")
        elif host != self._host_checked:
            if HOST.fullmatch(host) is None:
                self._refuse(400, "invalid Host header")
            self._host_checked = host
        has_body = expect_continue = switch = False
        upgrade = b""
        rare = self._rare
        if rare is not None:
            has_body, expect_continue, upgrade = self._framing_headers(rare, http10)
            if parser.should_upgrade():
                if b"transfer-encoding" in rare:
                    self._refuse(400, "a chunked body on a request with Upgrade is not supported")
                self._upgrade_length = int(rare.get(b"content-length", b"0"))
                # RFC 9110 section 7.8: Upgrade in an HTTP/1.0 request is ignored; and a
                # request that carries a body is no WebSocket handshake (RFC 6455 4.1).
                switch = not (has_body or http10) and _names_switchable(upgrade)
        # RFC 9112 section 2.3: the protocol name is "HTTP" (llhttp also takes RTSP and ICE).
        region = self._data if not self._since_idle else self._since_idle + self._data
        if region.find(target + b" HTTP/") < 0 and not _says_http(region, target):
            self._refuse(400, "the request line does not name the HTTP protocol")
        request = Request(
            method,
            target,
            path,
            query,
            version,
            headers,
            bool(parser.should_keep_alive()),
            expect_continue,
            has_body,
            upgrade,
        )
        if switch:
            self.upgrade_request = request
        self._events.append(request)
        self._requests.append(request)
        self.head_in_progress = False
        self._raw = 0
        self._headers = []  # trailers, if any, land here

    def _other_form(
        self, method: str, target: bytes, headers: Headers
    ) -> tuple[bytes, bytes, Headers]:
        if method == "CONNECT":
            # RFC 9110 section 9.3.6: CONNECT asks for a tunnel; we are no proxy.
            self._refuse(501, "CONNECT is not implemented")
        if b"#" in target:
            self._refuse(400, "request target has a fragment")  # RFC 9112 section 3.2
        if target == b"*":
            # RFC 9112 section 3.2.4: asterisk-form is only for a server-wide OPTIONS.
            if method != "OPTIONS":
                self._refuse(400, "asterisk-form target is only for OPTIONS")
            return b"*", b"", headers
        # RFC 9112 section 3.2.2: an origin server takes the path from an absolute-form
        # target and the host from its authority, ignoring the Host header's value.
        scheme, sep, rest = target.partition(b"://")
        if not sep or scheme.lower() not in (b"http", b"https"):
            self._refuse(400, "request target is not origin-form or an http(s) URI")
        cut = len(rest)
        for stop in (b"/", b"?"):
            found = rest.find(stop)
            if 0 <= found < cut:
                cut = found
        authority, rest = rest[:cut], rest[cut:]
        # RFC 9110 section 4.2.1 (no empty host) and 4.2.4 (userinfo is an error).
        if not authority or b"@" in authority or HOST.fullmatch(authority) is None:
            self._refuse(400, "invalid authority in absolute-form target")
        path, _, query = rest.partition(b"?")
        headers = [(n, v) for n, v in headers if n != b"host"]
        headers.append((b"host", authority))
        return path or b"/", query, headers

    def _framing_headers(self, rare: dict[bytes, bytes], http10: bool) -> tuple[bool, bool, bytes]:
        """(has a body, expects 100-continue, Upgrade value) from the rarer headers."""
        chunked = False
        te = rare.get(b"transfer-encoding")
        if te is not None:
            # RFC 9112 section 6.1: HTTP/1.0 has no Transfer-Encoding; its framing is faulty.
            if http10:
                self._refuse(400, "Transfer-Encoding in an HTTP/1.0 request")
            codings = [c.strip().lower() for c in te.split(b",")]
            # RFC 9112 section 6.3 (4): chunked must be the final coding, and is applied
            # once (section 7); otherwise the body length cannot be known: 400 and close.
            if codings[-1] != b"chunked" or codings.count(b"chunked") != 1:
                self._refuse(400, "Transfer-Encoding must end with a single chunked")
            if len(codings) > 1:
                # RFC 9112 section 6.1: a transfer coding we do not understand is 501.
                self._refuse(501, "transfer codings other than chunked are not implemented")
            chunked = True
        length = 0
        cl = rare.get(b"content-length")
        if cl is not None:
            length = int(cl)  # llhttp checked it is 1*DIGIT, and that there is only one
            if self._max_body and length > self._max_body:
                self._refuse(413, f"body of {length} bytes is over the {self._max_body}-byte limit")
        has_body = chunked or length > 0
        expect_continue = False
        expect = rare.get(b"expect")
        if expect is not None:
            # RFC 9110 section 10.1.1: only 100-continue is defined; ignored in HTTP/1.0.
            if expect.lower() != b"100-continue":
                self._refuse(417, "only the 100-continue expectation is supported")
            expect_continue = has_body and not http10
        return has_body, expect_continue, rare.get(b"upgrade", b"")

    def on_body(self, body: bytes) -> None:
        self._raw = 0
        self._body_bytes += len(body)
        if self._max_body and self._body_bytes > self._max_body:
            self._refuse(413, f"body over the {self._max_body}-byte limit")
        self._events.append(Data(body))

    def on_message_complete(self) -> None:
        self._events.append(END_OF_MESSAGE)
        self._idle = True
        self._raw = 0

    # -- sending -------------------------------------------------------------------------

    @property
    def receiving(self) -> bool:
        """Whether more requests may still arrive on this connection."""
        return self._state is _Receive.OPEN or self._state is _Receive.SNIFF_METHOD

    @property
    def pending_responses(self) -> int:
        """Requests received and not yet answered to the end."""
        return len(self._requests)

    def send(self, event: Response | InformationalResponse | Data | EndOfMessage) -> bytes:
        """The bytes for one outgoing event."""
        if isinstance(event, Response):
            return self.send_response(event.status, event.headers)
        if isinstance(event, Data):
            return self.send_data(event.data)
        if isinstance(event, EndOfMessage):
            return self.send_end()
        if isinstance(event, InformationalResponse):
            return self.send_informational(event.status, event.headers)
        raise LocalProtocolError(f"cannot send {event!r}")

    def _request(self) -> Request:
        if not self._requests:
            raise LocalProtocolError("no request is waiting for a response")
        return self._requests[0]

    def send_informational(self, status: int, headers: Headers | None = None) -> bytes:
        request = self._request()
        if self._started:
            raise LocalProtocolError("a 1xx response cannot follow the final response")
        if not 100 <= status < 200 or status == 101:
            raise LocalProtocolError(f"{status} is not an informational status we can send")
        if request.http_version == "1.0":
            return b""  # RFC 9110 section 15.2: no 1xx to an HTTP/1.0 client
        if status == 100 and not headers:
            return _CONTINUE
        lines = [status_line(status)]
        for name, value in headers or ():
            if (name, value) not in _FIELDS:
                _check_field(name, value)
            lines.append(name + b": " + value + b"\r\n")
        lines.append(b"\r\n")
        return b"".join(lines)

    def send_response(
        self, status: int, headers: Iterable[tuple[bytes, bytes]], body: bytes | None = None
    ) -> bytes:
        """The head of the final response. With `body`, the whole response: the body is
        complete, so it is framed with Content-Length when the app gave none."""
        try:
            request = self._requests[0]
        except IndexError:
            raise LocalProtocolError("no request is waiting for a response") from None
        if self._started:
            raise LocalProtocolError("the response was already started")
        line = _STATUS_LINES.get(status)
        if line is None:
            if type(status) is not int or not 200 <= status <= 999:
                raise LocalProtocolError(f"final status must be 200-999, got {status!r}")
            line = status_line(status)
        self._started = True
        http10 = request.http_version == "1.0"
        keep_alive = request.keep_alive and not self._close_after
        self._close_after = False
        length: int | None = None
        lines = [line]
        add = lines.append
        extend = lines.extend
        for name, value in headers:
            kind = _FIELDS.get((name, value))
            if kind is None:
                kind = _check_field(name, value)
            if kind == _PLAIN:
                extend((name, b": ", value, b"\r\n"))
            elif kind >= 0:  # Content-Length, its value
                if length is not None:
                    raise LocalProtocolError("more than one content-length")
                length = kind
                if status != 204:  # RFC 9110 section 8.6: never in a 204
                    extend((name, b": ", value, b"\r\n"))
            elif kind == _CONNECTION_CLOSE:
                keep_alive = False  # re-added below, to match our decision
            # else Connection without close, or Transfer-Encoding: framing is ours to decide
            # (RFC 9112 section 6.1), and a Connection header is re-added below.
        if self._server_line:
            add(self._server_line)
        if self._add_date:
            add(_date_line if time.time() < _date_expires else _date_header())
        if request.method == "HEAD" or status in _NO_BODY_STATUS:
            # RFC 9110 section 6.4.1: no content, whatever the headers say.
            self._framing = _Framing.NONE
            if body is not None and length is None and status not in _NO_BODY_STATUS:
                add(b"content-length: %d\r\n" % len(body))
            body = None
        elif length is not None:
            self._framing = _Framing.LENGTH
            if body is not None and len(body) > length:
                raise LocalProtocolError(f"{len(body)} body bytes for a Content-Length of {length}")
            self._remaining = length - len(body) if body else length
        elif body is not None:
            self._framing = _Framing.LENGTH
            self._remaining = 0
            add(b"content-length: %d\r\n" % len(body))
        elif not http10:
            self._framing = _Framing.CHUNKED
            add(b"transfer-encoding: chunked\r\n")
        else:
            # RFC 9112 section 6.3 (8): an HTTP/1.0 client reads to the close.
            self._framing = _Framing.CLOSE
            keep_alive = False
        self._keep_alive = keep_alive
        if not keep_alive:
            add(b"connection: close\r\n")
        elif http10:
            add(b"connection: keep-alive\r\n")  # RFC 9112 section 9.3 (HTTP/1.0 keep-alive)
        add(b"\r\n")
        if body:
            add(body)
        return b"".join(lines)

    def send_whole_response(
        self, status: int, headers: Iterable[tuple[bytes, bytes]], body: bytes
    ) -> bytes:
        """A complete response in one piece: `send_response` with the body, then `send_end`.
        Afterwards `response_keep_alive` and `last_keep_alive` tell how the connection goes on."""
        data = self.send_response(status, headers, body)
        if self._remaining and self._framing is _Framing.LENGTH:
            self._started = False
            raise LocalProtocolError(
                f"the body is {self._remaining} bytes short of the response's Content-Length"
            )
        # What send_end does, for the framing send_response chose with a whole body.
        self._requests.popleft()
        self._started = False
        keep_alive = self.response_keep_alive = self._keep_alive
        self.last_keep_alive = keep_alive and self._state is _Receive.OPEN
        return data

    def close_after_response(self) -> None:
        """Make the next response head say `connection: close` (and end keep-alive)."""
        self._close_after = True

    def send_data(self, data: bytes) -> bytes:
        """Body bytes of the current response, framed."""
        if not self._started:
            raise LocalProtocolError("body sent before the response head")
        framing = self._framing
        if framing is _Framing.LENGTH:
            if len(data) > self._remaining:
                raise LocalProtocolError(
                    f"{self._remaining} body bytes were left under Content-Length, got {len(data)}"
                )
            self._remaining -= len(data)
            return data
        if framing is _Framing.CHUNKED:
            if not data:
                return b""  # an empty chunk would end the body (RFC 9112 section 7.1)
            return b"%x\r\n%b\r\n" % (len(data), data)
        if framing is _Framing.CLOSE:
            return data
        return b""

    def send_end(self) -> bytes:
        """Finish the current response; then `last_keep_alive` says whether to go on."""
        if not self._started:
            raise LocalProtocolError("response ended before it started")
        self._requests.popleft()
        self._started = False
        # Whether the response let the connection live on (no `connection: close`), and
        # whether it may carry another request: not once the receive side has ended (EOF,
        # a BadRequest, or a request that said close).
        self.response_keep_alive = self._keep_alive
        self.last_keep_alive = self._keep_alive and self._state is _Receive.OPEN
        framing = self._framing
        if framing is _Framing.CHUNKED:
            return b"0\r\n\r\n"
        if framing is _Framing.LENGTH and self._remaining:
            # RFC 9112 section 6.3: the client would wait for bytes that never come;
            # closing is the only way to tell it the response is incomplete.
            self.last_keep_alive = self.response_keep_alive = False
            raise LocalProtocolError(
                f"response ended {self._remaining} bytes short of its Content-Length"
            )
        return b""

    def abandon(self) -> None:
        """Forget the current response (answered by `error_response`, or cut off)."""
        if self._requests:
            self._requests.popleft()
        self._started = False

    def error_response(self, status: int, reason: str) -> bytes:
        """An error answer for a BadRequest or a failure before the app answered."""
        return error_response(status, reason, server_header=self._server_line)

    # -- switching protocols (RFC 9110 section 7.8) ---------------------------------------

    @property
    def held_bytes(self) -> int:
        """Bytes received after a request that asked to switch, not yet handed over."""
        return len(self._held)

    def _upgrade_at_head(self) -> Request:
        request = self.upgrade_request
        if self._state is not _Receive.UPGRADE or request is None:
            raise LocalProtocolError("no request is waiting to switch protocols")
        if not self._requests or self._requests[0] is not request or self._started:
            # RFC 9112 section 9.3.2: the answers before it go out first.
            raise LocalProtocolError("the requests before the upgrade are not answered yet")
        return request

    def send_switching_protocols(self, headers: Iterable[tuple[bytes, bytes]]) -> bytes:
        """The 101 answer to the request that asked to switch (RFC 9110 section 15.2.2);
        `headers` are the new protocol's fields. After it, no more HTTP: the bytes that
        follow are the new protocol's (`take_upgrade_data`)."""
        self._upgrade_at_head()
        lines = [_SWITCHING_LINE]
        add = lines.append
        for name, value in headers:
            if (name, value) not in _FIELDS:
                _check_field(name, value)
            add(name + b": " + value + b"\r\n")
        if self._server_line:
            add(self._server_line)
        if self._add_date:
            add(_date_header())
        add(b"\r\n")
        head = b"".join(lines)
        self._requests.popleft()
        self._state = _Receive.SWITCHED
        return head

    def take_upgrade_data(self) -> bytes:
        """After the 101: the bytes received after the request, for the new protocol."""
        if self._state is not _Receive.SWITCHED:
            raise LocalProtocolError("no 101 (Switching Protocols) was sent")
        held, self._held = self._held, b""
        return held

    def refuse_upgrade(self, status: int, reason: str, headers: Headers | None = None) -> bytes:
        """A complete error answer to the request that asked to switch (400, 403, 426, 500,
        503...); the connection closes after it, so the held bytes are never parsed."""
        self._upgrade_at_head()
        extra = []
        connection = b"close"
        for name, value in headers or ():
            _check_field(name, value)
            if name.lower() == b"connection":
                # RFC 9110 section 7.8: a 426 names `upgrade` in Connection; we also close.
                connection = value + b", close"
            else:
                extra.append(name + b": " + value + b"\r\n")
        self.abandon()
        return error_response(
            status,
            reason,
            server_header=self._server_line,
            extra_headers=b"".join(extra),
            connection=connection,
        )

    def resume_after_upgrade(self) -> list[Event]:
        """Do not switch: the request is answered as a plain one (RFC 9110 section 7.8 lets
        a server ignore Upgrade), and the held bytes are parsed as the requests after it.
        Returns their events."""
        if self._state is not _Receive.UPGRADE:
            raise LocalProtocolError("no request is waiting to switch protocols")
        self._state = _Receive.OPEN
        self.upgrade_request = None
        held, self._held = self._held, b""
        events = self.receive_data(held) if held else []
        if self._held_eof:
            # ConnectionClosed came out already, when the EOF arrived.
            events += [e for e in self.receive_data(b"") if type(e) is not ConnectionClosed]
        return events


# Header fields already checked, and what they mean for framing: apps send the same few
# fields again and again, so most responses pass with one dict lookup per field. Bounded,
# and it only ever holds valid fields.
_FIELDS: dict[tuple[bytes, bytes], int] = {}
_FIELDS_MAX: Final = 4096
_PLAIN: Final = -1  # an ordinary field, sent as it is
_CONNECTION_CLOSE: Final = -2  # Connection: close
_DROPPED: Final = -3  # Transfer-Encoding, or Connection without close: ours to decide
# Any other value is a Content-Length, and the value is its number.


def _check_field(name: bytes, value: bytes) -> int:
    """Check a response field and say what it is (see _FIELDS). A field must have a token
    for a name (RFC 9110 section 5.1) and no CR, LF or NUL in its value: those would add
    lines of the sender's choosing (response splitting, RFC 9110 section 5.5)."""
    if type(name) is not bytes or type(value) is not bytes:
        raise TypeError(f"header names and values must be bytes, got {(name, value)!r}")
    if TOKEN.fullmatch(name) is None:
        raise LocalProtocolError(f"header name {name!r} is not a token (RFC 9110 section 5.1)")
    if FIELD_VALUE_FORBIDDEN.search(value) is not None:
        raise LocalProtocolError(
            f"header {name!r} has CR, LF or NUL in its value (refused: response splitting, "
            "RFC 9110 section 5.5)"
        )
    lname = name.lower()
    kind = _PLAIN
    if lname == b"content-length":
        if not value.isdigit():
            raise LocalProtocolError(f"invalid content-length {value!r}")
        kind = int(value)
    elif lname == b"connection":
        kind = _CONNECTION_CLOSE if b"close" in value.lower() else _DROPPED
    elif lname == b"transfer-encoding":
        kind = _DROPPED
    if len(_FIELDS) < _FIELDS_MAX:
        _FIELDS[(name, value)] = kind
    return kind
