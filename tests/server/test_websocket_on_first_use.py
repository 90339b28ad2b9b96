"""The WebSocket runner is made at the first handshake (server/assembly.py), once, and a
server that never took a WebSocket has nothing of it to close; over a socket, the first
handshake of a fresh server works as every later one does."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.helpers import serve
from websockets.sync.client import connect

from rootserve.server.assembly import WebSocketOnFirstUse


class FakeRunner:
    def __init__(self) -> None:
        self.attached: list[Any] = []
        self.started: list[Any] = []
        self.closed = False

    def attach(self, exchange: Any) -> None:
        self.attached.append(exchange)

    def start(self, exchange: Any) -> None:
        self.started.append(exchange)

    async def aclose(self) -> None:
        self.closed = True


def test_made_once_at_first_use() -> None:
    made: list[FakeRunner] = []

    def make() -> FakeRunner:
        made.append(FakeRunner())
        return made[-1]

    lazy = WebSocketOnFirstUse(make)
    assert made == []
    asyncio.run(lazy.aclose())  # nothing made, nothing to close
    assert made == []
    lazy.attach("a")
    lazy.start("a")
    lazy.attach("b")
    assert len(made) == 1
    assert (made[0].attached, made[0].started) == (["a", "b"], ["a"])
    asyncio.run(lazy.aclose())
    assert made[0].closed


async def echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert scope["type"] == "websocket"
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})
    while (message := await receive())["type"] == "websocket.receive":
        await send({"type": "websocket.send", "text": message.get("text") or ""})


def test_the_first_handshake_of_a_fresh_server() -> None:
    with serve(echo, lifespan="off") as server:
        for _ in range(2):
            with connect(f"ws://127.0.0.1:{server.port}/") as ws:
                ws.send("hi")
                assert ws.recv(timeout=10) == "hi"
