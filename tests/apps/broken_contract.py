"""Apps that break their contract, for --strict: each answers once the way the spec forbids."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from rootserve.types import Receive, Scope, Send


async def body_first(scope: Scope, receive: Receive, send: Send) -> None:
    """ASGI: the body before the response's start."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.body", "body": b"too soon"})


async def fine(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"fine"})


def returns_str(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[Any]:
    """WSGI: str chunks instead of bytes."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    return ["not bytes"]
