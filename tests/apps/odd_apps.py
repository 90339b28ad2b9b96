"""Apps the CLI must refuse or be told about: WSGI, an unknowable signature, lifespan failures.

Each is named for what it is; tests/e2e/test_cli.py and test_lifespan.py serve them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rootserve.types import Receive, Scope, Send

__all__ = [
    "no_lifespan",
    "not_callable",
    "raising_startup",
    "refused_startup",
    "star_args",
    "wsgi_app",
]

not_callable = 42


def wsgi_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"wsgi"]


async def _hello(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello"})


def star_args(*args: Any) -> Any:
    """ASGI in fact, but its signature says nothing: `--interface asgi` is needed."""
    return _hello(*args)


async def no_lifespan(scope: Scope, receive: Receive, send: Send) -> None:
    """An app that does not speak lifespan: it raises on any other scope type."""
    if scope["type"] != "http":
        raise RuntimeError(f"unsupported scope type {scope['type']!r}")
    await _hello(scope, receive, send)


async def refused_startup(scope: Scope, receive: Receive, send: Send) -> None:
    """Lifespan startup reports failure with a message."""
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "database unreachable"})
        return
    await _hello(scope, receive, send)


async def raising_startup(scope: Scope, receive: Receive, send: Send) -> None:
    """Lifespan startup raises before answering."""
    if scope["type"] == "lifespan":
        await receive()
        raise ValueError("config file missing")
    await _hello(scope, receive, send)
