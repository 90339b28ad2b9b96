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

The send side (`_send.py`, a part of the same object) frames each response for the request at
the head of the pipeline.

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

from collections import deque
from typing import Final, NoReturn

import httptools

from rootserve.protocol._send import SendSide, error_response
from rootserve.protocol._states import (
    NO_BODY,
    RECEIVE_CLOSED,
    RECEIVE_DONE,
    RECEIVE_ERROR,
    RECEIVE_OPEN,
    SNIFF_METHOD,
    SWITCHED,
    UPGRADE,
)
from rootserve.protocol._switch import SwitchSide
from rootserve.protocol.events import (
    END_OF_MESSAGE,
    BadRequest,
    ConnectionClosed,
    Data,
    Event,
    Headers,
    Request,
)
from rootserve.protocol.rules import (
    HOST,
    KIB,
    TOKEN,
    Limits,
    LocalProtocolError,
)

__all__ = ["HTTP11Connection", "error_response"]

_OWS: Final = b" \t"
_HEADER_OVERHEAD: Final = 4  # ": " and CRLF around each field line
_SPECIAL: Final = frozenset(
    {b"host", b"content-length", b"transfer-encoding", b"expect", b"upgrade"}
)
# The end of a request line that names HTTP/1.1 or 1.0 (RFC 9112 section 2.3), and the
# version it names.
_LINE_ENDS: Final = {b" HTTP/1.1": "1.1", b" HTTP/1.0": "1.0"}
# Bytes tested as integers: `35 in target` is a memchr, while `b"#" in target` first tries the
# bytes as an integer and builds (and drops) a TypeError, about 2,000 instructions.
_SP: Final = ord(" ")
_NUMBER_SIGN: Final = ord("#")
_METHODS: Final = {
    m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH")
}


class _Reject(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


_REPLAY_MAX_BYTES: Final = 16 * KIB
_SWITCHABLE: Final = b"websocket"  # RFC 6455 section 4.1: the Upgrade token of WebSocket


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


class HTTP11Connection(SendSide, SwitchSide):
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
        self._state = RECEIVE_OPEN
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
        self._fresh = False  # whether the message being parsed began the current feed
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
        self._framing = NO_BODY
        self._remaining = 0
        self._keep_alive = False
        self._close_after = False
        self.response_keep_alive = False

    # -- receiving ---------------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[Event]:
        """Events for `data`; b"" means the peer closed its sending side."""
        if self._state is not RECEIVE_OPEN:
            if self._state is UPGRADE:
                return self._hold(data)
            if self._state is SWITCHED:
                raise LocalProtocolError(
                    "the connection switched protocols (RFC 9110 section 7.8): its bytes are "
                    "not HTTP any more"
                )
            if self._state is SNIFF_METHOD and data:
                self._events = []
                return self._sniff_method(data)
            if self._state is RECEIVE_DONE and not data:
                self._state = RECEIVE_CLOSED
                return [ConnectionClosed()]
            return []
        if not data:
            self._state = RECEIVE_CLOSED
            return [ConnectionClosed()]
        events: list[Event] = []
        self._events = events
        self._data = data
        if self._body_left:
            data = self._data = self._upgrade_body(data)
            if not data:
                return events
        self._raw += len(data)
        # The parser is between messages: the next one starts this feed (see
        # on_headers_complete).
        self._fresh = self._idle
        parser = self._parser
        try:
            while True:
                try:
                    parser.feed_data(data)
                    break
                except httptools.HttpParserUpgrade as exc:
                    if self.upgrade_request is not None:
                        self._state = UPGRADE
                        self._held = data[exc.args[0] :]
                        break
                    self._fresh = False
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
            self._state = RECEIVE_DONE
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
        self._state = SNIFF_METHOD
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
        self._state = RECEIVE_ERROR
        self._events.append(BadRequest(status, reason))
        return self._events

    def _refuse(self, status: int, reason: str) -> NoReturn:
        self._reject = _Reject(status, reason)
        raise self._reject

    # httptools callbacks (called from inside feed_data)

    # The per-message fields start out empty: in __init__ for the first message, then reset
    # as soon as the message is done with them (the head's at its end, the body's and the
    # trailers' at the end of the message), so beginning a message sets only two.

    def on_message_begin(self) -> None:
        self.head_in_progress = True
        self._idle = False

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
        method_bytes = parser.get_method()
        method = _METHODS.get(method_bytes) or method_bytes.decode("ascii")
        target = self._url
        # RFC 9112 section 2.3: the protocol name is "HTTP" (llhttp also takes RTSP and ICE),
        # and the version is 1.0 or 1.1. When the message began this feed with no empty line
        # before it (data[0] is the method's first letter, not CR or LF; RFC 9112 section
        # 2.2) and one space after the method, the target starts right after that space and
        # the protocol after the target and one more space: both are read off `data` there
        # (integer tests and one slice; bytes.startswith with an offset parses its
        # arguments, which costs more). Otherwise the request line is searched for.
        version: str | None = None
        if self._fresh:
            self._fresh = False
            data = self._data
            space = len(method_bytes)
            if data[0] == method_bytes[0] and data[space + 1] != _SP:
                at = space + 1 + len(target)  # the space before the protocol
                version = _LINE_ENDS.get(data[at : at + 9])
        if version is None:
            version = self._version_elsewhere(target)
        http10 = version == "1.0"
        headers = self._headers
        if len(headers) > self._max_header_count:
            self._refuse(431, f"more than {self._max_header_count} header fields")
        if target[:1] == b"/":
            path, _, query = target.partition(b"?")
            # RFC 9112 section 3.2: the request-target never carries a fragment.
            if _NUMBER_SIGN in target:
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
        rare = self._rare
        has_body = expect_continue = switch = False
        upgrade = b""
        if rare is not None:
            self._rare = None
            has_body, expect_continue, upgrade = self._framing_headers(rare, http10)
            if parser.should_upgrade():
                if b"transfer-encoding" in rare:
                    self._refuse(400, "a chunked body on a request with Upgrade is not supported")
                self._upgrade_length = int(rare.get(b"content-length", b"0"))
                # RFC 9110 section 7.8: Upgrade in an HTTP/1.0 request is ignored; and a
                # request that carries a body is no WebSocket handshake (RFC 6455 4.1).
                switch = not (has_body or http10) and _names_switchable(upgrade)
        request = Request(
            method,
            target,
            path,
            query,
            version,
            headers,
            parser.should_keep_alive(),
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
        # Ready for the next message; trailers, if any, land in the fresh list.
        self._url = b""
        self._host = None
        self._headers = []

    def _version_elsewhere(self, target: bytes) -> str:
        """The protocol-name and version checks when the request line is not at the start
        of the current feed: a pipelined request, or a head that came in pieces."""
        version = self._parser.get_http_version()
        if version not in ("1.0", "1.1"):
            # RFC 9110 section 15.6.6; HTTP/0.9 has no headers to frame anything with.
            self._refuse(505, f"HTTP/{version} is not supported")
        region = self._data if not self._since_idle else self._since_idle + self._data
        if region.find(target + b" HTTP/") < 0 and not _says_http(region, target):
            self._refuse(400, "the request line does not name the HTTP protocol")
        return version

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
        self._header_bytes = 0
        if self._body_bytes:
            self._body_bytes = 0
        if self._headers:
            self._headers = []  # trailers were collected

    @property
    def receiving(self) -> bool:
        """Whether more requests may still arrive on this connection."""
        return self._state is RECEIVE_OPEN or self._state is SNIFF_METHOD
