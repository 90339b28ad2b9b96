"""WebSocket endpoints written as the FastAPI and Starlette docs show, served unchanged.

FastAPI: a `@app.websocket` route with a path parameter, a query parameter and a dependency
(`Depends`) that reads a header and may refuse the connection before it is accepted.
Starlette: a `WebSocketEndpoint` class with `encoding = "json"` and its three hooks.
"""

from __future__ import annotations

import threading
from typing import Annotated, Any

from fastapi import Depends, FastAPI, WebSocket, WebSocketDisconnect, WebSocketException, status
from starlette.applications import Starlette
from starlette.endpoints import WebSocketEndpoint
from starlette.routing import WebSocketRoute

__all__ = ["fastapi_app", "starlette_app", "wait_for_disconnect"]

_DISCONNECTS: list[tuple[str, int]] = []  # (who, close code) as the endpoints saw them
_SEEN = threading.Condition()


def _disconnected(who: str, code: int) -> None:
    with _SEEN:
        _DISCONNECTS.append((who, code))
        _SEEN.notify_all()


def wait_for_disconnect(who: str, code: int, timeout: float = 10.0) -> None:
    """Wait until the endpoint of `who` has seen a disconnect with `code`."""
    with _SEEN:
        assert _SEEN.wait_for(lambda: (who, code) in _DISCONNECTS, timeout), _DISCONNECTS


fastapi_app = FastAPI()


async def room_token(websocket: WebSocket) -> str:
    token = websocket.headers.get("x-token")
    if token != "secret":
        raise WebSocketException(code=status.WS_1008_POLICY_VIOLATION)
    return token


@fastapi_app.websocket("/rooms/{room}")
async def room(
    websocket: WebSocket,
    room: str,
    token: Annotated[str, Depends(room_token)],
    nickname: str = "anonymous",
) -> None:
    await websocket.accept()
    await websocket.send_json({"room": room, "nickname": nickname})
    try:
        while True:
            text = await websocket.receive_text()
            await websocket.send_text(f"{nickname}@{room}: {text}")
    except WebSocketDisconnect as exc:
        _disconnected("fastapi", exc.code)


class Counter(WebSocketEndpoint):
    encoding = "json"

    async def on_connect(self, websocket: Any) -> None:
        await websocket.accept()
        websocket.state.count = 0

    async def on_receive(self, websocket: Any, data: Any) -> None:
        websocket.state.count += 1
        await websocket.send_json({"count": websocket.state.count, "echo": data})

    async def on_disconnect(self, websocket: Any, close_code: int) -> None:
        _disconnected("starlette", close_code)


starlette_app = Starlette(routes=[WebSocketRoute("/counter", Counter)])
