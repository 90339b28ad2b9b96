"""protocol/_trailers.py: which trailer fields are refused, and the trailer section of an
HTTP/1.1 response, framed by the real sans-IO connection."""

from __future__ import annotations

import pytest

from rootserve.protocol._trailers import TRAILER_REFUSED, check_trailers, end_with_trailers
from rootserve.protocol.http11 import HTTP11Connection
from rootserve.protocol.rules import LocalProtocolError


def started(request: bytes, headers: list[tuple[bytes, bytes]]) -> HTTP11Connection:
    conn = HTTP11Connection()
    conn.receive_data(request)
    conn.send_response(200, headers)
    return conn


def test_fields_pass_as_given_and_refused_names_match_in_any_case() -> None:
    fields = [(b"X-Checksum", b"abc"), (b"grpc-message", b"")]
    assert check_trailers(iter(fields)) == fields
    for name in (b"Content-Length", b"HOST", b"set-cookie", b"Trailer"):
        assert name.lower() in TRAILER_REFUSED
        with pytest.raises(LocalProtocolError, match="cannot be a trailer field"):
            check_trailers([(name, b"1")])


def test_a_chunked_response_ends_with_its_trailer_section() -> None:
    conn = started(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n", [])
    assert conn.send_data(b"abc") == b"3\r\nabc\r\n"
    end = end_with_trailers(conn, [(b"x-a", b"1"), (b"x-b", b"2")])
    assert end == b"0\r\nx-a: 1\r\nx-b: 2\r\n\r\n"
    assert conn.response_keep_alive


@pytest.mark.parametrize(
    ("request_", "headers", "end"),
    [
        (b"GET / HTTP/1.1\r\nHost: t\r\n\r\n", [], b"0\r\n\r\n"),  # no fields: the usual end
        (b"GET / HTTP/1.1\r\nHost: t\r\n\r\n", [(b"content-length", b"0")], b""),
        (b"GET / HTTP/1.0\r\n\r\n", [], b""),  # read to the close: no place for them
    ],
    ids=["no-fields", "content-length", "http-1.0"],
)
def test_where_there_is_no_trailer_section_the_fields_are_dropped(
    request_: bytes, headers: list[tuple[bytes, bytes]], end: bytes
) -> None:
    conn = started(request_, headers)
    fields = [] if end == b"0\r\n\r\n" else [(b"x-a", b"1")]
    assert end_with_trailers(conn, fields) == end
