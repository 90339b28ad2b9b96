"""Response trailers (the ASGI "HTTP Trailers" extension) in memory: the offer in the scope,
the order of messages, and the bytes an HTTP/1.1 exchange writes for them (a real
HTTP11Exchange on tests/exchange_support.py's fake connection)."""

from __future__ import annotations

import pytest
from tests.asgi.test_http_cycle import START, body, make_cycle, run
from tests.exchange_support import parse_request

from rootserve.protocol.exchange import ResponseError, accepts_trailers
from rootserve.types import Message

TE_GET = b"GET /t HTTP/1.1\r\nHost: t\r\nTE: trailers\r\n\r\n"
PLAIN_GET = b"GET /t HTTP/1.1\r\nHost: t\r\n\r\n"
ANNOUNCED: Message = {"type": "http.response.start", "status": 200, "headers": [],
                      "trailers": True}  # fmt: skip


def trailers(*fields: tuple[bytes, bytes], more: bool = False) -> Message:
    return {"type": "http.response.trailers", "headers": list(fields), "more_trailers": more}


@pytest.mark.parametrize(
    ("raw", "accepted"),
    [
        (TE_GET, True),
        (PLAIN_GET, False),
        (b"GET / HTTP/1.1\r\nHost: t\r\nTE: gzip;q=0.5, Trailers\r\n\r\n", True),
        (b"GET / HTTP/1.1\r\nHost: t\r\nTE: gzip\r\n\r\n", False),
        (b"GET / HTTP/1.1\r\nHost: t\r\nTE: trailersx\r\n\r\n", False),
        (b"GET / HTTP/1.0\r\nTE: trailers\r\n\r\n", False),  # no chunked coding in 1.0
    ],
    ids=["te-trailers", "no-te", "te-list", "te-other", "te-lookalike", "http-1.0"],
)
def test_on_http11_the_client_decides_what_is_sent(raw: bytes, accepted: bool) -> None:
    # Offered on HTTP/2 only (asgi/_scope.py says why); an app that sends trailers all the
    # same has them sent to an HTTP/1.1 client that takes them, in the last chunk, and
    # dropped for any other.
    assert accepts_trailers(parse_request(raw)) is accepted

    async def test() -> None:
        cycle, exchange, conn = make_cycle(raw)
        assert cycle.scope["extensions"] == {}  # no trailers offered, no stream
        await cycle.send(ANNOUNCED)
        await cycle.send(body(b"hello"))
        await cycle.send(trailers((b"x-checksum", b"abc")))
        assert exchange.complete
        assert (b"x-checksum: abc\r\n" in conn.wire) is accepted

    run(test)


def test_trailers_go_in_the_last_chunk_and_end_the_response():
    async def test() -> None:
        cycle, exchange, conn = make_cycle(TE_GET)
        await cycle.send(ANNOUNCED)
        await cycle.send(body(b"hello"))  # the last body: it does not end the response
        assert b"transfer-encoding: chunked" in conn.wire
        assert conn.wire.endswith(b"\r\n\r\n5\r\nhello\r\n")
        assert conn.completed == [] and not exchange.complete
        await cycle.send(trailers((b"x-checksum", b"abc"), more=True))
        assert conn.completed == []
        await cycle.send(trailers((b"X-Count", b"1")))
        assert conn.wire.endswith(b"5\r\nhello\r\n0\r\nx-checksum: abc\r\nX-Count: 1\r\n\r\n")
        assert conn.completed == [True] and exchange.complete
        assert await cycle.receive() == {"type": "http.disconnect"}

    run(test)


def test_streamed_body_then_trailers():
    async def test() -> None:
        cycle, _, conn = make_cycle(TE_GET)
        await cycle.send(ANNOUNCED)
        await cycle.send(body(b"one", more=True))
        await cycle.send(body(b"two"))
        await cycle.send(trailers((b"grpc-status", b"0")))
        assert conn.wire.endswith(b"3\r\none\r\n3\r\ntwo\r\n0\r\ngrpc-status: 0\r\n\r\n")
        assert conn.completed == [True]

    run(test)


@pytest.mark.parametrize(
    ("raw", "start"),
    [
        (PLAIN_GET, ANNOUNCED),  # the client did not say TE: trailers
        (TE_GET, {**ANNOUNCED, "headers": [(b"content-length", b"5")]}),  # not chunked
        (b"HEAD /t HTTP/1.1\r\nHost: t\r\nTE: trailers\r\n\r\n", ANNOUNCED),  # no body
    ],
    ids=["no-te", "content-length", "head"],
)
def test_trailers_are_dropped_where_they_cannot_go(raw: bytes, start: Message):
    async def test() -> None:
        cycle, exchange, conn = make_cycle(raw)
        await cycle.send(start)
        await cycle.send(body(b"hello"))
        await cycle.send(trailers((b"x-checksum", b"abc")))
        assert b"x-checksum" not in conn.wire
        if raw.startswith(b"HEAD"):
            assert conn.wire.endswith(b"\r\n\r\n")
        else:
            assert conn.wire.endswith((b"\r\n\r\nhello", b"hello\r\n0\r\n\r\n"))
        assert conn.completed == [True] and exchange.complete

    run(test)


def test_no_trailer_fields_is_a_plain_end():
    async def test() -> None:
        cycle, _, conn = make_cycle(TE_GET)
        await cycle.send(ANNOUNCED)
        await cycle.send(body(b"hi"))
        await cycle.send(trailers())
        assert conn.wire.endswith(b"2\r\nhi\r\n0\r\n\r\n")

    run(test)


@pytest.mark.parametrize(
    ("field", "error"),
    [
        ((b"Content-Length", b"5"), "'Content-Length' cannot be a trailer field"),
        ((b"host", b"x"), "'host' cannot be a trailer field"),
        ((b"transfer-encoding", b"chunked"), "cannot be a trailer field"),
        ((b"x-ok", b"a\r\nx-evil: 1"), "CR, LF or NUL"),
        ((b"bad name", b"1"), "not a token"),
    ],
)
def test_a_field_that_cannot_be_a_trailer_is_refused(field: tuple[bytes, bytes], error: str):
    async def test() -> None:
        cycle, exchange, conn = make_cycle(TE_GET)
        await cycle.send(ANNOUNCED)
        await cycle.send(body(b"hello"))
        written = conn.wire
        with pytest.raises(ResponseError, match=error):
            await cycle.send(trailers((b"x-fine", b"1"), more=True))
            await cycle.send(trailers(field))
        assert conn.wire == written  # nothing of the trailer section went out
        exchange.finish()  # the app's call ends with the error: the response is cut
        assert conn.aborted and conn.completed == []

    run(test)


def test_trailer_values_must_be_bytes():
    async def test() -> None:
        for bad in ([(b"x-a", "text")], [b"x-a"], [(b"x-a", b"1", b"2")]):
            cycle, _, conn = make_cycle(TE_GET)
            await cycle.send(ANNOUNCED)
            await cycle.send(body(b"hello"))
            written = conn.wire
            with pytest.raises(TypeError, match="'headers' must be an iterable of"):
                await cycle.send({"type": "http.response.trailers", "headers": bad})
            assert conn.wire == written

    run(test)


@pytest.mark.parametrize(
    ("messages", "error"),
    [
        ([START, body(b"x"), trailers()], "did not set 'trailers': True"),
        ([ANNOUNCED, trailers()], "before the last http.response.body"),
        ([ANNOUNCED, body(b"x", more=True), trailers()], "before the last http.response.body"),
        ([ANNOUNCED, body(b"x"), body(b"y")], "'http.response.body' sent after the last one"),
        ([ANNOUNCED, body(b"x"), trailers(), trailers()], "after the response was complete"),
    ],
    ids=["not-announced", "before-body", "before-last-body", "body-after-last", "twice"],
)
def test_trailer_message_order_errors_name_the_rule(messages: list[Message], error: str):
    async def test() -> None:
        cycle, _, _ = make_cycle(TE_GET)
        *fine, bad = messages
        for message in fine:
            await cycle.send(message)
        with pytest.raises(RuntimeError, match=error):
            await cycle.send(bad)

    run(test)


def test_an_app_that_returns_before_its_trailers_has_its_response_cut():
    async def test() -> None:
        cycle, exchange, conn = make_cycle(TE_GET)
        await cycle.send(ANNOUNCED)
        await cycle.send(body(b"hello"))
        exchange.finish()
        assert conn.aborted and conn.completed == []
        assert not conn.wire.endswith(b"0\r\n\r\n")  # the client sees the body unfinished

    run(test)


def test_trailers_after_a_body_short_of_its_content_length_cut_the_response():
    async def test() -> None:
        cycle, exchange, conn = make_cycle(TE_GET)
        await cycle.send({**ANNOUNCED, "headers": [(b"content-length", b"10")]})
        await cycle.send(body(b"12345"))
        with pytest.raises(ResponseError, match="short of its Content-Length"):
            await cycle.send(trailers((b"x-checksum", b"abc")))
        assert conn.aborted and exchange.disconnected and conn.completed == []

    run(test)
