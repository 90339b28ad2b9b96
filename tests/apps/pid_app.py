"""An ASGI app that answers with the pid of the process that served the request."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

from rootserve.types import Receive, Scope, Send

SLOW_SECONDS = 1.0  # how long /slow takes to answer
BLOCK_SECONDS = 20.0  # how long /block holds the event loop (the supervisor acts first)
BUSY_SECONDS = 2.0  # how long the WSGI app holds its app thread
GROW_BYTES = 192 * 2**20  # what /grow adds to the worker's resident memory, and keeps
HELD: list[bytes] = []


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "websocket":  # says its pid, then waits for the close
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": str(os.getpid())})
        while (await receive())["type"] != "websocket.disconnect":
            pass
        return
    if scope["type"] != "http":
        return
    if scope["path"] == "/grow":
        HELD.append(b"x" * GROW_BYTES)  # written, so resident (not lazily zeroed pages)
    elif scope["path"] == "/slow":
        # Tests wait on this line: one write (print writes the end of line apart, and two
        # workers' lines would interleave in the shared pipe).
        sys.stderr.write(f"slow request in {os.getpid()}\n")
        sys.stderr.flush()
        await asyncio.sleep(SLOW_SECONDS)
    elif scope["path"] == "/block":
        time.sleep(BLOCK_SECONDS)  # the mistake: blocking code on the event loop
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


def wsgi_busy(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Holds its app thread: busy, not hung (the worker's loop still runs)."""
    time.sleep(BUSY_SECONDS)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]
