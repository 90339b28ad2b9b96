"""rootserve.testing answers as the real server does: a sample of what tests/e2e/ checks,
each request sent both to a server on a socket and through `rootserve.testing.Client`.

How this works. Each case is data: an app, its interface, the server settings, and one
request (method, target, header fields, body). `answers_match` serves the app on 127.0.0.1
port 0 (tests.helpers.serve, or tests.wsgi.support.serve_wsgi for WSGI), writes the
request's bytes on a raw socket and reads one response; then it gives the same fields and
body to `Client.request`, which encodes them into the same bytes (the Host and the
Content-Length are written out here, so the client adds nothing of its own). The two answers
must be equal: the status, every header but `date` as lower-cased (name, value) pairs in the
order sent, and the body. Each case also names the status it expects, so two answers that
agree on being wrong still fail.

The client has no call for raw bytes; the malformed requests go through `Client.request`
with what it passes on as given: a header name with a space, a value with a NUL or a line
fold, two framing fields, an over-long target, too many fields. WebSocket cases compare
what the `websockets` client receives with what `Client.websocket_connect` receives.
Settings are the same on both sides; the client runs with `strict=False` unless the case is
about `--strict`, and then the served app is wrapped in its validator, as the command does.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest
from tests.apps import broken_contract
from tests.apps.fastapi_app import app as fastapi_app
from tests.apps.starlette_app import app as starlette_app
from tests.apps.wsgi.flask_app import app as flask_app
from tests.helpers import Peer, serve
from tests.test_testing import ws_echo
from tests.wsgi.support import serve_wsgi
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from rootserve import validate
from rootserve.testing import Client, WebSocketClosed, WebSocketRejected
from rootserve.types import Receive, Scope, Send

WAIT = 10.0  # seconds: the bound on any socket read
HOST = "testserver"  # the Client's default Host; the socket requests carry it too
MTIME = 1_700_000_000  # the static files' modification time, so Last-Modified is known
BIG_FILE = 200 * 1024  # bytes: past static.WHOLE_MAX, so it goes out as a file, not a read
SITE = "{site}"  # in a case's `static` setting: the folder the `site` fixture made

Fields = tuple[tuple[str, str], ...]
Answer = tuple[int, list[tuple[str, str]], bytes]


# -- apps ----------------------------------------------------------------------------------


async def read_body(receive: Receive) -> bytes:
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")  # type: ignore[operator]
        more = bool(message.get("more_body"))
    return body


async def asgi_app(scope: Scope, receive: Receive, send: Send) -> None:
    """/boom raises, /silent returns without answering, /status/N answers N with a body,
    /chunks streams three pieces; any other path echoes what the scope says and the body."""
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/boom":
        raise ValueError("kaput")
    if path == "/silent":
        return
    if path.startswith("/status/"):
        status = int(path.rsplit("/", 1)[1])
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"must not be sent"})
        return
    if path == "/chunks":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for piece in (b"first ", b"second ", b"third"):
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    body = await read_body(receive)
    text = (
        f"{scope['method']} path={path} raw={scope['raw_path'].decode()} "
        f"query={scope['query_string'].decode()} root={scope['root_path']} "
    )
    headers = [(b"content-type", b"text/plain"), (b"x-seen", b"yes")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": text.encode() + body})


def wsgi_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """The WSGI twin of `asgi_app`, /gen streaming from a generator."""
    path = environ["PATH_INFO"]
    if path == "/boom":
        raise ValueError("kaput")
    if path == "/silent":
        return []
    if path.startswith("/status/"):
        code = path.rsplit("/", 1)[1]
        start_response(f"{code} {'No Content' if code == '204' else 'Not Modified'}", [])
        return [b"must not be sent"]
    if path == "/gen":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return (piece for piece in (b"first ", b"second ", b"third"))
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else environ["wsgi.input"].read()
    text = (
        f"{environ['REQUEST_METHOD']} script={environ['SCRIPT_NAME']} path={path} "
        f"query={environ['QUERY_STRING']} "
    )
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-Seen", "yes")])
    return [text.encode(), body]


# The WebSocket app of tests/test_testing.py: /no refused, "bye" closed with 4001, text
# echoed, bytes reversed.
ws_app = ws_echo


# -- cases ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    method: str = "GET"
    target: str = "/"
    headers: Fields = ()
    body: bytes = b""

    def fields(self) -> list[tuple[str, str]]:
        """The header fields as sent, Host and Content-Length written out as the Client
        would add them (testing.Client._encode), so both sides send the same bytes."""
        fields = [("Host", HOST), *self.headers]
        names = {name.lower() for name, _ in self.headers}
        if (self.body or self.method in ("POST", "PUT", "PATCH")) and not names & {
            "content-length",
            "transfer-encoding",
        }:
            fields.append(("Content-Length", str(len(self.body))))
        return fields

    def raw(self) -> bytes:
        head = f"{self.method} {self.target} HTTP/1.1\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in self.fields())
        return head.encode("latin-1") + b"\r\n" + self.body


@dataclass(frozen=True)
class Case:
    id: str
    app: Any
    request: Request
    status: int  # what the served app is expected to answer
    interface: str = "asgi"
    settings: dict[str, Any] = field(default_factory=dict)
    strict: bool = False


def get(target: str, *headers: tuple[str, str]) -> Request:
    return Request("GET", target, headers)


def head(target: str, *headers: tuple[str, str]) -> Request:
    return Request("HEAD", target, headers)


def post(target: str, body: bytes, *headers: tuple[str, str]) -> Request:
    return Request("POST", target, headers, body)


CHUNKED = (("Transfer-Encoding", "chunked"),)
CHUNKED_BODY = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer-Field: x\r\n\r\n"
OVER_LIMIT = {"max_body_size": 16}
LONG_CHUNKS = b"10\r\n" + b"a" * 16 + b"\r\n10\r\n" + b"b" * 16 + b"\r\n0\r\n\r\n"
STATIC = {"static": [f"/static={SITE}"]}
LAST_MODIFIED = formatdate(MTIME, usegmt=True)

HTTP_CASES = [
    # ASGI: methods, bodies, targets, settings (tests/e2e/test_http_server.py)
    Case("asgi-get-query", asgi_app, get("/hello?x=1&y=two"), 200),
    Case("asgi-head-no-body", asgi_app, head("/hello"), 200),
    Case("asgi-post-content-length", asgi_app, post("/form", b"a=1&b=2"), 200),
    Case("asgi-post-chunked", asgi_app, post("/up", CHUNKED_BODY, *CHUNKED), 200),
    Case("asgi-percent-encoded-path", asgi_app, get("/caf%C3%A9/a%2Fb%20c?x=1&y=%20"), 200),
    Case("asgi-root-path", asgi_app, get("/users/1"), 200, settings={"root_path": "/api"}),
    Case("asgi-app-exception-500", asgi_app, get("/boom"), 500),
    Case("asgi-no-response-500", asgi_app, get("/silent"), 500),
    Case("asgi-204-no-body", asgi_app, get("/status/204"), 204),
    Case("asgi-304-no-body", asgi_app, get("/status/304"), 304),
    Case("asgi-streamed-chunked", asgi_app, get("/chunks"), 200),
    Case("asgi-head-of-a-stream", asgi_app, head("/chunks"), 200),
    Case("asgi-413-content-length", asgi_app, post("/", b"x" * 32), 413, settings=OVER_LIMIT),
    Case("asgi-413-chunked", asgi_app, post("/", LONG_CHUNKS, *CHUNKED), 413, settings=OVER_LIMIT),
    # WSGI (tests/e2e/test_wsgi_server.py)
    Case("wsgi-get-query", wsgi_app, get("/hello?x=1"), 200, "wsgi"),
    Case("wsgi-head-no-body", wsgi_app, head("/hello"), 200, "wsgi"),
    Case("wsgi-post-content-length", wsgi_app, post("/form", b"a=1&b=2"), 200, "wsgi"),
    Case("wsgi-post-chunked", wsgi_app, post("/up", CHUNKED_BODY, *CHUNKED), 200, "wsgi"),
    Case("wsgi-root-path", wsgi_app, get("/items/7"), 200, "wsgi", {"root_path": "/mount"}),
    Case("wsgi-app-exception-500", wsgi_app, get("/boom"), 500, "wsgi"),
    Case("wsgi-no-response-500", wsgi_app, get("/silent"), 500, "wsgi"),
    Case("wsgi-204-no-body", wsgi_app, get("/status/204"), 204, "wsgi"),
    Case("wsgi-304-no-body", wsgi_app, get("/status/304"), 304, "wsgi"),
    Case("wsgi-streamed-generator", wsgi_app, get("/gen"), 200, "wsgi"),
    Case("wsgi-413-content-length", wsgi_app, post("/", b"x" * 32), 413, "wsgi", OVER_LIMIT),
    # --strict (tests/e2e/test_strict.py)
    Case("asgi-strict-violation", broken_contract.body_first, get("/"), 500, strict=True),
    Case("wsgi-strict-violation", broken_contract.returns_str, get("/"), 500, "wsgi", strict=True),
    # frameworks (tests/e2e/test_frameworks.py, test_flask.py)
    Case("starlette-404", starlette_app, get("/nowhere"), 404),
    Case("starlette-stream", starlette_app, get("/stream?n=4"), 200),
    Case(
        "starlette-json-post",
        starlette_app,
        post("/items", b'{"name": "pen"}', ("Content-Type", "application/json")),
        201,
    ),
    Case("fastapi-404", fastapi_app, get("/nowhere"), 404),
    Case("fastapi-path-and-query", fastapi_app, get("/items/7?q=x"), 200),
    Case("flask-404", flask_app, get("/nowhere"), 404, "wsgi"),
    Case("flask-unicode-path", flask_app, get("/users/ad%C3%A1?q=1"), 200, "wsgi"),
    Case(
        "flask-send-file",
        flask_app,
        get("/hello.txt"),
        200,
        "wsgi",
    ),
    # --static (tests/e2e/test_static.py), before an ASGI and a WSGI app
    Case("static-asgi-small-file", asgi_app, get("/static/hello.txt"), 200, settings=STATIC),
    Case("static-wsgi-small-file", wsgi_app, get("/static/hello.txt"), 200, "wsgi", STATIC),
    Case("static-head", asgi_app, head("/static/hello.txt"), 200, settings=STATIC),
    Case(
        "static-not-modified",
        asgi_app,
        get("/static/hello.txt", ("If-Modified-Since", LAST_MODIFIED)),
        304,
        settings=STATIC,
    ),
    Case(
        "static-range",
        wsgi_app,
        get("/static/hello.txt", ("Range", "bytes=1-3")),
        206,
        "wsgi",
        STATIC,
    ),
    Case("static-missing-404", asgi_app, get("/static/nothing.txt"), 404, settings=STATIC),
    Case(
        "static-large-file",
        asgi_app,
        get("/static/big.bin"),
        200,
        settings=STATIC,
    ),
    # malformed requests: refused by the protocol before the app (RFC 9112, DESIGN.md)
    Case("bad-header-name", asgi_app, get("/", ("Bad Name", "x")), 400),
    Case("nul-in-header-value", asgi_app, get("/", ("X-Note", "a\x00b")), 400),
    Case("obs-fold", asgi_app, get("/", ("X-Note", "a\r\n folded")), 400),
    Case(
        "content-length-with-transfer-encoding",
        asgi_app,
        post("/", CHUNKED_BODY, ("Content-Length", "5"), *CHUNKED),
        400,
    ),
    Case(
        "two-content-lengths",
        wsgi_app,
        post("/", b"hello", ("Content-Length", "5"), ("Content-Length", "6")),
        400,
        "wsgi",
    ),
    Case(
        "over-long-target-414",
        asgi_app,
        get("/" + "a" * 1000),
        414,
        settings={"max_request_line": 256},
    ),
    Case(
        "too-many-headers-431",
        wsgi_app,
        get("/", *[(f"X-N{n}", "v") for n in range(10)]),
        431,
        "wsgi",
        {"max_header_count": 5},
    ),
]


# -- the two sides -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("site")
    (root / "hello.txt").write_bytes(b"hello\n")
    (root / "big.bin").write_bytes(bytes(range(256)) * (BIG_FILE // 256))
    for path in (root / "hello.txt", root / "big.bin"):
        os.utime(path, (MTIME, MTIME))
    return root


def settings_for(case: Case, site: Path) -> dict[str, Any]:
    settings = dict(case.settings)
    if "static" in settings:
        settings["static"] = [item.replace(SITE, str(site)) for item in settings["static"]]
    if case.strict:
        settings["strict"] = True
    return settings


def served(case: Case, settings: dict[str, Any]) -> AbstractContextManager[Any]:
    """The case's app on a socket; under strict wrapped in its validator, as
    loading.load_configured_app does for `rootserve --strict`."""
    app = case.app
    if case.interface == "wsgi":
        return serve_wsgi(validate.wsgi(app) if case.strict else app, **settings)
    return serve(validate.asgi(app) if case.strict else app, **settings)


def in_process(case: Case, settings: dict[str, Any]) -> Client:
    settings = {k: v for k, v in settings.items() if k != "strict"}
    return Client(case.app, strict=case.strict, interface=case.interface, **settings)


def comparable(status: int, headers: Iterable[tuple[str, str]], body: bytes) -> Answer:
    """What must not differ between two runs: all but the Date field, names lower-cased."""
    kept = [(name.lower(), value) for name, value in headers if name.lower() != "date"]
    return status, kept, body


def over_socket(port: int, request: Request) -> Answer:
    with Peer(port, timeout=WAIT, resets_are_eof=True) as peer:
        peer.send(request.raw())
        reply = peer.response(head=request.method == "HEAD")
    return comparable(reply.status, reply.headers, reply.body)


def through_client(client: Client, request: Request) -> Answer:
    response = client.request(
        request.method, request.target, headers=request.fields(), body=request.body
    )
    return comparable(response.status, response.headers, response.body)


def answers_match(case: Case, site: Path) -> None:
    """The one comparison every HTTP case makes."""
    settings = settings_for(case, site)
    with served(case, settings) as running:
        expected = over_socket(running.port, case.request)
    assert expected[0] == case.status, f"the server answered {expected}"
    with in_process(case, settings) as client:
        got = through_client(client, case.request)
    assert got == expected


def params(cases: list[Case]) -> list[Any]:
    return [pytest.param(case, id=case.id) for case in cases]


@pytest.mark.parametrize("case", params(HTTP_CASES))
def test_the_client_answers_as_the_server(case: Case, site: Path) -> None:
    answers_match(case, site)


# -- WebSocket -----------------------------------------------------------------------------

Script = tuple[str | bytes, ...]  # what the client sends, one message after the other
WS_SCRIPTS: dict[str, Script] = {
    "echo-text-and-bytes": ("hi", b"abc", "héllo", b""),
    "app-closes-with-a-code": ("one", "bye"),
}


def ws_over_socket(port: int, script: Script) -> list[Any]:
    received: list[Any] = []
    url = f"ws://127.0.0.1:{port}/ws"
    with connect(url, proxy=None, open_timeout=WAIT, close_timeout=WAIT) as ws:
        for message in script:
            ws.send(message)
            try:
                received.append(ws.recv(WAIT))
            except ConnectionClosed as closed:
                assert closed.rcvd is not None
                received.append(("closed", closed.rcvd.code, closed.rcvd.reason))
                break
    return received


def ws_through_client(client: Client, script: Script) -> list[Any]:
    received: list[Any] = []
    with client.websocket_connect("/ws") as ws:
        for message in script:
            try:
                if isinstance(message, str):
                    ws.send_text(message)
                    received.append(ws.receive_text())
                else:
                    ws.send_bytes(message)
                    received.append(ws.receive_bytes())
            except WebSocketClosed as closed:
                received.append(("closed", closed.code, closed.reason))
                break
    return received


@pytest.mark.parametrize("script", WS_SCRIPTS.values(), ids=WS_SCRIPTS.keys())
def test_websocket_session_as_the_server(script: Script) -> None:
    with serve(ws_app) as running:
        expected = ws_over_socket(running.port, script)
    assert len(expected) == len(script)  # an answer to each message, or the close
    with Client(ws_app, strict=False) as client:
        assert ws_through_client(client, script) == expected


def test_websocket_refusal_as_the_server() -> None:
    with serve(ws_app) as running:
        url = f"ws://127.0.0.1:{running.port}/no"
        with pytest.raises(InvalidStatus) as refused:
            connect(url, proxy=None, open_timeout=WAIT)
    expected = (refused.value.response.status_code, refused.value.response.body)
    assert expected[0] == 403
    with Client(ws_app, strict=False) as client, pytest.raises(WebSocketRejected) as rejected:
        client.websocket_connect("/no")
    assert (rejected.value.status, rejected.value.body) == expected


# -- the comparison itself can fail --------------------------------------------------------


def test_the_comparison_sees_a_difference(site: Path) -> None:
    """A case whose two sides differ only in a setting fails the comparison: the helper
    compares the answers, not an answer with itself."""
    case = Case("root-path-differs", asgi_app, get("/x"), 200)
    settings = settings_for(case, site)
    with served(case, settings) as running:
        expected = over_socket(running.port, case.request)
    with Client(asgi_app, strict=False, root_path="/elsewhere") as client:
        got = through_client(client, case.request)
    assert got[0] == expected[0]
    assert got != expected
