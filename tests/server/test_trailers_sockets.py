"""Response trailers over real sockets: HTTP/1.1 (a raw socket that says `TE: trailers`, and
one that does not) and HTTP/2 (a raw h2 client: httpx reads no response trailers), from an
ASGI app that answers with them, under --strict's contract validator too."""

from __future__ import annotations

import socket
from typing import Any

import h2.errors
import h2.events
import pytest
from tests.helpers import serve
from tests.server.h2_server_support import h2_server, raw_client, read_until, request_headers

pytestmark = pytest.mark.timeout(60)

TRAILERS = [(b"x-checksum", b"c0ffee"), (b"grpc-status", b"0")]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert scope["type"] == "http"
    # Offered on HTTP/2; /send sends them on HTTP/1.1 too, where nothing offers them.
    offered = "http.response.trailers" in scope["extensions"] or scope["path"] == "/send"
    stream = scope["extensions"].get("rootserve.http2", {}).get("stream_id")
    await send({"type": "http.response.start", "status": 200, "headers": [],
                "trailers": offered})  # fmt: skip
    await send({"type": "http.response.body", "body": b"part one ", "more_body": True})
    await send({"type": "http.response.body", "body": f"{offered} {stream}".encode()})
    if offered:
        await send({"type": "http.response.trailers", "headers": TRAILERS[:1],
                    "more_trailers": True})  # fmt: skip
        await send({"type": "http.response.trailers", "headers": TRAILERS[1:]})


def exchange(port: int, requests: bytes, last: bytes) -> bytes:
    """Send `requests` on one keep-alive connection; read until what came ends with `last`."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(requests)
        data = b""
        while not data.endswith(last):
            chunk = sock.recv(65536)
            assert chunk, f"closed early: {data!r}"
            data += chunk
        return data


@pytest.mark.parametrize("strict", [False, True])
def test_http11_trailers_to_a_client_that_takes_them(strict: bool) -> None:
    with serve(app, strict=strict) as server:
        with_te = b"GET /send HTTP/1.1\r\nHost: x\r\nTE: trailers\r\n\r\n"
        without = b"GET /send HTTP/1.1\r\nHost: x\r\n\r\n"
        data = exchange(server.port, with_te + without, b"True None\r\n0\r\n\r\n")
    first, _, second = data.partition(b"HTTP/1.1 200 OK")[2].partition(b"HTTP/1.1 200 OK")
    assert b"transfer-encoding: chunked\r\n" in first
    assert first.endswith(
        b"9\r\npart one \r\n9\r\nTrue None\r\n0\r\nx-checksum: c0ffee\r\ngrpc-status: 0\r\n\r\n"
    )
    # A client that did not say TE: trailers: the fields are dropped, and the connection
    # goes on.
    assert second.endswith(b"9\r\npart one \r\n9\r\nTrue None\r\n0\r\n\r\n")


def test_http2_trailers_end_the_stream() -> None:
    with h2_server(app) as server:
        sock, conn = raw_client(server.port)
        with sock:
            for stream_id in (1, 3):
                conn.send_headers(stream_id, request_headers(server.port, "/t"), end_stream=True)
            sock.sendall(conn.data_to_send())
            events = read_until(sock, conn, h2.events.StreamEnded)
            while sum(isinstance(e, h2.events.StreamEnded) for e in events) < 2:
                events += read_until(sock, conn, h2.events.StreamEnded)
    for stream_id in (1, 3):
        mine = [e for e in events if getattr(e, "stream_id", None) == stream_id]
        body = b"".join(e.data for e in mine if isinstance(e, h2.events.DataReceived))
        assert body == f"part one True {stream_id}".encode()
        [trailers] = [e for e in mine if isinstance(e, h2.events.TrailersReceived)]
        assert trailers.headers == TRAILERS
        assert trailers.stream_ended is not None  # the trailers' HEADERS frame ended it
        assert isinstance(mine[-1], h2.events.StreamEnded)


async def bad_trailers_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [],
                "trailers": True})  # fmt: skip
    await send({"type": "http.response.body", "body": b"partial"})
    await send({"type": "http.response.trailers", "headers": [(b"content-length", b"7")]})


def test_http2_a_refused_trailer_resets_the_stream_and_the_connection_goes_on() -> None:
    with h2_server(bad_trailers_app) as server:
        sock, conn = raw_client(server.port)
        with sock:
            conn.send_headers(1, request_headers(server.port, "/"), end_stream=True)
            sock.sendall(conn.data_to_send())
            events = read_until(sock, conn, h2.events.StreamReset)
            [reset] = [e for e in events if isinstance(e, h2.events.StreamReset)]
            assert reset.stream_id == 1 and reset.error_code == h2.errors.ErrorCodes.INTERNAL_ERROR
            assert not any(isinstance(e, h2.events.TrailersReceived) for e in events)
            # The connection serves the next stream.
            conn.send_headers(3, request_headers(server.port, "/"), end_stream=True)
            sock.sendall(conn.data_to_send())
            events = read_until(sock, conn, h2.events.StreamReset)
            assert any(isinstance(e, h2.events.ResponseReceived) for e in events)
