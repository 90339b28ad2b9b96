"""The send side of the sans-IO HTTP/1.1 connection: responses framed into bytes.

It frames each response for the request at the head of the pipeline: it checks the app's
header fields (a token for a name, no CR, LF or NUL in a value: response splitting), decides
Content-Length, chunked or close-delimited framing (RFC 9112 section 6), drops the body of
HEAD, 1xx, 204 and 304 answers (RFC 9110 section 6.4.1), adds `Date` and `Server`, and
decides keep-alive. `SendSide` is a part of `HTTP11Connection`, which holds the state.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from email.utils import formatdate
from time import time as _now
from typing import Any, Final

from rootserve.protocol._states import (
    CHUNKED,
    CLOSE_DELIMITED,
    LENGTH,
    NO_BODY,
    RECEIVE_OPEN,
    Framing,
    Receive,
)
from rootserve.protocol.events import (
    Data,
    EndOfMessage,
    Headers,
    InformationalResponse,
    Request,
    Response,
)
from rootserve.protocol.rules import (
    _STATUS_LINES,
    FIELD_VALUE_FORBIDDEN,
    NO_BODY_STATUS,
    TOKEN,
    LocalProtocolError,
    status_line,
)

__all__ = ["SendSide", "check_field", "date_header", "date_value", "error_body", "error_response"]
_CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"


# RFC 9110 section 6.6.1: a server with a clock sends Date; one formatting per second.
_date_expires = 0.0
_date_value = b""
_date_line = b""


def date_header() -> bytes:
    """The `date: ...` field line, CRLF included (HTTP/1.1)."""
    global _date_expires, _date_value, _date_line
    now = _now()
    if now >= _date_expires:
        second = int(now)
        _date_expires = second + 1.0
        _date_value = formatdate(second, usegmt=True).encode("ascii")
        _date_line = b"date: " + _date_value + b"\r\n"
    return _date_line


def date_value() -> bytes:
    """The Date field's value alone (HTTP/2 sends fields, not lines)."""
    date_header()
    return _date_value


def error_body(status: int, reason: str) -> bytes:
    """The text of the server's own small error answers, `404 Not Found: why`, whatever
    the protocol that carries it."""
    text = f"{status_line(status)[9:].decode('ascii').strip()}: {reason}\n"
    return text.encode("ascii", "replace")


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
    body = error_body(status, reason)
    return b"".join(
        [
            status_line(status),
            b"content-type: text/plain; charset=utf-8\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: " + connection + b"\r\n",
            extra_headers,
            server_header,
            date_header(),
            b"\r\n",
            body,
        ]
    )


# Header fields already checked: apps send the same few fields again and again, so most
# responses pass with one dict lookup per field. An ordinary field is kept in _LINES as the
# line it becomes (looked up by the app's own (name, value) tuple); one that matters for
# framing is kept in _FIELDS with what it means. Bounded in entries and in the size of
# each (a long value, like a session cookie, is rarely sent twice); only valid fields.
_LINES: dict[tuple[bytes, bytes], bytes] = {}
_FIELDS: dict[tuple[bytes, bytes], int] = {}
_FIELDS_MAX: Final = 4096  # entries of the two together
_FIELD_MAX_BYTES: Final = 256  # name and value; longer fields are checked every time
_PLAIN: Final = -1  # an ordinary field, sent as it is
_CONNECTION_CLOSE: Final = -2  # Connection: close
_DROPPED: Final = -3  # Transfer-Encoding, or Connection without close: ours to decide
# Any other value is a Content-Length, and the value is its number.


def check_field(name: bytes, value: bytes) -> int:
    """Check a response field and say what it is (see _LINES and _FIELDS). A field must
    have a token for a name (RFC 9110 section 5.1) and no CR, LF or NUL in its value: those
    would add lines of the sender's choosing (response splitting, RFC 9110 section 5.5)."""
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
    if len(_LINES) + len(_FIELDS) < _FIELDS_MAX and len(name) + len(value) <= _FIELD_MAX_BYTES:
        if kind == _PLAIN:
            _LINES[(name, value)] = name + b": " + value + b"\r\n"
        else:
            _FIELDS[(name, value)] = kind
    return kind


class SendSide:
    """The send layer, the first of HTTP11Connection's chain (see http11.py), whose
    __init__ sets these attributes up."""

    _state: Receive
    _server_line: bytes
    _add_date: bool
    _requests: deque[Request]
    _started: bool
    _framing: Framing
    _remaining: int
    _keep_alive: bool
    _close_after: bool
    response_keep_alive: bool

    @property
    def last_keep_alive(self) -> bool:
        """After a response: whether the connection may carry another request. Not once
        the receive side has ended (EOF, a BadRequest, or a request that said close), nor
        when the response said `connection: close`."""
        return self.response_keep_alive and self._state is RECEIVE_OPEN

    @property
    def pending_responses(self) -> int:
        """Requests received and not yet answered to the end."""
        return len(self._requests)

    def send(self, event: object) -> bytes:
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
        fields: Any = headers or ()  # as in send_response: tuples or [name, value] lists
        for name, value in fields:
            if (name, value) not in _LINES:
                check_field(name, value)
            lines.append(name + b": " + value + b"\r\n")
        lines.append(b"\r\n")
        return b"".join(lines)

    def send_response(
        self,
        status: int,
        headers: Iterable[tuple[bytes, bytes]],
        body: bytes | None = None,
        apart: bool = False,
    ) -> bytes:
        """The head of the final response. With `body`, the whole response: the body is
        complete, so it is framed with Content-Length when the app gave none; `apart`: the
        head only, framed for that body, which the caller writes after it."""
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
        lines = [line]
        length = -1
        close = self._close_after
        fields: Any = headers  # tuples or ASGI [name, value] lists (compiled code checks)
        for field in fields:
            try:
                rendered = _LINES.get(field)
            except TypeError:  # a [name, value] list: unhashable
                rendered = None
            if rendered is not None:
                lines.append(rendered)
                continue
            name, value = field
            kind = _FIELDS.get((name, value))
            if kind is None:
                kind = check_field(name, value)
            if kind == _PLAIN:
                lines += (name, b": ", value, b"\r\n")
            elif kind >= 0:  # Content-Length, its value
                if length >= 0:
                    raise LocalProtocolError("more than one content-length")
                length = kind
                if status != 204:  # RFC 9110 section 8.6: never in a 204
                    lines += (name, b": ", value, b"\r\n")
            elif kind == _CONNECTION_CLOSE:
                close = True  # re-added below, to match our decision
            # else Connection without close, or Transfer-Encoding: framing is ours to decide
            # (RFC 9112 section 6.1), and a Connection header is re-added below.
        if self._server_line:
            lines.append(self._server_line)
        if self._add_date:
            lines.append(_date_line if _now() < _date_expires else date_header())
        if status in NO_BODY_STATUS or request.method == "HEAD":
            # RFC 9110 section 6.4.1: no content, whatever the headers say.
            self._framing = NO_BODY
            if body is not None and length < 0 and status not in NO_BODY_STATUS:
                lines.append(b"content-length: %d\r\n" % len(body))
            body = None
        elif length >= 0:
            self._framing = LENGTH
            if body is None:
                self._remaining = length
            else:
                remaining = self._remaining = length - len(body)
                if remaining < 0:
                    raise LocalProtocolError(
                        f"{len(body)} body bytes for a Content-Length of {length}"
                    )
        elif body is not None:
            self._framing = LENGTH
            self._remaining = 0
            lines.append(b"content-length: %d\r\n" % len(body))
        elif request.http_version == "1.1":
            self._framing = CHUNKED
            lines.append(b"transfer-encoding: chunked\r\n")
        else:
            # RFC 9112 section 6.3 (8): an HTTP/1.0 client reads to the close.
            self._framing = CLOSE_DELIMITED
            close = True
        self._started = True
        self._close_after = False
        if close or not request.keep_alive:
            self._keep_alive = False
            lines.append(b"connection: close\r\n\r\n")
        else:
            self._keep_alive = True
            if request.http_version == "1.0":
                # RFC 9112 section 9.3 (HTTP/1.0 keep-alive)
                lines.append(b"connection: keep-alive\r\n\r\n")
            else:
                lines.append(b"\r\n")
        if body and not apart:
            lines.append(body)
        return b"".join(lines)

    def send_whole_response(
        self, status: int, headers: Iterable[tuple[bytes, bytes]], body: bytes, apart: bool = False
    ) -> bytes:
        """A complete response in one piece: `send_response` with the body, then `send_end`.
        Afterwards `response_keep_alive` and `last_keep_alive` tell how the connection goes on.
        `apart`: the head only (see `send_whole_response_apart`)."""
        data = self.send_response(status, headers, body, apart)
        if self._remaining and self._framing is LENGTH:
            self._started = False
            raise LocalProtocolError(
                f"the body is {self._remaining} bytes short of the response's Content-Length"
            )
        # What send_end does, for the framing send_response chose with a whole body.
        self._requests.popleft()
        self._started = False
        self.response_keep_alive = self._keep_alive
        return data

    def send_whole_response_apart(
        self, status: int, headers: Iterable[tuple[bytes, bytes]], body: bytes
    ) -> tuple[bytes, bytes]:
        """`send_whole_response` as two buffers, the head and the body to write after it
        (empty for a HEAD request, 204 or 304): for a large body, which a writev sends
        as it is rather than copied behind the head."""
        head = self.send_whole_response(status, headers, body, True)
        return head, (b"" if self._framing is NO_BODY else body)

    def close_after_response(self) -> None:
        """Make the next response head say `connection: close` (and end keep-alive)."""
        self._close_after = True

    def send_data(self, data: bytes) -> bytes:
        """Body bytes of the current response, framed."""
        if not self._started:
            raise LocalProtocolError("body sent before the response head")
        framing = self._framing
        if framing is LENGTH:
            if len(data) > self._remaining:
                raise LocalProtocolError(
                    f"{self._remaining} body bytes were left under Content-Length, got {len(data)}"
                )
            self._remaining -= len(data)
            return data
        if framing is CHUNKED:
            if not data:
                return b""  # an empty chunk would end the body (RFC 9112 section 7.1)
            return b"%x\r\n%b\r\n" % (len(data), data)
        if framing is CLOSE_DELIMITED:
            return data
        return b""

    def send_data_sent_elsewhere(self, size: int) -> None:
        """Account for `size` body bytes the server sent itself (sendfile): Content-Length
        framing only, since nothing can be added around them."""
        if self._framing is not LENGTH or size > self._remaining:
            raise LocalProtocolError("bytes sent outside the framing do not fit it")
        self._remaining -= size

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
        framing = self._framing
        if framing is CHUNKED:
            return b"0\r\n\r\n"
        if framing is LENGTH and self._remaining:
            # RFC 9112 section 6.3: the client would wait for bytes that never come;
            # closing is the only way to tell it the response is incomplete.
            self.response_keep_alive = False
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
