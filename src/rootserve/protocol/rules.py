"""Grammar, limits and status phrases shared by the HTTP/1.1 protocol, each with its source."""

from __future__ import annotations

import re
from dataclasses import dataclass
from http import HTTPStatus
from typing import Final

__all__ = [
    "HOST",
    "TOKEN",
    "Limits",
    "LocalProtocolError",
    "status_line",
]

KIB: Final = 1024
MIB: Final = 1024 * KIB

# RFC 9110 section 5.6.2: token = 1*tchar; tchar is VCHAR minus the delimiters.
TOKEN: Final = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")

# RFC 9110 section 5.5: a field value is VCHAR, obs-text, SP and HTAB; CR, LF and NUL are
# what turn a header into two (response splitting), so those are refused in what we send.
FIELD_VALUE_FORBIDDEN: Final = re.compile(rb"[\x00\r\n]")

# RFC 9110 section 7.2: Host = uri-host [ ":" port ]; uri-host is RFC 3986 section 3.2.2's
# IP-literal / IPv4address / reg-name (IPv4 is a reg-name syntactically). No userinfo.
_UNRESERVED_SUBDELIMS: Final = rb"A-Za-z0-9\-._~!$&'()*+,;="
HOST: Final = re.compile(
    rb"(?:\[(?:[0-9A-Fa-f:.]+|v[0-9A-Fa-f]+\.[" + _UNRESERVED_SUBDELIMS + rb":]+)\]"
    rb"|(?:[" + _UNRESERVED_SUBDELIMS + rb"]|%[0-9A-Fa-f]{2})*)"
    rb"(?::[0-9]*)?"
)


class LocalProtocolError(Exception):
    """What we were asked to send would break HTTP/1.1; the message names the rule."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on what one request may use. Sizes in bytes; 0 means no limit for the body."""

    max_request_line_bytes: int = 8 * KIB  # 414 beyond (RFC 9112 section 3)
    max_header_bytes: int = 16 * KIB  # 431 beyond (RFC 6585 section 5)
    max_header_count: int = 100  # 431 beyond
    max_body_bytes: int = 100 * MIB  # 413 beyond (RFC 9110 section 15.5.14)


_PHRASES: Final = {s.value: s.phrase.encode("ascii") for s in HTTPStatus}
_STATUS_LINES: dict[int, bytes] = {}


def status_line(status: int) -> bytes:
    """`HTTP/1.1 200 OK\\r\\n`. We always answer as HTTP/1.1 (RFC 9110 section 6.2)."""
    line = _STATUS_LINES.get(status)
    if line is None:
        if not 100 <= status <= 999:
            raise LocalProtocolError(f"status {status!r} is not a 3-digit code (RFC 9110 15)")
        line = b"HTTP/1.1 %d %s\r\n" % (status, _PHRASES.get(status, b""))
        _STATUS_LINES[status] = line
    return line
