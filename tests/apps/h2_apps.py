"""An ASGI app and a WSGI app for the HTTP/2 command-line tests (tests/e2e/test_http2_cli.py):
each answers `VERSION METHOD PATH BODY-BYTES CLIENT-HOST`, where VERSION is the protocol the
app was told (ASGI `http_version`, WSGI `SERVER_PROTOCOL`), or on /echo the body itself."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rootserve.types import Receive, Scope, Send

__all__ = ["asgi_app", "wsgi_app"]


async def asgi_app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    client = scope["client"][0] if scope.get("client") else "-"
    answer = f"{scope['http_version']} {scope['method']} {scope['path']} {len(body)} {client}"
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain")],
        }
    )
    await send(
        {
            "type": "http.response.body",
            "body": body if scope["path"] == "/echo" else answer.encode(),
        }
    )


def wsgi_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    body = environ["wsgi.input"].read()
    path = environ["PATH_INFO"]
    answer = (
        f"{environ['SERVER_PROTOCOL']} {environ['REQUEST_METHOD']} {path} {len(body)} "
        f"{environ.get('REMOTE_ADDR', '-')}"
    )
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body if path == "/echo" else answer.encode()]
