"""Serving WSGI apps for tests, a raw HTTP/1.1 client, and the pieces WSGI test apps share.

`serve_wsgi` is `tests.helpers.serve` for a WSGI app: `serve()` builds `Server(config, app,
sockets)` without `interface=`, so the server would take the app for ASGI. This helper passes
`interface="wsgi"` and also hands back the server's thread (the event loop's thread), so a
test can tell it apart from the app threads.

Every test app is wrapped in `wsgiref.validate.validator` (`validated`). The validator raises
AssertionError inside the app thread when either side breaks a PEP 3333 rule; the server
answers that with a 500 and logs it, so a test that gets its expected status and finds no
AssertionError in the log (`assert_validated`) has shown the validator passed.
"""

from __future__ import annotations

import logging
import threading
import time
import wsgiref.validate
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from tests.helpers import Peer as _Peer

from rootserve.config import Config
from rootserve.loading import dress_app
from rootserve.server.worker import Server
from rootserve.supervisor.sockets import bind_all

KIB = 1024
MIB = 1024 * KIB
WAIT = 10.0  # seconds: the bound on any wait for something that should happen at once
POLL_SECONDS = 0.005  # between two looks at a condition another thread makes true
READY_TIMEOUT = 15.0

StartResponse = Callable[..., Callable[[bytes], None]]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


# -- serving -------------------------------------------------------------------------------


@dataclass
class Served:
    host: str
    port: int
    server: Server
    thread: threading.Thread  # runs the event loop

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


@contextmanager
def serve_wsgi(app: Any, **settings: Any) -> Iterator[Served]:
    """Serve the WSGI `app` on 127.0.0.1 port 0 in a thread until the block ends."""
    settings.setdefault("access_log", False)
    # A test that finds an app thread stuck must still stop its server in bounded time.
    settings.setdefault("timeout_graceful", 3.0)
    config = Config(host="127.0.0.1", port=0, interface="wsgi", **settings)
    sockets = bind_all(["127.0.0.1:0"], 128)
    port = sockets[0].getsockname()[1]
    server = Server(config, dress_app(app, "wsgi", config), sockets, interface="wsgi")
    thread = threading.Thread(target=server.run, name="rootserve-wsgi-test", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while not server.started.wait(0.05):
            if server.stopped.is_set():
                raise RuntimeError(f"server stopped before listening (exit {server.exit_code})")
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start listening in time")
        yield Served("127.0.0.1", port, server, thread)
    finally:
        server.request_stop()
        thread.join(READY_TIMEOUT)
        for sock in sockets:
            sock.close()
        assert not thread.is_alive(), "server thread did not stop"


# -- the validator and the log -------------------------------------------------------------


def validated(app: WSGIApp) -> WSGIApp:
    """`app` behind wsgiref's PEP 3333 validator."""
    return wsgiref.validate.validator(app)  # type: ignore[no-any-return]


def capture_errors(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> pytest.LogCaptureFixture:
    """caplog, seeing rootserve's loggers (the CLI's setup_logging turns their propagation
    off, and a test that ran it may have run in this process)."""
    monkeypatch.setattr(logging.getLogger("rootserve"), "propagate", True)
    caplog.set_level(logging.INFO, logger="rootserve")
    return caplog


def error_log(caplog: pytest.LogCaptureFixture) -> str:
    """What "rootserve.error" said at ERROR or above, exceptions included."""
    lines = []
    for record in caplog.records:
        if record.name == "rootserve.error" and record.levelno >= logging.ERROR:
            lines.append(record.getMessage())
            if record.exc_info and record.exc_info[1] is not None:
                lines.append(repr(record.exc_info[1]))
    return "\n".join(lines)


def _raised_by_validator(exc: BaseException) -> bool:
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and tb.tb_frame.f_code.co_filename == wsgiref.validate.__file__


def assert_validated(caplog: pytest.LogCaptureFixture) -> None:
    """No PEP 3333 rule was broken: nothing logged (by rootserve, Flask or Django) an
    AssertionError raised by the validator."""
    for record in caplog.records:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, AssertionError) and _raised_by_validator(exc):
            raise AssertionError(f"the WSGI validator failed: {exc!r} ({record.name})")


def sized_reads(app: WSGIApp) -> WSGIApp:
    """Let `app` call `wsgi.input.read()` with no size behind the validator.

    PEP 3333 promises `read(size)`; the validator refuses `read()`. Werkzeug (so Flask) calls
    `read()` when the server sets `wsgi.input_terminated`, as rootserve does. Placed between
    the validator and such an app, this turns that one call into sized reads, so the
    validator still checks everything the server hands the app."""

    def call(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        environ["wsgi.input"] = _SizedReads(environ["wsgi.input"])
        return app(environ, start_response)

    return call


class _SizedReads:
    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def read(self, size: int | None = -1) -> bytes:
        if size is not None and size >= 0:
            return self._stream.read(size)  # type: ignore[no-any-return]
        parts = []
        while chunk := self._stream.read(64 * KIB):
            parts.append(chunk)
        return b"".join(parts)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._stream)


# -- what apps record ----------------------------------------------------------------------


class Body:
    """A response iterable that records its close() (PEP 3333: the server must call it)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self.closed = threading.Event()

    def __iter__(self) -> Iterator[bytes]:
        return self._chunks

    def close(self) -> None:
        self.closed.set()


def wait_until(condition: Callable[[], bool], timeout: float = WAIT) -> None:
    """Wait for a condition another thread makes true; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(POLL_SECONDS)  # noqa: sleep-ok (poll: the condition is set by another thread)


# -- a raw HTTP/1.1 client -----------------------------------------------------------------


class Peer(_Peer):
    """The raw client of tests/helpers.py, counting a reset as the end of the stream: these
    tests close connections with unread bytes on purpose."""

    def __init__(self, port: int, **options: Any) -> None:
        options.setdefault("resets_are_eof", True)
        super().__init__(port, **options)


def request(
    path: str = "/", *headers: str, method: str = "GET", body: bytes = b"", host: str = "test"
) -> bytes:
    """A raw HTTP/1.1 request; a Content-Length is added when there is a body."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", *headers]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join([*lines, "", ""])).encode("latin-1") + body
