"""The echo apps and clients of the proxy tests (test_proxy.py, test_proxy_protocol.py).

The apps echo what the contract gives them (the ASGI scope, the WSGI environ) as JSON, and
`seen` reads both into one `Seen`, each field from the keys its contract defines, so one
test states what both kinds of app must see. Requests are raw bytes (helpers.Peer), so the
proxy headers and the PROXY protocol header are exactly what a test wrote.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import socket
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.helpers import Peer, serve
from tests.wsgi.support import serve_wsgi, validated

from rootserve.config import Config
from rootserve.server.worker import Server
from rootserve.supervisor.sockets import bind_all
from rootserve.types import Receive, Scope, Send

TIMEOUT = 10.0  # seconds any one wait may take
INTERFACES = ("asgi", "wsgi")
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"  # HAProxy proxy-protocol.txt section 2.2

# -- the echo apps ----------------------------------------------------------------------


def asgi_view(scope: Scope) -> dict[str, Any]:
    host = [v.decode("latin-1") for n, v in scope["headers"] if n == b"host"]
    return {
        "client": scope["client"],
        "scheme": scope["scheme"],
        "server": scope["server"],
        "root_path": scope["root_path"],
        "path": scope["path"],
        "host": host,
    }


async def asgi_echo(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        return
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": json.dumps(asgi_view(scope))})
        await receive()  # the client closes once it has read the view
        return
    body = json.dumps(asgi_view(scope)).encode()
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


WSGI_KEYS = (
    "REMOTE_ADDR",
    "REMOTE_PORT",
    "wsgi.url_scheme",
    "HTTPS",
    "SERVER_NAME",
    "SERVER_PORT",
    "HTTP_HOST",
    "SCRIPT_NAME",
    "PATH_INFO",
)


def wsgi_echo(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    body = json.dumps({key: environ.get(key) for key in WSGI_KEYS}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


@dataclass(frozen=True)
class Seen:
    """What an app saw, in one shape for both contracts."""

    client: tuple[str, int]
    scheme: str
    server: tuple[str, int]
    host: str
    root_path: str
    path: str  # below root_path: ASGI path minus root_path, WSGI PATH_INFO


def seen(interface: str, view: dict[str, Any]) -> Seen:
    if interface == "asgi":
        hosts = view["host"]
        assert len(hosts) == 1, hosts
        root_path, path = view["root_path"], view["path"]
        assert path.startswith(root_path), view  # ASGI: path includes root_path
        return Seen(
            tuple(view["client"]),
            view["scheme"],
            tuple(view["server"]),
            hosts[0],
            root_path,
            path[len(root_path) :],
        )
    scheme = view["wsgi.url_scheme"]
    # CGI's HTTPS, which frameworks test besides the scheme, says the same.
    assert (view["HTTPS"] == "on") == (scheme == "https"), view
    return Seen(
        (view["REMOTE_ADDR"], int(view["REMOTE_PORT"])),
        scheme,
        (view["SERVER_NAME"], int(view["SERVER_PORT"])),
        view["HTTP_HOST"],
        view["SCRIPT_NAME"],
        view["PATH_INFO"],
    )


@contextlib.contextmanager
def served(interface: str, **settings: Any) -> Iterator[int]:
    """The echo app of `interface` served with `settings`; yields the port."""
    if interface == "asgi":
        with serve(asgi_echo, **settings) as running:
            yield running.port
    else:
        with serve_wsgi(validated(wsgi_echo), **settings) as running:
            yield running.port


def request_bytes(headers: Iterable[tuple[str, str]] = (), path: str = "/x") -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: app.internal:8000", *(f"{n}: {v}" for n, v in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def answer(peer: Peer, interface: str) -> Seen:
    reply = peer.response()
    assert reply.status == 200, reply
    return seen(interface, json.loads(reply.body))


def ask(port: int, interface: str, headers: Iterable[tuple[str, str]] = ()) -> tuple[Seen, int]:
    """One request with `headers`; what the app saw, and the client's own port."""
    with Peer(port, timeout=TIMEOUT) as peer:
        peer.send(request_bytes(headers))
        return answer(peer, interface), peer.local_port


def direct(local_port: int, port: int) -> Seen:
    """What an app sees of a request that no proxy header changed."""
    return Seen(
        ("127.0.0.1", local_port), "http", ("127.0.0.1", port), "app.internal:8000", "", "/x"
    )


@contextlib.contextmanager
def served_on_unix(path: Path, **settings: Any) -> Iterator[None]:
    """The ASGI echo app on the unix socket `path` (serve() binds TCP only)."""
    config = Config(bind=[f"unix:{path}"], access_log=False, **settings)
    sockets = bind_all([f"unix:{path}"], 128)
    server = Server(config, asgi_echo, sockets)
    thread = threading.Thread(target=server.run, name="rootserve-unix-test", daemon=True)
    thread.start()
    try:
        assert server.started.wait(TIMEOUT), "the server did not start listening"
        yield
    finally:
        server.request_stop()
        thread.join(TIMEOUT)
        for sock in sockets:
            sock.close()
        assert not thread.is_alive(), "server thread did not stop"


def unix_ask(path: Path, data: bytes) -> dict[str, Any]:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(TIMEOUT)
        sock.connect(str(path))
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), received
    view: dict[str, Any] = json.loads(body)
    return view


# -- PROXY protocol headers ----------------------------------------------------------


def v1(source: str, destination: str, source_port: int, destination_port: int) -> bytes:
    family = "TCP6" if ":" in source else "TCP4"
    return f"PROXY {family} {source} {destination} {source_port} {destination_port}\r\n".encode()


def v2(
    source: str,
    destination: str,
    source_port: int,
    destination_port: int,
    *,
    tlvs: bytes = b"",
) -> bytes:
    """A v2 PROXY header for a TCP stream (HAProxy proxy-protocol.txt section 2.2)."""
    src, dst = ipaddress.ip_address(source), ipaddress.ip_address(destination)
    family = 0x11 if src.version == 4 else 0x21  # AF_INET or AF_INET6, then STREAM
    block = (
        src.packed
        + dst.packed
        + source_port.to_bytes(2, "big")
        + destination_port.to_bytes(2, "big")
        + tlvs
    )
    return V2_SIGNATURE + bytes([0x21, family]) + len(block).to_bytes(2, "big") + block


def v2_local() -> bytes:
    """A v2 LOCAL header (a health check of the balancer itself): no addresses."""
    return V2_SIGNATURE + bytes([0x20, 0x00]) + (0).to_bytes(2, "big")
