"""The protocol name and version of a request line (RFC 9112 section 2.3), read two ways:
off the start of the received bytes when a message begins them, or searched for otherwise
(a pipelined request, a head that came in pieces, empty lines before it). Both ways must
agree, whatever the chunking."""

from __future__ import annotations

import pytest

from rootserve.protocol.events import BadRequest, Request
from rootserve.protocol.http11 import HTTP11Connection
from rootserve.protocol.rules import Limits


def requests(*feeds: bytes) -> list[Request | BadRequest]:
    conn = HTTP11Connection()
    out: list[Request | BadRequest] = []
    for feed in feeds:
        out += [e for e in conn.receive_data(feed) if isinstance(e, Request | BadRequest)]
    return out


def versions(*feeds: bytes) -> list[str]:
    return [r.http_version for r in requests(*feeds) if isinstance(r, Request)]


GET11 = b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
GET10 = b"GET /b HTTP/1.0\r\n\r\n"


@pytest.mark.parametrize(
    ("feeds", "expected"),
    [
        ((GET11,), ["1.1"]),
        ((GET10,), ["1.0"]),
        ((b"\r\n" + GET10,), ["1.0"]),  # an empty line first (RFC 9112 section 2.2)
        ((GET11 + GET10,), ["1.1", "1.0"]),  # the second is not at the start of the feed
        ((GET10[:5], GET10[5:]), ["1.0"]),  # the head in two pieces
        ((GET11, GET10), ["1.1", "1.0"]),
        # A body that looks like a request line does not fool the reading.
        (
            (
                b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 16\r\n\r\nGET / HTTP/1.0\r\n"
                + GET11,
            ),
            ["1.1", "1.1"],
        ),
    ],
)
def test_the_version_is_the_request_lines(feeds: tuple[bytes, ...], expected: list[str]) -> None:
    assert versions(*feeds) == expected


@pytest.mark.parametrize(
    "line",
    [
        b"GET / RTSP/1.0\r\n",
        b"GET / ICE/1.0\r\n",
    ],
)
@pytest.mark.parametrize("prefix", [b"", b"\r\n"])
def test_another_protocol_name_is_refused(line: bytes, prefix: bytes) -> None:
    events = requests(prefix + line + b"Host: h\r\n\r\n")
    assert isinstance(events[-1], BadRequest)
    assert events[-1].status == 400


@pytest.mark.parametrize("prefix", [b"", b"\r\n"])
def test_an_unsupported_version_is_505(prefix: bytes) -> None:
    events = requests(prefix + b"GET / HTTP/1.2\r\nHost: h\r\n\r\n")
    if isinstance(events[-1], BadRequest):
        assert events[-1].status == 505
    else:  # llhttp's grammar may already refuse it; it must never be served
        pytest.fail(f"HTTP/1.2 was accepted: {events}")


def test_a_method_named_like_the_target_is_read_right() -> None:
    # The target begins right after one space: nothing is assumed from repeated bytes.
    [request] = requests(b"GET /GET HTTP/1.0\r\n\r\n")
    assert isinstance(request, Request)
    assert (request.method, request.target, request.http_version) == ("GET", b"/GET", "1.0")


# An unknown method (RFC 9110 section 9.1) is 501 only in a request line: method SP
# request-target SP HTTP-version CRLF (RFC 9112 section 3). A line of another shape is 400,
# whatever its first word; one longer than the limit, 414. llhttp refuses an unknown method
# at its first byte, so the rest of the line is read by the connection, as it comes: the
# verdict must not depend on where the feeds end.
LINES = [
    (b"THIS IS NOT HTTP\r\n\r\n", 400),
    (b"HELLO\r\n\r\n", 400),
    (b"GET\r\n\r\n", 400),
    (b"FOO /\r\nHost: h\r\n\r\n", 400),
    (b"FOO / HTTP/1.1 \r\nHost: h\r\n\r\n", 400),
    (b"FOO / HTTP/1.1\nHost: h\n\n", 400),
    (b"FOO / HTTP/11\r\nHost: h\r\n\r\n", 400),
    (b"FOO\t/ HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    (b"FOO / HTTP/1.1\r\nHost: h\r\n\r\n", 501),
    (b"FOO  /a?b  HTTP/3.0\r\nHost: h\r\n\r\n", 501),
    (b"\r\nX-Y~Z! * HTTP/1.0\r\n\r\n", 501),
]


def statuses(*feeds: bytes, limit: int | None = None) -> list[int]:
    conn = HTTP11Connection(Limits(max_request_line_bytes=limit) if limit else None)
    out = []
    for feed in feeds:
        out += [e.status for e in conn.receive_data(feed) if isinstance(e, BadRequest)]
    return out


@pytest.mark.parametrize(("raw", "status"), LINES)
def test_unknown_method_verdict_at_every_split_point(raw: bytes, status: int) -> None:
    assert statuses(raw) == [status]
    for i in range(1, len(raw)):
        assert statuses(raw[:i], raw[i:]) == [status], i
        for j in range(i + 1, min(len(raw), i + 12)):
            assert statuses(raw[:i], raw[i:j], raw[j:]) == [status], (i, j)
    assert statuses(*(raw[i : i + 1] for i in range(len(raw)))) == [status]


@pytest.mark.parametrize("size", [64, 65])
def test_unknown_method_line_length_limit(size: int) -> None:
    # The line without its CRLF may be max_request_line_bytes long (RFC 9112 section 3: 414
    # beyond), whichever way it arrives.
    line = b"FOO /" + b"a" * (size - len(b"FOO / HTTP/1.1")) + b" HTTP/1.1"
    assert len(line) == size
    raw = line + b"\r\nHost: h\r\n\r\n"
    expected = [501] if size <= 64 else [414]
    assert statuses(raw, limit=64) == expected
    assert statuses(*(raw[i : i + 1] for i in range(len(raw))), limit=64) == expected
    assert statuses(raw[:40], raw[40:], limit=64) == expected
