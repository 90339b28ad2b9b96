"""The WSGI adapter: its parts that stand alone (`wsgi.file_wrapper`, the app threads), and
`WSGICycle` in memory: a real HTTP11Exchange on a fake connection (tests/exchange_support.py),
the real `WSGIRunner` and its app threads, no socket."""

from __future__ import annotations

import asyncio
import io
import logging
import threading
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from tests.exchange_support import FakeConnection, settle, wait_until
from tests.wsgi.support import capture_errors, error_log

from rootserve.server.exchange import HTTP11Exchange
from rootserve.wsgi.adapter import FileWrapper, WSGICycle
from rootserve.wsgi.input import HIGH_WATER
from rootserve.wsgi.runner import WSGIRunner
from rootserve.wsgi.threads import AppThreads

WAIT = 10.0


# -- wsgi.file_wrapper (PEP 3333 "Optional Platform-Specific File Handling") ---------------


def test_file_wrapper_reads_blocks_of_the_given_size():
    wrapper = FileWrapper(io.BytesIO(b"0123456789"), 4)
    assert list(wrapper) == [b"0123", b"4567", b"89"]


def test_file_wrapper_default_block_is_large():
    data = bytes(range(256)) * 4096  # 1 MiB
    blocks = list(FileWrapper(io.BytesIO(data)))
    assert b"".join(blocks) == data
    assert len(blocks) <= 16


def test_file_wrapper_gives_bytes_from_any_buffer():
    class Buffers:
        def __init__(self) -> None:
            self.parts: list[Any] = [bytearray(b"ab"), memoryview(b"cd")]

        def read(self, size: int) -> Any:
            return self.parts.pop(0) if self.parts else b""

    blocks = list(FileWrapper(Buffers(), 2))
    assert blocks == [b"ab", b"cd"]
    assert all(type(block) is bytes for block in blocks)


def test_file_wrapper_close_closes_the_file():
    file = io.BytesIO(b"data")
    wrapper = FileWrapper(file)
    assert list(wrapper) == [b"data"]
    wrapper.close()
    assert file.closed


def test_file_wrapper_of_an_object_without_close():
    class ReadOnly:
        def read(self, size: int) -> bytes:
            return b""

    wrapper = FileWrapper(ReadOnly())
    assert list(wrapper) == []
    assert not hasattr(wrapper, "close")


# -- the app threads -----------------------------------------------------------------------


class Job:
    def __init__(self, action: Any = None) -> None:
        self.action = action
        self.thread: threading.Thread | None = None
        self.done = threading.Event()

    def run(self) -> None:
        self.thread = threading.current_thread()
        try:
            if self.action is not None:
                self.action()
        finally:
            self.done.set()


def test_jobs_run_on_a_fixed_set_of_named_threads():
    pool = AppThreads(3, name="test-app")
    try:
        release = threading.Event()
        blocking = [Job(lambda: release.wait(WAIT)) for _ in range(3)]
        for job in blocking:
            pool.submit(job)
        queued = Job()
        pool.submit(queued)
        # Every thread is busy: the fourth job waits for one.
        assert not queued.done.wait(0.2)
        release.set()
        assert queued.done.wait(WAIT)
        for job in blocking:
            assert job.done.wait(WAIT)
        threads = {job.thread for job in [*blocking, queued]}
        assert len(threads) == 3
        for thread in threads:
            assert thread is not None
            assert thread.name.startswith("test-app-")
            assert thread is not threading.current_thread()
    finally:
        pool.stop()


def test_a_job_that_raises_does_not_end_its_thread(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
):
    capture_errors(caplog, monkeypatch)

    def fail() -> None:
        raise SystemExit("even this")

    pool = AppThreads(1)
    try:
        failing = Job(fail)
        pool.submit(failing)
        assert failing.done.wait(WAIT)
        after = Job()
        pool.submit(after)
        assert after.done.wait(WAIT)
        assert after.thread is failing.thread
    finally:
        pool.stop()
    records = [r for r in caplog.records if r.levelno == logging.CRITICAL]
    assert len(records) == 1
    assert isinstance(records[0].exc_info[1], SystemExit)  # type: ignore[index]


def test_stop_finishes_queued_jobs_then_ends_the_threads():
    pool = AppThreads(2)
    jobs = [Job() for _ in range(10)]
    for job in jobs:
        pool.submit(job)
    pool.stop()
    assert all(job.done.is_set() for job in jobs)
    assert all(job.thread is not None and not job.thread.is_alive() for job in jobs)


def test_at_least_one_thread():
    with pytest.raises(ValueError):
        AppThreads(0)


# -- WSGICycle in memory ---------------------------------------------------------------------

GET = b"GET /p?q=1 HTTP/1.1\r\nHost: t\r\n\r\n"
StartResponse = Any


@asynccontextmanager
async def served(
    app: Any, raw: bytes = GET, *, deliver_body: bool = True, start: bool = True
) -> AsyncIterator[tuple[HTTP11Exchange, FakeConnection]]:
    """The exchange of the first request in `raw`, its cycle attached by a real WSGIRunner
    (two app threads) and, when `start`, started as the server starts it."""
    conn = FakeConnection()
    loop = asyncio.get_running_loop()
    runner = WSGIRunner(app, threads=2, root_path="", multiprocess=False, loop=loop)
    try:
        exchange = conn.open(raw, runner, deliver_body=deliver_body)
        assert isinstance(exchange.receiver, WSGICycle)
        if start:
            conn.start(runner, exchange)
        yield exchange, conn
    finally:
        await runner.aclose()


async def finished(exchange: HTTP11Exchange, conn: FakeConnection) -> None:
    """Wait until the app's call is over and the exchange finished (out of the running set)."""
    await wait_until(lambda: exchange.complete and exchange not in conn.state.running)


def hello(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    environ["test.thread"] = threading.current_thread()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]


def test_whole_body_is_one_write_with_a_content_length():
    threads: list[threading.Thread] = []

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        threads.append(threading.current_thread())
        return hello(environ, start_response)

    async def test() -> None:
        async with served(app) as (exchange, conn):
            await finished(exchange, conn)
            [data] = conn.writes
            head, _, rest = data.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 OK\r\n")
            assert b"\r\ncontent-length: 5" in head
            assert rest == b"hello"
            assert conn.completed == [True]  # keep-alive
            assert exchange.status == 200

    asyncio.run(test())
    assert threads and threads[0] is not threading.current_thread()  # an app thread


def test_head_response_has_no_body():
    async def test() -> None:
        async with served(hello, b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n") as (exchange, conn):
            await finished(exchange, conn)
            assert b"content-length: 5\r\n" in conn.wire
            assert conn.wire.endswith(b"\r\n\r\n")
            assert conn.completed == [True]

    asyncio.run(test())


def test_streamed_body_is_chunked():
    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [])
        yield b"one"
        yield b""  # nothing to send: an empty chunk would end the body
        yield b"two"

    async def test() -> None:
        async with served(app) as (exchange, conn):
            await finished(exchange, conn)
            assert b"transfer-encoding: chunked" in conn.writes[0]
            assert conn.wire.endswith(b"\r\n\r\n3\r\none\r\n3\r\ntwo\r\n0\r\n\r\n")
            assert conn.completed == [True]

    asyncio.run(test())


def test_app_error_before_the_answer_is_a_500(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
):
    capture_errors(caplog, monkeypatch)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        raise ValueError("boom")

    async def test() -> None:
        async with served(app) as (exchange, conn):
            await finished(exchange, conn)
            assert conn.wire.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
            assert conn.completed == [False]
            assert not conn.aborted

    asyncio.run(test())
    assert "Exception in WSGI app for GET /p?q=1" in error_log(caplog)


def test_app_error_mid_body_cuts_the_connection(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
):
    capture_errors(caplog, monkeypatch)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [])
        yield b"part"
        raise ValueError("boom")

    async def test() -> None:
        async with served(app) as (exchange, conn):
            await finished(exchange, conn)
            assert conn.wire.startswith(b"HTTP/1.1 200 OK\r\n")
            assert conn.aborted and exchange.disconnected
            assert conn.completed == []

    asyncio.run(test())
    assert "boom" in error_log(caplog)


def test_a_head_that_cannot_be_sent_is_refused_with_a_500(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
):
    capture_errors(caplog, monkeypatch)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("X-Split", "a\r\nSet-Cookie: b")])
        return [b"hello"]

    async def test() -> None:
        async with served(app) as (exchange, conn):
            await finished(exchange, conn)
            assert conn.wire.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
            assert b"set-cookie" not in conn.wire.lower()
            assert conn.completed == [False]

    asyncio.run(test())
    assert "WSGI app response refused" in error_log(caplog)


def test_more_body_than_the_content_length_cuts_the_connection(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
):
    capture_errors(caplog, monkeypatch)
    closed = threading.Event()

    class Body:
        def __iter__(self) -> Iterator[bytes]:
            yield b"12"
            yield b"345"

        def close(self) -> None:
            closed.set()

    def app(environ: dict[str, Any], start_response: StartResponse) -> Body:
        start_response("200 OK", [("Content-Length", "3")])
        return Body()

    async def test() -> None:
        async with served(app) as (exchange, conn):
            await finished(exchange, conn)
            assert conn.aborted and exchange.disconnected
            assert b"345" not in conn.wire
            assert conn.completed == []
        assert closed.is_set()  # PEP 3333: close() on every path

    asyncio.run(test())


POST = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n"


def echo(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    data = environ["wsgi.input"].read()
    start_response("200 OK", [])
    return [data]


def test_the_app_is_called_once_the_body_is_in():
    called = threading.Event()

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        called.set()
        return echo(environ, start_response)

    async def test() -> None:
        async with served(app, POST, deliver_body=False) as (exchange, conn):
            await settle()
            exchange.feed(b"01234")
            await asyncio.sleep(0.05)  # noqa: sleep-ok (a window for what must not happen)
            assert not called.is_set()  # a slow body holds a buffer, not an app thread
            exchange.feed(b"56789")
            exchange.end()
            await finished(exchange, conn)
            assert called.is_set()
            assert conn.wire.endswith(b"\r\n\r\n0123456789")
            assert conn.completed == [True]

    asyncio.run(test())


def test_a_large_body_calls_the_app_once_the_buffer_is_full():
    raw = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % (2 * HIGH_WATER)

    async def test() -> None:
        async with served(echo, raw, deliver_body=False) as (exchange, conn):
            exchange.feed(b"a" * HIGH_WATER)
            assert conn.pauses == 0
            exchange.feed(b"b")
            assert conn.pauses == 1  # the buffer is full: reading pauses, the app starts
            await wait_until(lambda: conn.resumes >= 1)  # the app read it: reading resumes
            exchange.feed(b"c" * (HIGH_WATER - 1))
            exchange.end()
            await finished(exchange, conn)
            assert conn.wire.endswith(b"a" * HIGH_WATER + b"b" + b"c" * (HIGH_WATER - 1))
            assert conn.completed == [True]

    asyncio.run(test())


EXPECT = b"POST / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n"


def test_a_small_expected_body_is_asked_for_before_the_app_is_called():
    called = threading.Event()

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        called.set()
        return echo(environ, start_response)

    async def test() -> None:
        async with served(app, EXPECT % 2, deliver_body=False) as (exchange, conn):
            assert conn.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]
            assert conn.bodies_due == 1
            await asyncio.sleep(0.05)  # noqa: sleep-ok (a window for what must not happen)
            assert not called.is_set()
            exchange.feed(b"hi")
            exchange.end()
            await finished(exchange, conn)
            assert conn.wire.count(b"100 Continue") == 1
            assert conn.wire.endswith(b"\r\n\r\nhi")
            assert conn.completed == [True]

    asyncio.run(test())


def test_a_large_expected_body_is_the_apps_to_ask_for():
    size = HIGH_WATER + 1

    def refuse(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        start_response("413 Content Too Large", [])
        return [b"too big"]

    def read(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        data = environ["wsgi.input"].read(2)
        start_response("200 OK", [])
        return [data]

    async def test() -> None:
        # The app answers without reading: no 100 Continue, and the connection ends, since
        # the client may or may not send the body (RFC 9110 section 10.1.1).
        async with served(refuse, EXPECT % size, deliver_body=False) as (exchange, conn):
            await finished(exchange, conn)
            assert conn.wire.startswith(b"HTTP/1.1 413 ")
            assert b"100 Continue" not in conn.wire
            assert b"connection: close\r\n" in conn.wire
            assert conn.completed == [False]
        # The app reads: its first read sends 100 Continue.
        async with served(read, EXPECT % size, deliver_body=False) as (exchange, conn):
            await wait_until(lambda: conn.bodies_due == 1)
            assert conn.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]
            exchange.feed(b"ab")
            await finished(exchange, conn)
            assert conn.wire.endswith(b"\r\n\r\nab")

    asyncio.run(test())


def test_a_client_gone_before_its_body_is_in_never_reaches_the_app():
    called = threading.Event()

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        called.set()
        return echo(environ, start_response)

    async def test() -> None:
        async with served(app, POST, deliver_body=False) as (exchange, conn):
            exchange.feed(b"012")
            exchange.disconnect()
            assert not conn.state.running  # finished: nothing holds up a graceful stop
            await asyncio.sleep(0.05)  # noqa: sleep-ok (a window for what must not happen)
            assert conn.writes == []
            assert conn.completed == []

    asyncio.run(test())
    assert not called.is_set()


def test_a_client_gone_mid_body_ends_the_apps_read(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
):
    capture_errors(caplog, monkeypatch)
    raised: list[BaseException] = []
    raw = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % (2 * HIGH_WATER)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        try:
            environ["wsgi.input"].read()
        except OSError as exc:
            raised.append(exc)
            raise
        raise AssertionError("the body cannot be whole")

    async def test() -> None:
        async with served(app, raw, deliver_body=False) as (exchange, conn):
            exchange.feed(b"a" * (HIGH_WATER + 1))  # full: the app is called
            await wait_until(lambda: conn.resumes >= 1)  # it took the buffer, and waits
            exchange.disconnect()
            await finished(exchange, conn)
            assert conn.writes == []
            assert not conn.aborted

    asyncio.run(test())
    assert raised and isinstance(raised[0], OSError)
    assert error_log(caplog) == ""  # a client that leaves is no error of the app's


def test_the_app_thread_waits_while_the_transport_is_full():
    second = threading.Event()

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [])
        yield b"one"
        second.set()
        yield b"two"

    async def test() -> None:
        async with served(app, start=False) as (exchange, conn):
            conn.write_paused = True  # the transport holds more than its high-water mark
            conn.start(conn.runner, exchange)
            await wait_until(lambda: bool(conn.writes))  # the head and the first chunk
            await asyncio.sleep(0.05)  # noqa: sleep-ok (a window for what must not happen)
            assert not second.is_set()  # the app thread waits for the transport
            conn.resume_writing()
            await finished(exchange, conn)
            assert second.is_set()
            assert conn.wire.endswith(b"3\r\none\r\n3\r\ntwo\r\n0\r\n\r\n")

    asyncio.run(test())
