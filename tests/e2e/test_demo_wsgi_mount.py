"""The demo's mounted WSGI part goes through rootserve's WSGI adapter on app threads."""

import threading
import wsgiref.validate

import httpx
from tests.helpers import serve

from rootserve.demo.app import app
from rootserve.wsgi.mount import WSGIMount


def test_demo_serves_its_wsgi_part_off_the_loop() -> None:
    with serve(app) as running, httpx.Client(base_url=running.url) as client:
        page = client.get("/wsgi/some/where?x=1")
        assert page.status_code == 200
        assert "rootserve-mount" in page.text  # an app thread, not the loop's
        assert "<code>PATH_INFO</code></td><td><code>/some/where</code>" in page.text
        assert "<code>SCRIPT_NAME</code></td><td><code>/wsgi</code>" in page.text
        assert "<code>QUERY_STRING</code></td><td><code>x=1</code>" in page.text


def _echo(environ, start_response):  # type: ignore[no-untyped-def]
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    start_response("201 Created", [("Content-Type", "text/plain")])
    return [environ["REQUEST_METHOD"].encode(), b":", body]


def _stream(environ, start_response):  # type: ignore[no-untyped-def]
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"one,"
    yield b"two"


def _broken(environ, start_response):  # type: ignore[no-untyped-def]
    raise RuntimeError("boom")


def test_mount_runs_validated_apps_and_answers_500_on_errors() -> None:
    validated = {
        "/echo": WSGIMount(wsgiref.validate.validator(_echo), threads=1),
        "/stream": WSGIMount(wsgiref.validate.validator(_stream), threads=1),
        "/broken": WSGIMount(_broken, threads=1),
    }
    seen = []

    async def outer(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            return
        seen.append(threading.current_thread().name)
        await validated[scope["path"]](scope, receive, send)

    with serve(outer, lifespan="off") as running, httpx.Client(base_url=running.url) as client:
        echoed = client.post("/echo", content=b"hello")
        assert (echoed.status_code, echoed.text) == (201, "POST:hello")
        assert client.get("/stream").text == "one,two"
        assert client.get("/broken").status_code == 500
        assert client.get("/stream").status_code == 200  # and it goes on
