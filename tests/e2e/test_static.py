"""`--static /static=DIR` over real sockets, before an ASGI app and before a WSGI app.

Every test runs against both interfaces with a spy app that records each path it is called
for: a path under the prefix never reaches it, every other path does. A secret file lies
next to the served folder, and a symlink to it inside: no hostile path brings back a byte
of it. Large files go out with sendfile on asyncio's loop and in blocks read off the loop
on uvloop; both are checked byte for byte, and a client that leaves mid-file leaves no
open file behind.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email.utils import formatdate
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.helpers import Peer, raw_request, serve
from tests.wsgi.support import capture_errors, serve_wsgi, validated

SECRET = b"TOP-SECRET-7d41e0"
MTIME = 1_700_000_000
BIG = 6 * 1024 * 1024 + 123  # bytes: past every block and buffer size on the way
WAIT = 10.0
INTERFACES = ["asgi", "wsgi"]


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "secret.txt").write_bytes(SECRET)
    root = tmp_path / "site"
    (root / "sub").mkdir(parents=True)
    (root / "hello.txt").write_bytes(b"hello\n")
    (root / "sub" / "index.html").write_bytes(b"<h1>sub</h1>\n")
    (root / ".env").write_bytes(SECRET)
    (root / "big.bin").write_bytes(os.urandom(BIG))
    for path in (root / "hello.txt", root / "big.bin"):
        os.utime(path, (MTIME, MTIME))
    (root / "outside").symlink_to(tmp_path / "secret.txt")
    (root / "up").symlink_to("..")
    return root


class SpyASGI:
    def __init__(self) -> None:
        self.paths: list[str] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.paths.append(scope["path"])
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1000})
            return
        body = f"app {scope['path']}".encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})


class SpyWSGI:
    def __init__(self) -> None:
        self.paths: list[str] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        self.paths.append(environ["PATH_INFO"])
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [f"app {environ['PATH_INFO']}".encode()]


@contextmanager
def served(interface: str, site: Path, **settings: Any) -> Iterator[tuple[int, list[str]]]:
    """The server's port and the list of paths the app was called for."""
    settings["static"] = [f"/static={site}"]
    if interface == "asgi":
        asgi = SpyASGI()
        with serve(asgi, lifespan="off", **settings) as running:
            yield running.port, asgi.paths
    else:
        wsgi = SpyWSGI()
        with serve_wsgi(validated(wsgi), **settings) as running:
            yield running.port, wsgi.paths


HOSTILE = [
    "/static/../secret.txt",
    "/static/%2e%2e/secret.txt",
    "/static/%2E%2E%2Fsecret.txt",
    "/static/..%2fsecret.txt",
    "/static/%2e%2e%5csecret.txt",
    "/static/..\\secret.txt",
    "/static/sub/../../secret.txt",
    "/static/sub/%2e%2e/%2e%2e/secret.txt",
    "/static/%252e%252e/secret.txt",
    "/static/%c0%ae%c0%ae/secret.txt",  # overlong UTF-8 for "..": not UTF-8
    "/static/outside",  # a symlink to the secret
    "/static/up/secret.txt",  # a symlink to the folder above
    "/static/.env",
    "/static/%2eenv",
    "/static/hello.txt%00",
    "/static/%00../secret.txt",
    "/static/C:%5cWindows%5cwin.ini",
    "/static/c:/secret.txt",
    "/static//SECRET_PATH",  # the secret's absolute path after the prefix
    "/static/%2fSECRET_PATH",
    "http://t/static/../secret.txt",  # absolute-form target
]


@pytest.mark.parametrize("interface", INTERFACES)
def test_no_hostile_path_brings_back_a_byte_from_outside(
    site: Path, interface: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    capture_errors(caplog, monkeypatch)
    secret_path = str(site.parent / "secret.txt").lstrip("/")
    with served(interface, site) as (port, calls):
        for target in HOSTILE:
            target = target.replace("SECRET_PATH", secret_path)
            raw = f"GET {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
            reply = raw_request(port, raw.encode("latin-1"))
            status = int(reply.split(b" ", 2)[1])
            assert status in (400, 404), (target, reply[:200])
            assert SECRET not in reply, target
        assert raw_request(port, b"GET /x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert calls == ["/x"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]  # refusals are normal


@pytest.mark.parametrize("interface", INTERFACES)
def test_the_app_is_never_called_for_a_static_path_and_always_for_the_others(
    site: Path, interface: str
) -> None:
    with served(interface, site) as (port, calls), httpx.Client() as client:
        url = f"http://127.0.0.1:{port}"
        assert client.get(f"{url}/static/hello.txt").content == b"hello\n"
        assert client.get(f"{url}/static/sub/").content == b"<h1>sub</h1>\n"
        assert client.get(f"{url}/static/nope").status_code == 404
        assert client.get(f"{url}/static/sub").status_code == 404
        response = client.post(f"{url}/static/hello.txt", content=b"x" * 1000)
        assert (response.status_code, response.headers["allow"]) == (405, "GET, HEAD")
        assert calls == []
        for path in ("/", "/static", "/staticky/hello.txt", "/other"):
            assert client.get(url + path).content == f"app {path}".encode()
    assert calls == ["/", "/static", "/staticky/hello.txt", "/other"]


@pytest.mark.parametrize("interface", INTERFACES)
def test_ranges(site: Path, interface: str) -> None:
    data = (site / "big.bin").read_bytes()
    cases = [  # (Range, first byte, last byte)
        ("bytes=0-99", 0, 99),
        ("bytes=1000-1999", 1000, 1999),
        ("bytes=-500", BIG - 500, BIG - 1),
        ("bytes=100-", 100, BIG - 1),  # a large body: sendfile or blocks
        ("bytes=4000000-4300000", 4_000_000, 4_300_000),
    ]
    with served(interface, site) as (port, calls), httpx.Client() as client:
        url = f"http://127.0.0.1:{port}/static/big.bin"
        for value, first, last in cases:
            response = client.get(url, headers={"range": value})
            assert response.status_code == 206, value
            assert response.headers["content-range"] == f"bytes {first}-{last}/{BIG}"
            assert response.content == data[first : last + 1]
        response = client.get(url, headers={"range": f"bytes={BIG}-"})
        assert (response.status_code, response.headers["content-range"]) == (416, f"bytes */{BIG}")
        response = client.get(url, headers={"range": "bytes=0-1,5-6"})  # several: the whole
        assert response.status_code == 200 and response.content == data
    assert calls == []


@pytest.mark.parametrize("interface", INTERFACES)
def test_conditional_requests(site: Path, interface: str) -> None:
    with served(interface, site) as (port, calls), httpx.Client() as client:
        url = f"http://127.0.0.1:{port}/static/hello.txt"
        first = client.get(url)
        etag, modified = first.headers["etag"], first.headers["last-modified"]
        assert modified == formatdate(MTIME, usegmt=True)
        assert etag.startswith('"') and not etag.startswith("W/")
        expectations = [
            ({"if-none-match": etag}, 304),
            ({"if-none-match": f'"other", W/{etag}'}, 304),
            ({"if-none-match": '"other"'}, 200),
            ({"if-modified-since": modified}, 304),
            ({"if-modified-since": formatdate(MTIME - 3600, usegmt=True)}, 200),
            ({"if-none-match": '"other"', "if-modified-since": modified}, 200),
            ({"if-match": etag}, 200),
            ({"if-match": '"other"'}, 412),
            ({"if-unmodified-since": formatdate(MTIME - 3600, usegmt=True)}, 412),
            ({"if-range": etag, "range": "bytes=0-1"}, 206),
            ({"if-range": '"old"', "range": "bytes=0-1"}, 200),
        ]
        for headers, status in expectations:
            response = client.get(url, headers=headers)
            assert response.status_code == status, headers
            if status == 304:
                assert response.content == b""
                assert response.headers["etag"] == etag
                assert response.headers["last-modified"] == modified
    assert calls == []


@pytest.mark.parametrize("interface", INTERFACES)
def test_head_sends_the_headers_and_no_body(site: Path, interface: str) -> None:
    with served(interface, site) as (port, _), Peer(port) as peer:
        peer.send(b"HEAD /static/big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
        head = peer.response(head=True)
        assert head.status == 200 and head.header("content-length") == str(BIG)
        assert head.header("content-type") == "application/octet-stream"
        # The next bytes are the next answer's: HEAD sent no body.
        peer.send(b"GET /static/hello.txt HTTP/1.1\r\nHost: t\r\n\r\n")
        reply = peer.response()
        assert (reply.status, reply.body) == (200, b"hello\n")


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
@pytest.mark.parametrize("interface", INTERFACES)
def test_a_large_file_is_byte_exact(site: Path, interface: str, loop: str) -> None:
    expected = hashlib.sha256((site / "big.bin").read_bytes()).hexdigest()
    with served(interface, site, loop=loop) as (port, _), httpx.Client() as client:
        for _ in range(2):  # the same keep-alive connection goes on after it
            response = client.get(f"http://127.0.0.1:{port}/static/big.bin")
            assert response.headers["content-length"] == str(BIG)
            assert hashlib.sha256(response.content).hexdigest() == expected


@pytest.mark.parametrize("interface", INTERFACES)
def test_keep_alive_across_static_and_app_answers(site: Path, interface: str) -> None:
    requests = [
        ("GET /static/hello.txt", 200),
        ("GET /other", 200),
        ("GET /static/nope", 404),
        ("HEAD /static/hello.txt", 200),
        ("DELETE /static/hello.txt", 405),
        ("GET /static/..%5cx", 400),
        ("GET /static/big.bin", 200),
        ("GET /static/sub/", 200),
    ]
    with served(interface, site) as (port, calls), Peer(port) as peer:
        for line, status in requests:  # one after the other
            peer.send(f"{line} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
            reply = peer.response(head=line.startswith("HEAD"))
            assert reply.status == status and reply.header("connection") is None, line
        # Pipelined: all sent at once, answered in order on the same connection.
        peer.send(b"".join(f"{line} HTTP/1.1\r\nHost: t\r\n\r\n".encode() for line, _ in requests))
        for line, status in requests:
            assert peer.response(head=line.startswith("HEAD")).status == status, line
        peer.send(b"GET /static/hello.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        assert peer.response().body == b"hello\n"
        assert peer.at_eof()
    assert calls == ["/other", "/other"]


@pytest.mark.parametrize("interface", INTERFACES)
def test_static_answers_are_in_the_access_log(
    site: Path,
    interface: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    capture_errors(caplog, monkeypatch)
    with served(interface, site, access_log=True) as (port, _), httpx.Client() as client:
        client.get(f"http://127.0.0.1:{port}/static/hello.txt")
        client.get(f"http://127.0.0.1:{port}/static/nope")
    access = [r.getMessage() for r in caplog.records if r.name == "rootserve.access"]
    assert any('"GET /static/hello.txt HTTP/1.1" 200' in line for line in access), access
    assert any('"GET /static/nope HTTP/1.1" 404' in line for line in access), access


def open_files() -> int:
    return len(os.listdir("/proc/self/fd"))


def wait_for(condition: Any) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)  # noqa: sleep-ok (poll: the server closes files in its own thread)


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_client_gone_mid_file_leaves_no_open_file(
    site: Path, loop: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    capture_errors(caplog, monkeypatch)
    with served("asgi", site, loop=loop) as (port, _):
        before = open_files()
        with Peer(port, rcvbuf=16 * 1024) as peer:
            peer.send(b"GET /static/big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
            assert peer.head().status == 200
            peer.exactly(100_000)  # some of the body, then the client goes
        wait_for(lambda: open_files() == before)
        with httpx.Client() as client:  # and the server goes on serving
            assert client.get(f"http://127.0.0.1:{port}/static/hello.txt").content == b"hello\n"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]  # a client may go


def test_a_websocket_handshake_for_a_static_path_gets_the_file_not_the_app(site: Path) -> None:
    raw = (
        b"GET /static/hello.txt HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: MDEyMzQ1Njc4OWFiY2RlZg==\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )
    with served("asgi", site) as (port, calls):
        reply = raw_request(port, raw)  # answered, then the connection ends
    assert reply.startswith(b"HTTP/1.1 200 ") and reply.endswith(b"\r\n\r\nhello\n")
    assert calls == []


@pytest.mark.parametrize("interface", INTERFACES)
def test_a_long_pipeline_of_static_requests_is_answered_in_order(
    site: Path, interface: str
) -> None:
    """Hundreds of requests queued behind a large file: each answer starts the next, and
    none of them may do so from within the one before (the stack would overflow)."""
    count = 400
    with served(interface, site) as (port, _), Peer(port) as peer:
        requests = [b"GET /static/big.bin HTTP/1.1\r\nHost: t\r\n\r\n"]
        requests += [
            b"GET /static/hello.txt?%d HTTP/1.1\r\nHost: t\r\n\r\n" % i for i in range(count)
        ]
        peer.send(b"".join(requests))
        assert len(peer.response().body) == BIG
        for _ in range(count):
            reply = peer.response()
            assert (reply.status, reply.body) == (200, b"hello\n")
