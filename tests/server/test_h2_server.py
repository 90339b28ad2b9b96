"""HTTP/2 over real sockets (server/h2_connection.py, h2_exchange.py, h2_detect.py): httpx
(prior knowledge on plain TCP, ALPN on TLS), curl, and a raw h2 client against ASGI and
WSGI apps; the harness is h2_server_support.py."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.events
import httpx
import pytest
from hyperframe.frame import DataFrame, GoAwayFrame
from tests.helpers import raw_request, serve
from tests.protocol.h2_support import frames
from tests.server.h2_server_support import (
    BIG,
    MIB,
    H2Server,
    asgi_app,
    h2_client,
    h2_server,
    raw_client,
    read_all,
    read_until,
    read_until_closed,
    request_headers,
    wait_until,
    wsgi_app,
)
from tests.tls_support import issue

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize(
    ("app", "interface", "protocol"),
    [(asgi_app, "asgi", "2"), (wsgi_app, "wsgi", "HTTP/2")],
)
def test_get_and_post(app: Any, interface: str, protocol: str) -> None:
    with h2_server(app, interface) as server, h2_client() as client:
        reply = client.get(server.url + "/path?x=1")
        assert reply.http_version == "HTTP/2"
        assert reply.status_code == 200
        assert reply.text == f"{protocol} GET /path x=1 127.0.0.1:{server.port} 0"
        assert reply.headers["server"] == "rootserve"
        assert "date" in reply.headers
        assert "connection" not in reply.headers and "transfer-encoding" not in reply.headers
        reply = client.post(server.url + "/form", content=b"a=1&b=2")
        assert reply.text == f"{protocol} POST /form  127.0.0.1:{server.port} 7"


@pytest.mark.parametrize(("app", "interface"), [(asgi_app, "asgi"), (wsgi_app, "wsgi")])
def test_tls_with_alpn_h2(app: Any, interface: str, tmp_path: Path) -> None:
    cert = issue(tmp_path)
    with (
        h2_server(app, interface, **cert.settings()) as server,
        h2_client(verify=cert.client_context()) as client,
    ):
        url = f"https://127.0.0.1:{server.port}"
        reply = client.post(url + "/echo", content=BIG)
        assert reply.http_version == "HTTP/2"
        assert reply.content == BIG
        assert client.get(url + "/x").text.startswith(("2 GET /x", "HTTP/2 GET /x"))
        assert client.get(url + "/scheme").text == "https tls"


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_one_listener_serves_both(loop_kind: str, tmp_path: Path) -> None:
    with h2_server(asgi_app, loop_kind=loop_kind, detect=True) as server:
        with httpx.Client(timeout=20) as http1:
            assert http1.get(server.url + "/a").text.startswith("1.1 GET /a")
        with h2_client() as client:
            reply = client.post(server.url + "/echo", content=BIG)
            assert (reply.http_version, reply.content == BIG) == ("HTTP/2", True)
        # The preface cut in two reads, and a first read too short to tell.
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        with sock:
            sock.sendall(b"PRI * HTTP/2.0\r\n")
            h2_conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
            h2_conn.initiate_connection()
            sock.sendall(h2_conn.data_to_send()[16:])
            h2_conn.send_headers(1, request_headers(server.port, "/cut"), end_stream=True)
            sock.sendall(h2_conn.data_to_send())
            events = read_until(sock, h2_conn, h2.events.StreamEnded)
        body = b"".join(e.data for e in events if isinstance(e, h2.events.DataReceived))
        assert body.startswith(b"2 GET /cut")
        assert raw_request(server.port, b"GET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    cert = issue(tmp_path)
    with h2_server(asgi_app, loop_kind=loop_kind, detect=True, **cert.settings()) as server:
        url = f"https://127.0.0.1:{server.port}"
        with httpx.Client(verify=cert.client_context(), timeout=20) as http1:
            reply = http1.get(url + "/a")
            assert (reply.http_version, reply.text[:9]) == ("HTTP/1.1", "1.1 GET /")
        with h2_client(verify=cert.client_context()) as client:  # ALPN chooses h2
            reply = client.get(url + "/a")
            assert (reply.http_version, reply.text[:7]) == ("HTTP/2", "2 GET /")


def test_uvloop() -> None:
    with h2_server(asgi_app, loop_kind="uvloop") as server, h2_client() as client:
        assert client.post(server.url + "/echo", content=BIG).content == BIG
        assert client.get(server.url + "/download").content == BIG


@pytest.mark.parametrize(("app", "interface"), [(asgi_app, "asgi"), (wsgi_app, "wsgi")])
def test_app_exception_is_500(app: Any, interface: str) -> None:
    with h2_server(app, interface) as server, h2_client() as client:
        reply = client.get(server.url + "/boom")
        assert reply.status_code == 500
        assert b"Internal Server Error" in reply.content
        # The connection serves on: the failure was one stream's.
        assert client.get(server.url + "/after").status_code == 200


@pytest.mark.parametrize(("app", "interface"), [(asgi_app, "asgi"), (wsgi_app, "wsgi")])
def test_head_has_no_body(app: Any, interface: str) -> None:
    with h2_server(app, interface) as server, h2_client() as client:
        reply = client.head(server.url + "/x")
        assert reply.status_code == 200
        assert reply.content == b""
        assert int(reply.headers["content-length"]) > 0  # the GET's length


@pytest.mark.parametrize(("app", "interface"), [(asgi_app, "asgi"), (wsgi_app, "wsgi")])
def test_five_mib_upload(app: Any, interface: str) -> None:
    with h2_server(app, interface) as server, h2_client() as client:
        reply = client.post(server.url + "/echo", content=BIG)
        assert reply.status_code == 200
        assert reply.content == BIG


@pytest.mark.parametrize(("app", "interface"), [(asgi_app, "asgi"), (wsgi_app, "wsgi")])
def test_five_mib_download(app: Any, interface: str) -> None:
    with h2_server(app, interface) as server, h2_client() as client:
        reply = client.get(server.url + "/download")
        assert reply.status_code == 200
        assert reply.content == BIG


@pytest.mark.parametrize(("app", "interface"), [(asgi_app, "asgi"), (wsgi_app, "wsgi")])
def test_hundred_concurrent_streams_on_one_connection(app: Any, interface: str) -> None:
    # An AsyncClient: httpx's sync client shared by threads can write a stream's HEADERS
    # after a later stream's, which RFC 9113 section 5.1.1 makes a connection error.
    async def hundred(url: str) -> list[str]:
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(http1=False, http2=True, limits=limits, timeout=20) as client:
            replies = await asyncio.gather(*(client.get(f"{url}/n{i}") for i in range(100)))
        assert {reply.http_version for reply in replies} == {"HTTP/2"}
        return [reply.text for reply in replies]

    with h2_server(app, interface) as server:
        texts = asyncio.run(hundred(server.url))
        assert [t.split()[2] for t in texts] == [f"/n{i}" for i in range(100)]
        assert len(server.made) == 1  # one connection carried them all


def test_limit_concurrency_answers_503() -> None:
    release = threading.Event()

    async def slow(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await asyncio.get_running_loop().run_in_executor(None, release.wait, 10)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"slow"})

    async def two(server: H2Server) -> None:
        async with httpx.AsyncClient(http1=False, http2=True, timeout=20) as client:
            first = asyncio.create_task(client.get(server.url + "/1"))
            while len(server.state.running) < 1:
                await asyncio.sleep(0.01)  # noqa: sleep-ok (polls the server's count)
            assert (await client.get(server.url + "/2")).status_code == 503
            release.set()
            assert (await first).text == "slow"

    with h2_server(slow, limit_concurrency=1) as server:
        asyncio.run(asyncio.wait_for(two(server), 20))


def test_graceful_shutdown_answers_open_streams_then_closes() -> None:
    release = threading.Event()

    async def slow(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await asyncio.get_running_loop().run_in_executor(None, release.wait, 10)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"finished"})

    with h2_server(slow) as server:
        sock, conn = raw_client(server.port)
        with sock:
            conn.send_headers(1, request_headers(server.port, "/slow"), end_stream=True)
            sock.sendall(conn.data_to_send())
            wait_until(lambda: len(server.state.running) == 1)
            server.call(lambda: [c.shutdown() for c in list(server.state.connections)])
            release.set()
            # Read as frames: h2's client, once it has a GOAWAY, takes no more frames.
            sent = frames(read_all(sock))
        kinds = [type(frame).__name__ for frame in sent]
        first_goaway = kinds.index("GoAwayFrame")
        assert sent[first_goaway].last_stream_id == 1
        assert sent[first_goaway].error_code == 0
        assert "HeadersFrame" in kinds[first_goaway:]  # the answer, after the GOAWAY
        data = b"".join(f.data for f in sent if isinstance(f, DataFrame) and f.stream_id == 1)
        assert data == b"finished"
        assert kinds[-1] == "GoAwayFrame"  # and the final one


@pytest.mark.parametrize(("app", "interface"), [(asgi_app, "asgi"), (wsgi_app, "wsgi")])
def test_expect_100_continue(app: Any, interface: str) -> None:
    with h2_server(app, interface) as server:
        sock, conn = raw_client(server.port)
        with sock:
            headers = request_headers(server.port, "/c", "POST")
            conn.send_headers(1, [*headers, ("expect", "100-continue"), ("content-length", "5")])
            sock.sendall(conn.data_to_send())
            events = read_until(sock, conn, h2.events.InformationalResponseReceived)
            assert events[-1].headers == [(b":status", b"100")]
            conn.send_data(1, b"hello", end_stream=True)
            sock.sendall(conn.data_to_send())
            events = read_until(sock, conn, h2.events.StreamEnded)
        body = b"".join(e.data for e in events if isinstance(e, h2.events.DataReceived))
        assert body.endswith(b" POST /c  127.0.0.1:%d 5" % server.port)


def test_body_not_sent_in_time_is_408_for_its_stream() -> None:
    with h2_server(asgi_app, timeout_body=0.3) as server:
        sock, conn = raw_client(server.port)
        with sock:
            conn.send_headers(1, request_headers(server.port, "/stalled", "POST"))
            sock.sendall(conn.data_to_send())
            events = read_until(sock, conn, h2.events.ResponseReceived)
            (response,) = [e for e in events if isinstance(e, h2.events.ResponseReceived)]
            assert response.headers[0] == (b":status", b"408")
            # The connection serves on.
            conn.send_headers(3, request_headers(server.port, "/next"), end_stream=True)
            sock.sendall(conn.data_to_send())
            events = read_until(sock, conn, h2.events.StreamEnded)
        body = b"".join(e.data for e in events if e.stream_id == 3 and hasattr(e, "data"))
        assert body.startswith(b"2 GET /next")


def test_head_trickling_in_gets_the_header_timeout() -> None:
    with h2_server(asgi_app, timeout_header=0.3, timeout_keep_alive=60) as server:
        sock, conn = raw_client(server.port)
        with sock:
            conn.send_headers(1, request_headers(server.port, "/slow"), end_stream=True)
            head = conn.data_to_send()
            sock.sendall(head[:5])  # a frame begun; the rest never comes
            sent = frames(read_all(sock))  # the server closes: within the test's timeout
        assert [type(f).__name__ for f in sent][-1] == "GoAwayFrame"


def test_idle_connection_gets_goaway_and_closes() -> None:
    with h2_server(asgi_app, timeout_keep_alive=0.2) as server:
        sock, conn = raw_client(server.port)
        with sock:
            events = read_until_closed(sock, conn)
        assert any(
            isinstance(e, h2.events.ConnectionTerminated) and e.error_code == 0 for e in events
        )


def test_client_reset_disconnects_the_app() -> None:
    seen = threading.Event()
    disconnected = threading.Event()

    async def waits(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.set()
        while (await receive())["type"] != "http.disconnect":
            pass
        disconnected.set()

    with h2_server(waits) as server:
        sock, conn = raw_client(server.port)
        with sock:
            conn.send_headers(1, request_headers(server.port, "/wait", "POST"))
            sock.sendall(conn.data_to_send())
            assert seen.wait(10)
            conn.reset_stream(1)
            sock.sendall(conn.data_to_send())
            assert disconnected.wait(10)


def test_body_over_max_body_size_is_413() -> None:
    with h2_server(asgi_app, max_body_size=1000) as server, h2_client() as client:
        assert client.post(server.url + "/declared", content=b"x" * 1001).status_code == 413

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
            for _ in range(10):
                yield b"x" * 500

        assert client.post(server.url + "/streamed", content=chunks()).status_code == 413
        assert client.post(server.url + "/small", content=b"x" * 1000).status_code == 200


def test_unread_bodies_give_their_windows_back() -> None:
    async def unread(scope: dict[str, Any], receive: Any, send: Any) -> None:
        # The body arrives meanwhile, more than the adapter buffers: reading pauses, and
        # the stream's window is held until the answer gives it back.
        await asyncio.sleep(0.05)  # noqa: sleep-ok (lets the unread body arrive)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    with h2_server(unread) as server, h2_client(timeout=10) as client:
        # More than the connection's window (1 MiB) in all: a window kept would stall it.
        for _ in range(8):
            assert client.post(server.url + "/", content=b"x" * 2 * MIB).text == "ok"


@pytest.mark.skipif(shutil.which("curl") is None, reason="no curl on this machine")
def test_curl_http2_prior_knowledge() -> None:
    version = subprocess.run(["curl", "-V"], capture_output=True, text=True, check=True).stdout
    if "HTTP2" not in version:
        pytest.skip("this curl was built without HTTP/2")
    with h2_server(asgi_app) as server:
        result = subprocess.run(
            ["curl", "-sS", "--http2-prior-knowledge", "-w", " %{http_version}", server.url + "/c"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        )
        assert result.stdout == f"2 GET /c  127.0.0.1:{server.port} 0 2"


def test_in_the_worker_with_its_graceful_stop() -> None:
    """The whole worker (tests/helpers.py `serve`) serving HTTP/2 (--http auto): a request
    still running when the stop comes is answered."""
    started, release = threading.Event(), threading.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return  # (lifespan)
        if scope["path"] == "/slow":
            started.set()
            await asyncio.get_running_loop().run_in_executor(None, release.wait, 10)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": scope["http_version"].encode()})

    with serve(app, lifespan="off", http="auto") as server, h2_client() as client:
        assert client.get(server.url + "/").text == "2"
        with httpx.Client(timeout=20) as http1:
            assert http1.get(server.url + "/").text == "1.1"
        # A raw client for the slow one: h2's client state machine (and so httpx) takes
        # no frame after a GOAWAY, even for the streams the GOAWAY says will be answered.
        sock, conn = raw_client(server.port)
        with sock:
            conn.send_headers(1, request_headers(server.port, "/slow"), end_stream=True)
            sock.sendall(conn.data_to_send())
            assert started.wait(10)
            server.server.request_stop()
            release.set()
            sent = frames(read_all(sock))
        data = b"".join(f.data for f in sent if isinstance(f, DataFrame) and f.stream_id == 1)
        assert data == b"2"
        goaways = [f for f in sent if isinstance(f, GoAwayFrame)]
        assert goaways and goaways[0].last_stream_id == 1
