"""Grammar, limits and status phrases shared by the HTTP/1.1 protocol, each with its source."""

from __future__ import annotations

import re
from dataclasses import dataclass
from http import HTTPStatus
from typing import Final

from rootserve.config import Config, default

__all__ = [
    "CHUNK_LINE",
    "HOST",
    "NO_BODY_STATUS",
    "REQUEST_LINE_START",
    "TCHAR",
    "TOKEN",
    "Limits",
    "LocalProtocolError",
    "phrase",
    "status_line",
]


# RFC 9110 section 5.6.2: token = 1*tchar; tchar is VCHAR minus the delimiters.
TCHAR: Final = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]"
TOKEN: Final = re.compile(TCHAR + rb"+")

# RFC 9110 section 5.6.4: quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE, where
# qdtext is HTAB, SP, VCHAR but DQUOTE and backslash, or obs-text; quoted-pair = "\" (HTAB /
# SP / VCHAR / obs-text).
_QUOTED_STRING: Final = rb'"(?:[\t !#-\[\]-~\x80-\xff]|\\[\t -~\x80-\xff])*"'

# RFC 9112 section 7.1: chunk-size [ chunk-ext ] CRLF, with chunk-size = 1*HEXDIG (group 1)
# and, section 7.1.1, chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] ),
# chunk-ext-name = token, chunk-ext-val = token / quoted-string: a name or a value is never
# empty (a quoted-string may be ""). BWS is left out: llhttp refuses whitespace there (a 400
# either way), and this must agree with what llhttp lets through.
_CHUNK_EXT: Final = rb";" + TCHAR + rb"+(?:=(?:" + TCHAR + rb"+|" + _QUOTED_STRING + rb"))?"
CHUNK_LINE: Final = re.compile(rb"([0-9A-Fa-f]+)(?:" + _CHUNK_EXT + rb")*\r\n")


def _nested(*parts: bytes) -> bytes:
    """`a(b(c)?)?` for parts a, b, c: matches every prefix of their sequence."""
    pattern = b""
    for part in reversed(parts):
        pattern = b"(?:" + part + pattern + b")?"
    return pattern


# RFC 9112 section 3: request-line = method SP request-target SP HTTP-version CRLF, with
# HTTP-version = "HTTP/" DIGIT "." DIGIT (section 2.3). This matches the longest start of a
# line that can still become one, so where the match stops the line stopped having that
# shape. As llhttp does for the methods it knows, SP may repeat (section 3 lets a recipient
# split the line on whitespace); the target is visible ASCII (section 3.2 has no more, and
# llhttp refuses more). Named groups tell which part the match ended in.
REQUEST_LINE_START: Final = re.compile(
    _nested(
        b"(?P<method>" + TCHAR + b"+)",
        b"(?P<sp1> +)",
        b"(?P<target>[!-~]+)",
        b"(?P<sp2> +)",
        b"(?P<version>H"
        + _nested(b"T", b"T", b"P", b"/", b"[0-9]", rb"\.", b"[0-9]", rb"\r", rb"\n")
        + b")",
    )
)

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


# RFC 9110 sections 15.3.5 and 15.4.5: a 204 or a 304 never has content (HEAD's answer
# neither, section 9.3.2; 1xx neither, and never goes through a final response's framing).
NO_BODY_STATUS: Final = frozenset({204, 304})


class LocalProtocolError(Exception):
    """What we were asked to send would break HTTP/1.1; the message names the rule."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on what one request may use. Sizes in bytes; 0 means no limit for the body.
    The defaults are the settings' (config.py), declared there once."""

    max_request_line_bytes: int = default("max_request_line")  # 414 beyond (RFC 9112 3)
    max_header_bytes: int = default("max_header_size")  # 431 beyond (RFC 6585 section 5)
    max_header_count: int = default("max_header_count")  # 431 beyond
    max_body_bytes: int = default("max_body_size")  # 413 beyond (RFC 9110 section 15.5.14)

    @classmethod
    def from_config(cls, config: Config) -> Limits:
        return cls(
            max_request_line_bytes=config.max_request_line,
            max_header_bytes=config.max_header_size,
            max_header_count=config.max_header_count,
            max_body_bytes=config.max_body_size,
        )


# RFC 9110 section 15 renamed four statuses; Python before 3.13 still has RFC 7231's names.
_RFC9110_NAMES: Final = {
    413: b"Content Too Large",
    414: b"URI Too Long",
    416: b"Range Not Satisfiable",
    422: b"Unprocessable Content",
}
_PHRASES: Final = {s.value: s.phrase.encode("ascii") for s in HTTPStatus} | _RFC9110_NAMES
_STATUS_LINES: dict[int, bytes] = {}


def phrase(status: int) -> bytes:
    """The reason phrase RFC 9110 section 15 gives `status` (empty when it gives none)."""
    return _PHRASES.get(status, b"")


def status_line(status: int) -> bytes:
    """`HTTP/1.1 200 OK\\r\\n`. We always answer as HTTP/1.1 (RFC 9110 section 6.2)."""
    line = _STATUS_LINES.get(status)
    if line is None:
        if not 100 <= status <= 999:
            raise LocalProtocolError(f"status {status!r} is not a 3-digit code (RFC 9110 15)")
        line = b"HTTP/1.1 %d %s\r\n" % (status, phrase(status))
        _STATUS_LINES[status] = line
    return line
