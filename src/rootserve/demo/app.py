"""The built-in demo app: what `rootserve` serves when given no APP.

A plain ASGI 3 app with no framework, so it doubles as an example of the contract:
`/` a home page, `/api/info` JSON about the request, `/stream` a body sent in pieces,
`/wsgi/` a WSGI app mounted inside (served through rootserve's WSGI adapter), `/chat` a
chat room over a WebSocket (`/chat/ws`), `/inspector` the live inspector (the conversation
of every other request, as `--trace` shows it), and lifespan state (the time the app
started) shared into every request.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from rootserve import __version__
from rootserve.demo import chat
from rootserve.demo.inspector import Inspector
from rootserve.demo.wsgi_part import mounted
from rootserve.types import Receive, Scope, Send

__all__ = ["app"]

HOME = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>rootserve demo</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem}
code{background:#eee;padding:0 .2rem}</style></head>
<body><h1>rootserve is serving</h1>
<p>This page comes from the built-in demo app, a plain ASGI callable with no framework.</p>
<ul>
<li><a href="/api/info">/api/info</a>: the request as the app saw it, as JSON</li>
<li><a href="/stream">/stream</a>: a response body sent in five pieces</li>
<li><a href="/wsgi/">/wsgi/</a>: a WSGI app mounted inside, run on app threads</li>
<li><a href="/chat">/chat</a>: a chat room over a WebSocket</li>
<li><a href="/inspector">/inspector</a>: each request's conversation with the app, live</li>
</ul>
<p>Serve your own app with <code>rootserve module:app</code>.</p>
</body></html>
"""


async def _answer(send: Send, status: int, content_type: bytes, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type)],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _lifespan(scope: Scope, receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            scope["state"]["started_at"] = time.time()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def routes(scope: Scope, receive: Receive, send: Send) -> None:
    """Every page of the demo but the inspector's."""
    if scope["type"] == "lifespan":
        await _lifespan(scope, receive, send)
        return
    path = scope["path"][len(scope["root_path"]) :] or "/"
    if scope["type"] == "websocket":
        if path == "/chat/ws":
            await chat.room(scope, receive, send)
        else:
            await send({"type": "websocket.close", "code": 1000})  # answered with 403
        return
    if scope["type"] != "http":
        return
    if path == "/chat":
        await _answer(send, 200, b"text/html; charset=utf-8", chat.PAGE.encode())
    elif path == "/wsgi" or path.startswith("/wsgi/"):
        await mounted({**scope, "root_path": scope["root_path"] + "/wsgi"}, receive, send)
    elif path == "/":
        await _answer(send, 200, b"text/html; charset=utf-8", HOME.encode())
    elif path == "/api/info":
        state: dict[str, Any] = scope.get("state", {})
        started = state.get("started_at")
        info = {
            "server": f"rootserve {__version__}",
            "method": scope["method"],
            "path": scope["path"],
            "query_string": scope["query_string"].decode("latin-1"),
            "http_version": scope["http_version"],
            "client": list(scope["client"]) if scope["client"] else None,
            "headers": {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]},
            "uptime_seconds": round(time.time() - started, 3) if started else None,
        }
        body = json.dumps(info, indent=2).encode() + b"\n"
        await _answer(send, 200, b"application/json", body)
    elif path == "/stream":
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/plain; charset=utf-8")],
            }
        )
        for n in range(1, 6):
            await send({"type": "http.response.body", "body": b"piece %d\n" % n, "more_body": True})
            await asyncio.sleep(0.05)
        await send({"type": "http.response.body", "body": b"done\n"})
    else:
        await _answer(send, 404, b"text/plain; charset=utf-8", b"Not Found\n")


# The demo as served: its routes, with the live inspector at /inspector (inspector.py).
app = Inspector(routes)
