"""HTTP/2 against the `rootserve` command, for tests/e2e/test_http2_cli.py: the command
started on an app of tests/apps/h2_apps.py, and raw clients for what httpx and curl do not
do on demand (an h2c upgrade with a body read frame by frame, a PROXY header before the
preface, HTTP/1.1 bytes on an HTTP/2-only listener)."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import h2.config
import h2.connection
import h2.events
from tests.helpers import CLIServer, start_cli

TIMEOUT = 10.0
APPS = {
    "asgi": ("tests.apps.h2_apps:asgi_app", "--lifespan", "off"),
    "wsgi": ("tests.apps.h2_apps:wsgi_app", "--interface", "wsgi"),
}
VERSION = {"asgi": "2", "wsgi": "HTTP/2"}  # what each app is told (http_version, SERVER_PROTOCOL)
VERSION_1 = {"asgi": "1.1", "wsgi": "HTTP/1.1"}
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


@dataclass
class Served:
    cli: CLIServer
    port: int

    @property
    def url(self) -> str:
        return self.cli.url


@contextmanager
def rootserve(interface: str, *flags: str) -> Iterator[Served]:
    """`rootserve APP --port 0 FLAGS`, until the block ends."""
    with start_cli(*APPS[interface], "--host", "127.0.0.1", "--port", "0", *flags) as cli:
        port = urlsplit(cli.url).port
        assert port is not None, cli.url
        yield Served(cli, port)


def curl(*args: str) -> str:
    """One curl run (one request: curl 7.88 misbehaves when it reuses an h2 connection)."""
    done = subprocess.run(
        ["curl", "-sS", "--max-time", "10", *args],
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    )
    return done.stdout


def h2_client() -> h2.connection.H2Connection:
    return h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))


def head_of(port: int, path: str, method: str = "GET") -> list[tuple[str, str]]:
    return [
        (":method", method),
        (":scheme", "http"),
        (":authority", f"127.0.0.1:{port}"),
        (":path", path),
    ]


def read_http11_head(sock: socket.socket) -> tuple[bytes, bytes]:
    """An HTTP/1.1 response head, and the bytes read after it."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed before a whole head: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def read_response(
    sock: socket.socket, conn: h2.connection.H2Connection, first: bytes = b"", stream_id: int = 1
) -> tuple[int, bytes]:
    """The status and body of one stream's response, reading frames until it ends."""
    status = 0
    body = b""
    data = first
    while True:
        for event in conn.receive_data(data) if data else ():
            if isinstance(event, h2.events.ResponseReceived) and event.stream_id == stream_id:
                status = int(dict(event.headers)[b":status"])
            elif isinstance(event, h2.events.DataReceived) and event.stream_id == stream_id:
                body += event.data
                conn.acknowledge_received_data(event.flow_controlled_length, stream_id)
            elif isinstance(event, h2.events.StreamEnded) and event.stream_id == stream_id:
                return status, body
            elif isinstance(event, h2.events.StreamReset | h2.events.ConnectionTerminated):
                raise AssertionError(f"the server ended the exchange: {event}")
        out = conn.data_to_send()
        if out:
            sock.sendall(out)
        data = sock.recv(65536)
        assert data, "closed before the response ended"


def h2c_upgrade(port: int, path: str, body: bytes) -> tuple[bytes, int, bytes]:
    """An HTTP/1.1 POST with Upgrade: h2c (RFC 7540 section 3.2) and `body`: the head of
    the server's first answer, then, if it is a 101, stream 1's status and body."""
    conn = h2_client()
    settings = conn.initiate_upgrade_connection()
    assert settings is not None
    request = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
        f"HTTP2-Settings: {settings.decode()}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(request + body)
        head, rest = read_http11_head(sock)
        if not head.startswith(b"HTTP/1.1 101 "):
            return head, 0, rest
        sock.sendall(conn.data_to_send())  # the preface, after the 101 (section 3.5)
        status, answer = read_response(sock, conn, rest)
    return head, status, answer


def prior_knowledge(port: int, path: str, before: bytes = b"") -> tuple[int, bytes]:
    """A GET with prior knowledge (RFC 9113 section 3.3), after `before` (a PROXY header)."""
    conn = h2_client()
    conn.initiate_connection()
    conn.send_headers(1, head_of(port, path), end_stream=True)
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(before + conn.data_to_send())
        return read_response(sock, conn)


def exchange_raw(port: int, data: bytes) -> bytes:
    """Send `data`; everything the server sends until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(data)
        received = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                return received
            if not chunk:
                return received
            received += chunk


def status_of(head: Any) -> int:
    return int(bytes(head).split(b" ", 2)[1])
