"""FastAPI and Starlette WebSocket endpoints, written as their docs show, under rootserve."""

from __future__ import annotations

import json

import pytest
from tests.apps.ws_frameworks import fastapi_app, starlette_app, wait_for_disconnect
from tests.helpers import Running, serve
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

TIMEOUT = 10


def url(running: Running, path: str) -> str:
    return f"ws://127.0.0.1:{running.port}{path}"


def test_fastapi_websocket_with_dependency():
    with serve(fastapi_app, lifespan="on") as running:
        headers = {"x-token": "secret"}
        with connect(
            url(running, "/rooms/lobby?nickname=ada"), additional_headers=headers, proxy=None
        ) as client:
            assert json.loads(client.recv(TIMEOUT)) == {"room": "lobby", "nickname": "ada"}
            client.send("hi")
            assert client.recv(TIMEOUT) == "ada@lobby: hi"
            client.close(4000)
        wait_for_disconnect("fastapi", 4000)


def test_fastapi_dependency_refuses_before_accept():
    with serve(fastapi_app, lifespan="on") as running:
        with pytest.raises(InvalidStatus) as caught:
            connect(url(running, "/rooms/lobby"), proxy=None)
        # A WebSocketException before accept is a close before accept: 403 (ASGI spec).
        assert caught.value.response.status_code == 403


def test_starlette_websocket_endpoint():
    with serve(starlette_app) as running:
        with connect(url(running, "/counter"), proxy=None) as client:
            for n in (1, 2):
                client.send(json.dumps({"n": n}))
                assert json.loads(client.recv(TIMEOUT)) == {"count": n, "echo": {"n": n}}
        wait_for_disconnect("starlette", 1000)


def test_starlette_endpoint_bad_json_closes_1003():
    with serve(starlette_app) as running:
        with connect(url(running, "/counter"), proxy=None) as client:
            client.send("not json")
            with pytest.raises(ConnectionClosed):
                client.recv(TIMEOUT)
        assert client.close_code == 1003
