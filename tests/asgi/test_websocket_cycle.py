"""WebSocketCycle in memory: a real HTTP11Exchange on a fake connection
(tests/exchange_support.py), the real sans-IO HTTP protocol holding the handshake, and the
`websockets` client protocol as the peer.

Also the HTTP layer's side of the switch (hold, switch, refuse, resume) and the handshake
check, which need no server either.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from tests.exchange_support import FakeConnection, parse_request
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.protocol import OPEN
from websockets.uri import parse_uri

from rootserve.asgi._websocket_handshake import Handshake, Refusal, check_handshake, deflate_factory
from rootserve.asgi._websocket_session import WebSocketSession
from rootserve.asgi.http import ClientDisconnected
from rootserve.asgi.websocket import CLOSE_TIMEOUT, WebSocketCycle, WebSocketRunner, WSConfig
from rootserve.protocol.events import ConnectionClosed, EndOfMessage, Request
from rootserve.protocol.exchange import ResponseError
from rootserve.protocol.http11 import HTTP11Connection
from rootserve.protocol.rules import LocalProtocolError
from rootserve.server.exchange import HTTP11Exchange
from rootserve.types import ASGIApp, Message

KEY = base64.b64encode(b"0123456789abcdef")
HANDSHAKE = (
    b"GET /chat?room=1 HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: " + KEY + b"\r\nSec-WebSocket-Version: 13\r\n"
    b"Sec-WebSocket-Protocol: a, b\r\nSec-WebSocket-Protocol: c\r\n\r\n"
)


class Peer:
    """The client's end: the `websockets` sans-IO client, fed with what the server wrote."""

    def __init__(self, conn: FakeConnection) -> None:
        self.conn = conn
        self.proto = ClientProtocol(parse_uri("ws://example.com/chat"), state=OPEN)
        self.read = 0

    def frames(self) -> list[Frame]:
        data = self.conn.wire
        head_end = data.find(b"\r\n\r\n") + 4
        self.proto.receive_data(data[max(self.read, head_end) :])
        self.read = len(data)
        return [e for e in self.proto.events_received() if isinstance(e, Frame)]

    def send(self, opcode: Opcode, data: bytes, fin: bool = True) -> bytes:
        self.proto.send_frame(Frame(opcode, data, fin))
        return b"".join(self.proto.data_to_send())


def make_runner(app: ASGIApp, config: WSConfig | None = None, **options: Any) -> WebSocketRunner:
    options.setdefault("root_path", "")
    options.setdefault("state", None)
    return WebSocketRunner(
        app,
        loop=asyncio.get_running_loop(),
        config=config or WSConfig(ping_interval=0),
        **options,
    )


def open_cycle(
    runner: WebSocketRunner, raw: bytes = HANDSHAKE
) -> tuple[WebSocketCycle, HTTP11Exchange, FakeConnection]:
    """The exchange of the handshake in `raw` on a fake connection, its cycle attached by the
    runner as the server does (the request that asked to switch is the connection's
    `upgrade`)."""
    conn = FakeConnection()
    exchange = conn.open(raw, runner)
    assert conn.upgrade is exchange
    assert isinstance(exchange.receiver, WebSocketCycle)
    return exchange.receiver, exchange, conn


def session_of(cycle: WebSocketCycle) -> WebSocketSession:
    assert cycle.session is not None, "not accepted"
    return cycle.session


def run_cycle(
    app_steps: Callable[[Any, Any], Awaitable[Any]], *, config: WSConfig | None = None
) -> tuple[WebSocketCycle, FakeConnection]:
    """Check the handshake and run `app_steps(cycle, conn)` as the test's driver in the same
    loop (the app itself is not used: the test drives the cycle)."""

    async def main() -> tuple[WebSocketCycle, FakeConnection]:
        runner = make_runner(_never_called, config, state={"shared": 1})
        cycle, _, conn = open_cycle(runner)
        assert cycle.check()
        await asyncio.wait_for(app_steps(cycle, conn), 10)
        return cycle, conn

    return asyncio.run(main())


async def _never_called(scope: Any, receive: Any, send: Any) -> None:  # pragma: no cover
    raise AssertionError("the tests drive the cycle themselves")


async def accepted(cycle: WebSocketCycle) -> None:
    assert await cycle.receive() == {"type": "websocket.connect"}
    await cycle.send({"type": "websocket.accept"})


# -- the scope and the handshake ---------------------------------------------------------


def test_scope():
    async def steps(cycle: WebSocketCycle, conn: FakeConnection) -> None:
        return None

    cycle, _ = run_cycle(steps)
    scope = cycle.scope
    assert scope["type"] == "websocket"
    assert (scope["path"], scope["raw_path"], scope["query_string"]) == (
        "/chat", b"/chat", b"room=1"
    )  # fmt: skip
    assert scope["subprotocols"] == ["a", "b", "c"]
    assert scope["extensions"] == {"websocket.http.response": {}}
    assert scope["state"] == {"shared": 1}
    assert "method" not in scope


def test_check_handshake_negotiates_deflate_and_declines_the_rest():
    raw = HANDSHAKE.replace(
        b"\r\n\r\n",
        b"\r\nSec-WebSocket-Extensions: x-unknown, permessage-deflate; client_max_window_bits"
        b"\r\n\r\n",
    )
    request = parse_request(raw)
    checked = check_handshake(request, [deflate_factory()])
    assert isinstance(checked, Handshake)
    assert checked.extensions_header is not None
    assert checked.extensions_header.startswith(b"permessage-deflate")
    assert [type(e).__name__ for e in checked.extensions] == ["PerMessageDeflate"]
    assert isinstance(check_handshake(request, []), Handshake)


def test_refused_handshake_is_answered_without_the_app():
    raw = HANDSHAKE.replace(b"Version: 13", b"Version: 7")
    checked = check_handshake(parse_request(raw))
    assert isinstance(checked, Refusal) and checked.status == 426

    async def main() -> tuple[WebSocketCycle, HTTP11Exchange, FakeConnection]:
        runner = make_runner(_never_called, WSConfig(), log_refusals=False)
        cycle, exchange, conn = open_cycle(runner, raw)
        conn.start(runner, exchange)  # the request's turn: the check refuses it
        return cycle, exchange, conn

    cycle, exchange, conn = asyncio.run(main())
    assert cycle.task is None  # the app was never called
    assert not conn.state.running  # and the exchange is finished
    answer = conn.wire
    assert answer.startswith(b"HTTP/1.1 426 Upgrade Required\r\n")
    assert b"connection: upgrade, close\r\n" in answer
    assert b"sec-websocket-version: 13\r\n" in answer
    assert exchange.complete and exchange.status == 426
    assert conn.completed == [False]  # answered, and the connection ends


# -- messages and flow control -----------------------------------------------------------


def test_messages_in_order_then_disconnect():
    async def steps(cycle: WebSocketCycle, conn: FakeConnection) -> list[Message]:
        await accepted(cycle)
        peer = Peer(conn)
        conn.received(
            peer.send(Opcode.TEXT, b"one")
            + peer.send(Opcode.BINARY, b"tw", fin=False)
            + peer.send(Opcode.CONT, b"o")
        )
        conn.received(peer.send(Opcode.CLOSE, b"\x0f\xa0bye"))  # 4000
        return [await cycle.receive() for _ in range(3)]

    async def check(cycle: WebSocketCycle, conn: FakeConnection) -> None:
        messages = await steps(cycle, conn)
        assert messages == [
            {"type": "websocket.receive", "text": "one"},
            {"type": "websocket.receive", "bytes": b"two"},
            {"type": "websocket.disconnect", "code": 4000, "reason": "bye"},
        ]
        assert conn.closed  # RFC 6455 7.1.1: the server closes the TCP connection first
        with pytest.raises(ClientDisconnected):
            await cycle.send({"type": "websocket.send", "text": "late"})
        assert isinstance(ClientDisconnected(), OSError)

    run_cycle(check)


def test_bytes_sent_before_the_accept_reach_the_session():
    async def steps(cycle: WebSocketCycle, conn: FakeConnection) -> None:
        peer = Peer(conn)
        conn.received(peer.send(Opcode.TEXT, b"ea"))  # the protocol holds them
        conn.received(peer.send(Opcode.TEXT, b"rly"))
        assert conn.proto.held_bytes > 0
        await accepted(cycle)
        assert await cycle.receive() == {"type": "websocket.receive", "text": "ea"}
        assert await cycle.receive() == {"type": "websocket.receive", "text": "rly"}
        assert conn.proto.held_bytes == 0

    run_cycle(steps)


def test_reading_pauses_at_max_queue():
    async def steps(cycle: WebSocketCycle, conn: FakeConnection) -> None:
        await accepted(cycle)
        peer = Peer(conn)
        for n in range(3):
            conn.received(peer.send(Opcode.TEXT, b"m%d" % n))
        assert conn.pauses == 1
        assert (await cycle.receive())["text"] == "m0"
        assert conn.resumes == 0  # two still wait: that is max_queue
        assert (await cycle.receive())["text"] == "m1"
        assert conn.resumes == 1

    run_cycle(steps, config=WSConfig(max_queue=2, ping_interval=0))


def test_reading_stops_while_the_transport_is_full():
    # A client that sends pings and reads nothing must not grow our write buffer forever.
    async def steps(cycle: WebSocketCycle, conn: FakeConnection) -> None:
        await accepted(cycle)
        peer = Peer(conn)
        conn.write_paused = True
        conn.received(peer.send(Opcode.PING, b"p"))
        assert (conn.pauses, conn.resumes) == (1, 0)
        conn.resume_writing()  # the transport drained: the session hears of it
        assert (conn.pauses, conn.resumes) == (1, 1)
        assert [(f.opcode, f.data) for f in peer.frames()] == [(Opcode.PONG, b"p")]

    run_cycle(steps)


def test_receive_waits_for_the_next_message():
    async def steps(cycle: WebSocketCycle, conn: FakeConnection) -> None:
        await accepted(cycle)
        peer = Peer(conn)
        waiting = asyncio.ensure_future(cycle.receive())
        await asyncio.sleep(0)
        assert not waiting.done()
        conn.received(peer.send(Opcode.TEXT, b"now"))
        assert await waiting == {"type": "websocket.receive", "text": "now"}

    run_cycle(steps)


# -- the order of messages ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "error", "words"),
    [
        ({"type": "websocket.send", "text": "x"}, RuntimeError, "websocket.accept"),
        ({"type": "http.response.start"}, RuntimeError, "'http.response.start'"),
        ({"type": "websocket.http.response.start", "status": "200"}, TypeError, "int"),
    ],
)
def test_illegal_message_before_accept_names_the_rule(
    message: Message, error: type[Exception], words: str
):
    async def steps(cycle: WebSocketCycle, conn: FakeConnection) -> None:
        await cycle.receive()
        with pytest.raises(error, match=words):
            await cycle.send(message)

    run_cycle(steps)


@pytest.mark.parametrize(
    ("message", "error", "words"),
    [
        ({"type": "websocket.send"}, TypeError, "exactly one"),
        ({"type": "websocket.send", "text": "a", "bytes": b"b"}, TypeError, "exactly one"),
        ({"type": "websocket.send", "text": b"a"}, TypeError, "str"),
        ({"type": "websocket.send", "bytes": "a"}, TypeError, "bytes"),
        ({"type": "websocket.accept"}, RuntimeError, "websocket.close"),
        ({"type": "websocket.close", "code": 1005}, ValueError, "RFC 6455 section 7.4"),
        ({"type": "websocket.close", "code": 1000, "reason": "r" * 124}, ValueError, "123"),
    ],
)
def test_illegal_message_after_accept_names_the_rule(
    message: Message, error: type[Exception], words: str
):
    async def steps(cycle: WebSocketCycle, conn: FakeConnection) -> None:
        await accepted(cycle)
        with pytest.raises(error, match=words):
            await cycle.send(message)

    run_cycle(steps)


def test_accept_with_a_subprotocol_not_offered_is_refused():
    async def steps(cycle: WebSocketCycle, conn: FakeConnection) -> None:
        await cycle.receive()
        with pytest.raises(RuntimeError, match="did not offer"):
            await cycle.send({"type": "websocket.accept", "subprotocol": "z"})
        await cycle.send({"type": "websocket.accept", "subprotocol": "b"})

    _, conn = run_cycle(steps)
    assert conn.writes[0].startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert b"sec-websocket-protocol: b\r\n" in conn.writes[0]


def test_send_after_own_close_is_an_error():
    async def steps(cycle: WebSocketCycle, conn: FakeConnection) -> None:
        await accepted(cycle)
        await cycle.send({"type": "websocket.close", "code": 4001, "reason": "done"})
        assert session_of(cycle).deadline < float("inf")  # the close timeout runs
        with pytest.raises(RuntimeError, match="after websocket"):
            await cycle.send({"type": "websocket.send", "text": "late"})
        frames = Peer(conn).frames()
        assert [(f.opcode, f.data) for f in frames] == [(Opcode.CLOSE, b"\x0f\xa1done")]

    run_cycle(steps)


# -- deadlines: pings, the close timeout, shutdown ---------------------------------------


def test_ping_pong_then_timeout_fails_with_1011():
    async def steps(cycle: WebSocketCycle, conn: FakeConnection) -> None:
        await accepted(cycle)
        session = session_of(cycle)
        assert session.deadline < float("inf")
        peer = Peer(conn)
        session.on_deadline()  # a ping is due (the reaper calls it once the deadline passed)
        (ping,) = peer.frames()
        assert ping.opcode is Opcode.PING
        conn.received(peer.send(Opcode.PONG, bytes(ping.data)))
        session.on_deadline()  # the next ping
        session.on_deadline()  # its pong is late
        frames = peer.frames()
        assert [f.opcode for f in frames] == [Opcode.PING, Opcode.CLOSE]
        assert frames[1].data[:2] == b"\x03\xf3"  # 1011
        assert await cycle.receive() == {
            "type": "websocket.disconnect",
            "code": 1011,
            "reason": "keepalive ping timeout",
        }
        assert conn.closed

    run_cycle(steps, config=WSConfig(ping_interval=5, ping_timeout=5))


# A stop where another process takes over (a retired worker) says 1012, Service Restart; a
# server going down says 1001, Going Away (RFC 6455 section 7.4.1).
STOP_CODES = pytest.mark.parametrize(("restart", "code"), [(False, 1001), (True, 1012)])


@STOP_CODES
def test_shutdown_before_accept_closes_right_after_it(restart: bool, code: int):
    async def steps(cycle: WebSocketCycle, conn: FakeConnection) -> None:
        await cycle.receive()
        conn.shutdown(restart)  # a graceful stop, while the app decides
        await cycle.send({"type": "websocket.accept"})
        assert (await cycle.receive())["code"] == code
        (close,) = Peer(conn).frames()
        assert close.opcode is Opcode.CLOSE and close.data[:2] == code.to_bytes(2, "big")
        session = session_of(cycle)
        assert session.deadline <= asyncio.get_running_loop().time() + CLOSE_TIMEOUT
        assert not conn.closed
        session.on_deadline()  # the peer never answered the close
        assert conn.closed


@STOP_CODES
def test_shutdown_after_accept_closes_with_its_code(restart: bool, code: int):
    async def steps(cycle: WebSocketCycle, conn: FakeConnection) -> None:
        await accepted(cycle)
        conn.shutdown(restart)
        assert (await cycle.receive())["code"] == code
        (close,) = Peer(conn).frames()
        assert close.opcode is Opcode.CLOSE and close.data[:2] == code.to_bytes(2, "big")
        with pytest.raises(ClientDisconnected):
            await cycle.send({"type": "websocket.send", "text": "late"})

    run_cycle(steps)

    run_cycle(steps)


# -- the HTTP layer's side of the switch -------------------------------------------------


def test_protocol_holds_bytes_until_switched():
    proto = HTTP11Connection()
    first = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
    events = proto.receive_data(first + HANDSHAKE + b"\x81\x80")
    assert [type(e) for e in events] == [Request, EndOfMessage, Request, EndOfMessage]
    assert proto.upgrade_request is events[2]
    assert proto.receive_data(b"more") == []
    assert proto.held_bytes == 6
    with pytest.raises(LocalProtocolError, match="not answered yet"):
        proto.send_switching_protocols([])
    proto.send_whole_response(200, [], b"a")
    head = proto.send_switching_protocols([(b"upgrade", b"websocket")])
    assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n")
    assert proto.take_upgrade_data() == b"\x81\x80more"
    with pytest.raises(LocalProtocolError, match="switched protocols"):
        proto.receive_data(b"GET / HTTP/1.1\r\n")


def test_protocol_resumes_http_after_an_unswitched_upgrade():
    proto = HTTP11Connection()
    proto.receive_data(HANDSHAKE + b"GET /next HTTP/1.1\r\n")
    assert proto.receive_data(b"Host: x\r\n\r\n") == []
    assert proto.receive_data(b"") == [ConnectionClosed()]
    events = proto.resume_after_upgrade()
    assert [type(e) for e in events] == [Request, EndOfMessage]
    assert proto.upgrade_request is None
    assert not proto.receiving
    with pytest.raises(LocalProtocolError):
        proto.resume_after_upgrade()


def test_protocol_refuses_a_held_upgrade():
    proto = HTTP11Connection()
    proto.receive_data(HANDSHAKE)
    answer = proto.refuse_upgrade(400, "bad", [(b"x-why", b"because")])
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"connection: close\r\nx-why: because\r\n" in answer
    assert proto.pending_responses == 0


# -- the app's call, start to end ----------------------------------------------------------


def run_app(app: Any) -> tuple[WebSocketCycle, FakeConnection]:
    """Start the cycle as the server does and wait (bounded) for the app's call to end."""

    async def main() -> tuple[WebSocketCycle, FakeConnection]:
        runner = make_runner(app, WSConfig(ping_interval=0, per_message_deflate=False))
        cycle, exchange, conn = open_cycle(runner)
        conn.start(runner, exchange)
        assert cycle.task is not None
        await asyncio.wait_for(cycle.task, 10)
        assert not conn.state.running  # the exchange was finished
        return cycle, conn

    return asyncio.run(main())


def test_app_returning_without_an_answer_gets_500(caplog: pytest.LogCaptureFixture):
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()

    _, conn = run_app(app)
    assert conn.writes[0].startswith(b"HTTP/1.1 500 ")
    assert conn.completed == [False]
    assert "without accepting or closing" in caplog.text


def test_close_before_accept_is_a_403_and_the_connection_ends():
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.close"})
        with pytest.raises(ClientDisconnected):  # refused: nothing more can be sent
            await send({"type": "websocket.accept"})

    cycle, conn = run_app(app)
    assert cycle.session is None
    [answer] = conn.writes
    assert answer.startswith(b"HTTP/1.1 403 Forbidden\r\n")
    assert b"connection: close\r\n" in answer
    assert conn.completed == [False]


def test_denial_response():
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        headers = [(b"x-why", b"no")]
        await send({"type": "websocket.http.response.start", "status": 401, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": b"no", "more_body": True})
        await send({"type": "websocket.http.response.body", "body": b"pe"})

    _, conn = run_app(app)
    head, _, rest = conn.wire.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 401 Unauthorized\r\nx-why: no\r\n")
    assert b"connection: close" in head  # what follows a switch request is not HTTP
    assert rest == b"2\r\nno\r\n2\r\npe\r\n0\r\n\r\n"
    assert conn.completed == [False]
    assert not conn.aborted


def test_an_accept_that_cannot_be_sent_leaves_the_handshake_to_answer():
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        with pytest.raises(ResponseError, match="CR, LF or NUL"):
            await send({"type": "websocket.accept", "headers": [(b"x", b"a\r\nb")]})
        await send({"type": "websocket.close"})  # the app refuses instead

    _, conn = run_app(app)
    assert conn.wire.startswith(b"HTTP/1.1 403 Forbidden\r\n")


def test_app_raising_after_accept_closes_with_1011(caplog: pytest.LogCaptureFixture):
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        raise RuntimeError("after the accept")

    _, conn = run_app(app)
    assert "after the accept" in caplog.text
    (close,) = Peer(conn).frames()
    assert close.opcode is Opcode.CLOSE and close.data[:2] == b"\x03\xf3"  # 1011
    assert conn.completed == []  # the 101 completed nothing: the session owns the connection


@pytest.mark.parametrize("finish", ["return", "raise"])
def test_denial_cut_short(finish: str):
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.http.response.start", "status": 401, "headers": []})
        await send({"type": "websocket.http.response.body", "body": b"par", "more_body": True})
        if finish == "raise":
            raise RuntimeError("mid-answer")

    _, conn = run_app(app)
    head = conn.writes[0]
    assert head.startswith(b"HTTP/1.1 401 Unauthorized\r\n")
    assert b"transfer-encoding: chunked\r\n" in head and b"connection: close\r\n" in head
    assert conn.aborted  # a partial answer can only be cut
    assert conn.completed == []


def test_denial_head_without_body_gets_500():
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.http.response.start", "status": 401, "headers": []})

    _, conn = run_app(app)
    assert conn.writes[0].startswith(b"HTTP/1.1 500 ")
    assert conn.completed == [False]


@pytest.mark.parametrize(
    ("messages", "words"),
    [
        ([{"type": "websocket.accept", "headers": [("x", "y")]}], "pairs of bytes"),
        (
            [
                {"type": "websocket.http.response.start", "status": 200, "headers": [(1, 2)]},
                {"type": "websocket.http.response.body", "body": b""},
            ],
            "pairs of bytes",
        ),
        (
            [
                {"type": "websocket.http.response.start", "status": 200},
                {"type": "websocket.http.response.body", "body": "text"},
            ],
            "must be bytes",
        ),
    ],
)
def test_bad_answers_name_the_rule(
    messages: list[Message], words: str, caplog: pytest.LogCaptureFixture
):
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        for message in messages:
            await send(message)

    run_app(app)
    assert words in caplog.text


def test_client_gone_before_accept():
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        seen.append(await receive())  # waits: nothing comes before the accept but this
        try:
            await send({"type": "websocket.accept"})
        except OSError as exc:
            seen.append(exc)
            raise

    async def main() -> None:
        runner = make_runner(app, WSConfig())
        cycle, exchange, conn = open_cycle(runner)
        conn.start(runner, exchange)
        await asyncio.sleep(0)
        # The client closed its side before the answer: the connection disconnects the
        # exchange (and closes), since the handshake can go no further.
        exchange.disconnect()
        assert cycle.disconnected
        assert cycle.task is not None
        await asyncio.wait_for(cycle.task, 10)
        assert conn.writes == []  # nobody is left to answer
        assert not conn.state.running

    asyncio.run(main())
    assert seen[0] == {"type": "websocket.disconnect", "code": 1006, "reason": ""}
    assert isinstance(seen[1], ClientDisconnected)


def test_client_eof_after_accept_is_1006_and_closes():
    async def steps(cycle: WebSocketCycle, conn: FakeConnection) -> None:
        await accepted(cycle)
        session_of(cycle).eof_received()  # what the connection does after the switch
        assert await cycle.receive() == {"type": "websocket.disconnect", "code": 1006, "reason": ""}
        assert conn.closed

    run_cycle(steps)


def test_connection_lost_after_accept_is_1006():
    async def steps(cycle: WebSocketCycle, conn: FakeConnection) -> None:
        await accepted(cycle)
        waiting = asyncio.ensure_future(cycle.receive())
        await asyncio.sleep(0)
        session_of(cycle).connection_lost()
        assert await waiting == {"type": "websocket.disconnect", "code": 1006, "reason": ""}
        assert cycle.disconnected
        with pytest.raises(ClientDisconnected):
            await cycle.send({"type": "websocket.send", "bytes": b"late"})

    run_cycle(steps)


def test_app_returning_a_value_is_logged(caplog: pytest.LogCaptureFixture):
    async def app(scope: Any, receive: Any, send: Any) -> int:
        await receive()
        await send({"type": "websocket.accept"})
        return 3

    _, conn = run_app(app)
    assert "must return None" in caplog.text
    (close,) = Peer(conn).frames()
    assert close.opcode is Opcode.CLOSE and close.data == b"\x03\xe8"  # 1000


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536])
def test_frames_of_every_length_form(size: int):
    payload = bytes(range(256)) * (size // 256 + 1)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "bytes": payload[:size]})
        await send({"type": "websocket.send", "text": "t" * size})

    _, conn = run_app(app)
    frames = Peer(conn).frames()
    assert [(f.opcode, len(f.data)) for f in frames[:2]] == [
        (Opcode.BINARY, size),
        (Opcode.TEXT, size),
    ]
    assert frames[0].data == payload[:size]


def test_messages_after_our_close_are_dropped_and_pings_need_no_timeout():
    async def steps(cycle: WebSocketCycle, conn: FakeConnection) -> None:
        await accepted(cycle)
        peer = Peer(conn)
        session = session_of(cycle)
        session.on_deadline()  # a ping; with no ping timeout, no pong is waited for...
        assert session.deadline > asyncio.get_running_loop().time() + 4  # the next ping
        session.on_deadline()  # ...so the next deadline is the next ping, not a failure
        assert [f.opcode for f in peer.frames()] == [Opcode.PING, Opcode.PING]
        await cycle.send({"type": "websocket.close"})
        conn.received(peer.send(Opcode.TEXT, b"too late"))
        conn.received(peer.send(Opcode.CLOSE, b"\x03\xe8"))
        assert await cycle.receive() == {"type": "websocket.disconnect", "code": 1000, "reason": ""}

    run_cycle(steps, config=WSConfig(ping_interval=5, ping_timeout=0))
