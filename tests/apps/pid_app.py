"""An ASGI app that answers with the pid of the process that served the request."""

from __future__ import annotations

import asyncio
import os

from rootserve.types import Receive, Scope, Send

SLOW_SECONDS = 1.0  # how long /slow takes to answer


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/slow":
        await asyncio.sleep(SLOW_SECONDS)
    body = str(os.getpid()).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


async def failing_startup(scope: Scope, receive: Receive, send: Send) -> None:
    """Its lifespan startup fails: every worker exits before it is ready."""
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no database"})
        return
    await app(scope, receive, send)
