"""Slow request bodies, end to end: clients that trickle their bodies hold neither the
event loop nor (for a WSGI app) the app threads, and the body deadline (`--timeout-body`,
`--min-body-rate`) answers them 408 Request Timeout and closes their connections.

Servers are CLI subprocesses (tests.helpers.start_cli waits for the "Listening on URL"
line) serving tests/apps/body_count.py; a thread drains their output for as long as they
run, so a chatty server never blocks on a full pipe. The clients are asyncio streams in
this one process, on 127.0.0.1. The slow clients' pace (one body byte every
TRICKLE_SECONDS) and the other clients' paces are deliberate waits; every other wait ends
on an event (bytes, EOF) and is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest
from tests.helpers import ROOT, CLIServer, start_cli

HOST = "127.0.0.1"
APPS = ("--app-dir", str(ROOT))  # so that tests.apps.* imports from any working directory
APP = {"asgi": "tests.apps.body_count:asgi_app", "wsgi": "tests.apps.body_count:wsgi_app"}
# Everything else stays at its default: 8 app threads, the default body deadline.
SERVER_FLAGS = ("--port", "0", "--no-access-log", "--lifespan", "off", "--timeout-graceful", "5")
STOP_TIMEOUT = 15.0  # seconds for a server to exit after SIGTERM
LOG_TAIL = 20  # server output lines quoted in a failure message

TRICKLE_SECONDS = 1.0  # deliberate: a slow client sends one body byte this often
SLOW_BODY_SIZE = 1000  # the Content-Length a slow client declares; it never sends it all

# test_slow_bodies_do_not_starve_others
SLOW_CLIENTS = 200
NORMAL_WINDOW_SECONDS = 20.0  # how long the normal client runs beside the slow ones
NORMAL_INTERVAL_SECONDS = 0.02  # deliberate: the normal client starts a request this often
NORMAL_MAX_REQUESTS = 1000
NORMAL_BODY = b"n" * 100
REQUEST_TIMEOUT = 2.0  # seconds; a normal request not answered by then has failed
MIN_ANSWERED = 0.99  # of the normal requests, answered 200 with the right body
MAX_P99_SECONDS = 0.2

# test_short_body_deadline_answers_408
BODY_DEADLINE_SECONDS = 1.0
MIN_BODY_RATE = 1024  # bytes per second
DEADLINE_FLAGS = ("--timeout-body", "1", "--min-body-rate", "1KiB")
DEADLINE_CLIENTS = 20
CUT_WITHIN_SECONDS = 6.0  # from a head sent to a whole 408 read and the connection closed
EARLY_TOLERANCE_SECONDS = 0.1  # a 408 sooner than the deadline by more than this is early
STEADY_INTERVAL_SECONDS = 0.25  # deliberate: the steady uploader's pace
STEADY_CHUNK = int(2 * MIN_BODY_RATE * STEADY_INTERVAL_SECONDS)  # twice the minimum rate
STEADY_CHUNKS = 8


# -- the server ----------------------------------------------------------------------------


@dataclass
class Served:
    port: int
    cli: CLIServer
    output: list[bytes] = field(default_factory=list)

    def log_tail(self) -> str:
        lines = b"".join(self.output).decode(errors="replace").splitlines()
        return "\n".join(lines[-LOG_TAIL:])


def _drain(served: Served) -> None:
    stdout = served.cli.proc.stdout
    assert stdout is not None
    with contextlib.suppress(OSError):  # the pipe closed under us: the server was killed
        while chunk := os.read(stdout.fileno(), 65536):
            served.output.append(chunk)


@contextmanager
def serving(app: str, *flags: str) -> Iterator[Served]:
    """`rootserve APP` with SERVER_FLAGS and `flags`, its output drained until it exits."""
    with start_cli(APP[app], *SERVER_FLAGS, *flags, *APPS) as cli:
        port = urlsplit(cli.url).port
        assert port is not None, cli.url
        served = Served(port, cli)
        drain = threading.Thread(target=_drain, args=(served,), name="drain", daemon=True)
        drain.start()
        try:
            yield served
        finally:
            if cli.proc.poll() is None:
                cli.proc.send_signal(signal.SIGTERM)
            drain.join(STOP_TIMEOUT)  # EOF: the server has exited (or start_cli kills it)


# -- HTTP on asyncio streams ---------------------------------------------------------------


def request_head(method: str, content_length: int | None = None, *, close: bool = False) -> bytes:
    lines = [f"{method} / HTTP/1.1", f"Host: {HOST}"]
    if content_length is not None:
        lines.append(f"Content-Length: {content_length}")
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def parse_head(raw: bytes) -> tuple[bytes, int, dict[str, str]]:
    """The status line, the status code and the fields (names lowercased) of a head."""
    lines = raw.decode("latin-1").split("\r\n")
    status_line = lines[0]
    version, status, _ = (status_line + " ").split(" ", 2)
    if version != "HTTP/1.1":
        raise ValueError(f"not an HTTP/1.1 status line: {status_line!r}")
    fields = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
    return status_line.encode("latin-1"), int(status), fields


def parse_response(data: bytes) -> tuple[int, bytes, bytes] | None:
    """(status, body, what follows) of a whole Content-Length response at the start of
    `data`; None while it is incomplete."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return None
    _, status, fields = parse_head(data[:end])
    start = end + 4
    length = int(fields.get("content-length", "0"))
    if len(data) < start + length:
        return None
    return status, data[start : start + length], data[start + length :]


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    _, status, fields = parse_head((await reader.readuntil(b"\r\n\r\n"))[:-4])
    return status, await reader.readexactly(int(fields.get("content-length", "0")))


async def close_writer(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


@dataclass
class Outcome:
    method: str
    seconds: float
    result: str  # "ok", or what went wrong


async def normal_request(port: int, method: str) -> Outcome:
    """One request on a fresh connection: a GET, or a POST of NORMAL_BODY."""
    body = NORMAL_BODY if method == "POST" else b""
    expected = b"%d" % len(body) if method == "POST" else b"ok"
    writer = None
    start = time.monotonic()
    try:
        async with asyncio.timeout(REQUEST_TIMEOUT):
            reader, writer = await asyncio.open_connection(HOST, port)
            length = len(body) if method == "POST" else None
            writer.write(request_head(method, length, close=True) + body)
            status, content = await read_response(reader)
        ok = (status, content) == (200, expected)
        result = "ok" if ok else f"{status} {content[:60]!r}"
    except TimeoutError:
        result = "timeout"
    except (OSError, EOFError, ValueError, asyncio.LimitOverrunError) as exc:
        result = type(exc).__name__  # EOFError: asyncio.IncompleteReadError
    seconds = time.monotonic() - start
    if writer is not None:
        await close_writer(writer)
    return Outcome(method, seconds, result)


@dataclass
class SlowClient:
    """A POST whose head is sent at once and whose body comes a byte at a time."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    length: int
    head_sent_at: float
    sent: int = 0
    received: bytearray = field(default_factory=bytearray)
    answered_at: float | None = None  # the server's first byte
    closed_at: float | None = None  # EOF or an error on reading
    read_error: str | None = None
    reading: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, port: int, length: int = SLOW_BODY_SIZE) -> SlowClient:
        reader, writer = await asyncio.open_connection(HOST, port)
        writer.write(request_head("POST", length))
        await writer.drain()
        client = cls(reader, writer, length, time.monotonic())
        client.reading = asyncio.create_task(client._read())
        return client

    async def _read(self) -> None:
        try:
            while chunk := await self.reader.read(65536):
                if self.answered_at is None:
                    self.answered_at = time.monotonic()
                self.received += chunk
        except OSError as exc:  # a reset: the server closed with bytes of ours unread
            self.read_error = type(exc).__name__
        self.closed_at = time.monotonic()

    @property
    def waiting(self) -> bool:
        """Still sending: the server has neither answered nor closed."""
        return self.answered_at is None and self.closed_at is None

    def send_byte(self) -> None:
        if self.waiting and self.sent < self.length - 1:  # the body is never complete
            self.writer.write(b"x")
            self.sent += 1

    def fate(self) -> str:
        if self.waiting:
            return "still sending"
        if self.received:
            return bytes(self.received).split(b"\r\n", 1)[0].decode("latin-1")
        return f"closed without an answer ({self.read_error or 'EOF'})"

    async def close(self) -> None:
        if self.reading is not None:
            self.reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.reading
        await close_writer(self.writer)


async def trickle(clients: Sequence[SlowClient], ticks: int) -> None:
    """One byte to each waiting client every TRICKLE_SECONDS, `ticks` times."""
    start = time.monotonic()
    for tick in range(1, ticks + 1):
        await asyncio.sleep(max(0.0, start + tick * TRICKLE_SECONDS - time.monotonic()))
        for client in clients:
            client.send_byte()


async def stop_task(task: asyncio.Task[None] | None) -> None:
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# -- slow bodies beside a normal client ----------------------------------------------------


async def normal_client(port: int) -> list[Outcome]:
    """GET and POST in turn, a fresh connection each, for NORMAL_WINDOW_SECONDS."""
    outcomes: list[Outcome] = []
    start = time.monotonic()
    for n in range(NORMAL_MAX_REQUESTS):
        began = time.monotonic()
        if began - start >= NORMAL_WINDOW_SECONDS:
            break
        outcomes.append(await normal_request(port, "GET" if n % 2 == 0 else "POST"))
        await asyncio.sleep(max(0.0, began + NORMAL_INTERVAL_SECONDS - time.monotonic()))
    return outcomes


async def beside_slow_clients(port: int) -> tuple[list[Outcome], Counter[str]]:
    clients: list[SlowClient] = []
    ticker = None
    try:
        for _ in range(SLOW_CLIENTS):  # every head is sent before the window opens
            clients.append(await SlowClient.open(port))
        ticks = math.ceil((NORMAL_WINDOW_SECONDS + REQUEST_TIMEOUT) / TRICKLE_SECONDS)
        ticker = asyncio.create_task(trickle(clients, ticks))
        outcomes = await normal_client(port)
        fates = Counter(client.fate() for client in clients)
    finally:
        await stop_task(ticker)
        await asyncio.gather(*(client.close() for client in clients))
    return outcomes, fates


def nearest_rank(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


@pytest.mark.slow
@pytest.mark.timeout(NORMAL_WINDOW_SECONDS + 60)
@pytest.mark.parametrize("app", ["asgi", "wsgi"])
def test_slow_bodies_do_not_starve_others(app: str):
    """200 connections send a 1000-byte body a byte a second (the default deadline may cut
    some of them meanwhile); beside them a normal client's requests are answered, fast.
    For a WSGI app that means the slow bodies do not sit on the 8 app threads."""
    with serving(app) as served:
        outcomes, fates = asyncio.run(beside_slow_clients(served.port))
    assert served.cli.proc.returncode == 0, served.log_tail()

    seconds = [outcome.seconds for outcome in outcomes]
    answered = sum(outcome.result == "ok" for outcome in outcomes)
    failures = Counter(f"{o.method} {o.result}" for o in outcomes if o.result != "ok")
    p50, p99 = nearest_rank(seconds, 0.50), nearest_rank(seconds, 0.99)
    report = (
        f"{app}: {len(outcomes)} normal requests beside {SLOW_CLIENTS} slow bodies, "
        f"{answered} answered 200 ({answered / len(outcomes):.1%}); "
        f"latency p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, "
        f"max {max(seconds) * 1000:.1f} ms; failures {dict(failures)}; "
        f"slow clients at the window's end {dict(fates)}"
    )
    print(report)
    assert answered >= MIN_ANSWERED * len(outcomes) and p99 < MAX_P99_SECONDS, (
        f"{report}\nserver output (last lines):\n{served.log_tail()}"
    )


# -- a short body deadline -----------------------------------------------------------------


async def steady_upload(port: int) -> str:
    """A body sent at twice the minimum rate, in small chunks, for longer than the
    deadline: the deadline keeps moving, and the app answers it."""
    size = STEADY_CHUNK * STEADY_CHUNKS
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        budget = STEADY_CHUNKS * STEADY_INTERVAL_SECONDS + REQUEST_TIMEOUT
        async with asyncio.timeout(budget):
            writer.write(request_head("POST", size, close=True))
            for _ in range(STEADY_CHUNKS):
                await asyncio.sleep(STEADY_INTERVAL_SECONDS)
                writer.write(b"s" * STEADY_CHUNK)
                await writer.drain()
            status, content = await read_response(reader)
        return "ok" if (status, content) == (200, b"%d" % size) else f"{status} {content!r}"
    except TimeoutError:
        return "timeout"
    except (OSError, EOFError, ValueError, asyncio.LimitOverrunError) as exc:
        return type(exc).__name__
    finally:
        await close_writer(writer)


def cut_problem(client: SlowClient) -> str | None:
    """What is wrong with how the server ended `client`'s request, if anything: it must
    be a whole 408 and then the end of the connection, in the bounds."""
    if client.answered_at is None:
        return f"no answer ({client.sent} of {client.length} body bytes sent); {client.fate()}"
    data = bytes(client.received)
    parsed = parse_response(data)
    if parsed is None or not data.startswith(b"HTTP/1.1 408 "):
        return f"not a whole 408: {data[:120]!r} ({client.read_error or 'EOF'})"
    if parsed[2]:
        return f"bytes after the 408: {parsed[2][:60]!r}"
    if client.closed_at is None:
        return "the connection stayed open after the 408"
    answered = client.answered_at - client.head_sent_at
    closed = client.closed_at - client.head_sent_at
    if answered < BODY_DEADLINE_SECONDS - EARLY_TOLERANCE_SECONDS:
        return f"408 after {answered:.2f} s, before the {BODY_DEADLINE_SECONDS} s deadline"
    if closed > CUT_WITHIN_SECONDS:
        return f"closed {closed:.2f} s after the head"
    return None


async def under_short_deadline(port: int) -> tuple[list[SlowClient], str, list[Outcome]]:
    clients: list[SlowClient] = []
    ticker = upload = None
    try:
        upload = asyncio.create_task(steady_upload(port))
        for _ in range(DEADLINE_CLIENTS):
            clients.append(await SlowClient.open(port))
        clients.append(await SlowClient.open(port, length=10))  # a head, then silence
        ticker = asyncio.create_task(trickle(clients[:-1], math.ceil(CUT_WITHIN_SECONDS)))
        readings = [client.reading for client in clients if client.reading is not None]
        remaining = clients[-1].head_sent_at + CUT_WITHIN_SECONDS - time.monotonic()
        await asyncio.wait(readings, timeout=max(0.0, remaining))  # each ends on EOF
        await stop_task(ticker)
        upload_result = await upload
        after = [await normal_request(port, method) for method in ("GET", "POST")]
    finally:
        await stop_task(ticker)
        if upload is not None and not upload.done():
            upload.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await upload
        await asyncio.gather(*(client.close() for client in clients))
    return clients, upload_result, after


@pytest.mark.slow
@pytest.mark.timeout(60)
@pytest.mark.parametrize("app", ["asgi", "wsgi"])
def test_short_body_deadline_answers_408(app: str):
    """--timeout-body 1 --min-body-rate 1KiB: bodies at a byte a second, and a body that
    never starts, get 408 and a closed connection about a second after their heads; a body
    sent above the minimum rate is not cut; the server answers normally after."""
    with serving(app, *DEADLINE_FLAGS) as served:
        clients, upload_result, after = asyncio.run(under_short_deadline(served.port))
    assert served.cli.proc.returncode == 0, served.log_tail()

    problems = Counter(problem for client in clients if (problem := cut_problem(client)))
    cut = [c.closed_at - c.head_sent_at for c in clients if c.closed_at is not None]
    resets = sum(c.read_error is not None for c in clients)
    report = (
        f"{app}: {len(clients) - problems.total()} of {len(clients)} slow bodies "
        f"(the last one silent) got a whole 408 and then the end of the connection"
        + (f", {min(cut):.2f}-{max(cut):.2f} s after their heads" if cut else "")
        + f" ({resets} of these ends were resets, not FIN)"
        + f"; steady upload: {upload_result}; after: {[o.result for o in after]}"
    )
    print(report)
    log = f"server output (last lines):\n{served.log_tail()}"
    assert not problems, f"{report}\nproblems (how many clients): {dict(problems)}\n{log}"
    assert upload_result == "ok", f"{report}\n{log}"
    assert [o.result for o in after] == ["ok", "ok"], f"{report}\n{log}"
