"""The demo's WSGI part: a plain PEP 3333 app, mounted at /wsgi of the ASGI demo and served
through rootserve's WSGI adapter (`rootserve.wsgi.mount.WSGIMount`) on app threads."""

from __future__ import annotations

import html
import threading
from collections.abc import Iterable
from typing import Any

from rootserve.wsgi.mount import WSGIMount

__all__ = ["mounted", "wsgi_app"]


def wsgi_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    rows = "".join(
        f"<tr><td><code>{html.escape(key)}</code></td><td><code>{html.escape(str(value))}"
        "</code></td></tr>"
        for key, value in sorted(environ.items())
        if key.isupper()
    )
    page = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<title>rootserve demo: WSGI</title></head><body>"
        "<h1>A WSGI app inside the demo</h1>"
        f"<p>Called on thread <code>{html.escape(threading.current_thread().name)}</code>, "
        "not the event loop's. Its CGI-style environ:</p>"
        f"<table>{rows}</table><p><a href='/'>back</a></p></body></html>"
    ).encode()
    start_response(
        "200 OK",
        [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(page)))],
    )
    return [page]


mounted = WSGIMount(wsgi_app, threads=2)
