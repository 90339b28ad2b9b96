"""The request head, a layer of `HTTP11Connection`: llhttp's callbacks, up to a `Request`.

llhttp enforces most of RFC 9112's message grammar (bare CR or LF, obs-fold, whitespace
before a colon, control bytes, Content-Length with Transfer-Encoding, duplicate or malformed
Content-Length). The checks it leaves to its user are made here as the head comes in, each
citing its RFC section: the size limits, one valid Host (RFC 9112 section 3.2), the
request-target form and fragments (section 3.2), the protocol name and version (section 2.3:
llhttp also takes RTSP and ICE), transfer codings other than chunked (section 6.1),
expectations (RFC 9110 section 10.1.1), and whether the request asks to switch to WebSocket
(RFC 9110 section 7.8); trailer fields are dropped, but those that would act on framing or
the connection are refused (RFC 9110 section 6.5.1). A check that fails raises `_Reject`
out of the callback (see _refuse.py).

These callbacks are most of the hot path: a GET without a body calls on_message_begin,
on_url, on_header and on_headers_complete, then only on_message_complete. So the common case
is read inline, off the bytes it is in (the version right after the target, when the message
began the feed), and the rarer fields (Content-Length, Transfer-Encoding, Expect, Upgrade)
are gathered apart (`_rare`) and looked at only when a request has them.
"""

from __future__ import annotations

from typing import Final

from rootserve.protocol._chunked import ChunkedSide
from rootserve.protocol.events import Headers, Request
from rootserve.protocol.rules import HOST

__all__ = ["HeadSide"]

_OWS: Final = b" \t"
_HEADER_OVERHEAD: Final = 4  # ": " and CRLF around each field line
_SPECIAL: Final = frozenset(
    {b"host", b"content-length", b"transfer-encoding", b"expect", b"upgrade", b"connection"}
)
# RFC 9110 section 6.5.1: a trailer field is never merged into the header section, so
# trailers are read and dropped. These would still act if they came there: llhttp refuses
# the two framing fields itself, and a Connection there would make it stop reading the
# connection after this message while the request said keep-alive. So a trailer section
# that holds one is refused (400), whatever its value.
_TRAILER_REFUSED: Final = frozenset({b"content-length", b"transfer-encoding", b"connection"})
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
_SWITCHABLE: Final = b"websocket"  # RFC 6455 section 4.1: the Upgrade token of WebSocket


def _says_http(region: bytes, target: bytes) -> bool:
    # The slow path of the protocol-name check: more than one space before the version.
    at = region.find(target)
    if at < 0:
        return True  # the head began before what we kept: nothing to check against
    at += len(target)
    while region[at : at + 1] == b" ":
        at += 1
    return region.startswith(b"HTTP/", at)


def _list_members(value: bytes) -> list[bytes]:
    # RFC 9110 section 5.6.1: a list's members, lower-cased, without the OWS around them;
    # a recipient ignores empty members (`a, ,b`).
    return [m for m in (p.strip(_OWS).lower() for p in value.split(b",")) if m]


def _names_switchable(upgrade: bytes) -> bool:
    # RFC 9110 section 7.8: Upgrade is a list of protocols, compared case-insensitively.
    return _SWITCHABLE in _list_members(upgrade)


class HeadSide(ChunkedSide):
    """The request-head layer of HTTP11Connection, over the chunked-body layer."""

    _request_class: type[Request]
    _max_header_bytes: int
    _max_header_count: int
    _idle: bool
    _raw: int
    _fresh: bool
    _upgrade_length: int
    head_in_progress: bool
    _host_checked: bytes
    _url: bytes
    _headers: Headers
    _header_bytes: int
    _host: bytes | None
    _rare: dict[bytes, bytes] | None

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
        # counted against the limit, checked against _TRAILER_REFUSED, and collected in a
        # list nobody reads (never in the next request's Host or framing fields).
        size = self._header_bytes + len(name) + len(value) + _HEADER_OVERHEAD
        self._header_bytes = size
        if size > self._max_header_bytes:
            self._refuse(431, f"header fields larger than {self._max_header_bytes} bytes")
        name = name.lower()
        if value and value[-1] in _OWS:
            value = value.rstrip(_OWS)  # RFC 9110 section 5.5: OWS is not part of the value
        if name in _SPECIAL:
            if not self.head_in_progress:
                # A trailer field (see _TRAILER_REFUSED): never merged into the head.
                if name in _TRAILER_REFUSED:
                    self._refuse(400, f"{name.decode()} in the trailer section")
            elif name == b"host":
                if self._host is not None:
                    # RFC 9112 section 3.2: more than one Host line is a 400.
                    self._refuse(400, "more than one Host header")
                self._host = value
            elif name != b"connection":  # llhttp reads Connection (should_keep_alive)
                rare = self._rare
                if rare is None:
                    rare = self._rare = {}
                # Several lines of one field form one list (RFC 9110 section 5.3); the
                # header list keeps each line as it came.
                rare[name] = rare[name] + b"," + value if name in rare else value
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        parser = self._parser
        method_bytes = parser.get_method()
        # GET by one comparison first: a dict lookup hashes the fresh bytes each time (about
        # 400 instructions in the compiled build, against 30; callgrind).
        if method_bytes == b"GET":
            method = "GET"
        else:
            method = _METHODS.get(method_bytes) or self._other_method(method_bytes)
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
                end = data[at : at + 9]
                version = "1.1" if end == b" HTTP/1.1" else _LINE_ENDS.get(end)  # (see GET)
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
        request = self._request_class(
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

    def _other_method(self, method: bytes) -> str:
        if method == b"CONNECT":
            # RFC 9110 section 9.3.6: CONNECT asks for a tunnel, whatever its target says
            # (section 3.2.3 of RFC 9112 gives it authority-form only); we are no proxy.
            self._refuse(501, "CONNECT is not implemented")
        return method.decode("ascii")

    def _other_form(
        self, method: str, target: bytes, headers: Headers
    ) -> tuple[bytes, bytes, Headers]:
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
            # RFC 9110 sections 5.6.1 and 5.6.3: OWS (SP or HTAB) around each list member
            # is no part of it, and empty members are ignored. llhttp does not read a
            # trailing HTAB so (see _take_over), and refuses an empty member after chunked
            # before we see the head (the corpus's te_empty_members_after, an xfail).
            codings = _list_members(te)
            # RFC 9112 section 6.3 (4): chunked must be the final coding, and is applied
            # once (section 7); otherwise the body length cannot be known: 400 and close.
            if not codings or codings[-1] != b"chunked" or codings.count(b"chunked") != 1:
                self._refuse(400, "Transfer-Encoding must end with a single chunked")
            if len(codings) > 1:
                # RFC 9112 section 6.1: a transfer coding we do not understand is 501.
                self._refuse(501, "transfer codings other than chunked are not implemented")
            chunked = True
            self._begin_chunked()
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
            # RFC 9110 section 10.1.1: only 100-continue is defined. Expect is a list
            # (section 5.6.1): it may repeat, empty members are ignored, and an empty one
            # expects nothing. Ignored in HTTP/1.0.
            expectations = _list_members(expect)
            if any(e != b"100-continue" for e in expectations):
                self._refuse(417, "only the 100-continue expectation is supported")
            expect_continue = has_body and bool(expectations) and not http10
        return has_body, expect_continue, rare.get(b"upgrade", b"")
