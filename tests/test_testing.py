"""rootserve.testing: the in-process client runs the server's protocol, exchange, adapters
and validator, so it answers as a served app does (compared here with real sockets)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import httpx
import pytest
from tests.apps import broken_contract
from tests.apps.fastapi_app import app as fastapi_app
from tests.apps.starlette_app import app as starlette_app
from tests.apps.wsgi.flask_app import app as flask_app
from tests.helpers import serve
from tests.wsgi.support import serve_wsgi

from rootserve.testing import Client, WebSocketClosed, WebSocketRejected, client_fixture
from rootserve.types import Receive, Scope, Send


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    """ASGI: answers with the method, path, query, a header and the body it read."""
    if scope["type"] != "http":
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")  # type: ignore[operator]
        more = bool(message.get("more_body"))
    headers = dict(scope["headers"])
    if scope["path"] == "/missing":
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b"no such page"})
        return
    text = f"{scope['method']} {scope['path']} {scope['query_string'].decode()} "
    text += headers.get(b"x-token", b"-").decode() + " "
    reply = text.encode() + body
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"x-seen", b"yes")],
        }
    )
    await send({"type": "http.response.body", "body": reply})


def wsgi_echo(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return [environ["REQUEST_METHOD"].encode(), b" ", environ["PATH_INFO"].encode(), b" ", body]


GATE = asyncio.Event()  # the streaming app's second part waits for it


async def streaming(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"part 0;", "more_body": True})
    await GATE.wait()
    await send({"type": "http.response.body", "body": b"part 1;"})


def test_asgi_get_post_headers_and_json() -> None:
    with Client(echo) as client:
        response = client.get("/hello?x=1", headers={"X-Token": "abc"})
        assert response.status == 200
        assert response.text == "GET /hello x=1 abc "
        assert response.header("X-SEEN") == "yes"
        assert response.header("content-length") == str(len(response.body))
        assert response.header("server") == "rootserve"  # the server's own head writer
        posted = client.post("/form", body=b"a=1&b=2")
        assert posted.text == "POST /form  - a=1&b=2"
        sent = client.put("/data", json={"n": [1, 2]})
        assert sent.text == 'PUT /data  - {"n": [1, 2]}'
        assert client.get("/missing").status == 404
        assert client.errors == []


def test_head_has_no_body_but_its_length() -> None:
    with Client(echo) as client:
        head = client.head("/h")
    assert head.status == 200
    assert head.body == b""
    assert head.header("content-length") == str(len("HEAD /h  - "))


def test_wsgi_app_through_the_same_client() -> None:
    with Client(wsgi_echo) as client:
        response = client.post("/up", body=b"payload")
        assert response.status == 200
        assert response.body == b"POST /up payload"
        assert client.delete("/x").body == b"DELETE /x "


def test_stream_yields_the_body_as_it_is_sent() -> None:
    GATE.clear()
    with Client(streaming) as client, client.stream("GET", "/") as response:
        assert response.status == 200
        assert response.header("transfer-encoding") == "chunked"
        pieces = response.iter_bytes()
        assert next(pieces) == b"part 0;"  # while the app still waits: read as it came
        GATE.set()
        assert list(pieces) == [b"part 1;"]


def test_lifespan_runs_around_the_block_in_order() -> None:
    events: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                events.append(str(message["type"]))
                await send({"type": f"{message['type']}.complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        events.append("request")
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    with Client(app) as client:
        assert events == ["lifespan.startup"]
        assert client.get("/").status == 204
    assert events == ["lifespan.startup", "request", "lifespan.shutdown"]


def test_strict_violation_is_a_500_naming_the_rule() -> None:
    with Client(broken_contract.body_first) as client:
        response = client.get("/")
        assert response.status == 500
        assert "http.response.start" in response.text
        assert "ASGI HTTP spec" in response.text
        assert len(client.errors) == 1
        assert "ASGI http" in client.errors[0]
    with Client(broken_contract.returns_str) as client:
        response = client.get("/")
        assert response.status == 500
        assert "WSGI" in response.text
        assert client.errors


def test_settings_reach_the_server_code() -> None:
    with Client(echo, max_body_size=4) as client:
        assert client.post("/", body=b"too long").status == 413


def test_base_url_sets_the_host() -> None:
    async def host(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        value = dict(scope["headers"])[b"host"]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": value})

    with Client(host, base_url="http://example.org:8080") as client:
        assert client.get("/").body == b"example.org:8080"
    with pytest.raises(ValueError, match="base_url"):
        Client(host, base_url="ftp://example.org")


SHARED_REQUESTS: list[tuple[str, str, Any]] = [
    ("POST", "/items", {"name": "pen", "price": 2.0, "tags": ["a"]}),
    ("GET", "/stream?n=4", None),
    ("GET", "/state", None),
    ("GET", "/teapot", None),
    ("GET", "/nowhere", None),
]
FASTAPI_REQUESTS = [("GET", "/items/7?q=x", None), ("GET", "/items/0", None)]
STARLETTE_REQUESTS = [("GET", "/users/5?q=x", None)]


def answers_over_sockets(url: str, requests: list[tuple[str, str, Any]]) -> list[Any]:
    with httpx.Client(base_url=url, timeout=10) as http:
        return [
            (r.status_code, r.headers.get("content-type"), r.content)
            for r in (http.request(m, p, json=j) for m, p, j in requests)
        ]


def answers_in_process(client: Client, requests: list[tuple[str, str, Any]]) -> list[Any]:
    return [
        (r.status, r.header("content-type"), r.body)
        for r in (client.request(m, p, json=j) for m, p, j in requests)
    ]


@pytest.mark.parametrize(
    ("app", "own"),
    [(starlette_app, STARLETTE_REQUESTS), (fastapi_app, FASTAPI_REQUESTS)],
    ids=["starlette", "fastapi"],
)
def test_asgi_frameworks_answer_as_when_served(app: Any, own: list[Any]) -> None:
    requests = SHARED_REQUESTS + own
    with serve(app, strict=True) as running:
        served = answers_over_sockets(running.url, requests)
    with Client(app) as client:
        assert answers_in_process(client, requests) == served
        assert client.errors == []
    assert [status for status, _, _ in served].count(200) >= 2  # not only errors compared


def test_flask_answers_as_when_served() -> None:
    requests: list[tuple[str, str, Any]] = [
        ("GET", "/", None),
        ("GET", "/users/ada?q=1", None),
        ("POST", "/items", {"name": "pen", "n": 1}),
        ("POST", "/items", {"name": 3}),
        ("GET", "/nowhere", None),
    ]
    with serve_wsgi(flask_app) as running:
        served = answers_over_sockets(running.url, requests)
    with Client(flask_app) as client:
        assert answers_in_process(client, requests) == served


hello_client = client_fixture(echo)


def test_client_fixture(hello_client: Client) -> None:
    assert hello_client.get("/f").status == 200


async def ws_echo(scope: Scope, receive: Receive, send: Send) -> None:
    """Refuses /no, closes with 4001 on 'bye', else echoes text and reverses bytes."""
    if scope["type"] != "websocket":
        return
    await receive()  # websocket.connect
    if scope["path"] == "/no":
        await send({"type": "websocket.close", "code": 1000})
        return
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text == "bye":
            await send({"type": "websocket.close", "code": 4001, "reason": "asked to"})
            return
        if text is not None:
            await send({"type": "websocket.send", "text": f"echo {text}"})
        else:
            data = bytes(message["bytes"])  # type: ignore[arg-type]
            await send({"type": "websocket.send", "bytes": data[::-1]})


def test_websocket_echo_and_close() -> None:
    with Client(ws_echo) as client:
        with client.websocket_connect("/ws") as ws:
            ws.send_text("hi")
            assert ws.receive_text() == "echo hi"
            ws.send_bytes(b"abc")
            assert ws.receive_bytes() == b"cba"
        ws = client.websocket_connect("/ws")
        ws.send_text("bye")
        with pytest.raises(WebSocketClosed) as closed:
            ws.receive_text()
        assert (closed.value.code, closed.value.reason) == (4001, "asked to")
        ws.close()
        with pytest.raises(WebSocketRejected) as rejected:
            client.websocket_connect("/no")
        assert rejected.value.status == 403
        assert client.errors == []


def test_an_app_exception_is_a_500_and_an_error_line() -> None:
    async def boom(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            raise ValueError("boom")

    with Client(boom) as client:
        assert client.get("/x").status == 500
        assert client.errors == ["Exception in ASGI app for GET /x: ValueError: boom"]
        assert client.get("/x").status == 500
        assert len(client.errors) == 1  # the last request's lines only


def test_a_wsgi_bodys_close_has_run_when_a_request_returns() -> None:
    """PEP 3333's close() is part of the call: it runs before the exchange is finished, so
    the client (and a server's drain) never counts a request done before it."""
    closed: list[bool] = []

    class Body:
        def __iter__(self) -> Iterator[bytes]:
            yield b"hi\n"

        def close(self) -> None:
            closed.append(True)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Body:
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "3")])
        return Body()

    with Client(app) as client:
        for _ in range(100):
            closed.clear()
            assert client.get("/").body == b"hi\n"
            assert closed == [True]
