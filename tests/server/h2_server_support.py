"""HTTP/2 over real sockets, for the tests: an H2Connection per accepted connection over a
ServerState built as the worker builds it (build_runners + ServerState.from_config), on
127.0.0.1 port 0, from a loop in a thread (`h2_server`); an ASGI and a WSGI app; and a raw
h2 client for what httpx cannot be made to do."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

import h2.config
import h2.connection
import h2.events
import httpx

from rootserve.config import Config
from rootserve.protocol.http2 import H2Limits
from rootserve.server.assembly import build_runners
from rootserve.server.connection import Connection
from rootserve.server.h2_connection import H2Connection
from rootserve.server.reaper import Reaper, no_heartbeat
from rootserve.server.state import ServerState
from rootserve.server.tls import make_context
from rootserve.server.worker import new_event_loop

MIB = 1024 * 1024
BIG = bytes(range(256)) * (5 * MIB // 256)  # 5 MiB


@dataclass
class H2Server:
    port: int
    state: ServerState
    loop: asyncio.AbstractEventLoop
    made: list[H2Connection]  # every connection accepted (without `detect`)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def call(self, fn: Any) -> None:
        """Run `fn()` on the server's loop and wait for it."""
        done = threading.Event()

        def run() -> None:
            try:
                fn()
            finally:
                done.set()

        self.loop.call_soon_threadsafe(run)
        assert done.wait(10)


@contextmanager
def h2_server(
    app: Any,
    interface: str = "asgi",
    *,
    loop_kind: str = "asyncio",
    detect: bool = False,
    **settings: Any,
) -> Iterator[H2Server]:
    """Serve `app` (each connection an H2Connection); with ssl_certfile/ssl_keyfile in
    `settings`, over TLS with ALPN "h2"; with `detect`, each connection a Connection
    (HTTP/1.1 unless the client speaks HTTP/2), as the server would have them."""
    settings.setdefault("access_log", False)
    config = Config(host="127.0.0.1", port=0, **settings)
    tls = make_context(config, alpn=("h2", "http/1.1"))
    loop = new_event_loop(loop_kind)
    ready = threading.Event()
    started: dict[str, Any] = {}
    made: list[H2Connection] = []

    async def main() -> None:
        runner, _ = build_runners(config, app, interface, None, loop, multiprocess=False)
        state = ServerState.from_config(config, runner=runner, loop=loop)

        limits = H2Limits.from_config(config)  # (the --h2-* settings given)

        def accept() -> asyncio.Protocol:
            if detect:  # HTTP/1.1 and HTTP/2 on one listener, as the server would have it
                return cast(asyncio.Protocol, Connection(state))
            made.append(H2Connection(state, limits))
            return made[-1]

        server = await loop.create_server(accept, "127.0.0.1", 0, ssl=tls)
        reaper = Reaper(state, 0.05, no_heartbeat)
        reaper.start()
        stop = asyncio.Event()
        started.update(port=server.sockets[0].getsockname()[1], state=state, stop=stop)
        ready.set()
        try:
            await stop.wait()
        finally:
            server.close()
            reaper.stop()
            for conn in list(state.connections):
                conn.close()
            await state.connections.wait_empty(5)
            await state.running.wait_empty(5)
            await runner.aclose()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    try:
        assert ready.wait(10), "the server did not start"
        yield H2Server(started["port"], started["state"], loop, made)
    finally:
        if "stop" in started:
            loop.call_soon_threadsafe(started["stop"].set)
        thread.join(15)
        assert not thread.is_alive(), "the server's loop did not stop"
        loop.close()


def h2_client(**kwargs: Any) -> httpx.Client:
    kwargs.setdefault("timeout", 20)
    return httpx.Client(http1=False, http2=True, **kwargs)


# -- apps --------------------------------------------------------------------------------


async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert scope["type"] == "http"
    path = scope["path"]
    if path == "/boom":
        raise RuntimeError("the app failed on purpose")
    if path == "/download":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for start in range(0, len(BIG), 256 * 1024):
            chunk = BIG[start : start + 256 * 1024]
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    headers = dict(scope["headers"])
    answer = (
        f"{scope['http_version']} {scope['method']} {scope['path']} "
        f"{scope['query_string'].decode()} {headers.get(b'host', b'').decode()} {len(body)}"
    ).encode()
    if path == "/echo":
        answer = body
    elif path == "/scheme":
        answer = (scope["scheme"] + " tls" * ("tls" in scope["extensions"])).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"connection", b"keep-alive")],
        }
    )
    await send({"type": "http.response.body", "body": answer})


def wsgi_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    path = environ["PATH_INFO"]
    if path == "/boom":
        raise RuntimeError("the app failed on purpose")
    if path == "/download":
        start_response("200 OK", [])
        return (BIG[start : start + 256 * 1024] for start in range(0, len(BIG), 256 * 1024))
    body = environ["wsgi.input"].read()
    if path == "/echo":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return [body]
    if path == "/scheme":
        start_response("200 OK", [])
        return [(environ["wsgi.url_scheme"] + " tls" * (environ.get("HTTPS") == "on")).encode()]
    text = (
        f"{environ['SERVER_PROTOCOL']} {environ['REQUEST_METHOD']} {path} "
        f"{environ['QUERY_STRING']} {environ.get('HTTP_HOST', '')} {len(body)}"
    )
    start_response("200 OK", [("Content-Type", "text/plain"), ("Transfer-Encoding", "chunked")])
    return [text.encode()]


# -- a raw client ------------------------------------------------------------------------


def raw_client(port: int) -> tuple[socket.socket, h2.connection.H2Connection]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    return sock, conn


def request_headers(port: int, path: str, method: str = "GET") -> list[tuple[str, str]]:
    return [
        (":method", method),
        (":scheme", "http"),
        (":authority", f"127.0.0.1:{port}"),
        (":path", path),
    ]


def read_until_closed(sock: socket.socket, conn: h2.connection.H2Connection) -> list[Any]:
    events: list[Any] = []
    while True:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            return events
        if not data:
            return events
        events += conn.receive_data(data)
        out = conn.data_to_send()
        if out:
            try:
                sock.sendall(out)
            except OSError:
                return events


def read_until(sock: socket.socket, conn: h2.connection.H2Connection, kind: type) -> list[Any]:
    """The events up to the first of `kind`."""
    events: list[Any] = []
    while not any(isinstance(event, kind) for event in events):
        data = sock.recv(65536)
        assert data, f"closed before {kind.__name__}: {events}"
        events += conn.receive_data(data)
        sock.sendall(conn.data_to_send())
    return events


def read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def wait_until(condition: Any, timeout: float = 10.0) -> None:
    """Wait, from the test's thread, until `condition()` (a server-side count) holds."""
    done = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        done.wait(0.01)  # noqa: sleep-ok (polls a server-side count from the test's thread)
    raise AssertionError("condition not met in time")
