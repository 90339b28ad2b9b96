"""HTTPCycle in memory: a real HTTP11Exchange on a fake connection (tests/exchange_support.py),
the real sans-IO protocol under it.

The cycle is driven the way the server drives it (the exchange's `feed`, `end` and
`disconnect`, the runner's `attach` and `start`) and the way an app does (`receive`, `send`);
what reaches the connection is checked byte for byte.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from tests.exchange_support import FakeConnection, parse_request, settle

from rootserve.asgi._scope import ASGI_VERSION, build_scope
from rootserve.asgi.http import BODY_HIGH_WATER, ASGIRunner, ClientDisconnected, HTTPCycle
from rootserve.protocol.exchange import ResponseError
from rootserve.server.exchange import HTTP11Exchange
from rootserve.types import Message, Receive, Scope, Send

GET = b"GET /p?q=1 HTTP/1.1\r\nHost: t\r\n\r\n"
START: Message = {"type": "http.response.start", "status": 200, "headers": []}


def body(data: bytes = b"", more: bool = False) -> Message:
    return {"type": "http.response.body", "body": data, "more_body": more}


def make_cycle(
    raw: bytes = GET, *, deliver_body: bool = True
) -> tuple[HTTPCycle, HTTP11Exchange, FakeConnection]:
    """A cycle for the first request in `raw`, attached to its exchange by the runner as the
    server does; its body is fed in when `deliver_body`. Call it on the running loop."""
    conn = FakeConnection()
    assert conn.state.loop is not None
    runner = ASGIRunner(_never_called, root_path="", state=None, loop=conn.state.loop)
    exchange = conn.open(raw, runner, deliver_body=deliver_body)
    assert isinstance(exchange.receiver, HTTPCycle)
    return exchange.receiver, exchange, conn


async def _never_called(scope: Scope, receive: Receive, send: Send) -> None:  # pragma: no cover
    raise AssertionError("these tests drive the cycle themselves")


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(test())


# -- send: the order of messages -----------------------------------------------------------


@pytest.mark.parametrize(
    ("messages", "error"),
    [
        ([body(b"x")], "Expected ASGI message 'http.response.start', got 'http.response.body'"),
        ([START, START], "Expected ASGI message 'http.response.body', got 'http.response.start'"),
        (
            [START, {"type": "http.response.trailers"}],
            "Expected ASGI message 'http.response.body', got 'http.response.trailers'",
        ),
        ([START, body(b"x"), body(b"y")], "'http.response.body' sent after the response was"),
        ([START, body(), START], "'http.response.start' sent after the response was complete"),
        ([{"type": "http.request"}], "got 'http.request'"),
    ],
    ids=["body-first", "start-twice", "unknown", "body-after-end", "start-after-end", "wrong"],
)
def test_message_order_errors_name_the_rule(messages: list[Message], error: str):
    async def test() -> None:
        cycle, _, _ = make_cycle()
        *fine, bad = messages
        for message in fine:
            await cycle.send(message)
        with pytest.raises(RuntimeError) as caught:
            await cycle.send(bad)
        assert error in str(caught.value)

    run(test)


def test_status_must_be_an_int():
    async def test() -> None:
        cycle, _, _ = make_cycle()
        with pytest.raises(TypeError, match="'status' must be an int"):
            await cycle.send({"type": "http.response.start", "status": "200", "headers": []})

    run(test)


def test_header_values_must_be_bytes():
    async def test() -> None:
        cycle, _, conn = make_cycle()
        await cycle.send({"type": "http.response.start", "status": 200, "headers": [(b"a", "b")]})
        with pytest.raises(TypeError, match="'headers' must be"):
            await cycle.send(body(b"x"))
        assert conn.writes == []

    run(test)


def test_header_names_must_be_bytes():
    async def test() -> None:
        cycle, _, _ = make_cycle()
        headers = [("content-type", b"text/plain")]
        await cycle.send({"type": "http.response.start", "status": 200, "headers": headers})
        with pytest.raises(TypeError, match="bytes"):
            await cycle.send(body(b"x"))

    run(test)


def test_body_must_be_bytes():
    async def test() -> None:
        cycle, _, _ = make_cycle()
        await cycle.send(START)
        with pytest.raises(TypeError, match="'body' must be bytes"):
            await cycle.send({"type": "http.response.body", "body": "text"})

    run(test)


# -- send: what reaches the wire -----------------------------------------------------------


def test_start_and_one_body_are_one_write_with_a_content_length():
    async def test() -> None:
        cycle, exchange, conn = make_cycle()
        await cycle.send(START)
        assert conn.writes == []  # the head is held until the body is known
        await cycle.send(body(b"hello"))
        [data] = conn.writes
        head, _, rest = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"\r\ncontent-length: 5" in head
        assert rest == b"hello"
        assert conn.completed == [True]  # keep-alive: the request and the head allow it
        assert exchange.complete and exchange.status == 200

    run(test)


def test_streamed_body_is_chunked_and_waits_for_drain_when_paused():
    async def test() -> None:
        cycle, _, conn = make_cycle()
        await cycle.send(START)
        await cycle.send(body(b"one", more=True))
        conn.write_paused = True
        await cycle.send(body(b"", more=True))  # nothing to write: an empty chunk would end it
        await cycle.send(body(b"two", more=True))
        assert conn.drains == 2
        conn.write_paused = False
        await cycle.send(body())
        assert b"transfer-encoding: chunked" in conn.writes[0]
        assert conn.wire.endswith(b"\r\n\r\n3\r\none\r\n3\r\ntwo\r\n0\r\n\r\n")
        assert conn.completed == [True]

    run(test)


def test_content_length_shortfall_aborts():
    async def test() -> None:
        cycle, exchange, conn = make_cycle()
        await cycle.send({"type": "http.response.start", "status": 200,
                          "headers": [(b"content-length", b"10")]})  # fmt: skip
        await cycle.send(body(b"12345", more=True))
        with pytest.raises(ResponseError, match="short of its Content-Length"):
            await cycle.send(body())
        assert conn.aborted
        assert exchange.disconnected and conn.completed == []


def test_content_length_overflow_aborts_and_writes_nothing_more():
    async def test() -> None:
        cycle, exchange, conn = make_cycle()
        await cycle.send({"type": "http.response.start", "status": 200,
                          "headers": [(b"content-length", b"3")]})  # fmt: skip
        await cycle.send(body(b"12", more=True))
        written = conn.wire
        with pytest.raises(ResponseError, match="Content-Length"):
            await cycle.send(body(b"34", more=True))
        assert conn.aborted and exchange.disconnected
        assert conn.wire == written

    run(test)


def test_send_after_disconnect_raises_client_disconnected():
    async def test() -> None:
        cycle, exchange, conn = make_cycle()
        exchange.disconnect()
        assert exchange.disconnected
        await cycle.send(START)
        with pytest.raises(ClientDisconnected):
            await cycle.send(body(b"late"))
        assert conn.writes == []

    run(test)


# -- receive -------------------------------------------------------------------------------


def test_request_without_body_then_disconnect_once_answered():
    async def test() -> None:
        cycle, _, _ = make_cycle()
        assert await cycle.receive() == {"type": "http.request", "body": b"", "more_body": False}
        waiting = asyncio.ensure_future(cycle.receive())
        await settle()
        assert not waiting.done()  # the response is not done: nothing to say yet
        await cycle.send(START)
        await cycle.send(body(b"ok"))
        assert await asyncio.wait_for(waiting, 5) == {"type": "http.disconnect"}
        assert await cycle.receive() == {"type": "http.disconnect"}

    run(test)


def test_a_stream_under_way_is_told_disconnect_when_the_server_drains():
    async def test() -> None:
        cycle, exchange, conn = make_cycle()
        assert (await cycle.receive())["more_body"] is False
        await cycle.send(START)
        await cycle.send(body(b"event 1", more=True))
        waiting = asyncio.ensure_future(cycle.receive())  # an SSE app listening for the end
        await settle()
        assert not waiting.done()
        exchange.receiver.server_stopping()
        assert await asyncio.wait_for(waiting, 5) == {"type": "http.disconnect"}
        await cycle.send(body(b"last", more=False))  # what it still sends goes out
        assert exchange.complete and not exchange.disconnected
        assert b"last" in b"".join(conn.writes)

    run(test)


def test_draining_does_not_cut_a_request_whose_answer_has_not_started():
    head = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\n"

    async def test() -> None:
        cycle, exchange, _ = make_cycle(head, deliver_body=False)
        exchange.receiver.server_stopping()  # the stop came while the body arrives
        waiting = asyncio.ensure_future(cycle.receive())
        await settle()
        assert not waiting.done()
        exchange.feed(b"data")
        exchange.end()
        message = await asyncio.wait_for(waiting, 5)
        assert message == {"type": "http.request", "body": b"data", "more_body": False}
        later = asyncio.ensure_future(cycle.receive())  # a long poll, before its answer
        await settle()
        assert not later.done()  # not told: its answer comes first
        await cycle.send(START)
        await cycle.send(body(b"ok"))
        assert await asyncio.wait_for(later, 5) == {"type": "http.disconnect"}

    run(test)


def test_body_in_pieces_with_more_body():
    head = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n"

    async def test() -> None:
        cycle, exchange, conn = make_cycle(head, deliver_body=False)
        waiting = asyncio.ensure_future(cycle.receive())
        await settle()
        assert not waiting.done()
        exchange.feed(b"012")
        exchange.feed(b"34")
        first = await asyncio.wait_for(waiting, 5)
        assert first == {"type": "http.request", "body": b"01234", "more_body": True}
        exchange.feed(b"56789")
        exchange.end()
        last = await cycle.receive()
        assert last == {"type": "http.request", "body": b"56789", "more_body": False}
        assert conn.resumes >= 1  # reading resumed while the app waited for body

    run(test)


def test_buffered_body_over_the_high_water_mark_pauses_reading():
    head = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 200000\r\n\r\n"

    async def test() -> None:
        cycle, exchange, conn = make_cycle(head, deliver_body=False)
        exchange.feed(b"a" * BODY_HIGH_WATER)
        assert conn.pauses == 0
        exchange.feed(b"b")
        assert conn.pauses == 1
        message = await cycle.receive()
        assert len(message["body"]) == BODY_HIGH_WATER + 1
        assert conn.resumes == 1

    run(test)


def test_disconnect_while_waiting_for_body():
    head = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n"

    async def test() -> None:
        cycle, exchange, _ = make_cycle(head, deliver_body=False)
        waiting = asyncio.ensure_future(cycle.receive())
        await settle()
        exchange.disconnect()
        assert await asyncio.wait_for(waiting, 5) == {"type": "http.disconnect"}

    run(test)


def test_body_fed_after_the_response_is_discarded():
    head = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n"

    async def test() -> None:
        cycle, exchange, conn = make_cycle(head, deliver_body=False)
        await cycle.send(START)
        await cycle.send(body(b"no thanks"))
        exchange.feed(b"0123456789")
        exchange.end()
        assert await cycle.receive() == {"type": "http.disconnect"}
        assert conn.completed == [True]  # the body was read and dropped: keep-alive holds

    run(test)


EXPECT = b"POST / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"


def test_100_continue_is_written_by_the_first_receive_only():
    async def test() -> None:
        cycle, exchange, conn = make_cycle(EXPECT, deliver_body=False)
        assert conn.writes == []
        waiting = asyncio.ensure_future(cycle.receive())
        await settle()
        assert conn.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]
        assert conn.bodies_due == 1  # the connection now waits for the body
        exchange.feed(b"hi")
        exchange.end()
        assert (await asyncio.wait_for(waiting, 5))["body"] == b"hi"
        await cycle.send(START)
        await cycle.send(body(b"ok"))
        assert conn.wire.count(b"100 Continue") == 1
        assert conn.completed == [True]

    run(test)


def test_no_100_continue_once_the_response_started():
    async def test() -> None:
        cycle, exchange, conn = make_cycle(EXPECT, deliver_body=False)
        await cycle.send(START)
        waiting = asyncio.ensure_future(cycle.receive())
        await settle()
        assert conn.writes == []
        exchange.disconnect()
        await asyncio.wait_for(waiting, 5)

    run(test)


def test_unread_expect_body_means_no_keep_alive():
    async def test() -> None:
        cycle, exchange, conn = make_cycle(EXPECT, deliver_body=False)
        await cycle.send({"type": "http.response.start", "status": 401, "headers": []})
        await cycle.send(body(b"no"))
        assert b"100" not in conn.wire
        assert b"connection: close\r\n" in conn.wire  # the head says so
        assert exchange.complete and not exchange.request_complete
        assert conn.completed == [False]

    run(test)


# -- run: the app failing ------------------------------------------------------------------


def _app(behaviour: Callable[[Receive, Send], Awaitable[Any]]) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> Any:
        return await behaviour(receive, send)

    return app


async def _raise_first(receive: Receive, send: Send) -> None:
    raise ValueError("boom")


async def _raise_after_body(receive: Receive, send: Send) -> None:
    await send(START)
    await send(body(b"part", more=True))
    raise ValueError("boom")


async def _return_early(receive: Receive, send: Send) -> None:
    await send(START)


async def _hang_up(receive: Receive, send: Send) -> None:
    raise ClientDisconnected("gone")


@pytest.mark.parametrize(
    ("behaviour", "status", "aborted"),
    [(_raise_first, 500, False), (_return_early, 500, False), (_raise_after_body, 200, True)],
    ids=["raise-before-start", "return-without-body", "raise-mid-body"],
)
def test_run_answers_500_or_aborts(behaviour: Any, status: int, aborted: bool):
    async def test() -> None:
        cycle, exchange, conn = make_cycle()
        runner = ASGIRunner(_app(behaviour), root_path="", state=None, loop=conn.state.loop)
        conn.start(runner, exchange)
        assert cycle.task is not None and exchange in conn.state.running
        await asyncio.wait_for(cycle.task, 5)
        assert not conn.state.running  # finish() took it out
        assert conn.aborted is aborted
        assert exchange.status == status
        if not aborted:
            assert conn.wire.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
            assert conn.completed == [False]
        else:
            assert exchange.disconnected and conn.completed == []

    run(test)


def test_run_is_quiet_when_the_client_is_gone(caplog: pytest.LogCaptureFixture):
    async def test() -> None:
        cycle, exchange, conn = make_cycle()
        exchange.disconnect()  # the connection was lost before the app answered
        conn.state.running.add(exchange)
        await cycle.run(_app(_hang_up))
        assert not conn.state.running
        assert conn.writes == []
        assert not conn.aborted
        assert conn.completed == []

    caplog.set_level(logging.ERROR, logger="rootserve.error")
    run(test)
    assert "Exception in ASGI app" not in caplog.text


# -- build_scope ---------------------------------------------------------------------------


def test_build_scope():
    raw = b"PUT /a%20b/%E2%82%AC?x=%20&y HTTP/1.0\r\nX-Up: V\r\nContent-Length: 0\r\n\r\n"
    state = {"db": "pool"}
    scope = build_scope(parse_request(raw), ("10.0.0.1", 80), ("10.0.0.2", 1234), "http", "", state)
    assert scope["type"] == "http"
    assert scope["asgi"] == ASGI_VERSION
    assert scope["http_version"] == "1.0"
    assert scope["method"] == "PUT"
    assert scope["scheme"] == "http"
    assert scope["path"] == "/a b/€"
    assert scope["raw_path"] == b"/a%20b/%E2%82%AC"
    assert scope["query_string"] == b"x=%20&y"
    assert scope["root_path"] == ""
    assert (b"x-up", b"V") in scope["headers"]
    assert scope["server"] == ("10.0.0.1", 80)
    assert scope["client"] == ("10.0.0.2", 1234)
    assert scope["extensions"] == {}
    assert scope["state"] == state
    assert scope["state"] is not state  # each request gets its own copy


def test_build_scope_root_path_and_no_state():
    scope = build_scope(parse_request(GET), None, None, "http", "/mount", None)
    assert scope["root_path"] == "/mount"
    assert scope["path"] == "/mount/p"
    assert scope["raw_path"] == b"/mount/p"
    assert scope["query_string"] == b"q=1"
    assert "state" not in scope
    assert scope["client"] is None and scope["server"] is None
