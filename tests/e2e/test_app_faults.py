"""App faults over real sockets (issue 15), the ones tests/e2e/test_http_server.py and
test_wsgi_server.py leave out: an exception before or after the answer began, a missing
answer and a failing lifespan startup are tested there. Here: an ASGI app that answers
without reading a large body, wrong return types (an ASGI app that returns a value, a WSGI
app that returns str, None or an int), and an app stuck for good after its client left.
Each checks the documented answer, and that the worker serves the next request.

The stuck apps run in a `rootserve` subprocess (tests/e2e/hostile_support.py), since a
graceful stop that never ends must be seen from outside, with --timeout-graceful lowered
to GRACEFUL_SECONDS (default 30 s). The others serve in a thread (tests.helpers.serve,
tests.wsgi.support.serve_wsgi).
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Iterable
from typing import Any

import httpx
import pytest
from tests.e2e.hostile_support import raw_server, timed_get
from tests.helpers import Peer, serve
from tests.wsgi.support import serve_wsgi

from rootserve.types import Receive, Scope, Send

KIB = 1024
MIB = 1024 * KIB
WAIT = 10.0
GRACEFUL_SECONDS = 2.0
STOP_MARGIN_SECONDS = 5.0  # past the graceful time: cancelling, closing, exiting
APP = {"asgi": "tests.apps.hostile:asgi_app", "wsgi": "tests.apps.hostile:wsgi_app"}


@pytest.fixture
def errors(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch):
    """Records of rootserve's loggers (the CLI's setup_logging turns propagation off)."""
    monkeypatch.setattr(logging.getLogger("rootserve"), "propagate", True)
    caplog.set_level(logging.INFO, logger="rootserve")
    return caplog


def error_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "rootserve.error" and r.levelno >= logging.ERROR
    ]


def get(path: str = "/", *headers: str, method: str = "GET", body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: test", *headers]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join([*lines, "", ""])).encode() + body


# -- an ASGI app that answers without reading its body --------------------------------------


async def unread(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers at once, reading nothing of the request's body."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": scope["path"].encode()})


@pytest.mark.parametrize("size", [100 * KIB, 2 * MIB], ids=["100KiB", "2MiB"])
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_body_the_asgi_app_does_not_read_does_not_stall_the_connection(size: int, framing: str):
    """The answer goes out; then the connection either carries the next request (the
    server read and dropped the body) or says `Connection: close` and closes: never a
    stall, and the unread body is never taken for the next request."""
    body = b"x" * size
    if framing == "chunked":
        head = b"POST /first HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        payload = head + b"%x\r\n" % size + body + b"\r\n0\r\n\r\n"
    else:
        payload = get("/first", method="POST", body=body)
    with serve(unread) as running, Peer(running.port, timeout=5.0) as peer:
        sent = peer.send_until_stalled(payload, 2.0)
        reply = peer.response()
        assert (reply.status, reply.body) == (200, b"/first")
        if reply.header("connection") == "close":
            assert peer.at_eof()
        else:
            peer.send(payload[sent:] + get("/next"))
            reply = peer.response()
            assert (reply.status, reply.body) == (200, b"/next")
        assert httpx.get(running.url + "/after", timeout=WAIT).text == "/after"


# -- wrong return types ---------------------------------------------------------------------


def test_an_asgi_app_that_returns_a_value_is_logged_and_its_answer_stands(errors):
    async def app(scope: Scope, receive: Receive, send: Send) -> Any:
        if scope["type"] != "http":
            return None
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"answered"})
        return 42

    with serve(app) as running, Peer(running.port) as peer:
        for _ in range(2):  # the same connection goes on
            peer.send(get("/"))
            reply = peer.response()
            assert (reply.status, reply.body) == (200, b"answered")
    assert error_lines(errors) == ["ASGI app returned 42; an ASGI app must return None"] * 2


def test_an_asgi_app_that_returns_a_value_without_answering_gets_500(errors):
    async def app(scope: Scope, receive: Receive, send: Send) -> Any:
        if scope["type"] != "http":
            return None
        if scope["path"] == "/next":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"next"})
            return None
        return {"status": 200, "body": "a framework's habit"}

    with serve(app) as running:
        with Peer(running.port) as peer:
            peer.send(get("/"))
            reply = peer.response()
            assert (reply.status, reply.header("connection")) == (500, "close")
            assert peer.at_eof()
        assert httpx.get(running.url + "/next", timeout=WAIT).text == "next"
    lines = error_lines(errors)
    assert any("must return None" in line for line in lines), lines
    assert "ASGI app returned without starting a response" in lines


WRONG_RETURNS: dict[str, Any] = {"str": "hello", "None": None, "int": 42, "float": 1.5}


@pytest.mark.parametrize("value", WRONG_RETURNS.values(), ids=WRONG_RETURNS.keys())
def test_a_wsgi_app_that_returns_no_iterable_of_bytes_gets_500(value: Any, errors):
    """PEP 3333: the app returns an iterable of bytes. A str (an iterable of str), None or
    a number is a 500 with a log line, and the app's thread serves the next request."""

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        if environ["PATH_INFO"] == "/next":
            return [b"next"]
        return value  # type: ignore[no-any-return]

    with serve_wsgi(app, threads=1) as served:
        with Peer(served.port) as peer:
            peer.send(get("/"))
            reply = peer.response()
            assert reply.status == 500
            assert b"hello" not in reply.body
            if reply.header("connection") == "close":
                assert peer.at_eof()
        assert httpx.get(served.url + "/next", timeout=WAIT).text == "next"
    assert error_lines(errors)


# -- an app stuck for good after its client left -------------------------------------------


def _wait_hung(port: int, count: int) -> None:
    deadline = time.monotonic() + WAIT
    while timed_get(port, "/hung")[1].partition(b"\r\n\r\n")[2] != b"%d" % count:
        assert time.monotonic() < deadline, "the app never reached /hang"
        time.sleep(0.02)  # noqa: sleep-ok (polls another process's app)


@pytest.mark.parametrize("interface", ["asgi", "wsgi"])
def test_an_app_stuck_after_its_client_left_holds_neither_the_worker_nor_the_stop(
    interface: str,
):
    """Two clients ask for /hang, which never answers, and leave. The worker goes on
    serving others (a WSGI app keeps its other app threads: --threads 4), and a graceful
    stop ends within --timeout-graceful (lowered to GRACEFUL_SECONDS) and a margin, with
    exit code 0 and a warning that names the requests it gave up on."""
    flags = ("--no-access-log", "--lifespan", "off", "--threads", "4")
    graceful = ("--timeout-graceful", str(GRACEFUL_SECONDS))
    with raw_server(APP[interface], *flags, *graceful) as server:
        port = server.port
        for n in (1, 2):
            with Peer(port) as peer:
                peer.send(get("/hang"))
                _wait_hung(port, n)
        for _ in range(20):
            _, data = timed_get(port)
            assert data.startswith(b"HTTP/1.1 200 ") and data.endswith(b"\r\n\r\nok"), data
        start = time.monotonic()
        code = server.stop(signal.SIGTERM)
        took = time.monotonic() - start
    output = b"".join(server.lines).decode(errors="replace")
    print(f"\nstuck {interface} app: the stop took {took:.2f} s (graceful {GRACEFUL_SECONDS} s)")
    assert code == 0, output
    assert GRACEFUL_SECONDS - 0.1 <= took <= GRACEFUL_SECONDS + STOP_MARGIN_SECONDS, output
    assert "Cancelling 2 request(s) still running" in output
    assert "Traceback" not in output
