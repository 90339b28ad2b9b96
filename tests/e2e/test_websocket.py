"""WebSocket sessions end to end with the `websockets` client against a served ASGI app.

The apps are in tests/apps/ws_apps.py; each records what it received under a token, and
`wait_done(token)` waits (bounded) for its call to end before a test looks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from tests.apps import ws_apps
from tests.apps.ws_apps import CALLS, wait_done
from tests.helpers import Running, serve
from websockets.asyncio.client import connect as aconnect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from rootserve.config import Config
from rootserve.server.worker import Server
from rootserve.supervisor.sockets import bind_all

TIMEOUT = 10


def ws(running: Running, path: str, **kwargs: Any) -> ClientConnection:
    kwargs.setdefault("open_timeout", TIMEOUT)
    kwargs.setdefault("close_timeout", TIMEOUT)
    return connect(f"ws://127.0.0.1:{running.port}{path}", proxy=None, **kwargs)


def token() -> str:
    return uuid.uuid4().hex


@pytest.fixture(scope="module")
def server() -> Iterator[Running]:
    with serve(ws_apps.app, ws_max_size=64 * 1024) as running:
        yield running


# -- messages ----------------------------------------------------------------------------


def test_text_and_binary_echo(server: Running):
    t = token()
    with ws(server, f"/echo?token={t}") as client:
        client.send("héllo")
        assert client.recv(TIMEOUT) == "héllo"
        client.send(b"\x00\x01\xff")
        assert client.recv(TIMEOUT) == b"\x00\x01\xff"
        client.send("")
        assert client.recv(TIMEOUT) == ""
    seen = wait_done(t)
    assert seen[:3] == [
        {"type": "websocket.receive", "text": "héllo"},
        {"type": "websocket.receive", "bytes": b"\x00\x01\xff"},
        {"type": "websocket.receive", "text": ""},
    ]


def test_fragmented_message_arrives_whole(server: Running):
    with ws(server, "/echo") as client:
        client.send(["frag", "ments", " joined"])
        assert client.recv(TIMEOUT) == "fragments joined"
        client.send([b"ab", b"cd"])
        assert client.recv(TIMEOUT) == b"abcd"


def test_scope(server: Running):
    with ws(server, "/scope?x=1%202", subprotocols=["chat.v1", "chat.v2"]) as client:
        scope = json.loads(client.recv(TIMEOUT))
        assert client.subprotocol == "chat.v2"
        assert client.response.headers["x-extra"] == "yes"
    assert scope["type"] == "websocket"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert (scope["http_version"], scope["scheme"]) == ("1.1", "ws")
    assert (scope["path"], scope["raw_path"], scope["root_path"]) == ("/scope", "/scope", "")
    assert scope["query_string"] == "x=1%202"
    assert scope["subprotocols"] == ["chat.v1", "chat.v2"]
    assert scope["extensions"] == {"websocket.http.response": {}}
    assert scope["client"][0] == "127.0.0.1"
    assert scope["server"] == ["127.0.0.1", server.port]
    assert "method" not in scope
    headers = dict(scope["headers"])
    assert headers["upgrade"] == "websocket"
    assert headers["sec-websocket-protocol"] == "chat.v1, chat.v2"


def test_no_subprotocol_offered(server: Running):
    with ws(server, "/scope") as client:
        assert json.loads(client.recv(TIMEOUT))["subprotocols"] == []
        assert client.subprotocol is None
        assert "sec-websocket-protocol" not in client.response.headers


def test_scope_root_path_and_lifespan_state():
    # As for http: a proxy strips the prefix, and the scope's path has it again.
    with (
        serve(ws_apps.lifespan_app, root_path="/mount") as running,
        ws(running, "/scope") as client,
    ):
        scope = json.loads(client.recv(TIMEOUT))
    assert (scope["path"], scope["root_path"]) == ("/mount/scope", "/mount")
    assert scope["state"] == {"greeting": "hello"}


def test_compression_negotiated_and_working(server: Running):
    big = "compress me " * 2000
    with ws(server, "/echo") as client:
        assert "permessage-deflate" in client.response.headers["sec-websocket-extensions"]
        client.send(big)
        assert client.recv(TIMEOUT) == big


def test_compression_off():
    with serve(ws_apps.app, ws_per_message_deflate=False) as running, ws(running, "/echo") as c:
        assert "sec-websocket-extensions" not in c.response.headers
        c.send("plain")
        assert c.recv(TIMEOUT) == "plain"


def test_no_compression_when_not_offered(server: Running):
    with ws(server, "/echo", compression=None) as client:
        assert "sec-websocket-extensions" not in client.response.headers
        client.send("plain")
        assert client.recv(TIMEOUT) == "plain"


# -- answers before the session ----------------------------------------------------------


def test_denial_response(server: Running):
    t = token()
    with pytest.raises(InvalidStatus) as caught:
        ws(server, f"/deny?token={t}")
    response = caught.value.response
    assert response.status_code == 403
    assert response.headers["x-reason"] == "no entry"
    assert response.body == b"go away"
    assert wait_done(t) == [{"type": "websocket.disconnect", "code": 1006, "reason": ""}]


def test_close_before_accept_is_403(server: Running):
    t = token()
    with pytest.raises(InvalidStatus) as caught:
        ws(server, f"/close-first?token={t}")
    assert caught.value.response.status_code == 403
    assert wait_done(t)[0]["type"] == "websocket.disconnect"


@pytest.mark.parametrize("path", ["/raise-before", "/bad-subprotocol"])
def test_app_failure_before_accept_is_500(server: Running, path: str):
    with pytest.raises(InvalidStatus) as caught:
        ws(server, path)
    assert caught.value.response.status_code == 500


def test_app_raising_after_accept_closes_1011(server: Running):
    with ws(server, "/raise-after") as client:
        client.send("trigger")
        with pytest.raises(ConnectionClosed):
            client.recv(TIMEOUT)
    assert client.close_code == 1011


def test_app_returning_closes_1000(server: Running):
    with ws(server, "/return-open") as client:
        assert client.recv(TIMEOUT) == "bye"
        with pytest.raises(ConnectionClosed):
            client.recv(TIMEOUT)
    assert client.close_code == 1000


# -- closing -------------------------------------------------------------------------------


def test_server_closes_with_code_and_reason(server: Running):
    t = token()
    with ws(server, f"/echo?token={t}") as client:
        client.send("close 4001 see you")
        with pytest.raises(ConnectionClosed):
            client.recv(TIMEOUT)
    assert (client.close_code, client.close_reason) == (4001, "see you")
    assert wait_done(t)[-1] == {"type": "websocket.disconnect", "code": 4001, "reason": "see you"}


def test_client_closes_with_code_and_reason(server: Running):
    t = token()
    with ws(server, f"/wait?token={t}") as client:
        assert client.recv(TIMEOUT) == "ready"
        client.close(4002, "bye now")
    assert wait_done(t) == [{"type": "websocket.disconnect", "code": 4002, "reason": "bye now"}]


def test_client_drops_connection_is_1006(server: Running):
    t = token()
    with ws(server, f"/wait?token={t}") as client:
        assert client.recv(TIMEOUT) == "ready"
        client.socket.shutdown(socket.SHUT_RDWR)  # no close frame
        assert wait_done(t) == [{"type": "websocket.disconnect", "code": 1006, "reason": ""}]


def test_message_over_max_size_closes_1009_and_server_goes_on(server: Running):
    t = token()
    with ws(server, f"/echo?token={t}") as client:
        client.send(b"x" * (64 * 1024 + 1))
        with pytest.raises(ConnectionClosed):
            client.recv(TIMEOUT)
    assert client.close_code == 1009
    assert wait_done(t)[-1]["code"] == 1009
    with ws(server, "/echo") as client:
        client.send("still here")
        assert client.recv(TIMEOUT) == "still here"


# -- many sessions, and shutdown -----------------------------------------------------------


def test_200_concurrent_sessions(server: Running):
    async def session(n: int) -> list[str]:
        uri = f"ws://127.0.0.1:{server.port}/echo"
        async with aconnect(uri, proxy=None, open_timeout=TIMEOUT) as client:
            answers = []
            for i in range(5):
                await client.send(f"{n}-{i}")
                answers.append(await client.recv())
            return answers

    async def main() -> list[list[str]]:
        return await asyncio.wait_for(asyncio.gather(*(session(n) for n in range(200))), 30)

    results = asyncio.run(main())
    assert results == [[f"{n}-{i}" for i in range(5)] for n in range(200)]


@pytest.mark.parametrize(("restart", "code"), [(False, 1001), (True, 1012)])
def test_shutdown_closes_open_sessions_with_going_away_or_restart(restart: bool, code: int):
    tokens = [token() for _ in range(3)]
    with serve(ws_apps.app) as running, contextlib.ExitStack() as stack:
        clients = [stack.enter_context(ws(running, f"/wait?token={t}")) for t in tokens]
        for client in clients:
            assert client.recv(TIMEOUT) == "ready"
        running.server.request_stop(restart=restart)
        for client in clients:
            with pytest.raises(ConnectionClosed):
                client.recv(TIMEOUT)
            assert client.close_code == code
        for t in tokens:
            assert wait_done(t)[-1]["code"] == code
        assert running.server.stopped.wait(TIMEOUT)


# -- when there is no switch ---------------------------------------------------------------


def test_ws_off_answers_the_handshake_as_plain_http():
    before = CALLS["http"]
    with serve(ws_apps.app, ws="off") as running:
        with pytest.raises(InvalidStatus) as caught:
            ws(running, "/echo")
        assert caught.value.response.status_code == 200
        assert json.loads(caught.value.response.body) == {"type": "http", "path": "/echo"}
        # The connection went on as HTTP: a plain request on it still works.
        assert httpx.get(running.url + "/after").json()["path"] == "/after"
    assert CALLS["http"] == before + 2


def test_wsgi_app_gets_the_handshake_as_a_plain_request():
    seen: list[str] = []

    def wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.append(environ.get("HTTP_UPGRADE", ""))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"plain"]

    config = Config(host="127.0.0.1", port=0, access_log=False)
    sockets = bind_all(["127.0.0.1:0"], 16)
    server = Server(config, wsgi_app, sockets, interface="wsgi")
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        assert server.started.wait(TIMEOUT)
        running = Running("127.0.0.1", sockets[0].getsockname()[1], server)
        with pytest.raises(InvalidStatus) as caught:
            ws(running, "/")
    finally:
        server.request_stop()
        thread.join(TIMEOUT)
        sockets[0].close()
    assert caught.value.response.status_code == 200
    assert caught.value.response.body == b"plain"
    assert seen == ["websocket"]
