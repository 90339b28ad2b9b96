"""WSGI apps over real sockets: the PEP 3333 contract as a client and the app both see it.

Each test serves its own small app on 127.0.0.1 port 0 (`tests.wsgi.support.serve_wsgi`)
and waits on conditions (events the app sets, bytes arriving, EOF), never on a guessed
delay; the few checks that something does *not* happen wait a stated, bounded time.

Every app is wrapped in wsgiref's validator; the autouse `errors` fixture fails a test whose
log shows the validator refused something. The few apps that are not wrapped say why: the
validator would refuse what the test wants the server to catch, or its wrapper would hide
the server's one-piece fast path (a list of one bytestring).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.wsgi.support import (
    KIB,
    MIB,
    WAIT,
    Body,
    Peer,
    StartResponse,
    WSGIApp,
    assert_validated,
    capture_errors,
    error_log,
    request,
    serve_wsgi,
    validated,
    wait_until,
)

from rootserve.wsgi.input import HIGH_WATER

Environ = dict[str, Any]
TEXT = [("Content-Type", "text/plain")]


@pytest.fixture(autouse=True)
def errors(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> Iterator[pytest.LogCaptureFixture]:
    captured = capture_errors(caplog, monkeypatch)
    yield captured
    assert_validated(captured)


def hello(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", TEXT)
    return [b"hello"]


def read_all(environ: Environ, piece: int = 64 * KIB) -> bytes:
    """The whole body through `read(size)`, the only read PEP 3333 promises."""
    parts = []
    while chunk := environ["wsgi.input"].read(piece):
        parts.append(chunk)
    return b"".join(parts)


def digest_app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """Answers the body's size and SHA-256 as JSON."""
    body = read_all(environ)
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps({"size": len(body), "sha256": hashlib.sha256(body).hexdigest()}).encode()]


def digest(data: bytes) -> dict[str, Any]:
    return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def test_the_validator_is_on(errors: pytest.LogCaptureFixture):
    """What every other test relies on: a rule broken behind the validator is a 500 and an
    AssertionError in the log, which `assert_validated` finds."""

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [])  # PEP 3333 leaves it to the app; the validator wants it
        return [b"no content type"]

    with serve_wsgi(validated(app)) as served:
        assert httpx.get(served.url, timeout=WAIT).status_code == 500
    with pytest.raises(AssertionError, match="No Content-Type"):
        assert_validated(errors)
    errors.clear()


# -- the environ, as the app sees it -------------------------------------------------------


def environ_app(seen: list[Environ]) -> WSGIApp:
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        seen.append(dict(environ))
        start_response("200 OK", TEXT)
        return [b"seen"]

    return validated(app)


def test_environ_has_every_pep_3333_key():
    seen: list[Environ] = []
    with serve_wsgi(environ_app(seen)) as served, Peer(served.port) as peer:
        peer.send(
            request(
                "/caf%C3%A9/x?q=a%20b&r=1",
                "Content-Type: text/plain",
                "User-Agent: pep3333",
                method="POST",
                body=b"12345",
            )
        )
        assert peer.response().status == 200
        client_port = peer.sock.getsockname()[1]
    (environ,) = seen
    assert environ["REQUEST_METHOD"] == "POST"
    assert environ["SCRIPT_NAME"] == ""
    assert environ["PATH_INFO"] == "/caf\xc3\xa9/x"  # percent-decoded bytes, as latin-1
    assert environ["PATH_INFO"].encode("latin-1").decode("utf-8") == "/café/x"
    assert environ["QUERY_STRING"] == "q=a%20b&r=1"  # left encoded
    assert environ["CONTENT_TYPE"] == "text/plain"
    assert environ["CONTENT_LENGTH"] == "5"
    assert "HTTP_CONTENT_TYPE" not in environ and "HTTP_CONTENT_LENGTH" not in environ
    assert (environ["SERVER_NAME"], environ["SERVER_PORT"]) == ("127.0.0.1", str(served.port))
    assert environ["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert (environ["REMOTE_ADDR"], environ["REMOTE_PORT"]) == ("127.0.0.1", str(client_port))
    assert environ["HTTP_HOST"] == "test"
    assert environ["HTTP_USER_AGENT"] == "pep3333"
    assert environ["wsgi.version"] == (1, 0)
    assert environ["wsgi.url_scheme"] == "http"
    assert environ["wsgi.multithread"] is True
    assert environ["wsgi.multiprocess"] is False
    assert environ["wsgi.run_once"] is False
    assert environ["wsgi.input_terminated"] is True
    for key in ("wsgi.input", "wsgi.errors", "wsgi.file_wrapper"):
        assert key in environ
    for key, value in environ.items():
        if "." not in key:
            assert type(value) is str, key  # PEP 3333: CGI keys are native strings


def test_repeated_headers_joined_and_underscored_names_dropped():
    seen: list[Environ] = []
    with serve_wsgi(environ_app(seen)) as served, Peer(served.port) as peer:
        peer.send(
            request(
                "/",
                "X-Tag: a",
                "Accept: text/html",
                "x-tag: b, c",
                "X-Forwarded-For: 10.0.0.1",
                "X_Forwarded_For: 6.6.6.6",  # would spoof HTTP_X_FORWARDED_FOR
                "X_Only_Underscores: 1",
            )
        )
        assert peer.response().status == 200
    (environ,) = seen
    assert environ["HTTP_X_TAG"] == "a,b, c"  # RFC 3875 section 4.1.18: joined with ","
    assert environ["HTTP_ACCEPT"] == "text/html"
    assert environ["HTTP_X_FORWARDED_FOR"] == "10.0.0.1"
    assert "HTTP_X_ONLY_UNDERSCORES" not in environ


def test_script_name_from_root_path():
    seen: list[Environ] = []
    with serve_wsgi(environ_app(seen), root_path="/mount") as served, Peer(served.port) as peer:
        peer.send(request("/items/7"))
        assert peer.response().status == 200
    assert (seen[0]["SCRIPT_NAME"], seen[0]["PATH_INFO"]) == ("/mount", "/items/7")


@pytest.mark.parametrize(("root_path", "script_name"), [("/", ""), ("/mount/", "/mount")])
def test_root_path_with_a_trailing_slash(root_path: str, script_name: str):
    """PEP 3333: SCRIPT_NAME is "" at the root, and SCRIPT_NAME + PATH_INFO is the path, so
    it never ends with "/" (wsgiref's validator refuses SCRIPT_NAME "/")."""
    seen: list[Environ] = []
    with serve_wsgi(environ_app(seen), root_path=root_path) as served, Peer(served.port) as peer:
        peer.send(request("/items"))
        assert peer.response().status == 200
    assert (seen[0]["SCRIPT_NAME"], seen[0]["PATH_INFO"]) == (script_name, "/items")


def test_http10_request():
    seen: list[Environ] = []
    with serve_wsgi(environ_app(seen)) as served, Peer(served.port) as peer:
        peer.send(b"GET /old HTTP/1.0\r\n\r\n")
        raw = peer.to_eof()
    assert raw.startswith(b"HTTP/1.1 200 ")
    assert raw.endswith(b"\r\n\r\nseen")
    assert seen[0]["SERVER_PROTOCOL"] == "HTTP/1.0"
    assert "HTTP_HOST" not in seen[0]


# -- app threads -----------------------------------------------------------------------------


def test_app_runs_on_an_app_thread_not_the_loop_thread():
    where: list[tuple[int, str]] = []

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        thread = threading.current_thread()
        where.append((threading.get_ident(), thread.name))
        start_response("200 OK", TEXT)
        return [b"ok"]

    with serve_wsgi(validated(app), threads=2) as served:
        with httpx.Client(base_url=served.url, timeout=WAIT) as client:
            for _ in range(4):
                assert client.get("/").status_code == 200
        loop_thread = served.thread.ident
    assert len(where) == 4
    for ident, name in where:
        assert ident != loop_thread
        assert ident != threading.get_ident()
        assert name.startswith("rootserve-app")
    assert len({ident for ident, _ in where}) <= 2


def test_app_threads_are_bounded():
    """--threads 3: a fourth request waits for a thread; the waiting ones then all finish."""
    lock = threading.Lock()
    inside = [0]
    most = [0]
    entered = threading.Semaphore(0)
    release = threading.Event()

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        entered.release()
        try:
            release.wait(WAIT)
        finally:
            with lock:
                inside[0] -= 1
        start_response("200 OK", TEXT)
        return [b"done"]

    with serve_wsgi(validated(app), threads=3) as served:
        peers = [Peer(served.port) for _ in range(6)]
        try:
            for peer in peers:
                peer.send(request("/"))
            for _ in range(3):
                assert entered.acquire(timeout=WAIT)
            # Three run; the other three requests have arrived (their sockets are written)
            # and wait in the queue. None of them may start before a thread is free.
            assert not entered.acquire(timeout=0.3)
            release.set()
            assert [peer.response().body for peer in peers] == [b"done"] * 6
        finally:
            for peer in peers:
                peer.sock.close()
    assert most[0] == 3


# -- start_response and write() --------------------------------------------------------------


def test_write_callable():
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        write = start_response("200 OK", TEXT)
        write(b"one ")
        write(b"two ")
        return [b"three"]

    with serve_wsgi(validated(app)) as served:
        answer = httpx.get(served.url, timeout=WAIT)
    assert (answer.status_code, answer.text) == (200, "one two three")


def test_exc_info_before_headers_sent_replaces_the_status():
    """PEP 3333: until a non-empty body string is sent, start_response(..., exc_info) may
    replace the status and headers (empty strings do not send the head)."""

    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", TEXT)
        yield b""
        try:
            raise LookupError("gone")
        except LookupError:
            start_response("503 Service Unavailable", TEXT, sys.exc_info())
        yield b"try later"

    with serve_wsgi(validated(app)) as served:
        answer = httpx.get(served.url, timeout=WAIT)
    assert (answer.status_code, answer.text) == (503, "try later")


def test_exc_info_after_headers_sent_reraises_and_closes(errors: pytest.LogCaptureFixture):
    reraised: list[BaseException] = []
    bodies: list[Body] = []

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", TEXT)

        def chunks() -> Iterator[bytes]:
            yield b"first"
            try:
                raise KeyError("late")
            except KeyError as exc:
                try:
                    start_response("500 Internal Server Error", TEXT, sys.exc_info())
                except KeyError as again:
                    reraised.append(again)
                    assert again is exc
                    raise

        bodies.append(Body(chunks()))
        return bodies[0]

    with serve_wsgi(validated(app)) as served, Peer(served.port) as peer:
        peer.send(request("/"))
        head = peer.head()
        assert head.status == 200
        assert head.header("transfer-encoding") == "chunked"
        rest = peer.to_eof()
        assert rest.startswith(b"5\r\nfirst\r\n")
        assert not rest.endswith(b"0\r\n\r\n")  # cut: no last chunk
        assert bodies[0].closed.wait(WAIT)
    assert len(reraised) == 1
    assert "KeyError" in error_log(errors)


def test_start_response_twice_without_exc_info_is_an_error(errors: pytest.LogCaptureFixture):
    raised: list[BaseException] = []

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", TEXT)
        try:
            start_response("201 Created", TEXT)
        except Exception as exc:
            raised.append(exc)
            raise
        return [b"never"]

    with serve_wsgi(validated(app)) as served, Peer(served.port) as peer:
        peer.send(request("/"))
        reply = peer.response()
        assert reply.status == 500
        assert b"never" not in reply.body
    assert len(raised) == 1
    assert "already called" in error_log(errors)


def test_app_returning_without_start_response_is_500(errors: pytest.LogCaptureFixture):
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        return []

    with serve_wsgi(validated(app)) as served:
        assert httpx.get(served.url, timeout=WAIT).status_code == 500
    assert "start_response" in error_log(errors)


def test_start_response_called_from_inside_the_iterable():
    """PEP 3333: start_response may be called on the first iteration of the body."""

    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("202 Accepted", TEXT)
        yield b"late "
        yield b"start"

    with serve_wsgi(validated(app)) as served:
        answer = httpx.get(served.url, timeout=WAIT)
    assert (answer.status_code, answer.text) == (202, "late start")


def test_status_with_crlf_is_refused(errors: pytest.LogCaptureFixture):
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK\r\nSet-Cookie: evil=1", TEXT)
        return [b"never"]

    with serve_wsgi(validated(app)) as served, Peer(served.port) as peer:
        peer.send(request("/"))
        raw = peer.to_eof()
    assert raw.startswith(b"HTTP/1.1 500 ")
    assert b"evil" not in raw and b"never" not in raw
    assert "status" in error_log(errors)


# Not behind the validator: it refuses each of these before the server sees it.
BAD_OUTPUT: dict[str, tuple[Any, Any, Any]] = {
    "status without reason": ("200", TEXT, [b"x"]),
    "two-digit status": ("20 OK", TEXT, [b"x"]),
    "bytes status": (b"200 OK", TEXT, [b"x"]),
    "header value not str": ("200 OK", [("Content-Length", 1)], [b"x"]),
    "bytes header": ("200 OK", [(b"Content-Type", b"text/plain")], [b"x"]),
    "str body chunk": ("200 OK", TEXT, ["text"]),
    "bytes as the iterable": ("200 OK", TEXT, b"bytes"),
    "str chunk after bytes": ("200 OK", TEXT, iter([b"ok", "text"])),
    "informational status": ("103 Early Hints", TEXT, [b"x"]),
}


@pytest.mark.parametrize("output", BAD_OUTPUT.values(), ids=BAD_OUTPUT.keys())
def test_app_output_against_pep_3333_is_refused(
    output: tuple[Any, Any, Any], errors: pytest.LogCaptureFixture
):
    status, headers, body = output

    def app(environ: Environ, start_response: StartResponse) -> Any:
        if environ["PATH_INFO"] == "/next":
            return hello(environ, start_response)
        start_response(status, headers)
        return body

    with serve_wsgi(app, threads=1) as served:
        with Peer(served.port) as peer:
            peer.send(request("/"))
            raw = peer.to_eof()
        if isinstance(body, Iterator):
            # The head went out with "ok": the connection is cut, the body left unfinished.
            assert raw.startswith(b"HTTP/1.1 200 ")
            assert not raw.endswith(b"0\r\n\r\n")
        else:
            assert raw.startswith(b"HTTP/1.1 500 ")
        assert httpx.get(served.url + "/next", timeout=WAIT).text == "hello"
    assert error_log(errors)


# Not behind the validator: it refuses these headers itself, before the server could.
BAD_HEADERS = {
    "crlf in value": ("X-Bad", "a\r\nSet-Cookie: evil=1"),
    "lf in value": ("X-Bad", "a\nSet-Cookie: evil=1"),
    "cr in value": ("X-Bad", "a\rSet-Cookie: evil=1"),
    "nul in value": ("X-Bad", "a\x00Set-Cookie: evil=1"),
    "crlf in name": ("X-Bad\r\nSet-Cookie", "evil=1"),
}


@pytest.mark.parametrize("header", BAD_HEADERS.values(), ids=BAD_HEADERS.keys())
@pytest.mark.parametrize("streamed", [False, True], ids=["whole", "streamed"])
def test_response_splitting_is_refused(
    header: tuple[str, str], streamed: bool, errors: pytest.LogCaptureFixture
):
    body = Body([b"body ", b"text"] if streamed else [b"body text"])

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [*TEXT, header])
        return body if streamed else [b"body text"]

    with serve_wsgi(app) as served, Peer(served.port) as peer:
        peer.send(request("/"))
        raw = peer.to_eof()
    assert raw.startswith(b"HTTP/1.1 500 ")
    assert b"evil" not in raw and b"X-Bad" not in raw and b"body" not in raw
    assert "X-Bad" in error_log(errors)
    if streamed:
        assert body.closed.wait(WAIT)


def test_refused_head_of_a_long_stream_frees_the_app_thread():
    """The refused head ends the response; the app thread, still walking a body far larger
    than the write buffer, must stop, close() the body and take the next request."""
    body = Body(b"x" * (64 * KIB) for _ in range(64))  # 4 MiB

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if environ["PATH_INFO"] == "/next":
            return hello(environ, start_response)
        start_response("200 OK", [*TEXT, ("X-Bad", "a\r\nSet-Cookie: evil=1")])
        return body

    with serve_wsgi(app, threads=1) as served:
        with Peer(served.port) as peer:
            peer.send(request("/"))
            assert peer.to_eof().startswith(b"HTTP/1.1 500 ")
        assert body.closed.wait(3.0), "close() was not called: the app thread is stuck"
        with Peer(served.port, timeout=3.0) as peer:
            peer.send(request("/next"))
            assert peer.response().body == b"hello"


def test_non_latin1_header_is_refused(errors: pytest.LogCaptureFixture):
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [*TEXT, ("X-Name", "snow \u2603")])
        return [b"never"]

    with serve_wsgi(validated(app)) as served, Peer(served.port) as peer:
        peer.send(request("/"))
        raw = peer.to_eof()
    assert raw.startswith(b"HTTP/1.1 500 ")
    assert b"never" not in raw and b"X-Name" not in raw
    assert "X-Name" in error_log(errors)


# -- framing ---------------------------------------------------------------------------------


# Each app runs behind the validator, and bare: a list of one bytestring, which the server
# hands over whole; the validator's wrapper would hide that path.
BARE = pytest.mark.parametrize("bare", [False, True], ids=["validated", "one-piece-list"])


@BARE
def test_head_gets_no_body(bare: bool):
    body = Body([b"hello ", b"world"])

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if environ["PATH_INFO"] == "/stream":
            start_response("200 OK", TEXT)
            return body
        if environ["PATH_INFO"] == "/unsized":
            start_response("200 OK", TEXT)
            return [b"hello"]
        start_response("200 OK", [*TEXT, ("Content-Length", "11")])
        return [b"hello world"]

    with serve_wsgi(app if bare else validated(app)) as served, Peer(served.port) as peer:
        peer.send(request("/", method="HEAD"))
        reply = peer.response(head=True)
        assert (reply.status, reply.header("content-length")) == (200, "11")
        peer.send(request("/unsized", method="HEAD"))
        reply = peer.response(head=True)
        assert reply.status == 200
        assert reply.header("content-length") in (None, "5")  # what a GET would get
        peer.send(request("/stream", method="HEAD"))
        assert peer.response(head=True).status == 200
        assert body.closed.wait(WAIT)
        # Had a body followed any head, it would be read here as the next response.
        peer.send(request("/"))
        assert peer.response().body == b"hello world"


@BARE
@pytest.mark.parametrize("status", ["204 No Content", "304 Not Modified"])
def test_no_body_for_204_and_304(status: str, bare: bool):
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if environ["PATH_INFO"] == "/next":
            return hello(environ, start_response)
        start_response(status, [("ETag", '"v1"')])
        return [b"a body the status does not allow"]

    with serve_wsgi(app if bare else validated(app)) as served, Peer(served.port) as peer:
        peer.send(request("/"))
        reply = peer.response()
        assert reply.status == int(status[:3])
        assert reply.header("transfer-encoding") is None
        assert reply.header("etag") == '"v1"'
        if status.startswith("204"):
            assert reply.header("content-length") is None  # RFC 9110 section 8.6
        peer.send(request("/next"))
        assert peer.response().body == b"hello"


def content_length_app(declared: int, chunks: list[bytes], *, bare: bool) -> WSGIApp:
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [*TEXT, ("Content-Length", str(declared))])
        return list(chunks)

    return app if bare else validated(app)


@BARE
def test_body_shorter_than_content_length_is_cut(bare: bool, errors: pytest.LogCaptureFixture):
    """RFC 9112 section 6.3: only closing tells the client the body is incomplete."""
    with serve_wsgi(content_length_app(10, [b"four"], bare=bare)) as served:
        with Peer(served.port) as peer:
            peer.send(request("/"))
            raw = peer.to_eof()
        if raw.startswith(b"HTTP/1.1 200 "):
            head, _, body = raw.partition(b"\r\n\r\n")
            assert b"content-length: 10" in head.lower()
            assert len(body) < 10
        else:
            assert raw.startswith(b"HTTP/1.1 500 ")
        with pytest.raises(httpx.HTTPError):
            httpx.get(served.url, timeout=WAIT).raise_for_status()
    assert "short" in error_log(errors)


@pytest.mark.parametrize(
    ("chunks", "bare"),
    [([b"abc", b"defgh"], False), ([b"abcdefgh"], False), ([b"abcdefgh"], True)],
    ids=["validated-two-chunks", "validated-one-chunk", "one-piece-list"],
)
def test_body_longer_than_content_length_is_never_sent(
    chunks: list[bytes], bare: bool, errors: pytest.LogCaptureFixture
):
    with serve_wsgi(content_length_app(3, chunks, bare=bare)) as served, Peer(served.port) as peer:
        peer.send(request("/"))
        raw = peer.to_eof()
    assert b"defgh" not in raw
    if raw.startswith(b"HTTP/1.1 200 "):
        assert raw.endswith(b"\r\n\r\nabc")
    else:
        assert raw.startswith(b"HTTP/1.1 500 ")
    assert "Content-Length" in error_log(errors)


# -- app errors --------------------------------------------------------------------------------


def failing_app(when: str, bodies: list[Body]) -> WSGIApp:
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if environ["PATH_INFO"] == "/next":
            return hello(environ, start_response)
        if when == "before start_response":
            raise RuntimeError("boom before")
        start_response("200 OK", TEXT)

        def chunks() -> Iterator[bytes]:
            if when == "after the first chunk":
                yield b"first"
            raise RuntimeError(f"boom {when}")

        bodies.append(Body(chunks()))
        return bodies[-1]

    return validated(app)


@pytest.mark.parametrize("when", ["before start_response", "before the first chunk"])
def test_app_error_before_the_head_is_sent_gives_500(when: str, errors: pytest.LogCaptureFixture):
    bodies: list[Body] = []
    with serve_wsgi(failing_app(when, bodies), threads=1) as served:
        with Peer(served.port) as peer:
            peer.send(request("/"))
            reply = peer.response()
            assert reply.status == 500
            assert reply.header("connection") == "close"
            assert peer.at_eof()
        # The worker and its only app thread go on.
        assert httpx.get(served.url + "/next", timeout=WAIT).text == "hello"
    assert "RuntimeError('boom before" in error_log(errors)
    for body in bodies:
        assert body.closed.wait(WAIT)


def test_app_error_after_the_first_chunk_closes_the_connection(
    errors: pytest.LogCaptureFixture,
):
    bodies: list[Body] = []
    with serve_wsgi(failing_app("after the first chunk", bodies), threads=1) as served:
        with Peer(served.port) as peer:
            peer.send(request("/"))
            assert peer.head().status == 200
            rest = peer.to_eof()
        assert rest.startswith(b"5\r\nfirst\r\n")
        assert not rest.endswith(b"0\r\n\r\n")
        assert bodies[0].closed.wait(WAIT)
        assert httpx.get(served.url + "/next", timeout=WAIT).text == "hello"
    assert "boom after the first chunk" in error_log(errors)


def test_error_in_close_is_logged_and_the_response_stands(errors: pytest.LogCaptureFixture):
    class Failing(Body):
        def close(self) -> None:
            super().close()
            raise OSError("close failed")

    body = Failing([b"fine"])

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", TEXT)
        return body

    with serve_wsgi(validated(app)) as served:
        assert httpx.get(served.url, timeout=WAIT).text == "fine"
        assert body.closed.wait(WAIT)
        wait_until(lambda: "close failed" in error_log(errors))


# -- the iterable's close() on every path -------------------------------------------------------


def test_close_is_called_after_success():
    bodies: list[Body] = []

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", TEXT)
        bodies.append(Body([b"a", b"b"]))
        return bodies[-1]

    with serve_wsgi(validated(app)) as served:
        with httpx.Client(base_url=served.url, timeout=WAIT) as client:
            for _ in range(3):
                assert client.get("/").text == "ab"
        for body in bodies:
            assert body.closed.wait(WAIT)


def test_client_gone_mid_stream_calls_close():
    first_sent = threading.Event()
    client_gone = threading.Event()
    produced = [0]
    cap = 10_000  # chunks; far more than it takes to notice the client left
    bodies: list[Body] = []

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", TEXT)

        def chunks() -> Iterator[bytes]:
            yield b"first"
            first_sent.set()
            assert client_gone.wait(WAIT)
            while produced[0] < cap:
                produced[0] += 1
                yield b"x" * (16 * KIB)

        bodies.append(Body(chunks()))
        return bodies[0]

    with serve_wsgi(validated(app)) as served:
        with Peer(served.port) as peer:
            peer.send(request("/"))
            assert peer.head().status == 200
            peer.until(b"first")
            assert first_sent.wait(WAIT)
        client_gone.set()
        assert bodies[0].closed.wait(WAIT)
    assert produced[0] < cap


def test_client_gone_mid_upload_raises_in_read(errors: pytest.LogCaptureFixture):
    """The app is called once the first HIGH_WATER bytes of a body are in (a smaller
    body is awaited whole); the client leaves after them, while the app reads on."""
    got = threading.Event()
    failed: list[BaseException] = []
    finished = threading.Event()
    part = b"p" * (HIGH_WATER + 1)

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        try:
            assert environ["wsgi.input"].read(len(part)) == part
            got.set()
            environ["wsgi.input"].read(100)
        except OSError as exc:
            failed.append(exc)
            raise
        finally:
            finished.set()
        start_response("200 OK", TEXT)
        return [b"never"]

    with serve_wsgi(validated(app)) as served:
        with Peer(served.port) as peer:
            peer.send(request("/", f"Content-Length: {len(part) + 100}", method="POST") + part)
            assert got.wait(WAIT)
        assert finished.wait(WAIT)
    assert len(failed) == 1
    # The client left: its failed request is not a server error.
    assert "Exception in WSGI app" not in error_log(errors)


# -- wsgi.input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "size",
    [
        100 * KIB,
        2 * MIB,
    ],
    ids=["100KiB", "2MiB"],
)
def test_a_body_the_app_does_not_read_does_not_stall_the_connection(size: int):
    with serve_wsgi(validated(hello)) as served, Peer(served.port, timeout=3.0) as peer:
        peer.send(request("/", method="POST", body=b"x" * size))
        reply = peer.response()
        assert (reply.status, reply.body) == (200, b"hello")
        if reply.header("connection") == "close":
            assert peer.at_eof()
        else:
            peer.send(request("/"))
            assert peer.response().body == b"hello"


def test_chunked_upload():
    seen: list[Environ] = []

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        seen.append(dict(environ))
        return digest_app(environ, start_response)

    pieces = [b"a" * 10, os.urandom(70_000), b"tail"]
    raw = b"".join(b"%x\r\n%b\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
    with serve_wsgi(validated(app)) as served, Peer(served.port) as peer:
        peer.send(request("/", "Transfer-Encoding: chunked", method="PUT") + raw)
        reply = peer.response()
    assert reply.status == 200
    assert json.loads(reply.body) == digest(b"".join(pieces))
    assert "CONTENT_LENGTH" not in seen[0]
    assert seen[0]["wsgi.input_terminated"] is True


def test_readline_and_iteration():
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        stream = environ["wsgi.input"]
        first = stream.readline()
        limited = stream.readline(3)
        rest = list(stream)
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps([first.decode(), limited.decode(), [r.decode() for r in rest]]).encode()]

    body = b"one\nabcdef\nthree\nfour"
    with serve_wsgi(validated(app)) as served:
        answer = httpx.post(served.url, content=body, timeout=WAIT)
    assert answer.json() == ["one\n", "abc", ["def\n", "three\n", "four"]]


def test_the_app_reads_a_slow_upload_as_it_arrives():
    """Client and app in lockstep: each piece is sent only once the app has read the one
    before, so the app reads the body while it arrives, not after. (The app is called once
    HIGH_WATER bytes are in, so the first piece is that large.)"""
    pieces = [b"x" * (HIGH_WATER + 1)] + [b"%02d" % n * 500 for n in range(6)]
    read: list[bytes] = []
    took = threading.Semaphore(0)

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        for piece in pieces:
            read.append(environ["wsgi.input"].read(len(piece)))
            took.release()
        start_response("200 OK", TEXT)
        return [b"read %d pieces" % len(read)]

    size = sum(map(len, pieces))
    with serve_wsgi(validated(app)) as served, Peer(served.port) as peer:
        peer.send(request("/", f"Content-Length: {size}", method="POST"))
        for piece in pieces:
            peer.send(piece)
            assert took.acquire(timeout=WAIT)
        assert peer.response().body == b"read 7 pieces"
    assert read == pieces


def test_large_upload_echoes():
    data = os.urandom(8 * MIB)

    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        body = read_all(environ)
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        for start in range(0, len(body), 256 * KIB):
            yield body[start : start + 256 * KIB]

    with serve_wsgi(validated(app)) as served:
        answer = httpx.post(served.url, content=data, timeout=WAIT)
    assert answer.status_code == 200
    assert answer.content == data


def test_upload_buffering_is_bounded():
    """An app that has not read yet makes the server stop reading the socket: the client
    can hand over a little (socket buffers and the server's input buffer), not the body."""
    total = 16 * MIB
    data = os.urandom(total)
    start_reading = threading.Event()

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        assert start_reading.wait(WAIT)
        return digest_app(environ, start_response)

    with serve_wsgi(validated(app)) as served, Peer(served.port, sndbuf=64 * KIB) as peer:
        peer.send(request("/", f"Content-Length: {total}", method="POST"))
        taken = peer.send_until_stalled(data, stall=0.5)
        start_reading.set()
        peer.send(data[taken:])
        reply = peer.response()
    assert taken < total // 2
    assert json.loads(reply.body) == digest(data)


def test_expect_100_continue_sent_when_the_app_reads():
    with serve_wsgi(validated(digest_app)) as served, Peer(served.port) as peer:
        peer.send(request("/", "Content-Length: 5", "Expect: 100-continue", method="POST"))
        assert peer.until(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        peer.send(b"12345")
        reply = peer.response()
        assert reply.status == 200
        assert json.loads(reply.body) == digest(b"12345")
        # The body came, so the connection goes on.
        peer.send(request("/", method="POST", body=b"again"))
        assert json.loads(peer.response().body) == digest(b"again")


def test_expect_100_continue_not_sent_when_the_app_does_not_read():
    """A body larger than HIGH_WATER is the app's to ask for: it is called at once, and the
    100 goes out only when it reads (a smaller one is asked for and awaited first)."""
    length = f"Content-Length: {HIGH_WATER + 1}"
    with serve_wsgi(validated(hello)) as served, Peer(served.port) as peer:
        peer.send(request("/", length, "Expect: 100-continue", method="POST"))
        reply = peer.response()
        assert reply.status == 200
        assert b"100 Continue" not in reply.head
        assert reply.header("connection") == "close"
        assert peer.at_eof()


def test_expect_100_continue_small_body_is_asked_for_before_the_app_runs():
    """A small body is asked for at once and buffered whole, so the app thread never waits
    on the client."""
    seen: list[bytes] = []

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        seen.append(environ["wsgi.input"].read(5))
        start_response("200 OK", TEXT)
        return [b"got it"]

    with serve_wsgi(validated(app)) as served, Peer(served.port) as peer:
        peer.send(request("/", "Content-Length: 5", "Expect: 100-continue", method="POST"))
        assert peer.response().status == 100
        assert not seen  # the app waits for the body, not the other way round
        peer.send(b"hello")
        reply = peer.response()
        assert (reply.status, reply.body) == (200, b"got it")
    assert seen == [b"hello"]


# -- wsgi.file_wrapper ---------------------------------------------------------------------------


def test_file_wrapper_serves_the_file(tmp_path: Path):
    data = os.urandom(MIB + 123)
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    opened: list[Any] = []

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        file = path.open("rb")
        opened.append(file)
        start_response(
            "200 OK",
            [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(data)))],
        )
        return environ["wsgi.file_wrapper"](file, 32 * KIB)  # type: ignore[no-any-return]

    with serve_wsgi(validated(app)) as served:
        answer = httpx.get(served.url, timeout=WAIT)
        assert answer.headers["content-length"] == str(len(data))
        assert answer.content == data
        # The wrapper's close() closes the file (PEP 3333 "Optional Platform-Specific File
        # Handling"), and the server calls it.
        wait_until(lambda: opened[0].closed)


# -- slow clients ----------------------------------------------------------------------------------


def test_slow_clients_do_not_starve_a_fast_one():
    """threads=4, 50 slow clients: 25 trickle their request heads (no app thread is taken
    until a head is whole) and 25 read nothing of a 128 KiB answer (it fits the server's
    write buffering, so the app thread hands it over and is free). A fast request is
    answered while they all stay connected."""
    done: list[Body] = []
    lock = threading.Lock()

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", TEXT)
        if environ["PATH_INFO"] == "/fast":
            return [b"fast"]
        body = Body(b"%d" % (n % 10) * (16 * KIB) for n in range(8))
        with lock:
            done.append(body)
        return body

    with serve_wsgi(validated(app), threads=4) as served:
        tricklers = [Peer(served.port) for _ in range(25)]
        readers = [Peer(served.port, rcvbuf=4 * KIB) for _ in range(25)]
        try:
            for peer in tricklers:
                peer.send(b"GET /trickle HTTP/1.1\r\nHo")
            for peer in readers:
                peer.send(request("/big"))
            wait_until(lambda: len(done) == 25)
            for body in done:
                assert body.closed.wait(WAIT)  # the app thread let go of it
            for peer in tricklers:
                peer.send(b"st: te")
            start = time.monotonic()
            answer = httpx.get(served.url + "/fast", timeout=WAIT)
            assert (answer.status_code, answer.text) == (200, "fast")
            assert time.monotonic() - start < 2.0
            for peer in tricklers:
                peer.send(b"st\r\n\r\n")
            for peer in [*tricklers, *readers]:
                assert len(peer.response().body) == 128 * KIB
        finally:
            for peer in [*tricklers, *readers]:
                peer.sock.close()


def test_a_slow_reader_holds_the_app_thread_not_server_memory():
    produced = [0]
    last_yield = [0.0]
    advanced = threading.Event()
    mark = [0]
    total_chunks = 1024  # 64 MiB: far more than socket buffers and WRITE_HIGH_WATER

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])

        def chunks() -> Iterator[bytes]:
            for _ in range(total_chunks):
                produced[0] += 1
                last_yield[0] = time.monotonic()
                if mark[0] and produced[0] > mark[0]:
                    advanced.set()
                yield b"x" * (64 * KIB)

        return chunks()

    with serve_wsgi(validated(app)) as served, Peer(served.port, rcvbuf=16 * KIB) as peer:
        peer.send(request("/"))
        # The app runs until socket buffers and the write buffer are full, then waits; a
        # stall is no new chunk for half a second.
        wait_until(lambda: produced[0] > 0 and time.monotonic() - last_yield[0] > 0.5)
        mark[0] = produced[0] + 1  # one chunk may be in hand
        # The client still reads nothing: the app must stay where it is.
        assert not advanced.wait(2.5), f"the app went on to {produced[0] * 64 // 1024} MiB"
        assert produced[0] < total_chunks
