"""The h2c upgrade in a whole worker (tests/helpers.py `serve`, HTTP/2 on by default):
100-continue before the switch, a request sent behind the upgrade request (the client
should have waited for the 101) never served, and a client gone mid-body never served.
The command-line tests (tests/e2e/test_http2_cli.py) cover the rest."""

from __future__ import annotations

import socket
from typing import Any

import h2.config
import h2.connection
import pytest
from tests.e2e.h2_cli_support import read_http11_head, read_response
from tests.helpers import serve

pytestmark = pytest.mark.timeout(60)


class Recorder:
    """An ASGI app that answers its path and body size, and records the paths it saw."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.paths.append(scope["path"])
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            size += len(message.get("body", b""))
            more = message.get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        answer = f"{scope['http_version']} {scope['path']} {size}".encode()
        await send({"type": "http.response.body", "body": answer})


def upgrade_head(path: str, length: int, *extra: str) -> tuple[h2.connection.H2Connection, bytes]:
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    settings = conn.initiate_upgrade_connection()
    assert settings is not None
    lines = [
        f"POST {path} HTTP/1.1",
        "Host: 127.0.0.1",
        "Connection: Upgrade, HTTP2-Settings",
        "Upgrade: h2c",
        f"HTTP2-Settings: {settings.decode()}",
        f"Content-Length: {length}",
        *extra,
    ]
    return conn, ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_expect_100_continue_before_the_switch() -> None:
    app = Recorder()
    with serve(app, lifespan="off") as server:
        conn, head = upgrade_head("/e", 3000, "Expect: 100-continue")
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(head)
            interim, rest = read_http11_head(sock)
            assert interim == b"HTTP/1.1 100 Continue"
            sock.sendall(b"z" * 3000)
            switched, rest = read_http11_head(sock) if not rest else (rest, b"")
            assert switched.startswith(b"HTTP/1.1 101 ")
            sock.sendall(conn.data_to_send())
            assert read_response(sock, conn, rest) == (200, b"2 /e 3000")


def test_a_request_behind_the_upgrade_is_never_served() -> None:
    app = Recorder()
    with serve(app, lifespan="off") as server:
        conn, head = upgrade_head("/first", 2)
        behind = b"GET /behind HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(head + b"ok" + behind)
            switched, rest = read_http11_head(sock)
            assert switched.startswith(b"HTTP/1.1 101 ")
            sock.sendall(conn.data_to_send())
            assert read_response(sock, conn, rest) == (200, b"2 /first 2")
        assert app.paths == ["/first"]


def test_a_client_gone_mid_body_is_never_served() -> None:
    app = Recorder()
    with serve(app, lifespan="off") as server:
        _, head = upgrade_head("/gone", 10_000)
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(head + b"x" * 100)
        # The worker goes on: the next upgrade is served, and the first never was.
        conn, head = upgrade_head("/next", 1)
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(head + b"n")
            switched, rest = read_http11_head(sock)
            assert switched.startswith(b"HTTP/1.1 101 ")
            sock.sendall(conn.data_to_send())
            assert read_response(sock, conn, rest) == (200, b"2 /next 1")
        assert app.paths == ["/next"]
