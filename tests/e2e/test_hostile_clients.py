"""Hostile clients over real sockets (issue 15): slowloris heads, trickled bodies, a reader
that never reads, thousands of idle keep-alive connections, and more requests than
--limit-concurrency allows. Each test measures what the server spends on them and how a
well-behaved client fares meanwhile, prints the figures, and asserts bounds on them.

The server is a `rootserve` subprocess (tests/e2e/hostile_support.py), so that its
resident memory can be read from /proc/PID/status and its event loop does not share this
process's GIL with the hostile clients; the --limit-concurrency test serves in a thread.
Settings lowered to keep the tests short, against their defaults: --timeout-header 2 s (10
s), --timeout-body 2 s (30 s), --timeout-keep-alive KEEP_ALIVE_SECONDS (5 s). The reaper
looks at deadlines every quarter of the shortest timeout (at most every second), so a
connection ends up to a tick after its deadline; the bounds below allow that and a loaded
machine. The hostile clients' pace (a byte every TRICKLE_SECONDS) and the normal client's
(a request every NORMAL_INTERVAL_SECONDS) are deliberate waits; every other wait ends on
an event (bytes, EOF, a server's line) and is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import selectors
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from tests.apps.hostile import BIG_SIZE, PIECE
from tests.e2e.hostile_support import (
    NormalClient,
    p99,
    raise_fd_limit,
    raw_server,
    timed_get,
)
from tests.helpers import Peer, serve

from rootserve.server.connection import WRITE_HIGH_WATER
from rootserve.types import Receive, Scope, Send

KIB = 1024
MIB = 1024 * KIB
APP = {"asgi": "tests.apps.hostile:asgi_app", "wsgi": "tests.apps.hostile:wsgi_app"}
QUIET = ("--no-access-log", "--lifespan", "off")

# The slowloris and slow-body tests
TRICKLERS = 1000
DEADLINE_SECONDS = 2.0  # --timeout-header / --timeout-body in those tests
TRICKLE_SECONDS = 0.5  # deliberate: a trickler sends one byte this often
DRIP_STEP_SECONDS = 0.01  # the tricklers' thread sends the bytes due this often
REAPER_TICK = DEADLINE_SECONDS / 4  # server/reaper.py tick(): a quarter of the timeout
EARLY_SECONDS = 0.1  # a close sooner than the deadline by more than this is early
LATE_SECONDS = REAPER_TICK + 2.0  # the tick, and a loaded machine
NORMAL_REQUESTS = 200
NORMAL_INTERVAL_SECONDS = 0.01
MAX_P99_SECONDS = 0.05
CONNECT_BATCH = 250  # connections opened before their requests are read: within --backlog

# The slow-reader test
SLOW_READER_RCVBUF = 4 * KIB
STALL_SECONDS = 1.0  # no progress of the app for this long: it is paused
# RSS the server may gain for a client that reads nothing: the write buffer's high-water
# mark, a piece the app has in hand and one being written, and the allocator's rounding
# (pymalloc takes memory in 256 KiB arenas, glibc malloc in larger blocks).
RSS_MARGIN = 1 * MIB
SLOW_READER_BOUND = WRITE_HIGH_WATER + 2 * PIECE + RSS_MARGIN

# The idle keep-alive test. 10,000 is the aim of issue 15; this machine's hard limit on
# open files is 20,000 per process, enough for these clients (one descriptor each, in
# this process) and the server (its own process): it is not lowered.
IDLE_CONNECTIONS = 10_000
KEEP_ALIVE_SECONDS = 10.0  # long enough to open them all before the first is reaped
IDLE_REAPER_TICK = 0.5  # a quarter of the 2 s header timeout set in that test
MAX_RSS_PER_IDLE = 8 * KIB

# The --limit-concurrency test
CONCURRENCY = 4
OVER_LIMIT = 100  # requests made while CONCURRENCY are held
AFTER = 100  # requests made once they are released
WAIT = 10.0


# -- tricklers: many clients on one thread -------------------------------------------------


@dataclass
class Trickler:
    sock: socket.socket
    index: int
    started: float  # when its first bytes went
    received: bytes = b""
    closed: float | None = None


@dataclass
class Tricklers:
    """`count` connections that each send `first`, then one byte of `drip` every
    TRICKLE_SECONDS, reading what the server says, until the server closes them all or
    `limit` seconds pass; one thread drives them all."""

    port: int
    count: int
    first: bytes
    drip: bytes
    limit: float
    peers: list[Trickler] = field(default_factory=list)
    ready: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._run, name="tricklers", daemon=True)

    def start(self) -> None:
        self._thread.start()
        assert self.ready.wait(WAIT * 3), "the tricklers did not connect"

    def join(self) -> None:
        self._thread.join(self.limit + WAIT)
        assert not self._thread.is_alive(), "the tricklers did not finish"
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        try:
            self._drive()
        except BaseException as exc:  # reported by join()
            self.error = exc
        finally:
            self.ready.set()
            for peer in self.peers:
                peer.sock.close()

    def _drive(self) -> None:
        selector = selectors.DefaultSelector()
        for _ in range(self.count):
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=WAIT)
            sock.sendall(self.first)
            sock.setblocking(False)
            peer = Trickler(sock, len(self.peers), time.monotonic())
            self.peers.append(peer)
            selector.register(sock, selectors.EVENT_READ, peer)
        self.ready.set()
        open_ = set(range(self.count))
        # Each trickler drips at its own phase of the period, as independent clients
        # would: all of them at once would be a burst no real crowd of them makes.
        begin = time.monotonic()
        due = [begin + TRICKLE_SECONDS * (1 + i / self.count) for i in range(self.count)]
        end = begin + self.limit
        while open_ and time.monotonic() < end:
            for key, _ in selector.select(DRIP_STEP_SECONDS):
                peer = key.data
                try:
                    data = peer.sock.recv(65536)
                except ConnectionResetError:
                    data = b""
                if data:
                    peer.received += data
                    continue
                peer.closed = time.monotonic()
                selector.unregister(peer.sock)
                open_.discard(peer.index)
            now = time.monotonic()
            for index in [i for i in open_ if due[i] <= now]:
                due[index] += TRICKLE_SECONDS
                # A failed send: the server is closing it, and its EOF is read above.
                with contextlib.suppress(BlockingIOError, BrokenPipeError, ConnectionResetError):
                    self.peers[index].sock.send(self.drip)
        selector.close()


def _run_tricklers(port: int, first: bytes, drip: bytes, what: str) -> None:
    raise_fd_limit(TRICKLERS + 1000)
    tricklers = Tricklers(port, TRICKLERS, first, drip, DEADLINE_SECONDS + LATE_SECONDS + 5)
    normal = NormalClient(port, NORMAL_REQUESTS, NORMAL_INTERVAL_SECONDS)
    # This process's own collector pauses (tens of ms with pytest's objects) would count
    # against the server: the clients make no cycles worth collecting meanwhile.
    gc.collect()
    gc.disable()
    try:
        tricklers.start()
        # Untimed: it waits in the accept queue behind the tricklers, so once it is
        # answered the server has taken them all in, and the timed requests measure the
        # server holding them, not the server still accepting them.
        timed_get(port)
        normal.start()
        normal.join()
        tricklers.join()
    finally:
        gc.enable()

    lived = [p.closed - p.started for p in tricklers.peers if p.closed is not None]
    statuses = {p.received[:12] for p in tricklers.peers}
    print(
        f"\n{what}: {len(lived)}/{TRICKLERS} closed, after {min(lived):.2f}-{max(lived):.2f} s "
        f"(deadline {DEADLINE_SECONDS} s); answers {statuses}; normal client: "
        f"{len(normal.latencies)}/{NORMAL_REQUESTS} ok, p99 {p99(normal.latencies) * 1000:.1f} ms, "
        f"max {max(normal.latencies) * 1000:.1f} ms"
    )
    assert not normal.failures, normal.failures[:5]
    assert len(lived) == TRICKLERS, "some were never closed"
    assert statuses == {b"HTTP/1.1 408"}
    assert min(lived) >= DEADLINE_SECONDS - EARLY_SECONDS
    assert max(lived) <= DEADLINE_SECONDS + LATE_SECONDS
    assert p99(normal.latencies) < MAX_P99_SECONDS


@pytest.mark.slow
def test_slowloris_heads_are_closed_by_the_header_deadline():
    """TRICKLERS clients each send part of a head, then a byte every TRICKLE_SECONDS and
    never finish it: each gets 408 and its connection is closed at the header deadline
    (lowered to 2 s), while a normal client's requests stay fast."""
    with raw_server(APP["asgi"], *QUIET, "--timeout-header", "2") as server:
        _run_tricklers(
            server.port, b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: ", b"a", "slowloris heads"
        )


@pytest.mark.slow
def test_slow_bodies_are_closed_by_the_body_deadline():
    """TRICKLERS clients each send a whole head with Content-Length: 1000, then a body byte
    every TRICKLE_SECONDS (far below --min-body-rate, 1 KiB/s): each gets 408 and its
    connection is closed at the body deadline (--timeout-body lowered to 2 s), while a
    normal client's requests stay fast."""
    head = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n"
    with raw_server(APP["asgi"], *QUIET, "--timeout-body", "2") as server:
        _run_tricklers(server.port, head, b"x", "slow bodies")


# -- a reader that never reads -------------------------------------------------------------


def _progress(port: int) -> int:
    _, data = timed_get(port, "/progress")
    return int(data.partition(b"\r\n\r\n")[2])


def _wait_for_stall(port: int) -> int:
    """The app's progress once it has not moved for STALL_SECONDS."""
    deadline = time.monotonic() + WAIT
    last, since = _progress(port), time.monotonic()
    while time.monotonic() - since < STALL_SECONDS:
        assert time.monotonic() < deadline, "the app never paused"
        time.sleep(0.1)  # noqa: sleep-ok (polls another process's progress)
        now = _progress(port)
        if now != last:
            last, since = now, time.monotonic()
    return last


@pytest.mark.parametrize("interface", ["asgi", "wsgi"])
def test_a_client_that_never_reads_costs_no_more_than_the_write_buffer(interface: str):
    """GET /big streams 10 MiB in 64 KiB pieces to a client that reads nothing: the app is
    paused once the kernel's socket buffers and the transport's write buffer
    (WRITE_HIGH_WATER) are full, and the server's RSS grows by no more than that buffer,
    a piece or two and the allocator's rounding (SLOW_READER_BOUND)."""
    with raw_server(APP[interface], *QUIET) as server:
        port = server.port
        for _ in range(20):  # the first requests' one-time allocations, before measuring
            timed_get(port)
        assert _progress(port) == 0
        before = server.rss()
        with Peer(port, rcvbuf=SLOW_READER_RCVBUF) as peer:
            peer.send(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n")
            sent = _wait_for_stall(port)
            growth = server.rss() - before
            print(
                f"\nslow reader ({interface}): app paused after {sent / MIB:.2f} MiB of "
                f"{BIG_SIZE / MIB:.0f} MiB; server RSS grew {growth / KIB:.0f} KiB "
                f"(bound {SLOW_READER_BOUND / KIB:.0f} KiB)"
            )
            assert 0 < sent < BIG_SIZE
            assert growth <= SLOW_READER_BOUND
            # The client reads at last, with a larger buffer (a 4 KiB window takes many
            # seconds over 10 MiB): the rest comes, whole.
            peer.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 * MIB)
            peer.sock.settimeout(WAIT)
            reply = peer.response()
            assert (reply.status, len(reply.body)) == (200, BIG_SIZE)
        assert _progress(port) == BIG_SIZE


# -- idle keep-alive connections -----------------------------------------------------------


def _open_idle(port: int, count: int) -> list[socket.socket]:
    """`count` connections that each made one request, read its answer and stay idle."""
    request = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
    socks: list[socket.socket] = []
    try:
        while len(socks) < count:
            batch = [
                socket.create_connection(("127.0.0.1", port), timeout=WAIT)
                for _ in range(min(CONNECT_BATCH, count - len(socks)))
            ]
            socks += batch
            for sock in batch:
                sock.sendall(request)
            for sock in batch:
                data = b""
                while not data.endswith(b"\r\n\r\nok"):
                    chunk = sock.recv(4096)
                    assert chunk, f"closed before its answer: {data!r}"
                    data += chunk
                assert data.startswith(b"HTTP/1.1 200 "), data
    except BaseException:
        for sock in socks:
            sock.close()
        raise
    return socks


def _closes(socks: list[socket.socket], limit: float) -> list[float]:
    """When the server closed each of `socks` (seconds from now), within `limit`."""
    start = time.monotonic()
    selector = selectors.DefaultSelector()
    for sock in socks:
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
    closed: list[float] = []
    try:
        while len(closed) < len(socks):
            left = start + limit - time.monotonic()
            assert left > 0, f"only {len(closed)} of {len(socks)} closed in time"
            for key, _ in selector.select(left):
                sock: Any = key.fileobj
                try:
                    data = sock.recv(4096)
                except ConnectionResetError:
                    data = b""
                assert not data, f"unexpected bytes on an idle connection: {data!r}"
                selector.unregister(sock)
                closed.append(time.monotonic() - start)
    finally:
        selector.close()
    return closed


@pytest.mark.slow
def test_idle_keep_alive_connections_cost_little_and_are_all_reaped():
    """IDLE_CONNECTIONS clients each make one request and stay idle: the server holds
    them at under MAX_RSS_PER_IDLE of RSS each, and closes every one at its keep-alive
    deadline (--timeout-keep-alive lowered to KEEP_ALIVE_SECONDS; --timeout-header 2 s
    only sets the reaper's pace, IDLE_REAPER_TICK)."""
    limit = raise_fd_limit(IDLE_CONNECTIONS + 1000)
    assert limit >= IDLE_CONNECTIONS + 100, f"open-file limit {limit}"
    flags = ("--timeout-keep-alive", str(KEEP_ALIVE_SECONDS), "--timeout-header", "2")
    with raw_server(APP["asgi"], *QUIET, "--backlog", "4096", *flags) as server:
        port = server.port
        for sock in _open_idle(port, CONNECT_BATCH):  # one batch's one-time allocations
            sock.close()
        before = server.rss()
        opened_at = time.monotonic()
        socks = _open_idle(port, IDLE_CONNECTIONS)
        try:
            opened = time.monotonic() - opened_at
            after = server.rss()
            per_connection = (after - before) / IDLE_CONNECTIONS
            closes = _closes(socks, KEEP_ALIVE_SECONDS + IDLE_REAPER_TICK + WAIT)
        finally:
            for sock in socks:
                sock.close()
        # The last connection was answered at `opened` at the latest; the first at 0.
        waited = time.monotonic() - opened_at
    print(
        f"\nidle keep-alive: {IDLE_CONNECTIONS} connections opened in {opened:.1f} s; server "
        f"RSS {before / MIB:.1f} -> {after / MIB:.1f} MiB, {per_connection:.0f} bytes each; "
        f"all {len(closes)} closed by the keep-alive deadline, the first {min(closes):.1f} s "
        f"after all were open, the last "
        f"{waited:.1f} s after the first was opened"
    )
    assert per_connection < MAX_RSS_PER_IDLE
    assert len(closes) == IDLE_CONNECTIONS
    # None before its deadline: the first was answered `opened` seconds before the wait.
    assert min(closes) >= KEEP_ALIVE_SECONDS - opened - EARLY_SECONDS
    assert waited <= opened + KEEP_ALIVE_SECONDS + IDLE_REAPER_TICK + 2.0


# -- --limit-concurrency -------------------------------------------------------------------


def test_limit_concurrency_refuses_the_excess_with_503_and_recovers():
    """CONCURRENCY requests are held in the app; OVER_LIMIT more, ten at a time, are each
    answered 503 without reaching the app; once the held ones are released, AFTER
    requests, four at a time, are all served."""
    release = threading.Event()
    entered = threading.Semaphore(0)
    calls = [0]

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        calls[0] += 1
        if scope["path"] == "/hold":
            entered.release()
            await asyncio.to_thread(release.wait, WAIT)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"served"})

    def many(url: str, count: int, workers: int) -> list[int]:
        statuses: list[int] = []
        lock = threading.Lock()

        def run(n: int) -> None:
            with httpx.Client(timeout=WAIT) as client:
                for _ in range(n):
                    status = client.get(url).status_code
                    with lock:
                        statuses.append(status)

        threads = [threading.Thread(target=run, args=(count // workers,)) for _ in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT * 3)
        return statuses

    with serve(app, limit_concurrency=CONCURRENCY) as running:
        held: list[int] = []

        def hold() -> None:
            held.append(httpx.get(running.url + "/hold", timeout=WAIT).status_code)

        holders = [threading.Thread(target=hold) for _ in range(CONCURRENCY)]
        for thread in holders:
            thread.start()
        try:
            for _ in range(CONCURRENCY):
                assert entered.acquire(timeout=WAIT)
            refused = many(running.url + "/over", OVER_LIMIT, 10)
            assert refused == [503] * OVER_LIMIT
            assert calls[0] == CONCURRENCY  # the app never saw a refused request
        finally:
            release.set()
            for thread in holders:
                thread.join(WAIT)
        assert held == [200] * CONCURRENCY
        assert many(running.url + "/after", AFTER, CONCURRENCY) == [200] * AFTER
    print(f"\nlimit-concurrency {CONCURRENCY}: {OVER_LIMIT} refused 503, then {AFTER} served")
