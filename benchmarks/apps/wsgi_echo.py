"""A WSGI app that reads the whole request body and answers it back (200, octet-stream).

With a `Content-Length` it reads exactly that many bytes; without one (a chunked request)
it reads `wsgi.input` to the end, which servers that accept chunked bodies support.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

StartResponse = Callable[..., Any]


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    stream = environ["wsgi.input"]
    length = environ.get("CONTENT_LENGTH") or ""
    body: bytes = stream.read(int(length)) if length.isdigit() else stream.read()
    start_response(
        "200 OK",
        [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(body)))],
    )
    return [body]
