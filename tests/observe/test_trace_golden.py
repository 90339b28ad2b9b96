"""--trace over real sockets, compared with golden files (times and ports masked): an ASGI
request, a WSGI request that reads its body, a streaming response, a WebSocket session.

The requests are raw bytes so that every header, and so every line of the block, is the
same on each run; the request id is the client's X-Request-ID."""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from tests.helpers import serve
from tests.observe.trace_support import check_golden, masked, trace_blocks
from tests.wsgi.support import serve_wsgi

from rootserve.types import Receive, Scope, Send


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    headers = [(b"content-type", b"text/plain"), (b"x-greeting", b"yes")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"Hello, world!\n"})


async def streaming(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    for n in range(1, 4):
        await send({"type": "http.response.body", "body": b"part %d\n" % n, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def echo_ws(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        await send({"type": "websocket.send", "text": "echo: " + str(message.get("text"))})


def wsgi_echo(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    body = environ["wsgi.input"].read()
    length = str(5 + len(body))
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", length)])

    def parts() -> Iterator[bytes]:
        yield b"you: "
        yield body

    return parts()


def exchange(port: int, request: bytes) -> tuple[bytes, int]:
    """Send one request on a new connection; the whole answer, and the client's port."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return answer, sock.getsockname()[1]


def test_asgi_request() -> None:
    with trace_blocks() as caught, serve(hello, trace=True, lifespan="off") as server:
        request = (
            b"GET /hello?name=ann HTTP/1.1\r\nHost: golden.test\r\n"
            b"X-Request-ID: golden-asgi\r\nConnection: close\r\n\r\n"
        )
        answer, client = exchange(server.port, request)
        assert answer.endswith(b"Hello, world!\n")
        blocks = caught.wait_for("app returned")
    assert len(blocks) == 1
    check_golden("asgi.txt", masked(blocks[0], port=server.port, client=client))


def test_wsgi_request() -> None:
    with trace_blocks() as caught, serve_wsgi(wsgi_echo, trace=True) as server:
        request = (
            b"POST /echo?x=1 HTTP/1.1\r\nHost: golden.test\r\nX-Request-ID: golden-wsgi\r\n"
            b"Content-Type: text/plain\r\nContent-Length: 8\r\nConnection: close\r\n\r\nname=ann"
        )
        answer, client = exchange(server.port, request)
        assert answer.endswith(b"you: name=ann")
        blocks = caught.wait_for("close()")
    assert len(blocks) == 1
    check_golden("wsgi.txt", masked(blocks[0], port=server.port, client=client))


def test_streaming_response() -> None:
    with trace_blocks() as caught, serve(streaming, trace=True, lifespan="off") as server:
        request = (
            b"GET /stream HTTP/1.1\r\nHost: golden.test\r\nX-Request-ID: golden-stream\r\n"
            b"Connection: close\r\n\r\n"
        )
        answer, client = exchange(server.port, request)
        assert b"part 3\n" in answer
        blocks = caught.wait_for("app returned")
    assert len(blocks) == 1
    check_golden("streaming.txt", masked(blocks[0], port=server.port, client=client))


def frame(opcode: int, payload: bytes) -> bytes:
    """A client's frame (RFC 6455 section 5.2): FIN, masked, a payload under 126 bytes."""
    mask = os.urandom(4)
    masked_payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked_payload


def read_frame(sock: socket.socket, buffer: bytearray) -> tuple[int, bytes]:
    """The next unmasked server frame (payloads under 126 bytes here)."""
    while len(buffer) < 2 or len(buffer) < 2 + (buffer[1] & 0x7F):
        chunk = sock.recv(4096)
        assert chunk, "the server closed before a whole frame"
        buffer += chunk
    opcode, length = buffer[0] & 0x0F, buffer[1] & 0x7F
    payload = bytes(buffer[2 : 2 + length])
    del buffer[: 2 + length]
    return opcode, payload


def test_websocket_session() -> None:
    with trace_blocks() as caught, serve(echo_ws, trace=True, lifespan="off") as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            client = sock.getsockname()[1]
            sock.sendall(
                b"GET /echo HTTP/1.1\r\nHost: golden.test\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                b"Sec-WebSocket-Version: 13\r\nX-Request-ID: golden-ws\r\n\r\n"
            )
            buffer = bytearray()
            while b"\r\n\r\n" not in buffer:
                buffer += sock.recv(4096)
            head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 101 ")
            buffer = bytearray(rest)
            sock.sendall(frame(0x1, b"hi"))
            assert read_frame(sock, buffer) == (0x1, b"echo: hi")
            sock.sendall(frame(0x8, struct.pack("!H", 1000)))
            assert read_frame(sock, buffer)[0] == 0x8
        blocks = caught.wait_for("app returned")
    assert len(blocks) == 3, blocks  # written at each wait for the client: in three parts
    text = "\n".join(masked(block, port=server.port, client=client) for block in blocks)
    check_golden("websocket.txt", text)
