"""Response trailers: the fields an app may send after the body, checked for HTTP/1.1 and
HTTP/2 alike, and framed for HTTP/1.1.

An app's trailer fields are checked as its header fields are (`check_field`: a token for a
name, no CR, LF or NUL in a value), and those that cannot be trailers are refused
(`check_trailers`). HTTP/1.1 carries them only in the trailer section of a chunked body,
after the last chunk (`end_with_trailers`, RFC 9112 section 7.1.2); HTTP/2 sends them as a
HEADERS frame (_h2_send.py). Whether a request's answer may carry them at all is the
exchange interface's rule (protocol/exchange.py `accepts_trailers`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from rootserve.protocol._send import SendSide, check_field
from rootserve.protocol._states import CHUNKED
from rootserve.protocol.events import Headers
from rootserve.protocol.rules import LocalProtocolError

__all__ = ["TRAILER_REFUSED", "check_trailers", "end_with_trailers"]


# RFC 9110 section 6.5.1: a field whose meaning is needed before the content cannot come
# after it: framing, routing, the connection, request modifiers, authentication, response
# controls and the content's format. An app that sends one as a trailer is refused (a
# recipient would ignore it, or worse, act on it late).
TRAILER_REFUSED: Final = frozenset(
    {
        b"content-length", b"transfer-encoding", b"trailer", b"te",
        b"connection", b"keep-alive", b"proxy-connection", b"upgrade",
        b"host", b"expect", b"max-forwards", b"range", b"if-match", b"if-none-match",
        b"if-modified-since", b"if-unmodified-since", b"if-range",
        b"authorization", b"proxy-authorization", b"www-authenticate", b"proxy-authenticate",
        b"set-cookie", b"cookie",
        b"cache-control", b"expires", b"age", b"pragma", b"vary", b"date", b"location",
        b"retry-after", b"content-type", b"content-encoding", b"content-range",
    }
)  # fmt: skip


def check_trailers(headers: Iterable[tuple[bytes, bytes]]) -> Headers:
    """The app's trailer fields, each checked as a header field is (`check_field`) and
    refused if it cannot be a trailer (TRAILER_REFUSED). Raises LocalProtocolError or
    TypeError naming the field."""
    fields: Headers = []
    for name, value in headers:
        check_field(name, value)
        if name.lower() in TRAILER_REFUSED:
            raise LocalProtocolError(
                f"{name.decode('ascii')!r} cannot be a trailer field (RFC 9110 section 6.5.1)"
            )
        fields.append((name, value))
    return fields


def end_with_trailers(side: SendSide, fields: Headers) -> bytes:
    """`side.send_end()`, with `fields` (checked: `check_trailers`) in the trailer section
    of a chunked response (RFC 9112 section 7.1.2); a response framed otherwise has no place
    for them, and they are dropped."""
    chunked = side._framing is CHUNKED  # (send_end leaves the framing as it was)
    end = side.send_end()
    if not (chunked and fields):
        return end
    lines = [b"0\r\n"]
    for name, value in fields:
        lines += (name, b": ", value, b"\r\n")
    lines.append(b"\r\n")
    return b"".join(lines)
