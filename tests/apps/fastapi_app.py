"""A FastAPI app written as its docs show, served unchanged by rootserve.

Path and query parameters, a pydantic-validated JSON body, a StreamingResponse,
BackgroundTasks, lifespan state, the client address, HTTPException and a custom
exception handler.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import BackgroundTasks, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel

__all__ = ["BACKGROUND", "Item", "Teapot", "app"]

# token -> (release, done), as in starlette_app: the task waits for the test to hold the
# response before it finishes.
BACKGROUND: dict[str, tuple[threading.Event, threading.Event]] = {}


class Item(BaseModel):
    name: str
    price: float
    tags: list[str] = []


class Teapot(Exception):
    pass


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
    yield {"greeting": "hello from fastapi lifespan"}


app = FastAPI(lifespan=lifespan)


@app.exception_handler(Teapot)
async def on_teapot(request: Request, exc: Teapot) -> JSONResponse:
    return JSONResponse({"detail": "short and stout"}, status_code=418)


@app.get("/items/{item_id}")
async def read_item(item_id: int, q: str | None = None) -> dict[str, Any]:
    if item_id == 0:
        raise HTTPException(status_code=404, detail="item 0 does not exist")
    return {"item_id": item_id, "q": q}


@app.post("/items", status_code=201)
async def create_item(item: Item) -> dict[str, Any]:
    return {"name": item.name, "price_with_tax": round(item.price * 1.2, 2), "tags": item.tags}


@app.get("/stream")
async def stream(n: int = 3) -> StreamingResponse:
    async def pieces() -> AsyncIterator[bytes]:
        for i in range(n):
            yield f"piece {i}\n".encode()

    return StreamingResponse(pieces(), media_type="text/plain")


def _wait_then_finish(token: str) -> None:
    release, done = BACKGROUND[token]
    if release.wait(10):
        done.set()


@app.post("/background/{token}", status_code=202)
async def background(token: str, tasks: BackgroundTasks) -> dict[str, str]:
    tasks.add_task(_wait_then_finish, token)
    return {"status": "accepted"}


@app.get("/state")
async def state(request: Request) -> dict[str, str]:
    return {"greeting": request.state.greeting}


@app.get("/client")
async def client(request: Request) -> dict[str, Any]:
    assert request.client is not None
    return {"host": request.client.host, "port": request.client.port}


@app.get("/teapot")
async def teapot() -> None:
    raise Teapot()
