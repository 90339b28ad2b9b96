"""A client that goes away before the end of its request's body (short of its Content-Length,
or before the last chunk): the body never looks complete to the app, and the request is
logged as failed.

ASGI: the app gets what arrived with `more_body=True`, then `http.disconnect`, never a last
`http.request`. WSGI: a small body is held back until it is whole, so the app is never
called; a large one (past the input's high-water mark) has the app called already, and its
`wsgi.input.read()` raises. Over real sockets, the client closing its end after part of
the body.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterable
from typing import Any

import pytest
from tests.helpers import recorded_log, serve
from tests.wsgi.support import serve_wsgi

from rootserve.types import Receive, Scope, Send
from rootserve.wsgi.input import HIGH_WATER

WAIT = 10.0
HEADS = {
    "content-length": b"Content-Length: 100\r\n\r\n" + b"a" * 40,
    "chunked": b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
}


def send_part_and_leave(port: int, head_and_part: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
        sock.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\n" + head_and_part)
        sock.shutdown(socket.SHUT_WR)  # the client's last byte, then its end


@pytest.mark.parametrize("framing", list(HEADS))
def test_asgi_gets_a_disconnect_never_a_complete_body(framing: str) -> None:
    received: list[dict[str, Any]] = []
    over = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            received.append(dict(message))
            if message["type"] == "http.disconnect" or not message.get("more_body"):
                break
        over.set()

    with recorded_log("rootserve.error") as log, serve(app, lifespan="off") as server:
        send_part_and_leave(server.port, HEADS[framing])
        assert over.wait(WAIT)
        line = next(m for m in log.wait_for("failed: POST /upload") if "POST /upload" in m)
    assert [m["type"] for m in received][-1] == "http.disconnect"
    assert all(m.get("more_body") for m in received if m["type"] == "http.request")
    assert sum(len(m.get("body", b"")) for m in received) == (40 if framing != "chunked" else 5)
    assert line.endswith("the client left before the end of the body")


@pytest.mark.parametrize("framing", list(HEADS))
def test_wsgi_holds_a_small_cut_body_back_from_the_app(framing: str) -> None:
    calls: list[str] = []

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        calls.append(environ["PATH_INFO"])
        start_response("200 OK", [])
        return [b"never"]

    with recorded_log("rootserve.error") as log, serve_wsgi(app) as server:
        send_part_and_leave(server.port, HEADS[framing])
        log.wait_for("failed: POST /upload")
    assert calls == []


def test_wsgi_input_raises_for_a_large_cut_body() -> None:
    """Past the high-water mark the app runs while the body arrives; the cut shows as an
    exception from read(), never as a short body returned as if whole."""
    outcome: list[str] = []
    over = threading.Event()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        try:
            data = environ["wsgi.input"].read()
            outcome.append(f"read {len(data)} bytes")
        except Exception as exc:
            outcome.append(f"raised {type(exc).__name__}")
        over.set()
        start_response("200 OK", [])
        return [b""]

    declared = 4 * HIGH_WATER
    part = b"b" * (2 * HIGH_WATER)
    with recorded_log("rootserve.error") as log, serve_wsgi(app) as server:
        send_part_and_leave(server.port, b"Content-Length: %d\r\n\r\n%s" % (declared, part))
        assert over.wait(WAIT)
        log.wait_for("failed: POST /upload")
    assert len(outcome) == 1 and outcome[0].startswith("raised "), outcome
