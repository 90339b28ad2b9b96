"""Large response bodies go out as a buffer of their own behind the head (a writev, not a
copy: server/exchange.py `_JOIN_MAX`); small ones are joined to it. Both must give the same
bytes on the wire, on both loops, for whole answers, a first part that streams on, HEAD,
204 and a chunked stream, and the connection must go on to the next request.
"""

from __future__ import annotations

from typing import Any

import pytest
from tests.helpers import Peer, serve

from rootserve.types import Receive, Scope, Send

JOIN_MAX = 16 * 1024
SIZES = [JOIN_MAX - 1, JOIN_MAX, 300_000]


def body_of(size: int) -> bytes:
    # Not one repeated byte: a shifted or cut body must not compare equal.
    return bytes(range(256)) * (size // 256) + bytes(range(size % 256))


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    mode, size = scope["path"].strip("/").split("/")
    body = body_of(int(size))
    headers = [(b"content-type", b"application/octet-stream")]
    if mode == "whole":
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
    elif mode == "first-part":  # the head goes out with a large first part, the end later
        headers.append((b"content-length", b"%d" % (len(body) + 1)))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": True})
        await send({"type": "http.response.body", "body": b"!"})
    elif mode == "chunked":
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": True})
        await send({"type": "http.response.body", "body": b"!"})
    elif mode == "no-content":
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def get(path: str, method: str = "GET") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode()


def read_chunked(peer: Peer) -> bytes:
    body = b""
    while True:
        size = int(peer.until(b"\r\n")[:-2], 16)
        if size == 0:
            assert peer.until(b"\r\n") == b"\r\n"
            return body
        body += peer.exactly(size)
        assert peer.exactly(2) == b"\r\n"


@pytest.fixture(params=["uvloop", "asyncio"])
def running(request: pytest.FixtureRequest) -> Any:
    with serve(app, loop=request.param) as server:
        yield server


@pytest.mark.parametrize("size", SIZES)
def test_whole_and_first_part_bodies_arrive_intact(running: Any, size: int) -> None:
    with Peer(running.port) as peer:
        # Pipelined: each answer must start right where the one before ended.
        peer.send(get(f"/whole/{size}") + get(f"/first-part/{size}") + get(f"/whole/{size}"))
        for extra in (b"", b"!", b""):
            reply = peer.response()
            assert reply.status == 200
            assert reply.header("content-length") == str(size + len(extra))
            assert reply.body == body_of(size) + extra


@pytest.mark.parametrize("size", SIZES)
def test_head_and_204_send_no_large_body(running: Any, size: int) -> None:
    with Peer(running.port) as peer:
        peer.send(get(f"/whole/{size}", "HEAD"))
        head = peer.until(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ")
        assert f"content-length: {size}\r\n".encode() in head
        peer.send(get(f"/no-content/{size}"))
        head = peer.until(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 204 ")
        # Had either body been sent, these bytes would be body, not the next status line.
        peer.send(get("/whole/5"))
        reply = peer.response()
        assert (reply.status, reply.body) == (200, body_of(5))


@pytest.mark.parametrize("size", SIZES)
def test_chunked_stream_with_a_large_first_part(running: Any, size: int) -> None:
    with Peer(running.port) as peer:
        peer.send(get(f"/chunked/{size}"))
        head = peer.until(b"\r\n\r\n")
        assert b"transfer-encoding: chunked\r\n" in head
        assert read_chunked(peer) == body_of(size) + b"!"
        peer.send(get("/whole/5"))
        assert peer.response().body == body_of(5)
