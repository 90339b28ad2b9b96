"""A Starlette app written as its docs show, served unchanged by rootserve.

Routes with path parameters, JSON in and out, a streamed body, a background task, lifespan
state, the client address, HTTPException and a custom exception handler.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

__all__ = ["BACKGROUND", "Teapot", "app"]

# token -> (release, done): the test releases the task once it holds the response, and
# waits for `done`; so the task provably runs after the response was sent.
BACKGROUND: dict[str, tuple[threading.Event, threading.Event]] = {}


class Teapot(Exception):
    pass


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
    yield {"greeting": "hello from starlette lifespan"}


async def user(request: Request) -> Response:
    user_id = int(request.path_params["user_id"])
    return JSONResponse({"user_id": user_id, "q": request.query_params.get("q")})


async def create(request: Request) -> Response:
    data = await request.json()
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        raise HTTPException(status_code=422, detail="name must be a string")
    return JSONResponse({"created": data["name"], "size": len(data)}, status_code=201)


async def stream(request: Request) -> Response:
    count = int(request.query_params.get("n", "3"))

    async def pieces() -> AsyncIterator[bytes]:
        for n in range(count):
            yield f"piece {n}\n".encode()

    return StreamingResponse(pieces(), media_type="text/plain")


def _wait_then_finish(token: str) -> None:
    release, done = BACKGROUND[token]
    if release.wait(10):
        done.set()


async def background(request: Request) -> Response:
    token = request.path_params["token"]
    task = BackgroundTask(_wait_then_finish, token)
    return PlainTextResponse("accepted", status_code=202, background=task)


async def state(request: Request) -> Response:
    return JSONResponse({"greeting": request.state.greeting})


async def client(request: Request) -> Response:
    assert request.client is not None
    return JSONResponse({"host": request.client.host, "port": request.client.port})


async def teapot(request: Request) -> Response:
    raise Teapot()


async def on_teapot(request: Request, exc: Exception) -> Response:
    return PlainTextResponse("short and stout", status_code=418)


app = Starlette(
    routes=[
        Route("/users/{user_id:int}", user),
        Route("/items", create, methods=["POST"]),
        Route("/stream", stream),
        Route("/background/{token}", background, methods=["POST"]),
        Route("/state", state),
        Route("/client", client),
        Route("/teapot", teapot),
    ],
    exception_handlers={Teapot: on_teapot},
    lifespan=lifespan,
)
