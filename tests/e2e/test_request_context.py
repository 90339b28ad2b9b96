"""Each request runs in its own copy of the context (as a task of its own would): a
contextvar an app sets while answering one request is not seen by the next one on the same
keep-alive connection (asgiref's Local, logging and tracing libraries rely on this)."""

import contextvars

import httpx
from tests.helpers import serve

from rootserve.types import Receive, Scope, Send

USER: contextvars.ContextVar[str] = contextvars.ContextVar("user", default="nobody")


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    seen = USER.get()
    if scope["path"] == "/login":
        USER.set("alice")
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": seen.encode()})


def test_a_contextvar_set_by_one_request_does_not_leak_into_the_next() -> None:
    with serve(app, lifespan="off") as running, httpx.Client(base_url=running.url) as client:
        assert client.get("/login").text == "nobody"
        # The same connection (httpx keeps it alive), the next request:
        assert client.get("/whoami").text == "nobody"
        assert client.get("/whoami").text == "nobody"


def wsgi_app(environ, start_response):  # type: ignore[no-untyped-def]
    seen = USER.get()
    if environ["PATH_INFO"] == "/login":
        USER.set("alice")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [seen.encode()]


def test_a_wsgi_app_thread_starts_each_request_with_a_fresh_context() -> None:
    from tests.wsgi.support import serve_wsgi

    with serve_wsgi(wsgi_app, threads=1) as running, httpx.Client(base_url=running.url) as client:
        assert client.get("/login").text == "nobody"
        assert client.get("/whoami").text == "nobody"  # same app thread, next request
