"""Apps for the hostile-client tests (tests/e2e/test_hostile_clients.py), served by the
`rootserve` command so that the server's memory can be read from /proc.

`asgi_app`: GET / answers "ok" (any body is read first); GET /big streams BIG_SIZE bytes
in PIECE-sized body messages and counts, in `sent`, the bytes the server has taken from it
(each `send` returns once the server has taken the piece, and waits while the connection's
write buffer is full); GET /progress answers that count, so a test can see from outside
whether the /big app has come to a stop. GET /hang never answers and never reads
again (an app stuck on a lock or a remote call), and GET /hung answers how many requests
are stuck so. GET /boom... raises an exception that quotes its path (ASGI only).
`wsgi_app` does the rest on app threads.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable, Iterator
from typing import Any

from rootserve.types import Receive, Scope, Send

__all__ = ["BIG_SIZE", "PIECE", "asgi_app", "wsgi_app"]

PIECE = 64 * 1024
BIG_SIZE = 10 * 1024 * 1024  # a 10 MiB response: 160 pieces

_sent = [0]  # bytes of /big taken by the server so far, across requests
_hung = [0]  # requests to /hang, stuck for good
_lock = threading.Lock()
_never = threading.Event()  # never set: what a /hang of the WSGI app waits on


def _count(size: int) -> None:
    with _lock:
        _sent[0] += size


async def asgi_app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    while True:  # read whatever body there is: the tests' GETs have none
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        if not message.get("more_body", False):
            break
    path = scope["path"]
    headers = [(b"content-type", b"text/plain")]
    if path == "/big":
        headers.append((b"content-length", b"%d" % BIG_SIZE))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        piece = b"b" * PIECE
        for _ in range(BIG_SIZE // PIECE):
            await send({"type": "http.response.body", "body": piece, "more_body": True})
            _count(PIECE)
        await send({"type": "http.response.body", "body": b""})
        return
    if path.startswith("/boom"):
        # As apps do: an exception whose message quotes the request (its decoded path).
        raise ValueError(f"no route for {path}")
    if path == "/hang":
        _hung[0] += 1
        await asyncio.Event().wait()  # never set: only a cancellation ends this
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": _small(path)})


def _small(path: str) -> bytes:
    if path == "/progress":
        return b"%d" % _sent[0]
    if path == "/hung":
        return b"%d" % _hung[0]
    return b"ok"


def _big() -> Iterator[bytes]:
    piece = b"b" * PIECE
    for _ in range(BIG_SIZE // PIECE):
        yield piece
        _count(PIECE)  # the server asks for the next piece only once it took this one


def wsgi_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    path = environ["PATH_INFO"]
    if path == "/big":
        headers = [("Content-Type", "text/plain"), ("Content-Length", str(BIG_SIZE))]
        start_response("200 OK", headers)
        return _big()
    if path == "/hang":
        with _lock:
            _hung[0] += 1
        _never.wait()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [_small(path)]
