"""The server over real sockets: HTTP/1.1 connection management, framing, limits, timeouts,
flow control and the ASGI app contract, seen from a raw socket or httpx.

Each test serves its own small app on 127.0.0.1 port 0 (tests.helpers.serve) and waits on
conditions (events the app sets, bytes arriving, EOF), never on a guessed delay. Where a test
must outlast a server timeout, the timeout is set short and the wait is bounded.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from tests.helpers import Peer, raw_request, serve

from rootserve.config import Config
from rootserve.server.worker import Server
from rootserve.supervisor.sockets import bind_all
from rootserve.types import Receive, Scope, Send

KIB = 1024
MIB = 1024 * KIB
WAIT = 10.0  # seconds: the bound on any wait for something that should happen at once
POLL_SECONDS = 0.01  # between two looks at a condition another thread makes true
SLOW_APP_SECONDS = 0.05  # how long the /sleep endpoint takes, on purpose
STALL_CHECK_SECONDS = 0.1  # no progress for this long counts as stalled
HEADER_TIMEOUT_SECONDS = 0.2  # a short timeout_header, for the tests of it
SLOW_CONSUMER_SECONDS = 0.001  # per chunk: an app that reads slower than the client sends


def get(path: str = "/", *headers: str, method: str = "GET", version: str = "1.1") -> bytes:
    lines = [f"{method} {path} HTTP/{version}", "Host: test", *headers, "", ""]
    return "\r\n".join(lines).encode()


def wait_for(condition: Callable[[], bool], timeout: float = WAIT) -> None:
    """Poll a condition that the server's thread makes true; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(POLL_SECONDS)


@pytest.fixture
def errors(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch):
    """Records of rootserve's loggers (the CLI's setup_logging turns propagation off)."""
    monkeypatch.setattr(logging.getLogger("rootserve"), "propagate", True)
    caplog.set_level(logging.INFO, logger="rootserve")
    return caplog


def error_log(caplog: pytest.LogCaptureFixture) -> str:
    """What the "rootserve.error" logger said at ERROR, exceptions included."""
    lines = []
    for record in caplog.records:
        if record.name == "rootserve.error" and record.levelno >= logging.ERROR:
            lines.append(record.getMessage())
            if record.exc_info and record.exc_info[1] is not None:
                lines.append(repr(record.exc_info[1]))
    return "\n".join(lines)


# -- apps ----------------------------------------------------------------------------------


async def read_body(receive: Receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        assert message["type"] == "http.request", message
        body += message["body"]
        if not message.get("more_body"):
            return body


async def answer(send: Send, body: bytes, status: int = 200, headers: Any = ()) -> None:
    await send({"type": "http.response.start", "status": status, "headers": list(headers)})
    await send({"type": "http.response.body", "body": body})


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers `METHOD PATH` and the request body; a path of /sleep waits a moment first."""
    if scope["type"] != "http":
        return
    body = await read_body(receive)
    if scope["path"] == "/sleep":
        await asyncio.sleep(SLOW_APP_SECONDS)
    await answer(send, f"{scope['method']} {scope['path']} ".encode() + body)


async def client_port(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "http":
        await answer(send, str(scope["client"][1]).encode())


async def chunks(scope: Scope, receive: Receive, send: Send) -> None:
    """A response body in three pieces: no Content-Length is known up front."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    for piece in (b"first ", b"second ", b"third"):
        await send({"type": "http.response.body", "body": piece, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


@dataclass
class Gate:
    """An app that signals when a request reaches it and waits to be released."""

    entered: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    calls: int = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        self.calls += 1
        if scope["path"] == "/hold":
            self.entered.set()
            await asyncio.to_thread(self.release.wait, WAIT)
        await answer(send, b"released " + scope["path"].encode())


# -- connection management -----------------------------------------------------------------


def test_keep_alive_serves_several_requests_on_one_connection():
    with serve(client_port) as running, httpx.Client(base_url=running.url) as client:
        ports = {client.get(f"/{n}").text for n in range(4)}
    assert len(ports) == 1


def test_keep_alive_on_a_raw_socket():
    with serve(echo) as running, Peer(running.port) as peer:
        for n in range(3):
            peer.send(get(f"/{n}"))
            reply = peer.response()
            assert (reply.status, reply.body) == (200, f"GET /{n} ".encode())
            assert reply.header("connection") is None


def test_pipelined_requests_are_answered_in_order():
    # The first request is the slowest: its answer must still come first (RFC 9112 9.3.2).
    requests = [get("/sleep"), get("/b"), get("/c", method="POST"), get("/d", "Connection: close")]
    with serve(echo) as running, Peer(running.port) as peer:
        peer.send(b"".join(requests))
        bodies = [peer.response().body for _ in requests]
        assert peer.at_eof()
    assert bodies == [b"GET /sleep ", b"GET /b ", b"POST /c ", b"GET /d "]


def test_pipelined_request_with_a_body_between_others():
    post = b"POST /p HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n\r\nhello"
    with serve(echo) as running, Peer(running.port) as peer:
        peer.send(get("/a") + post + get("/z"))
        bodies = [peer.response().body for _ in range(3)]
    assert bodies == [b"GET /a ", b"POST /p hello", b"GET /z "]


def test_connection_close_is_honoured():
    with serve(echo) as running, Peer(running.port) as peer:
        peer.send(get("/", "Connection: close"))
        reply = peer.response()
        assert reply.header("connection") == "close"
        assert peer.at_eof()


def test_http10_without_keep_alive_closes():
    with serve(echo) as running:
        data = raw_request(running.port, b"GET /old HTTP/1.0\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\nconnection: close\r\n" in data
    assert data.endswith(b"\r\n\r\nGET /old ")


def test_http10_keep_alive_stays_open():
    with serve(echo) as running, Peer(running.port) as peer:
        for n in range(2):
            peer.send(get(f"/{n}", "Connection: keep-alive", version="1.0"))
            reply = peer.response()
            assert reply.header("connection") == "keep-alive"
            assert reply.body == f"GET /{n} ".encode()


def test_streaming_response_to_http10_is_close_delimited():
    with serve(chunks) as running, Peer(running.port) as peer:
        peer.send(get("/", "Connection: keep-alive", version="1.0"))
        reply = peer.response()
        assert reply.header("transfer-encoding") is None
        assert reply.header("content-length") is None
        assert reply.header("connection") == "close"
        assert reply.body == b"first second third"  # read up to the close


def test_half_closed_client_still_gets_its_response():
    with serve(echo) as running, Peer(running.port) as peer:
        peer.send(get("/sleep"))
        peer.sock.shutdown(socket.SHUT_WR)  # RFC 9112 section 9.6: a half-close
        assert peer.response().body == b"GET /sleep "
        assert peer.at_eof()


def test_date_and_server_headers():
    with serve(echo) as running, httpx.Client(base_url=running.url) as client:
        reply = client.get("/")
    assert reply.headers["server"] == "rootserve"
    date = email.utils.parsedate_to_datetime(reply.headers["date"])
    assert abs(date.timestamp() - time.time()) < 60
    assert reply.headers["date"].endswith(" GMT")


def test_date_and_server_headers_can_be_turned_off():
    with serve(echo, server_header=False, date_header=False) as running:
        reply = httpx.get(running.url)
    assert "server" not in reply.headers
    assert "date" not in reply.headers


# -- framing -------------------------------------------------------------------------------


def test_chunked_request_body_reaches_the_app():
    body = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer-Field: x\r\n\r\n"
    with serve(echo) as running, Peer(running.port) as peer:
        peer.send(b"POST /up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" + body)
        assert peer.response().body == b"POST /up hello world"
        peer.send(get("/after"))  # the connection is still in step
        assert peer.response().body == b"GET /after "


def test_chunked_request_body_from_httpx():
    def pieces() -> Iterator[bytes]:
        yield from (b"a" * 1000, b"b" * 10, b"c")

    with serve(echo) as running:
        reply = httpx.post(running.url + "/gen", content=pieces())
    assert reply.content == b"POST /gen " + b"a" * 1000 + b"b" * 10 + b"c"


def test_chunked_response():
    with serve(chunks) as running, Peer(running.port) as peer:
        peer.send(get("/"))
        reply = peer.response()
        assert reply.header("transfer-encoding") == "chunked"
        assert reply.header("content-length") is None
        assert reply.body == b"first second third"
        peer.send(get("/"))
        assert peer.response().body == b"first second third"


def test_single_body_message_gets_a_content_length():
    with serve(echo) as running, Peer(running.port) as peer:
        peer.send(get("/x"))
        reply = peer.response()
    assert reply.header("content-length") == str(len(b"GET /x "))
    assert reply.header("transfer-encoding") is None


@pytest.mark.parametrize("app", [echo, chunks], ids=["whole-body", "streamed"])
def test_head_gets_headers_and_no_body(app: Any):
    with serve(app) as running, Peer(running.port) as peer:
        peer.send(get("/", method="HEAD"))
        reply = peer.response(head=True)
        assert reply.status == 200
        if app is echo:
            # The app's body was complete, so its length can still be told (RFC 9110 9.3.2).
            assert reply.header("content-length") == str(len(b"HEAD / "))
        # No body bytes followed the head: the next response starts right after it.
        peer.send(get("/next"))
        assert peer.response().status == 200


@pytest.mark.parametrize("status", [204, 304])
def test_no_body_statuses(status: int):
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await answer(send, b"must not be sent", status)

    with serve(app) as running, Peer(running.port) as peer:
        peer.send(get("/"))
        reply = peer.response()
        assert reply.status == status
        assert reply.header("transfer-encoding") is None
        if status == 204:
            assert reply.header("content-length") is None  # RFC 9110 section 8.6
        peer.send(get("/"))
        assert peer.response().status == status  # nothing stray between the two
        assert b"must not" not in peer.buffer


# -- Expect: 100-continue ------------------------------------------------------------------

EXPECTING = b"POST /up HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"


def test_no_100_continue_when_the_app_answers_without_reading():
    async def refuse(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await answer(send, b"who are you?", 401)

    with serve(refuse) as running, Peer(running.port) as peer:
        peer.send(EXPECTING)
        reply = peer.response()
        assert reply.status == 401
        # The client may or may not send the body now: the connection cannot go on, and
        # the answer says so (RFC 9110 section 10.1.1).
        assert reply.header("connection") == "close"
        assert peer.at_eof()
    assert b"100" not in reply.head


def test_100_continue_is_sent_when_the_app_reads():
    go = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await asyncio.to_thread(go.wait, WAIT)
            await answer(send, b"got " + await read_body(receive))

    with serve(app) as running, Peer(running.port) as peer:
        try:
            peer.send(EXPECTING)
            # Before the app calls receive() nothing is sent (a short look, not a wait).
            assert select.select([peer.sock], [], [], 0.2)[0] == []
            go.set()
            assert peer.until(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
            peer.send(b"hello")
            reply = peer.response()
            assert (reply.status, reply.body) == (200, b"got hello")
            peer.send(get("/"))  # the body was read: the connection goes on
            assert peer.response().status == 200
        finally:
            go.set()


# -- the app breaking the contract ---------------------------------------------------------


def test_exception_before_start_is_a_500_and_the_server_goes_on(errors):
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/boom":
            raise ValueError("kaput")
        await answer(send, b"fine")

    with serve(app) as running:
        with Peer(running.port) as peer:
            peer.send(get("/boom"))
            reply = peer.response()
            assert reply.status == 500
            assert reply.header("connection") == "close"
            assert peer.at_eof()
        assert httpx.get(running.url).text == "fine"
    [record] = [r for r in errors.records if r.name == "rootserve.error" and r.exc_info]
    assert "GET /boom" in record.getMessage()
    assert isinstance(record.exc_info[1], ValueError)


def test_exception_after_start_cuts_the_connection_and_the_server_goes_on():
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/boom":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"partial", "more_body": True})
            raise ValueError("kaput")
        await answer(send, b"fine")

    with serve(app) as running:
        with Peer(running.port) as peer:
            peer.send(get("/boom"))
            # The head went out; the body never ends: the only signal left is the close.
            with pytest.raises((EOFError, ConnectionResetError)):
                peer.response()
        with httpx.Client(base_url=running.url) as client:
            with pytest.raises(httpx.RemoteProtocolError):
                client.get("/boom")
            assert client.get("/").text == "fine"


def test_app_returning_without_a_response_is_a_500(errors):
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        return None

    with serve(app, lifespan="off") as running:
        assert httpx.get(running.url).status_code == 500
    assert "returned without starting a response" in error_log(errors)


def test_header_with_crlf_is_a_500_and_never_on_the_wire(errors):
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await answer(send, b"body", headers=[(b"x-note", b"fine\r\nset-cookie: evil=1")])

    with serve(app) as running:
        data = raw_request(running.port, get("/"))
    assert data.startswith(b"HTTP/1.1 500 ")
    assert b"evil" not in data
    assert b"x-note" not in data
    assert "response splitting" in error_log(errors)


async def _body_before_start(send: Send) -> None:
    await send({"type": "http.response.body", "body": b"x"})


async def _start_twice(send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.start", "status": 200, "headers": []})


async def _start_only(send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})


@pytest.mark.parametrize(
    ("misbehave", "rule"),
    [
        (
            _body_before_start,
            "Expected ASGI message 'http.response.start', got 'http.response.body'",
        ),
        (_start_twice, "Expected ASGI message 'http.response.body', got 'http.response.start'"),
        (_start_only, "returned without completing its response"),
    ],
    ids=["body-before-start", "second-start", "start-only"],
)
def test_message_order_violation_is_a_500_naming_the_rule(errors, misbehave: Any, rule: str):
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await misbehave(send)

    with serve(app) as running:
        reply = httpx.get(running.url)
    assert reply.status_code == 500
    assert rule in error_log(errors)


# -- limits --------------------------------------------------------------------------------


def test_limit_concurrency_answers_503_beyond_it():
    gate = Gate()
    with serve(gate, limit_concurrency=1) as running:
        held: dict[str, Any] = {}

        def hold() -> None:
            held["reply"] = httpx.get(running.url + "/hold", timeout=WAIT)

        thread = threading.Thread(target=hold)
        thread.start()
        try:
            assert gate.entered.wait(WAIT)
            busy = httpx.get(running.url + "/other")
            assert busy.status_code == 503
            assert gate.calls == 1  # the app never saw the refused request
        finally:
            gate.release.set()
            thread.join(WAIT)
        assert held["reply"].text == "released /hold"
        assert httpx.get(running.url + "/later").status_code == 200


def test_body_over_the_limit_by_content_length_is_413_before_the_app():
    gate = Gate()
    with serve(gate, max_body_size=100) as running:
        data = raw_request(
            running.port, b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 101\r\n\r\n"
        )
        assert data.startswith(b"HTTP/1.1 413 ")
        ok = raw_request(running.port, b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n"
                         b"Connection: close\r\n\r\n" + b"x" * 100)  # fmt: skip
        assert ok.startswith(b"HTTP/1.1 200 ")
    assert gate.calls == 1


def test_chunked_body_over_the_limit_is_413():
    seen: list[dict[str, Any]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        while True:
            message = await receive()
            seen.append(message)
            if message["type"] == "http.disconnect" or not message.get("more_body"):
                break
        await answer(send, b"should not be sent")

    head = b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
    with serve(app, max_body_size=100) as running:
        data = raw_request(running.port, head + b"40\r\n" + b"a" * 64 + b"\r\n40\r\n" + b"b" * 64)
    assert data.startswith(b"HTTP/1.1 413 ")
    assert b"should not" not in data
    assert seen[-1]["type"] == "http.disconnect"  # the app learns the body will not come
    assert sum(len(m.get("body", b"")) for m in seen) <= 100


def test_chunked_body_over_the_limit_during_a_streamed_response_ends_the_connection():
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            await send({"type": "http.response.body", "body": message["body"], "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    head = b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
    with serve(app, max_body_size=100) as running, Peer(running.port, timeout=2) as peer:
        peer.send(head + b"40\r\n" + b"a" * 64 + b"\r\n")
        assert peer.until(b"a" * 64)  # the app echoes the first chunk: the response started
        peer.send(b"40\r\n" + b"b" * 64 + b"\r\n")
        peer.to_eof()  # nothing more can be said on it: the server cuts it


@pytest.mark.parametrize(
    ("settings", "request_bytes", "status"),
    [
        ({"max_header_count": 5}, get("/", *[f"X-N{n}: v" for n in range(10)]), 431),
        ({"max_header_size": 1024}, get("/", "X-Big: " + "a" * 2000), 431),
        ({"max_request_line": 256}, get("/" + "a" * 1000), 414),
    ],
    ids=["header-count", "header-size", "target-length"],
)
def test_head_limits(settings: dict[str, Any], request_bytes: bytes, status: int):
    gate = Gate()
    with serve(gate, **settings) as running:
        data = raw_request(running.port, request_bytes)
        assert data.startswith(b"HTTP/1.1 %d " % status)
        assert b"\r\nconnection: close\r\n" in data
        assert raw_request(running.port, get("/", "Connection: close")).startswith(b"HTTP/1.1 200")
    assert gate.calls == 1


# -- timeouts ------------------------------------------------------------------------------


def test_idle_keep_alive_connection_is_closed():
    with serve(echo, timeout_keep_alive=0.5) as running, Peer(running.port) as peer:
        peer.send(get("/"))
        assert peer.response().status == 200
        answered = time.monotonic()
        assert peer.at_eof()  # blocks until the server closes (socket timeout: WAIT)
        assert time.monotonic() - answered >= 0.4


def test_connection_that_never_sends_is_closed():
    with serve(echo, timeout_keep_alive=0.5) as running, Peer(running.port) as peer:
        assert peer.at_eof()


def test_slow_request_head_gets_408():
    with serve(echo, timeout_header=0.5) as running, Peer(running.port) as peer:
        peer.send(b"GET / HTTP/1.1\r\nHost: t\r\n")  # ... and the rest never comes
        data = peer.to_eof()
    assert data.startswith(b"HTTP/1.1 408 ")


def test_header_timeout_does_not_cut_a_slow_response():
    entered = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/slow":
            entered.set()
            await asyncio.sleep(HEADER_TIMEOUT_SECONDS * 3)  # longer than timeout_header
        await answer(send, scope["path"].encode())

    with serve(app, timeout_header=HEADER_TIMEOUT_SECONDS) as running, Peer(running.port) as peer:
        peer.send(get("/slow") + b"GET /next HTTP/1.1\r\nHo")
        assert entered.wait(WAIT)
        peer.send(b"st: t\r\n\r\n")  # the second head is complete, well within 0.2 s
        replies = [peer.response(), peer.response()]
    assert [(r.status, r.body) for r in replies] == [(200, b"/slow"), (200, b"/next")]


# -- flow control --------------------------------------------------------------------------


def test_slow_reader_pauses_a_streaming_app():
    total, piece = 64 * MIB, 64 * KIB
    bound = 8 * MIB  # kernel socket buffers plus the transport's high-water mark
    progress = {"sent": 0}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        data = b"z" * piece
        for _ in range(total // piece):
            await send({"type": "http.response.body", "body": data, "more_body": True})
            progress["sent"] += piece
        await send({"type": "http.response.body", "body": b""})

    with serve(app) as running, Peer(running.port, rcvbuf=64 * KIB) as peer:
        peer.send(get("/"))
        # Not reading yet: the app must come to a stop well short of the whole body.
        last = -1
        deadline = time.monotonic() + WAIT
        while progress["sent"] != last:
            assert time.monotonic() < deadline, "the app never paused"
            last = progress["sent"]
            time.sleep(STALL_CHECK_SECONDS)  # a stall is progress that stops
        assert 0 < progress["sent"] <= bound
        peer.until(b"\r\n\r\n")
        received = len(peer.buffer)  # body bytes (with their chunk framing) read so far
        while received < total:
            data = peer.sock.recv(256 * KIB)
            assert data
            received += len(data)
            assert progress["sent"] - received <= bound
    assert progress["sent"] == total


def test_large_upload_reaches_the_app_in_bounded_pieces():
    size = 8 * MIB
    pieces: list[tuple[int, bool]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        while True:
            message = await receive()
            pieces.append((len(message["body"]), message["more_body"]))
            if not message["more_body"]:
                break
            await asyncio.sleep(SLOW_CONSUMER_SECONDS)
        await answer(send, b"%d" % sum(n for n, _ in pieces))

    with serve(app) as running:
        reply = httpx.post(running.url, content=b"u" * size, timeout=WAIT)
    assert reply.text == str(size)
    assert len(pieces) > 1
    assert [more for _, more in pieces] == [True] * (len(pieces) - 1) + [False]
    assert max(n for n, _ in pieces) <= 1 * MIB  # reading paused while the app lagged


# -- disconnects ---------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["reset-after-body", "close-mid-body"])
def test_client_disconnect_reaches_a_waiting_app(how: str):
    got: list[str] = []
    done = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        while True:
            message = await receive()
            got.append(message["type"])
            if message["type"] == "http.disconnect":
                done.set()
                return

    head = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n"
    with serve(app, timeout_graceful=1) as running:
        with Peer(running.port) as peer:
            if how == "reset-after-body":
                # The whole request arrived; a FIN alone could be a half-close still
                # waiting for its answer, so the client aborts (RST) to say it is gone.
                peer.send(head + b"0123456789")
                peer.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            else:
                peer.send(head + b"01234")  # the close cuts the body short
            wait_for(lambda: len(got) >= 1)
        assert done.wait(WAIT)
    assert got == ["http.request", "http.disconnect"]


def test_server_closes_after_a_client_gives_up_mid_body():
    done = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        while (await receive())["type"] != "http.disconnect":
            pass
        done.set()

    with serve(app, timeout_graceful=1) as running, Peer(running.port, timeout=2) as peer:
        peer.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n01234")
        peer.sock.shutdown(socket.SHUT_WR)
        assert done.wait(WAIT)
        assert peer.at_eof()  # the request can never be whole: the server closes


# -- stopping ------------------------------------------------------------------------------


@contextmanager
def own_server(app: Any, **settings: Any) -> Iterator[tuple[Server, int]]:
    """A Server in a thread that the test stops itself (serve() stops it at block end)."""
    config = Config(host="127.0.0.1", port=0, access_log=False, **settings)
    sockets = bind_all(["127.0.0.1:0"], 128)
    server = Server(config, app, sockets)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        assert server.started.wait(WAIT)
        yield server, sockets[0].getsockname()[1]
    finally:
        if not server.stopped.is_set():
            server.request_stop()
        thread.join(WAIT)
        for sock in sockets:
            sock.close()
        assert not thread.is_alive()


def test_graceful_stop_finishes_the_request_in_flight_and_refuses_new_ones():
    gate = Gate()
    with own_server(gate) as (server, port):
        held: dict[str, Any] = {}

        def hold() -> None:
            held["data"] = raw_request(port, get("/hold"))

        thread = threading.Thread(target=hold)
        thread.start()
        try:
            assert gate.entered.wait(WAIT)
            server.request_stop()
            wait_for(lambda: _refused(port))
            assert not server.stopped.is_set()  # still waiting for the request in flight
        finally:
            gate.release.set()
            thread.join(WAIT)
        assert server.stopped.wait(WAIT)
    assert held["data"].startswith(b"HTTP/1.1 200 OK\r\n")
    assert held["data"].endswith(b"released /hold")  # and then the server closed
    assert server.exit_code == 0


def test_response_finished_during_shutdown_says_it_closes():
    gate = Gate()
    with own_server(gate) as (server, port), Peer(port) as peer:
        try:
            peer.send(get("/hold"))
            assert gate.entered.wait(WAIT)
            server.request_stop()
            wait_for(lambda: _refused(port))  # the shutdown has begun
        finally:
            gate.release.set()
        reply = peer.response()
        assert reply.body == b"released /hold"
        assert peer.at_eof()
    assert reply.header("connection") == "close"


async def endless_events(scope: Scope, receive: Receive, send: Send) -> None:
    """Server-sent events until the client goes: a stream with no end of its own."""
    if scope["type"] != "http":
        return
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    listening = asyncio.ensure_future(receive())
    while not listening.done():
        await send({"type": "http.response.body", "body": b"data: tick\n\n", "more_body": True})
        await asyncio.wait([listening], timeout=0.02)
    assert listening.result() == {"type": "http.disconnect"}
    await send({"type": "http.response.body", "body": b"data: bye\n\n"})


def test_a_stream_sees_disconnect_on_stop_and_ends_long_before_the_graceful_timeout():
    with own_server(endless_events, timeout_graceful=60) as (server, port), Peer(port) as peer:
        peer.send(get("/events"))
        assert b"data: tick" in peer.sock.recv(4096)
        started = time.monotonic()
        server.request_stop()
        data = b""
        while chunk := peer.sock.recv(65536):
            data += chunk
        assert server.stopped.wait(WAIT)
        assert time.monotonic() - started < 10  # not the 60 s graceful timeout
    assert data.endswith(b"data: bye\n\n\r\n0\r\n\r\n")  # the app's last event, then the end


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except (ConnectionRefusedError, ConnectionResetError):
        # A connect that races the listener's close can be reset instead of refused.
        return True
    return False


def test_request_stop_after_the_server_stopped_is_harmless():
    with own_server(echo) as (server, _):
        server.request_stop()
        assert server.stopped.wait(WAIT)
        server.request_stop()


# -- the scope -----------------------------------------------------------------------------


def scope_recorder(scopes: list[dict[str, Any]], *, lifespan: bool = False) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            if not lifespan:
                raise RuntimeError("no lifespan here")
            while (await receive())["type"] == "lifespan.startup":
                scope["state"]["answer"] = 42
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        scopes.append(dict(scope))
        await answer(send, b"ok")

    return app


def test_scope_fields():
    scopes: list[dict[str, Any]] = []
    target = "/caf%C3%A9/a%2Fb%20c?x=1&y=%20"
    with serve(scope_recorder(scopes, lifespan=True)) as running, Peer(running.port) as peer:
        peer.send(get(target, "X-Mixed-Case: Some Value"))
        assert peer.response().status == 200
        [scope] = scopes
        assert scope["type"] == "http"
        assert scope["asgi"]["version"] == "3.0"
        assert scope["asgi"]["spec_version"].startswith("2.")
        assert scope["http_version"] == "1.1"
        assert scope["method"] == "GET"
        assert scope["scheme"] == "http"
        assert scope["path"] == "/café/a/b c"
        assert scope["raw_path"] == b"/caf%C3%A9/a%2Fb%20c"
        assert scope["query_string"] == b"x=1&y=%20"
        assert scope["root_path"] == ""
        assert (b"x-mixed-case", b"Some Value") in scope["headers"]
        assert (b"host", b"test") in scope["headers"]
        assert all(name == name.lower() for name, _ in scope["headers"])
        assert scope["client"] == ("127.0.0.1", peer.local_port)
        assert scope["server"] == ("127.0.0.1", running.port)
        assert scope["state"] == {"answer": 42}
        assert isinstance(scope["extensions"], dict)


def test_no_state_in_the_scope_without_lifespan():
    scopes: list[dict[str, Any]] = []
    with serve(scope_recorder(scopes)) as running:
        httpx.get(running.url)
    assert "state" not in scopes[0]


def test_root_path():
    scopes: list[dict[str, Any]] = []
    with serve(scope_recorder(scopes), root_path="/api") as running:
        httpx.get(running.url + "/users/1")
    assert scopes[0]["root_path"] == "/api"
    assert scopes[0]["path"] == "/api/users/1"


def test_absolute_form_target():
    scopes: list[dict[str, Any]] = []
    with serve(scope_recorder(scopes)) as running:
        data = raw_request(
            running.port,
            b"GET http://example.com/x?y HTTP/1.1\r\nHost: other.test\r\nConnection: close\r\n\r\n",
        )
    assert data.startswith(b"HTTP/1.1 200 ")
    [scope] = scopes
    assert (scope["path"], scope["query_string"]) == ("/x", b"y")
    # RFC 9112 section 3.2.2: the target's authority wins over the Host field.
    assert [v for n, v in scope["headers"] if n == b"host"] == [b"example.com"]


# -- logs ----------------------------------------------------------------------------------


def test_log_lines_carry_no_control_bytes(errors):
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"].startswith("/boom"):
            raise ValueError("kaput")
        await answer(send, b"ok")

    evil = "/x%0D%0AINFO:%20forged%1B[31m%00"
    with serve(app, access_log=True) as running:
        for path in (evil, "/boom" + evil):
            raw_request(running.port, get(path + "?q=%0a", "Connection: close"))
        raw_request(running.port, b"GET / HTTP/1.1\r\n\r\n")  # no Host: rejected, logged
    records = [r for r in errors.records if r.name.startswith("rootserve")]
    messages = [r.getMessage() for r in records]
    access = [r.getMessage() for r in records if r.name == "rootserve.access"]
    assert len([m for m in access if "forged" in m]) == 2, access  # the 200 and the 500
    assert any("Exception in ASGI app" in m and "forged" in m for m in messages), messages
    assert any("rejected: 400" in m for m in messages), messages
    for message in messages:
        assert message.isprintable(), message
