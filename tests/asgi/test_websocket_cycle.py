"""WebSocketCycle in memory: a fake channel in place of the connection, the real sans-IO
HTTP protocol holding the handshake, and the `websockets` client protocol as the peer.

Also the HTTP layer's side of the switch (hold, switch, refuse, resume) and the handshake
check, which need no server either.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.protocol import OPEN
from websockets.uri import parse_uri

from rootserve.asgi._websocket_handshake import Handshake, Refusal, check_handshake, deflate_factory
from rootserve.asgi.http import ClientDisconnected
from rootserve.asgi.websocket import CLOSE_TIMEOUT, WebSocketCycle, WebSocketRunner, WSConfig
from rootserve.protocol.events import ConnectionClosed, EndOfMessage, Request
from rootserve.protocol.http11 import HTTP11Connection
from rootserve.protocol.rules import LocalProtocolError
from rootserve.running import Running
from rootserve.types import Message

KEY = base64.b64encode(b"0123456789abcdef")
HANDSHAKE = (
    b"GET /chat?room=1 HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: " + KEY + b"\r\nSec-WebSocket-Version: 13\r\n"
    b"Sec-WebSocket-Protocol: a, b\r\nSec-WebSocket-Protocol: c\r\n\r\n"
)


class FakeChannel:
    """What a WebSocket session needs from its connection, recording what it is asked."""

    def __init__(self, raw: bytes = HANDSHAKE) -> None:
        self.proto = HTTP11Connection()
        self.events = self.proto.receive_data(raw)
        self.write_paused = False
        self.deadline = float("inf")
        self.server_addr = ("127.0.0.1", 8000)
        self.client_addr = ("127.0.0.1", 50000)
        self.writes: list[bytes] = []
        self.pauses = self.resumes = 0
        self.switched: Callable[[bytes], None] | None = None
        self.was_answered = self.closed = self.aborted = False

    @property
    def request(self) -> Request:
        request = self.events[0]
        assert isinstance(request, Request)
        return request

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    async def drain(self) -> None:
        return None

    def pause_reading(self) -> None:
        self.pauses += 1

    def resume_reading(self) -> None:
        self.resumes += 1

    def switch_protocol(self, data_received: Callable[[bytes], None]) -> bytes:
        self.switched = data_received
        return self.proto.take_upgrade_data()

    def answered(self) -> None:
        self.was_answered = True

    def received(self, data: bytes) -> None:
        """Bytes from the client, after the switch: to the session, as the server does."""
        assert self.switched is not None, "no switch yet"
        self.switched(data)

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True


class Peer:
    """The client's end: the `websockets` sans-IO client, fed with what the server wrote."""

    def __init__(self, channel: FakeChannel) -> None:
        self.channel = channel
        self.proto = ClientProtocol(parse_uri("ws://example.com/chat"), state=OPEN)
        self.read = 0

    def frames(self) -> list[Frame]:
        data = b"".join(self.channel.writes)
        head_end = data.find(b"\r\n\r\n") + 4
        self.proto.receive_data(data[max(self.read, head_end) :])
        self.read = len(data)
        return [e for e in self.proto.events_received() if isinstance(e, Frame)]

    def send(self, opcode: Opcode, data: bytes, fin: bool = True) -> bytes:
        self.proto.send_frame(Frame(opcode, data, fin))
        return b"".join(self.proto.data_to_send())


def run_cycle(
    app_steps: Callable[[Any, Any], Awaitable[Any]],
    *,
    config: WSConfig | None = None,
    channel: FakeChannel | None = None,
) -> tuple[WebSocketCycle, FakeChannel]:
    """Start a cycle for the handshake in `channel` and run `app_steps(cycle, channel)` as the
    test's driver in the same loop (the app itself is not used: the test drives the cycle)."""
    channel = channel or FakeChannel()

    async def main() -> WebSocketCycle:
        runner = WebSocketRunner(
            _never_called,
            root_path="",
            state={"shared": 1},
            loop=asyncio.get_running_loop(),
            running=Running(),
            config=config or WSConfig(ping_interval=0),
        )
        cycle = runner.cycle(channel.request, channel)
        assert cycle.check()
        await asyncio.wait_for(app_steps(cycle, channel), 10)
        return cycle

    return asyncio.run(main()), channel


async def _never_called(scope: Any, receive: Any, send: Any) -> None:  # pragma: no cover
    raise AssertionError("the tests drive the cycle themselves")


async def accepted(cycle: WebSocketCycle) -> None:
    assert await cycle.receive() == {"type": "websocket.connect"}
    await cycle.send({"type": "websocket.accept"})


# -- the scope and the handshake ---------------------------------------------------------


def test_scope():
    async def steps(cycle: WebSocketCycle, channel: FakeChannel) -> None:
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
    channel = FakeChannel(raw)
    checked = check_handshake(channel.request, [deflate_factory()])
    assert isinstance(checked, Handshake)
    assert checked.extensions_header is not None
    assert checked.extensions_header.startswith(b"permessage-deflate")
    assert [type(e).__name__ for e in checked.extensions] == ["PerMessageDeflate"]
    assert isinstance(check_handshake(channel.request, []), Handshake)


def test_refused_handshake_is_answered_without_the_app():
    channel = FakeChannel(HANDSHAKE.replace(b"Version: 13", b"Version: 7"))
    checked = check_handshake(channel.request)
    assert isinstance(checked, Refusal) and checked.status == 426

    async def main() -> bool:
        runner = WebSocketRunner(
            _never_called,
            root_path="",
            state=None,
            loop=asyncio.get_running_loop(),
            running=Running(),
            config=WSConfig(),
            log_refusals=False,
        )
        return runner.cycle(channel.request, channel).check()

    assert asyncio.run(main()) is False
    answer = b"".join(channel.writes)
    assert answer.startswith(b"HTTP/1.1 426 Upgrade Required\r\n")
    assert b"connection: upgrade, close\r\n" in answer
    assert b"sec-websocket-version: 13\r\n" in answer
    assert channel.was_answered


# -- messages and flow control -----------------------------------------------------------


def test_messages_in_order_then_disconnect():
    async def steps(cycle: WebSocketCycle, channel: FakeChannel) -> list[Message]:
        await accepted(cycle)
        peer = Peer(channel)
        channel.received(
            peer.send(Opcode.TEXT, b"one")
            + peer.send(Opcode.BINARY, b"tw", fin=False)
            + peer.send(Opcode.CONT, b"o")
        )
        channel.received(peer.send(Opcode.CLOSE, b"\x0f\xa0bye"))  # 4000
        return [await cycle.receive() for _ in range(3)]

    async def check(cycle: WebSocketCycle, channel: FakeChannel) -> None:
        messages = await steps(cycle, channel)
        assert messages == [
            {"type": "websocket.receive", "text": "one"},
            {"type": "websocket.receive", "bytes": b"two"},
            {"type": "websocket.disconnect", "code": 4000, "reason": "bye"},
        ]
        assert channel.closed  # RFC 6455 7.1.1: the server closes the TCP connection first
        with pytest.raises(ClientDisconnected):
            await cycle.send({"type": "websocket.send", "text": "late"})
        assert isinstance(ClientDisconnected(), OSError)

    run_cycle(check)


def test_reading_pauses_at_max_queue():
    async def steps(cycle: WebSocketCycle, channel: FakeChannel) -> None:
        await accepted(cycle)
        peer = Peer(channel)
        for n in range(3):
            channel.received(peer.send(Opcode.TEXT, b"m%d" % n))
        assert channel.pauses == 1
        assert (await cycle.receive())["text"] == "m0"
        assert channel.resumes == 0  # two still wait: that is max_queue
        assert (await cycle.receive())["text"] == "m1"
        assert channel.resumes == 1

    run_cycle(steps, config=WSConfig(max_queue=2, ping_interval=0))


def test_reading_stops_while_the_transport_is_full():
    # A client that sends pings and reads nothing must not grow our write buffer forever.
    async def steps(cycle: WebSocketCycle, channel: FakeChannel) -> None:
        await accepted(cycle)
        peer = Peer(channel)
        channel.write_paused = True
        channel.received(peer.send(Opcode.PING, b"p"))
        assert (channel.pauses, channel.resumes) == (1, 0)
        channel.write_paused = False
        cycle.writable()
        assert (channel.pauses, channel.resumes) == (1, 1)
        assert [(f.opcode, f.data) for f in peer.frames()] == [(Opcode.PONG, b"p")]

    run_cycle(steps)


def test_receive_waits_for_the_next_message():
    async def steps(cycle: WebSocketCycle, channel: FakeChannel) -> None:
        await accepted(cycle)
        peer = Peer(channel)
        waiting = asyncio.ensure_future(cycle.receive())
        await asyncio.sleep(0)
        assert not waiting.done()
        channel.received(peer.send(Opcode.TEXT, b"now"))
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
    async def steps(cycle: WebSocketCycle, channel: FakeChannel) -> None:
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
    async def steps(cycle: WebSocketCycle, channel: FakeChannel) -> None:
        await accepted(cycle)
        with pytest.raises(error, match=words):
            await cycle.send(message)

    run_cycle(steps)


def test_accept_with_a_subprotocol_not_offered_is_refused():
    async def steps(cycle: WebSocketCycle, channel: FakeChannel) -> None:
        await cycle.receive()
        with pytest.raises(RuntimeError, match="did not offer"):
            await cycle.send({"type": "websocket.accept", "subprotocol": "z"})
        await cycle.send({"type": "websocket.accept", "subprotocol": "b"})

    _, channel = run_cycle(steps)
    assert b"sec-websocket-protocol: b\r\n" in channel.writes[0]


def test_send_after_own_close_is_an_error():
    async def steps(cycle: WebSocketCycle, channel: FakeChannel) -> None:
        await accepted(cycle)
        await cycle.send({"type": "websocket.close", "code": 4001, "reason": "done"})
        assert channel.deadline < float("inf")  # the close timeout runs
        with pytest.raises(RuntimeError, match="after websocket"):
            await cycle.send({"type": "websocket.send", "text": "late"})
        frames = Peer(channel).frames()
        assert [(f.opcode, f.data) for f in frames] == [(Opcode.CLOSE, b"\x0f\xa1done")]

    run_cycle(steps)


# -- deadlines: pings, the close timeout, shutdown ---------------------------------------


def test_ping_pong_then_timeout_fails_with_1011():
    async def steps(cycle: WebSocketCycle, channel: FakeChannel) -> None:
        await accepted(cycle)
        assert channel.deadline < float("inf")
        peer = Peer(channel)
        cycle.on_deadline()  # a ping is due
        (ping,) = peer.frames()
        assert ping.opcode is Opcode.PING
        channel.received(peer.send(Opcode.PONG, bytes(ping.data)))
        cycle.on_deadline()  # the next ping
        cycle.on_deadline()  # its pong is late
        frames = peer.frames()
        assert [f.opcode for f in frames] == [Opcode.PING, Opcode.CLOSE]
        assert frames[1].data[:2] == b"\x03\xf3"  # 1011
        assert await cycle.receive() == {
            "type": "websocket.disconnect",
            "code": 1011,
            "reason": "keepalive ping timeout",
        }
        assert channel.closed

    run_cycle(steps, config=WSConfig(ping_interval=5, ping_timeout=5))


def test_shutdown_before_accept_closes_with_1012_right_after_it():
    async def steps(cycle: WebSocketCycle, channel: FakeChannel) -> None:
        await cycle.receive()
        cycle.shutdown()
        await cycle.send({"type": "websocket.accept"})
        assert (await cycle.receive())["code"] == 1012
        (close,) = Peer(channel).frames()
        assert close.opcode is Opcode.CLOSE and close.data[:2] == b"\x03\xf4"
        assert channel.deadline <= asyncio.get_running_loop().time() + CLOSE_TIMEOUT
        cycle.on_deadline()  # the peer never answered the close
        assert channel.closed

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


def run_app(app: Any, channel: FakeChannel | None = None) -> tuple[WebSocketCycle, FakeChannel]:
    """Start the cycle as the server does and wait (bounded) for the app's call to end."""
    channel = channel or FakeChannel()

    async def main() -> WebSocketCycle:
        runner = WebSocketRunner(
            app,
            root_path="",
            state=None,
            loop=asyncio.get_running_loop(),
            running=Running(),
            config=WSConfig(ping_interval=0, per_message_deflate=False),
        )
        cycle = runner.cycle(channel.request, channel)
        runner.start(cycle)
        assert cycle.task is not None
        await asyncio.wait_for(cycle.task, 10)
        return cycle

    return asyncio.run(main()), channel


def test_app_returning_without_an_answer_gets_500(caplog: pytest.LogCaptureFixture):
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()

    _, channel = run_app(app)
    assert channel.writes[0].startswith(b"HTTP/1.1 500 ")
    assert channel.was_answered
    assert "without accepting or closing" in caplog.text


@pytest.mark.parametrize("finish", ["return", "raise"])
def test_denial_cut_short(finish: str):
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.http.response.start", "status": 401, "headers": []})
        await send({"type": "websocket.http.response.body", "body": b"par", "more_body": True})
        if finish == "raise":
            raise RuntimeError("mid-answer")

    _, channel = run_app(app)
    head = channel.writes[0]
    assert head.startswith(b"HTTP/1.1 401 Unauthorized\r\n")
    assert b"transfer-encoding: chunked\r\n" in head and b"connection: close\r\n" in head
    assert channel.aborted  # a partial answer can only be cut


def test_denial_head_without_body_gets_500():
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.http.response.start", "status": 401, "headers": []})

    _, channel = run_app(app)
    assert channel.writes[0].startswith(b"HTTP/1.1 500 ")


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

    channel = FakeChannel()

    async def main() -> None:
        runner = WebSocketRunner(
            app,
            root_path="",
            state=None,
            loop=asyncio.get_running_loop(),
            running=Running(),
            config=WSConfig(),
        )
        cycle = runner.cycle(channel.request, channel)
        runner.start(cycle)
        await asyncio.sleep(0)
        cycle.eof()
        assert channel.closed  # nothing more can come: the connection ends
        cycle.disconnect()  # what the connection's loss does next
        assert cycle.task is not None
        await asyncio.wait_for(cycle.task, 10)

    asyncio.run(main())
    assert seen[0] == {"type": "websocket.disconnect", "code": 1006, "reason": ""}
    assert isinstance(seen[1], ClientDisconnected)


def test_app_returning_a_value_is_logged(caplog: pytest.LogCaptureFixture):
    async def app(scope: Any, receive: Any, send: Any) -> int:
        await receive()
        await send({"type": "websocket.accept"})
        return 3

    _, channel = run_app(app)
    assert "must return None" in caplog.text
    (close,) = Peer(channel).frames()
    assert close.opcode is Opcode.CLOSE and close.data == b"\x03\xe8"  # 1000


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536])
def test_frames_of_every_length_form(size: int):
    payload = bytes(range(256)) * (size // 256 + 1)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "bytes": payload[:size]})
        await send({"type": "websocket.send", "text": "t" * size})

    _, channel = run_app(app)
    frames = Peer(channel).frames()
    assert [(f.opcode, len(f.data)) for f in frames[:2]] == [
        (Opcode.BINARY, size),
        (Opcode.TEXT, size),
    ]
    assert frames[0].data == payload[:size]


def test_messages_after_our_close_are_dropped_and_pings_need_no_timeout():
    async def steps(cycle: WebSocketCycle, channel: FakeChannel) -> None:
        await accepted(cycle)
        peer = Peer(channel)
        cycle.on_deadline()  # a ping; with no ping timeout, no pong is waited for...
        cycle.on_deadline()  # ...so the next deadline is the next ping, not a failure
        assert [f.opcode for f in peer.frames()] == [Opcode.PING, Opcode.PING]
        await cycle.send({"type": "websocket.close"})
        channel.received(peer.send(Opcode.TEXT, b"too late"))
        channel.received(peer.send(Opcode.CLOSE, b"\x03\xe8"))
        assert await cycle.receive() == {"type": "websocket.disconnect", "code": 1000, "reason": ""}

    run_cycle(steps, config=WSConfig(ping_interval=5, ping_timeout=0))
