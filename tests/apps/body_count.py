"""An ASGI app and a WSGI app that read the whole request body and answer its size.

A GET answers "ok"; any other method answers the number of body bytes it read, as text.
tests/e2e/test_slow_body.py serves them (`tests.apps.body_count:asgi_app` with
`--lifespan off`, and `tests.apps.body_count:wsgi_app`) to clients that send bodies slowly.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rootserve.types import Receive, Scope, Send

__all__ = ["asgi_app", "wsgi_app"]

READ_SIZE = 64 * 1024


async def asgi_app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return  # the client left, or the server gave up on the body: no one to answer
        size += len(message.get("body", b""))
        if not message.get("more_body", False):
            break
    answer = b"ok" if scope["method"] == "GET" else b"%d" % size
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain")],
        }
    )
    await send({"type": "http.response.body", "body": answer})


def wsgi_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    stream = environ["wsgi.input"]
    size = 0
    while chunk := stream.read(READ_SIZE):  # wsgi.input_terminated: b"" at the body's end
        size += len(chunk)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok" if environ["REQUEST_METHOD"] == "GET" else b"%d" % size]
