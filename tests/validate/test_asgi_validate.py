"""validate.asgi: one tiny broken app per rule, each with its exact message; correct apps
(hand-written, Starlette, FastAPI, and one served for real) pass untouched."""

from __future__ import annotations

import asyncio
import contextlib
import http
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from tests.helpers import serve

from rootserve.validate._asgi import asgi
from rootserve.validate._errors import ContractError

HTTP = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"}, "extensions": {}}
WS = {"type": "websocket", "subprotocols": ["chat"], "extensions": {}}
WS_DENIAL = {**WS, "extensions": {"websocket.http.response": {}}}
LIFESPAN = {"type": "lifespan"}
REQUEST = {"type": "http.request", "body": b"", "more_body": False}


def drive(app: Any, scope: dict[str, Any], incoming: list[Any] | None = None) -> list[Any]:
    """Run `asgi(app)` once in asyncio with a fake server; return what reached the server."""
    queue = list(incoming if incoming is not None else [REQUEST])
    sent: list[Any] = []

    async def receive() -> Any:
        assert queue, "the app asked for more than the test provides"
        return queue.pop(0)

    async def send(message: Any) -> None:
        sent.append(message)

    async def main() -> None:
        await asgi(app)(dict(scope), receive, send)

    asyncio.run(main())
    return sent


def checked(app: Any) -> Any:
    """`asgi(app)` for a framework app, whose looser ASGI types mypy would not match."""
    return asgi(app)


def sender(*messages: Any) -> Any:
    """An app that sends `messages` in order and returns."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        for message in messages:
            await send(message)

    return app


def expect(
    message: str, app: Any, scope: dict[str, Any], incoming: list[Any] | None = None
) -> None:
    with pytest.raises(ContractError) as caught:
        drive(app, scope, incoming)
    assert str(caught.value) == message


START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"text/plain")],
}
BODY = {"type": "http.response.body", "body": b"hi"}

# -- every conversation --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "what"),
    [
        ([("type", "http.response.start")], "message is a list, not a dict"),
        ({"status": 200}, "message 'type' is None, not a str"),
        ({"type": b"http.response.start"}, "message 'type' is b'http.response.start', not a str"),
    ],
)
def test_message_must_be_a_dict_with_a_str_type(message: Any, what: str) -> None:
    expect(f'ASGI http: {what} (ASGI spec, "Events")', sender(message), HTTP)


# -- http ------------------------------------------------------------------------------------


def test_body_before_start() -> None:
    expect(
        "ASGI http: 'http.response.body' sent before 'http.response.start'"
        ' (ASGI HTTP spec, "Response Start")',
        sender(BODY),
        HTTP,
    )


@pytest.mark.parametrize("status", ["200", 99, 600, True, None])
def test_status_must_be_an_int_from_100_to_599(status: Any) -> None:
    expect(
        f"ASGI http: 'http.response.start' 'status' must be an int from 100 to 599, got"
        f' {status!r} (ASGI HTTP spec, "Response Start")',
        sender({"type": "http.response.start", "status": status}),
        HTTP,
    )


@pytest.mark.parametrize(
    "headers",
    [
        [("content-type", "text/plain")],
        [(b"content-type",)],
        [(b"a", b"b", b"c")],
        [b"content-type: text/plain"],
        b"content-type",
        {b"a": b"b"},
        7,
    ],
)
def test_response_headers_must_be_byte_pairs(headers: Any) -> None:
    bad = headers if not isinstance(headers, list) else headers[0]
    expect(
        f"ASGI http: 'http.response.start' 'headers' must be an iterable of [name, value]"
        f' pairs of bytes, got {bad!r} (ASGI HTTP spec, "Response Start")',
        sender({"type": "http.response.start", "status": 200, "headers": headers}),
        HTTP,
    )


def test_trailers_flag_must_be_a_bool() -> None:
    expect(
        "ASGI http: 'http.response.start' 'trailers' must be a bool, got 1"
        ' (ASGI HTTP spec, "Response Start")',
        sender({**START, "trailers": 1}),
        HTTP,
    )


@pytest.mark.parametrize("body", ["hi", bytearray(b"hi"), memoryview(b"hi")])
def test_body_must_be_bytes(body: Any) -> None:
    expect(
        f"ASGI http: 'http.response.body' 'body' must be bytes, got {body!r}"
        ' (ASGI HTTP spec, "Response Body")',
        sender(START, {"type": "http.response.body", "body": body}),
        HTTP,
    )


def test_more_body_must_be_a_bool() -> None:
    expect(
        "ASGI http: 'http.response.body' 'more_body' must be a bool, got 'yes'"
        ' (ASGI HTTP spec, "Response Body")',
        sender(START, {**BODY, "more_body": "yes"}),
        HTTP,
    )


def test_start_twice() -> None:
    expect(
        "ASGI http: 'http.response.start' sent twice (ASGI HTTP spec, \"Response Start\")",
        sender(START, START),
        HTTP,
    )


@pytest.mark.parametrize("late", [BODY, START])
def test_nothing_after_the_last_body(late: Any) -> None:
    expect(
        f"ASGI http: {late['type']!r} sent after the response was complete"
        ' (ASGI HTTP spec, "Response Body")',
        sender(START, BODY, late),
        HTTP,
    )


@pytest.mark.parametrize("kind", ["websocket.send", "http.response.pathsend", "http.request"])
def test_unknown_message_type_for_http(kind: str) -> None:
    expect(
        f"ASGI http: unknown message type {kind!r} for scope type 'http' (ASGI HTTP spec)",
        sender(START, {"type": kind, "path": "/etc/hostname"}),
        HTTP,
    )


def test_trailers_not_announced() -> None:
    expect(
        "ASGI http: 'http.response.trailers' sent but 'http.response.start' did not set"
        " 'trailers': True (ASGI HTTP spec, \"Response Trailers\")",
        sender(START, BODY, {"type": "http.response.trailers", "headers": []}),
        HTTP,
    )


def test_trailers_before_the_last_body() -> None:
    expect(
        "ASGI http: 'http.response.trailers' sent before the last 'http.response.body'"
        ' (ASGI HTTP spec, "Response Trailers")',
        sender({**START, "trailers": True}, {"type": "http.response.trailers"}),
        HTTP,
    )


def test_body_after_the_last_body_while_trailers_are_due() -> None:
    expect(
        "ASGI http: 'http.response.body' sent after the last 'http.response.body'"
        ' (ASGI HTTP spec, "Response Body")',
        sender({**START, "trailers": True}, BODY, BODY),
        HTTP,
    )


def test_trailer_headers_must_be_byte_pairs() -> None:
    expect(
        "ASGI http: 'http.response.trailers' 'headers' must be an iterable of [name, value]"
        " pairs of bytes, got ('etag', 'x') (ASGI HTTP spec, \"Response Trailers\")",
        sender(
            {**START, "trailers": True},
            BODY,
            {"type": "http.response.trailers", "headers": [("etag", "x")]},
        ),
        HTTP,
    )


@pytest.mark.parametrize(
    ("messages", "what", "section"),
    [
        ((), "app returned without sending 'http.response.start'", "Response Start"),
        (
            (START, {**BODY, "more_body": True}),
            "app returned before the last 'http.response.body' (more_body False)",
            "Response Body",
        ),
        (
            ({**START, "trailers": True}, BODY),
            "app returned before the last 'http.response.trailers'",
            "Response Trailers",
        ),
    ],
)
def test_returning_with_the_response_unfinished(messages: Any, what: str, section: str) -> None:
    expect(f'ASGI http: {what} (ASGI HTTP spec, "{section}")', sender(*messages), HTTP)


def test_correct_http_apps_pass_unchanged() -> None:
    def pairs() -> Iterator[tuple[bytes, bytes]]:
        yield (b"x-one", b"1")

    messages = [
        {"type": "http.response.start", "status": http.HTTPStatus.OK, "headers": pairs()},
        {"type": "http.response.body", "more_body": True, "extra": "allowed"},
        {"type": "http.response.body", "body": b""},
    ]
    sent = drive(sender(*messages), HTTP)
    assert len(sent) == 3 and all(a is b for a, b in zip(sent, messages, strict=True))
    trailers = [
        {
            "type": "http.response.start",
            "status": 200,
            "headers": ((b"a", b"b"),),
            "trailers": True,
        },
        {"type": "http.response.body", "body": b"x", "more_body": False},
        {"type": "http.response.trailers", "headers": [[b"etag", b"1"]], "more_trailers": True},
        {"type": "http.response.trailers", "headers": []},
    ]
    assert drive(sender(*trailers), HTTP) == trailers
    pathsend = {**HTTP, "extensions": {"http.response.pathsend": {}}}
    assert (
        len(drive(sender(START, {"type": "http.response.pathsend", "path": "/x"}), pathsend)) == 2
    )


def test_an_app_may_stop_after_the_client_disconnected() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({**START})
        await send({**BODY, "more_body": True})
        assert (await receive())["type"] == "http.disconnect"
        assert (await receive())["type"] == "http.disconnect"  # asking again is allowed

    disconnect = {"type": "http.disconnect"}
    assert len(drive(app, HTTP, [disconnect, disconnect])) == 2


def test_app_exceptions_propagate_unchanged() -> None:
    error = ValueError("boom")

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(START)
        raise error

    with pytest.raises(ValueError) as caught:
        drive(app, HTTP)
    assert caught.value is error


def test_other_scope_types_pass_through() -> None:
    assert drive(sender({"type": "whatever"}), {"type": "custom"}) == [{"type": "whatever"}]


# -- websocket -------------------------------------------------------------------------------

ACCEPT = {"type": "websocket.accept"}


def test_ws_send_before_accept() -> None:
    expect(
        "ASGI websocket: 'websocket.send' sent before 'websocket.accept'"
        ' (ASGI WebSocket spec, "Send - send event")',
        sender({"type": "websocket.send", "text": "hi"}),
        WS,
    )


@pytest.mark.parametrize(
    "fields", [{}, {"bytes": None, "text": None}, {"bytes": b"a", "text": "a"}]
)
def test_ws_send_needs_exactly_one_of_bytes_and_text(fields: dict[str, Any]) -> None:
    expect(
        "ASGI websocket: 'websocket.send' must have exactly one of 'bytes' and 'text' not None"
        ' (ASGI WebSocket spec, "Send - send event")',
        sender(ACCEPT, {"type": "websocket.send", **fields}),
        WS,
    )


@pytest.mark.parametrize(
    ("key", "value", "want"), [("bytes", "hi", "bytes or None"), ("text", b"hi", "a str or None")]
)
def test_ws_send_data_types(key: str, value: Any, want: str) -> None:
    expect(
        f"ASGI websocket: 'websocket.send' {key!r} must be {want}, got {value!r}"
        ' (ASGI WebSocket spec, "Send - send event")',
        sender(ACCEPT, {"type": "websocket.send", key: value}),
        WS,
    )


def test_ws_subprotocol_must_be_offered() -> None:
    expect(
        "ASGI websocket: 'websocket.accept' subprotocol 'mqtt' was not offered by the client"
        " (offered: ['chat']) (ASGI WebSocket spec, \"Accept - send event\")",
        sender({"type": "websocket.accept", "subprotocol": "mqtt"}),
        WS,
    )


def test_ws_accept_headers_must_be_byte_pairs() -> None:
    expect(
        "ASGI websocket: 'websocket.accept' 'headers' must be an iterable of [name, value]"
        " pairs of bytes, got ('x', b'1') (ASGI WebSocket spec, \"Accept - send event\")",
        sender({"type": "websocket.accept", "headers": [("x", b"1")]}),
        WS,
    )


def test_ws_accept_twice() -> None:
    expect(
        "ASGI websocket: 'websocket.accept' sent twice (ASGI WebSocket spec,"
        ' "Accept - send event")',
        sender(ACCEPT, ACCEPT),
        WS,
    )


@pytest.mark.parametrize(
    ("late", "section"),
    [
        ({"type": "websocket.send", "text": "x"}, "Send - send event"),
        (ACCEPT, "Accept - send event"),
    ],
)
def test_ws_nothing_after_close(late: Any, section: str) -> None:
    expect(
        f"ASGI websocket: {late['type']!r} sent after 'websocket.close'"
        f' (ASGI WebSocket spec, "{section}")',
        sender(ACCEPT, {"type": "websocket.close"}, late),
        WS,
    )


@pytest.mark.parametrize(
    ("key", "value", "want"), [("code", "1000", "an int"), ("reason", 5, "a str")]
)
def test_ws_close_fields(key: str, value: Any, want: str) -> None:
    expect(
        f"ASGI websocket: 'websocket.close' {key!r} must be {want}, got {value!r}"
        ' (ASGI WebSocket spec, "Close - send event")',
        sender({"type": "websocket.close", key: value}),
        WS,
    )


def test_ws_unknown_message_type() -> None:
    expect(
        "ASGI websocket: unknown message type 'http.response.start' for scope type"
        " 'websocket' (ASGI WebSocket spec)",
        sender(START),
        WS,
    )


DENY = {"type": "websocket.http.response.start", "status": 403, "headers": []}
DENY_BODY = {"type": "websocket.http.response.body", "body": b"no"}


def test_ws_denial_needs_the_extension() -> None:
    expect(
        "ASGI websocket: 'websocket.http.response.start' sent but the server did not offer the"
        " 'websocket.http.response' extension (ASGI WebSocket spec, \"Websocket Denial Response\")",
        sender(DENY),
        WS,
    )


@pytest.mark.parametrize(
    ("messages", "what"),
    [
        ((ACCEPT, DENY), "'websocket.http.response.start' sent after 'websocket.accept'"),
        (
            (DENY_BODY,),
            "'websocket.http.response.body' sent before 'websocket.http.response.start'",
        ),
        (
            (DENY, {"type": "websocket.close"}),
            "'websocket.close' sent before the last 'websocket.http.response.body'",
        ),
        (
            (DENY, DENY_BODY, DENY_BODY),
            "'websocket.http.response.body' sent after the denial response was complete",
        ),
        (
            ({**DENY, "status": "403"},),
            "'websocket.http.response.start' 'status' must be an int from 100 to 599, got '403'",
        ),
        (
            (DENY, {**DENY_BODY, "body": "no"}),
            "'websocket.http.response.body' 'body' must be bytes, got 'no'",
        ),
        (
            (DENY, {**DENY_BODY, "more_body": True}),
            "app returned before the last 'websocket.http.response.body' (more_body False)",
        ),
    ],
)
def test_ws_denial_response_order_and_fields(messages: Any, what: str) -> None:
    section = (
        "Close - send event" if "'websocket.close' sent" in what else "Websocket Denial Response"
    )
    expect(
        f'ASGI websocket: {what} (ASGI WebSocket spec, "{section}")', sender(*messages), WS_DENIAL
    )


def test_correct_ws_apps_pass() -> None:
    good = [
        {"type": "websocket.accept", "subprotocol": "chat", "headers": [(b"x", b"1")]},
        {"type": "websocket.send", "bytes": b"a", "text": None},
        {"type": "websocket.send", "text": "b"},
        {"type": "websocket.close", "code": 1001, "reason": "bye"},
    ]
    assert drive(sender(*good), WS) == good
    assert drive(sender({"type": "websocket.close"}), WS) == [{"type": "websocket.close"}]
    assert drive(sender(), WS) == []  # returning unaccepted: the server answers 403
    assert drive(sender(DENY, {**DENY_BODY, "more_body": True}, DENY_BODY), WS_DENIAL)[0] is DENY


# -- lifespan --------------------------------------------------------------------------------

STARTUP = {"type": "lifespan.startup"}
SHUTDOWN = {"type": "lifespan.shutdown"}


@pytest.mark.parametrize("phase", ["startup", "shutdown"])
def test_lifespan_answer_before_the_question(phase: str) -> None:
    expect(
        f"ASGI lifespan: 'lifespan.{phase}.complete' sent before 'lifespan.{phase}' was"
        f' received (ASGI lifespan spec, "{phase.title()} - receive event")',
        sender({"type": f"lifespan.{phase}.complete"}),
        LIFESPAN,
    )


@pytest.mark.parametrize(
    ("first", "second", "section"),
    [
        ("complete", "failed", "Startup Failed - send event"),
        ("failed", "complete", "Startup Complete - send event"),
        ("complete", "complete", "Startup Complete - send event"),
    ],
)
def test_lifespan_answers_once(first: str, second: str, section: str) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": f"lifespan.startup.{first}"})
        await send({"type": f"lifespan.startup.{second}"})

    expect(
        f"ASGI lifespan: 'lifespan.startup.{second}' sent after 'lifespan.startup.{first}'"
        f' (ASGI lifespan spec, "{section}")',
        app,
        LIFESPAN,
        [STARTUP],
    )


def test_lifespan_failed_message_must_be_a_str() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.failed", "message": b"no db"})

    expect(
        "ASGI lifespan: 'lifespan.startup.failed' 'message' must be a str, got b'no db'"
        ' (ASGI lifespan spec, "Startup Failed - send event")',
        app,
        LIFESPAN,
        [STARTUP],
    )


def test_lifespan_unknown_message_type() -> None:
    expect(
        "ASGI lifespan: unknown message type 'lifespan.startup' for scope type 'lifespan'"
        " (ASGI lifespan spec)",
        sender(STARTUP),
        LIFESPAN,
    )


def test_correct_lifespan_passes() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.failed", "message": "pool did not close"})

    assert len(drive(app, LIFESPAN, [STARTUP, SHUTDOWN])) == 2


# -- frameworks: no false alarms -------------------------------------------------------------


def starlette_app(events: list[str]) -> Starlette:
    async def data(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    async def stream(request: Request) -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for i in range(3):
                yield f"chunk {i}\n".encode()

        return StreamingResponse(chunks(), media_type="text/plain")

    async def echo(websocket: WebSocket) -> None:
        await websocket.accept(subprotocol="chat")
        await websocket.send_text(await websocket.receive_text())
        await websocket.close()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        events.append("startup")
        yield
        events.append("shutdown")

    routes = [Route("/data", data), Route("/stream", stream), WebSocketRoute("/ws", echo)]
    return Starlette(routes=routes, lifespan=lifespan)


def test_starlette_http_passes() -> None:
    async def main() -> None:
        transport = httpx.ASGITransport(app=checked(starlette_app([])))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get("/data")).json() == {"ok": True}
            assert (await client.get("/stream")).text == "chunk 0\nchunk 1\nchunk 2\n"
            assert (await client.get("/missing")).status_code == 404
            assert (await client.post("/data")).status_code == 405

    asyncio.run(main())


def test_starlette_websocket_and_lifespan_pass() -> None:
    events: list[str] = []
    app = starlette_app(events)
    assert len(drive(app, LIFESPAN, [STARTUP, SHUTDOWN])) == 2
    assert events == ["startup", "shutdown"]
    scope = {**WS, "path": "/ws", "root_path": "", "query_string": b"", "headers": []}
    incoming = [
        {"type": "websocket.connect"},
        {"type": "websocket.receive", "text": "hello"},
        {"type": "websocket.disconnect", "code": 1000},
    ]
    sent = drive(app, scope, incoming)
    assert [m["type"] for m in sent] == ["websocket.accept", "websocket.send", "websocket.close"]
    assert sent[1]["text"] == "hello"


def test_fastapi_passes() -> None:
    api = FastAPI()

    @api.get("/items/{item}")
    async def item(item: int) -> dict[str, int]:
        return {"item": item}

    async def main() -> None:
        transport = httpx.ASGITransport(app=checked(api))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get("/items/3")).json() == {"item": 3}
            assert (await client.get("/items/x")).status_code == 422
            assert (await client.get("/nothing")).status_code == 404

    asyncio.run(main())


def test_served_for_real() -> None:
    async def hello(request: Request) -> PlainTextResponse:
        return PlainTextResponse("hello")

    with serve(checked(Starlette(routes=[Route("/", hello)]))) as running:
        response = httpx.get(running.url + "/", timeout=10)
    assert (response.status_code, response.text) == (200, "hello")
