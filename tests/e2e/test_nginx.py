"""A real nginx, configured by deploy/nginx.conf, in front of rootserve --proxy-headers.

rootserve serves a spy app in a thread (`serve`), trusting 127.0.0.1, its default; nginx runs
as a subprocess on the deployed file made runnable by tests/deploy/nginx_support.py, plus a
TLS listener of the test's own (so that `$scheme` can say https). The spy records every
call it gets, so a test can count them: what the app sees must be what nginx saw (the
client's address and scheme), never what the client wrote into proxy headers, and a request
smuggling attempt must reach the app as one request at most.
"""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.deploy.nginx_support import NGINX_CONF, nginx_command, nginx_config
from tests.deploy.tools import require
from tests.helpers import Peer, Reply, serve
from tests.tls_support import issue
from websockets.sync.client import connect

from rootserve.types import Receive, Scope, Send

# Only a missing nginx takes long (its install, tools.INSTALL_TIMEOUT); each wait below is
# bounded by TIMEOUT.
pytestmark = pytest.mark.timeout(660)

TIMEOUT = 10.0  # seconds any one wait may take
POLL_SECONDS = 0.02


# -- the spy app ------------------------------------------------------------------------


@dataclass
class Call:
    kind: str  # http or websocket
    method: str
    path: str
    body: bytes


@dataclass
class Spy:
    """An ASGI app that records each call, answers with what its scope says, and echoes
    WebSocket messages."""

    calls: list[Call] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def since(self, start: int) -> list[Call]:
        with self.lock:
            return self.calls[start:]

    def count(self) -> int:
        with self.lock:
            return len(self.calls)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            return
        host = [v.decode("latin-1") for n, v in scope["headers"] if n == b"host"]
        view = {
            "client": scope["client"],
            "scheme": scope["scheme"],
            "server": scope["server"],
            "root_path": scope["root_path"],
            "host": host,
            "headers": sorted(n.decode() for n, _ in scope["headers"]),
        }
        if scope["type"] == "websocket":
            with self.lock:
                self.calls.append(Call("websocket", "GET", scope["path"], b""))
            await receive()  # websocket.connect
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.send", "text": json.dumps(view)})
            while (message := await receive())["type"] == "websocket.receive":
                await send({"type": "websocket.send", "text": message.get("text") or ""})
            return
        body = b""
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away: nothing to answer
            body += message["body"]
            if not message.get("more_body"):
                break
        with self.lock:
            self.calls.append(Call("http", scope["method"], scope["path"], body))
        answer = json.dumps(view).encode()
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": answer})


# -- nginx ------------------------------------------------------------------------------


@dataclass
class Stack:
    http_port: int  # nginx, plain HTTP
    tls_port: int  # nginx, HTTPS
    spy: Spy
    client_tls: ssl.SSLContext
    version: str
    outcomes: dict[str, str] = field(default_factory=dict)  # for the summary line


def free_port() -> int:
    """A port nobody listens on now (nginx cannot be given port 0)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def with_tls_listener(port: int, certfile: Path, keyfile: Path) -> str:
    """deploy/nginx.conf with a TLS listener added to its server: what the file's own
    comment says to add when nginx faces the clients."""
    text = NGINX_CONF.read_text(encoding="utf-8")
    anchor = "        server_name _;\n"
    assert text.count(anchor) == 1, "deploy/nginx.conf: expected one `server_name _;` line"
    tls = (
        f"        listen 127.0.0.1:{port} ssl;\n"
        f"        ssl_certificate {certfile};\n"
        f"        ssl_certificate_key {keyfile};\n"
    )
    return text.replace(anchor, anchor + tls)


def wait_for_port(port: int, proc: subprocess.Popen[bytes], folder: Path) -> None:
    deadline = time.monotonic() + TIMEOUT
    while True:
        if proc.poll() is not None:
            log = (folder / "error.log").read_text(errors="replace")
            raise RuntimeError(f"nginx exited with {proc.returncode}: {log}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
        time.sleep(POLL_SECONDS)  # noqa: sleep-ok (poll: nginx gives no readiness signal)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    nginx = require("nginx", apt="nginx-light")
    version = subprocess.run(
        [nginx, "-v"], capture_output=True, text=True, timeout=TIMEOUT, check=False
    ).stderr.strip()
    folder = tmp_path_factory.mktemp("nginx")
    cert = issue(folder)
    spy = Spy()
    with serve(spy, proxy_headers=True) as running:
        http_port, tls_port = free_port(), free_port()
        conf = nginx_config(
            folder,
            listen_port=http_port,
            upstream=f"127.0.0.1:{running.port}",
            source=with_tls_listener(tls_port, cert.certfile, cert.keyfile),
        )
        proc = subprocess.Popen(
            [*nginx_command(nginx, conf), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_port(http_port, proc, folder)
            wait_for_port(tls_port, proc, folder)
            stack = Stack(
                http_port,
                tls_port,
                spy,
                cert.client_context(),
                version.split("/")[-1],
            )
            yield stack
            print(summary(stack))
        finally:
            proc.terminate()  # nginx's master, by its PID: a fast shutdown of its workers
            try:
                proc.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(TIMEOUT)


def summary(stack: Stack) -> str:
    outcomes = stack.outcomes
    smuggling = {k[len("smuggle ") :]: v for k, v in outcomes.items() if k.startswith("smuggle ")}
    others = "; ".join(v for k, v in outcomes.items() if not k.startswith("smuggle "))
    tally: dict[str, int] = {}
    for outcome in smuggling.values():
        tally[outcome] = tally.get(outcome, 0) + 1
    passed = [name for name, outcome in smuggling.items() if outcome == "one request"]
    tally.pop("one request", None)
    smuggled = ", ".join(
        [f"{n} {outcome}" for outcome, n in sorted(tally.items())]
        + [f"{name} passed on as one request" for name in passed]
    )
    return (
        f"nginx {stack.version} (deploy/nginx.conf) in front of rootserve --proxy-headers: "
        f"{others}; {len(smuggling)} request smuggling payloads ({smuggled}), never two "
        "app calls"
    )


# -- what the app sees ------------------------------------------------------------------


def test_the_app_sees_the_client_and_scheme_nginx_saw(stack: Stack) -> None:
    with httpx.Client(trust_env=False, timeout=TIMEOUT, verify=stack.client_tls) as client:
        plain = client.get(f"http://127.0.0.1:{stack.http_port}/who").json()
        secure = client.get(f"https://127.0.0.1:{stack.tls_port}/who").json()
    # Port 0: the address came from X-Forwarded-For ($remote_addr), not from the socket
    # nginx opened to rootserve, whose port would be an ephemeral one.
    assert plain["client"] == secure["client"] == ["127.0.0.1", 0]
    assert (plain["scheme"], secure["scheme"]) == ("http", "https")
    # The Host and server the client used: nginx's port, not rootserve's.
    assert plain["server"] == ["127.0.0.1", stack.http_port]
    assert plain["host"] == [f"127.0.0.1:{stack.http_port}"]
    assert secure["server"] == ["127.0.0.1", stack.tls_port]
    assert secure["host"] == [f"127.0.0.1:{stack.tls_port}"]
    stack.outcomes["who"] = "the app sees client 127.0.0.1 and scheme http/https as nginx saw"


SPOOF = (
    "X-Forwarded-For: 6.6.6.6\r\n"
    "X-Forwarded-For: 7.7.7.7\r\n"
    "Forwarded: for=6.6.6.6;proto=https;host=evil.example\r\n"
    "X-Forwarded-Proto: https\r\n"
    "X-Forwarded-Host: evil.example\r\n"
    "X-Forwarded-Port: 1\r\n"
    "X-Forwarded-Prefix: /evil\r\n"
)


def test_spoofed_proxy_headers_do_not_reach_the_app(stack: Stack) -> None:
    request = (
        f"GET /who HTTP/1.1\r\nHost: 127.0.0.1:{stack.http_port}\r\n{SPOOF}"
        "Connection: close\r\n\r\n"
    ).encode()
    with Peer(stack.http_port, timeout=TIMEOUT) as peer:
        peer.send(request)
        reply = peer.response()
    assert reply.status == 200, reply
    view = json.loads(reply.body)
    assert view["client"] == ["127.0.0.1", 0]
    assert view["scheme"] == "http"
    assert view["server"] == ["127.0.0.1", stack.http_port]
    assert view["host"] == [f"127.0.0.1:{stack.http_port}"]
    assert view["root_path"] == ""
    # nginx emptied Forwarded and X-Forwarded-Prefix: an empty value is not sent at all.
    assert "forwarded" not in view["headers"]
    assert "x-forwarded-prefix" not in view["headers"]
    stack.outcomes["spoof"] = (
        "a client's X-Forwarded-For/-Proto/-Host/-Port/-Prefix and Forwarded never reach it"
    )


@pytest.mark.parametrize("secure", [False, True], ids=["ws", "wss"])
def test_a_websocket_echo_passes_through_nginx(stack: Stack, secure: bool) -> None:
    port = stack.tls_port if secure else stack.http_port
    scheme = "wss" if secure else "ws"
    url = f"{scheme}://127.0.0.1:{port}/ws"
    options: dict[str, Any] = {"ssl": stack.client_tls} if secure else {}
    with connect(
        url,
        additional_headers={"X-Forwarded-For": "6.6.6.6"},
        proxy=None,
        open_timeout=TIMEOUT,
        close_timeout=TIMEOUT,
        **options,
    ) as ws:
        view = json.loads(ws.recv(timeout=TIMEOUT))
        echoes = []
        for text in ("hello", "é" * 1000, ""):
            ws.send(text)
            echoes.append(ws.recv(timeout=TIMEOUT))
    assert view["scheme"] == scheme
    assert view["client"] == ["127.0.0.1", 0]
    assert echoes == ["hello", "é" * 1000, ""]
    stack.outcomes[f"websocket {scheme}"] = f"a WebSocket echo over {scheme} passes"


# -- request smuggling ------------------------------------------------------------------

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
# After each payload, on the same connection: a request that closes it, so that reading
# to the end of the stream waits for every answer nginx gives (no timing guess).
LAST = b"GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


def chunked(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n0\r\n\r\n" % (len(data), data)


def post(headers: bytes, body: bytes) -> bytes:
    return b"POST / HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n" + body


TERMINATOR = b"0\r\n\r\n" + SMUGGLED  # a chunked end, then the smuggled request
PAYLOADS = {
    # Content-Length covers the smuggled request, chunked ends before it.
    "cl-te": post(
        b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n" % len(TERMINATOR), TERMINATOR
    ),
    # chunked covers it, Content-Length ends before it.
    "te-cl": post(b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n", chunked(SMUGGLED)),
    # Transfer-Encoding obfuscated, each with a Content-Length a server may fall back to.
    "te-space-before-colon": post(
        b"Content-Length: %d\r\nTransfer-Encoding : chunked\r\n" % len(TERMINATOR), TERMINATOR
    ),
    "te-two-fields": post(
        b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n"
        % len(TERMINATOR),
        TERMINATOR,
    ),
    "te-xchunked": post(
        b"Content-Length: %d\r\nTransfer-Encoding: xchunked\r\n" % len(TERMINATOR), TERMINATOR
    ),
    "te-chunked-identity": post(
        b"Content-Length: %d\r\nTransfer-Encoding: chunked, identity\r\n" % len(TERMINATOR),
        TERMINATOR,
    ),
    "te-obs-fold": post(
        b"Content-Length: %d\r\nTransfer-Encoding:\r\n chunked\r\n" % len(TERMINATOR), TERMINATOR
    ),
    # Two Content-Lengths that disagree.
    "cl-cl": post(b"Content-Length: 0\r\nContent-Length: %d\r\n" % len(SMUGGLED), SMUGGLED),
    # Chunk lines ended by a bare LF: read differently, they hide the smuggled request.
    "chunk-bare-lf": post(
        b"Transfer-Encoding: chunked\r\n", b"%x\n%s\n0\n\n" % (len(SMUGGLED), SMUGGLED)
    ),
    # A chunk size that overflows a 64-bit integer to a small one.
    "chunk-size-overflow": post(
        b"Transfer-Encoding: chunked\r\n",
        b"1" + b"0" * 16 + b"%x\r\n%s\r\n0\r\n\r\n" % (len(SMUGGLED), SMUGGLED),
    ),
    # More ways to hide Transfer-Encoding from one parser and not the other.
    "te-tab-before-colon": post(
        b"Content-Length: %d\r\nTransfer-Encoding\t: chunked\r\n" % len(TERMINATOR), TERMINATOR
    ),
    "te-vertical-tab": post(
        b"Content-Length: %d\r\nTransfer-Encoding: \x0bchunked\r\n" % len(TERMINATOR), TERMINATOR
    ),
    "te-leading-comma": post(
        b"Content-Length: %d\r\nTransfer-Encoding: ,chunked\r\n" % len(TERMINATOR), TERMINATOR
    ),
    "te-nul": post(
        b"Content-Length: %d\r\nTransfer-Encoding: chunked\x00\r\n" % len(TERMINATOR), TERMINATOR
    ),
    "te-in-http10": b"POST / HTTP/1.0\r\nHost: x\r\nContent-Length: %d\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n%s" % (len(TERMINATOR), TERMINATOR),
    # Content-Length spellings that some parsers read as another number.
    "cl-plus-sign": post(b"Content-Length: +%d\r\n" % len(SMUGGLED), SMUGGLED),
    "cl-inner-space": post(b"Content-Length: 0 %d\r\n" % len(SMUGGLED), SMUGGLED),
    "cl-list-disagrees": post(b"Content-Length: 0, %d\r\n" % len(SMUGGLED), SMUGGLED),
    "cl-obs-fold": post(b"Content-Length: 0\r\n %d\r\n" % len(SMUGGLED), SMUGGLED),
    # A body on a GET, which a front end may forward while a back end ignores it.
    "get-with-body": b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
    % (len(SMUGGLED), SMUGGLED),
    # A hop-by-hop trick: Connection names Content-Length, so a proxy may drop it.
    "connection-names-cl": post(
        b"Connection: Content-Length\r\nContent-Length: %d\r\n" % len(SMUGGLED), SMUGGLED
    ),
    # Bare LF as the end of the head's lines: the head ends where one parser says.
    "head-bare-lf": b"POST / HTTP/1.1\nHost: x\nContent-Length: %d\n\n%s"
    % (len(SMUGGLED), SMUGGLED),
    # A chunk extension whose quoted value carries a line end.
    "chunk-ext-quoted-crlf": post(
        b"Transfer-Encoding: chunked\r\n",
        b'%x;a="\r\n"\r\n%s\r\n0\r\n\r\n' % (len(SMUGGLED), SMUGGLED),
    ),
    # Whitespace before the chunk size, and a chunk size with a 0x prefix.
    "chunk-size-space": post(
        b"Transfer-Encoding: chunked\r\n", b" %x\r\n%s\r\n0\r\n\r\n" % (len(SMUGGLED), SMUGGLED)
    ),
    "chunk-size-0x": post(
        b"Transfer-Encoding: chunked\r\n", b"0x%x\r\n%s\r\n0\r\n\r\n" % (len(SMUGGLED), SMUGGLED)
    ),
    # The last chunk followed by a trailer that is itself a request line.
    "trailer-request": post(b"Transfer-Encoding: chunked\r\n", b"0\r\n" + SMUGGLED),
}


def replies_to_eof(peer: Peer) -> list[Reply]:
    """Every answer until the server closes (read whole first, then parsed)."""
    peer.buffer = peer.to_eof()
    replies = []
    while peer.buffer:
        replies.append(peer.response())
    return replies


@pytest.mark.parametrize("name", list(PAYLOADS))
def test_request_smuggling_reaches_the_app_once_at_most(stack: Stack, name: str) -> None:
    start = stack.spy.count()
    with Peer(stack.http_port, timeout=TIMEOUT, resets_are_eof=True) as peer:
        peer.send(PAYLOADS[name] + LAST)
        replies = replies_to_eof(peer)
    # Every request nginx passed on has been answered (the stream ended after the last
    # answer), and rootserve calls an app for a pipelined request as soon as the one
    # before it is answered: every call these bytes caused is recorded by now.
    calls = [call for call in stack.spy.since(start) if call.path != "/last"]
    statuses = [reply.status for reply in replies]
    assert len(calls) <= 1, (name, calls, statuses)
    method = PAYLOADS[name].split(b" ", 1)[0].decode()
    assert all(call.path == "/" and call.method == method for call in calls), calls
    assert replies, name  # answered, not dropped
    if calls:  # one request: answered with the app's 200, then /last's
        assert statuses[0] == 200, statuses
    else:  # refused, by nginx or by rootserve, with a 4xx or 5xx
        assert 400 <= statuses[0] < 600, statuses
    who = (replies[0].header("server") or "?").split("/")[0]
    outcome = "one request" if calls else f"refused {statuses[0]} by {who}"
    stack.outcomes[f"smuggle {name}"] = outcome


@pytest.fixture(scope="module")
def direct() -> Iterator[tuple[int, Spy]]:
    """rootserve alone, no nginx in front: its own verdict on each smuggling payload."""
    spy = Spy()
    with serve(spy, lifespan="off") as running:
        yield running.port, spy


@pytest.mark.parametrize("name", list(PAYLOADS))
def test_request_smuggling_sent_to_rootserve_alone(direct: tuple[int, Spy], name: str) -> None:
    """Without a proxy to clean the bytes first, rootserve refuses each payload whose
    framing is in doubt (so nothing after it is read as a request), or reads it as the one
    request it is; never two app calls."""
    port, spy = direct
    start = spy.count()
    with Peer(port, timeout=TIMEOUT, resets_are_eof=True) as peer:
        peer.send(PAYLOADS[name] + LAST)
        replies = replies_to_eof(peer)
    calls = [call for call in spy.since(start) if call.path != "/last"]
    assert len(calls) <= 1, (name, calls)
    assert not any(call.path == "/smuggled" for call in calls)
    assert replies, name
    if not calls:
        assert 400 <= replies[0].status < 600 and len(replies) == 1, (name, replies)
