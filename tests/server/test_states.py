"""The connection's states in memory: the table of moves, the deadline of each state, and the
body deadline's minimum rate, on a real `Connection` with a fake transport and clock."""

from __future__ import annotations

from typing import Any

import pytest

from rootserve.config import Config
from rootserve.protocol.exchange import Exchange
from rootserve.server.connection import Connection
from rootserve.server.state import (
    BODY,
    BUSY,
    CLOSED,
    HEAD,
    IDLE,
    LINGER,
    NEW,
    NEXT,
    NO_DEADLINE,
    ConnState,
    ServerState,
    timeouts,
)


class Clock:
    """The loop as the connection uses it for deadlines: only `time()`."""

    def __init__(self) -> None:
        self.now = 1000.0

    def time(self) -> float:
        return self.now


class Transport:
    def __init__(self) -> None:
        self.written = b""
        self.closed = False
        self.paused = False
        self.eof_written = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 5000)}.get(name)

    def set_write_buffer_limits(self, high: int) -> None:
        pass

    def write(self, data: bytes) -> None:
        self.written += data

    def write_eof(self) -> None:
        self.eof_written = True

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True


class Holder:
    """A runner whose app never answers: the exchanges wait, their bodies are kept."""

    def __init__(self) -> None:
        self.started: list[Exchange] = []
        self.body = b""

    def attach(self, exchange: Exchange) -> None:
        holder = self

        class Receiver:
            def feed(self, data: bytes) -> None:
                holder.body += data

            def end(self) -> None: ...
            def disconnect(self) -> None: ...
            def writable(self) -> None: ...
            def server_stopping(self) -> None: ...
            def cancel(self) -> None: ...

        exchange.receiver = Receiver()

    def start(self, exchange: Exchange) -> None:
        self.started.append(exchange)

    async def aclose(self) -> None: ...


def connect(**settings: Any) -> tuple[Connection, Transport, Clock, Holder]:
    clock, runner = Clock(), Holder()
    config = Config(access_log=False, **settings)
    state = ServerState.from_config(config, runner=runner, loop=clock)  # type: ignore[arg-type]
    conn, transport = Connection(state), Transport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    return conn, transport, clock, runner


def test_every_state_has_its_moves_and_its_deadline():
    assert set(NEXT) == set(ConnState)
    assert set(timeouts(Config())) == set(ConnState)
    for state, moves in NEXT.items():
        assert state is CLOSED or CLOSED in moves, f"{state.name} cannot close"


def test_the_moves_written_out_on_the_hot_path_are_in_the_table():
    # Connection._start enters BUSY from every state a request can start in, without a
    # clock read (BUSY has no deadline); response_complete enters IDLE from BUSY.
    for start in (IDLE, HEAD, BODY):
        assert BUSY in NEXT[start]
    assert IDLE in NEXT[BUSY]
    assert timeouts(Config(timeout_body=3, timeout_header=4, timeout_keep_alive=5))[BUSY] == 0


def test_a_move_outside_the_table_raises():
    conn, *_ = connect()
    conn.close()
    with pytest.raises(RuntimeError, match="cannot go from CLOSED to BUSY"):
        conn.enter(BUSY)
    assert NEW not in NEXT[IDLE]


def test_idle_then_head_then_busy_with_their_deadlines():
    conn, _, clock, runner = connect(timeout_keep_alive=5, timeout_header=10)
    assert (conn.at, conn.deadline) == (IDLE, clock.now + 5)
    conn.data_received(b"GET / HTTP/1.1\r\nHo")
    assert (conn.at, conn.deadline) == (HEAD, clock.now + 10)
    conn.data_received(b"st: x\r\n\r\n")
    assert (conn.at, conn.deadline) == (BUSY, NO_DEADLINE)
    assert len(runner.started) == 1


def test_a_head_that_does_not_arrive_in_time_gets_408_and_the_connection_closes():
    conn, transport, clock, _ = connect(timeout_header=10)
    conn.data_received(b"GET / HTTP/1.1\r\n")
    clock.now = conn.deadline
    conn.on_deadline()
    assert transport.written.startswith(b"HTTP/1.1 408 ")
    assert conn.at is LINGER and transport.eof_written


def test_a_body_must_keep_the_minimum_rate_once_its_grace_is_used():
    conn, transport, clock, runner = connect(timeout_body=10, min_body_rate=100)
    conn.data_received(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10000\r\n\r\n")
    assert (conn.at, conn.deadline) == (BODY, clock.now + 10)
    start = clock.now
    # 50 bytes a second, half the minimum rate: each second earns half a second.
    for second in range(1, 30):
        clock.now = start + second
        if clock.now >= conn.deadline:
            break
        conn.data_received(b"x" * 50)
    assert second == 19  # 10 s of grace, then half a second lost per second: 10 + 18 / 2
    conn.on_deadline()
    assert transport.written.startswith(b"HTTP/1.1 408 ")
    assert runner.body == b"x" * 50 * 18


def test_a_burst_earns_no_more_than_the_grace_time():
    conn, _, clock, _ = connect(timeout_body=10, min_body_rate=100)
    conn.data_received(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
    conn.data_received(b"x" * 50_000)  # 500 s worth at the minimum rate
    assert conn.deadline == clock.now + 10


def test_no_body_deadline_while_reading_is_paused_by_the_server():
    conn, _, clock, _ = connect(timeout_body=10, min_body_rate=100)
    conn.data_received(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n")
    assert conn.at is BODY
    conn.pause_reading()  # the app holds enough unread body: the wait is the server's
    assert (conn.at, conn.deadline) == (BUSY, NO_DEADLINE)
    clock.now += 100
    conn.resume_reading()
    assert (conn.at, conn.deadline) == (BODY, clock.now + 10)


def test_the_whole_body_ends_the_body_deadline():
    conn, _, _, _ = connect(timeout_body=10)
    conn.data_received(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nab")
    assert conn.at is BODY
    conn.data_received(b"c")
    assert (conn.at, conn.deadline) == (BUSY, NO_DEADLINE)


def test_no_body_deadline_until_100_continue_is_sent():
    conn, transport, clock, runner = connect(timeout_body=10)
    head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n"
    conn.data_received(head)
    assert (conn.at, conn.deadline) == (BUSY, NO_DEADLINE)  # the client waits for us
    runner.started[0].want_body()
    assert transport.written == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert (conn.at, conn.deadline) == (BODY, clock.now + 10)


def test_identical_pipelined_requests_are_distinct_exchanges():
    # Request is a dataclass that compares field by field; an exchange is itself only: the
    # body of the third request breaks a rule, and the second (identical) one stays queued.
    conn, _, _, runner = connect()
    post = b"POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    conn.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + post + b"0\r\n\r\n" + post)
    second, third = conn.pipeline
    assert second is not third and second != third and len({second, third}) == 2
    conn.data_received(b"zz\r\n")  # not a chunk size: 400 for the third request
    assert conn.pipeline[0] is second
    assert [type(item).__name__ for item in conn.pipeline] == ["HTTP11Exchange", "BadRequest"]
    assert len(runner.started) == 1
