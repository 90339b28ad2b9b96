"""A plain ASGI 3 app that answers with what it was given, for CLI and config tests.

`GET /scope` answers the scope's JSON-safe fields; lifespan startup puts `started: true`
into the lifespan state. `make_app()` is the same app behind a factory.
"""

from __future__ import annotations

import json
from typing import Any

from rootserve.types import Receive, Scope, Send

__all__ = ["app", "make_app"]


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                scope["state"]["started"] = True
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    info: dict[str, Any] = {
        "app": "probe",
        "root_path": scope["root_path"],
        "path": scope["path"],
        "state": scope.get("state"),
    }
    body = json.dumps(info).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


def make_app() -> Any:
    async def factory_app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"made by the factory"})

    return factory_app
