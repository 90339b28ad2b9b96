"""One ASGI WebSocket session: the handshake, messages both ways, the close.

How this works. The server makes a `WebSocketCycle` for a request that asked to switch to
WebSocket (the sans-IO HTTP protocol holds the bytes after it), and when the request's turn
comes `WebSocketRunner.start` checks the handshake (RFC 6455 section 4.2.1: a bad one gets
400 or 426, and the app never sees it) and runs the app with a `websocket` scope (ASGI spec
2.4). The app's first `receive()` gives `websocket.connect`; its answer decides the rest:

- `websocket.accept`: the 101 goes out and the connection switches; from then on its bytes
  come to `data_received`, which feeds the `websockets` library's sans-IO protocol (frames,
  masking, fragments, control frames, permessage-deflate, the close handshake, the size
  limit). Text and binary messages go to the app; its messages go out as frames.
- `websocket.close` first: 403, and the connection closes.
- `websocket.http.response.start` and `.body` (the denial response extension): that HTTP
  answer, then the connection closes.

The app sees `websocket.disconnect` with a close code when the peer closes (its code), the
connection drops (1006), a protocol error fails it (1002, 1007, 1009), a ping goes unanswered
(1011) or the server shuts down (1012). Reading pauses while `max_queue` messages wait for
the app; `send()` waits while the transport's buffer is full. Pings and the close timeout
are deadlines the worker's reaper looks at, like the HTTP timeouts: no timer per connection.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import os
from collections import deque
from dataclasses import dataclass
from typing import Any, Final, Protocol

from websockets.exceptions import ProtocolError
from websockets.frames import BINARY, CLOSE, CONT, PONG, TEXT, Frame
from websockets.protocol import OPEN, SEND_EOF
from websockets.server import ServerProtocol
from websockets.typing import BytesLike

from rootserve.asgi._websocket_handshake import (
    Handshake,
    Refusal,
    accept_key,
    check_handshake,
    deflate_factory,
)
from rootserve.asgi.http import ClientDisconnected, build_scope
from rootserve.observe.access import printable
from rootserve.protocol.events import Request
from rootserve.protocol.http11 import HTTP11Connection
from rootserve.running import Running
from rootserve.types import ASGIApp, Message, Scope

__all__ = ["CLOSE_TIMEOUT", "WSConfig", "WebSocketChannel", "WebSocketCycle", "WebSocketRunner"]

logger = logging.getLogger("rootserve.error")

CLOSE_TIMEOUT: Final = 10.0  # seconds to wait for the peer's close frame after ours
NORMAL: Final = 1000  # RFC 6455 section 7.4.1
ABNORMAL: Final = 1006  # closed without a close frame (never sent on the wire)
INVALID_DATA: Final = 1007
INTERNAL_ERROR: Final = 1011
SERVICE_RESTART: Final = 1012


class WebSocketChannel(Protocol):
    """What a session needs from its connection (the server's Connection)."""

    proto: HTTP11Connection
    write_paused: bool
    deadline: float
    server_addr: tuple[str, int] | None
    client_addr: tuple[str, int] | None

    def write(self, data: bytes) -> None: ...
    async def drain(self) -> None: ...
    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def switch_protocol(self, session: WebSocketCycle) -> bytes: ...
    def answered(self) -> None: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...


@dataclass(frozen=True, slots=True)
class WSConfig:
    """The WebSocket settings (see config.py); sizes in bytes, times in seconds, 0 = none."""

    max_size: int = 16 * 1024 * 1024
    max_queue: int = 32
    per_message_deflate: bool = True
    ping_interval: float = 20.0
    ping_timeout: float = 20.0


class _State(enum.Enum):
    CONNECTING = "expecting websocket.accept, websocket.close or websocket.http.response.start"
    RESPONSE = "expecting websocket.http.response.body"
    OPEN = "expecting websocket.send or websocket.close"
    CLOSED = "the session is over (websocket.close or the whole response was sent)"


_CONNECT: Final = {"type": "websocket.connect"}


class WebSocketCycle:
    """The lifetime of one WebSocket connection, from its handshake request on."""

    request_complete = True  # a handshake has no body

    def __init__(self, request: Request, channel: WebSocketChannel, runner: WebSocketRunner):
        self.request = request
        self.channel = channel
        self.runner = runner
        self.config = config = runner.config
        self.scope: Scope = {}
        self.status = 0
        self.task: asyncio.Task[None] | None = None
        self._state = _State.CONNECTING
        self._handshake: Handshake | None = None
        self._ws: ServerProtocol | None = None
        self._queue: deque[Message] = deque()
        self._max_queue = config.max_queue or 1 << 62
        self._waiter: asyncio.Future[Message] | None = None
        self._connect_pending = True
        self._read_paused = False
        self._fragments: list[BytesLike] = []
        self._fragments_text = False
        self._denial: tuple[int, Any] | None = None  # a held denial response head
        self._ping: bytes | None = None  # the payload of the ping awaiting its pong
        self._ping_sent = 0.0
        self._closing = False  # our close frame is out; the deadline is the close timeout
        self._shutdown = False
        self.disconnected = False
        self.close_code = ABNORMAL
        self.close_reason = ""

    # -- what the connection calls -------------------------------------------------------

    @property
    def response_started(self) -> bool:
        return self._state is not _State.CONNECTING

    def feed(self, data: bytes) -> None:
        """Request body (a handshake has none)."""

    def end(self) -> None:
        """End of the request body."""

    def writable(self) -> None:
        """The transport drained (send() waits on the channel's drain() instead)."""

    def data_received(self, data: bytes) -> None:
        """Bytes from the client after the switch."""
        ws = self._ws
        assert ws is not None
        ws.receive_data(data)
        failed = False
        # After the handshake the library gives frames only.
        frames: list[Frame] = ws.events_received()  # type: ignore[assignment]
        for frame in frames:
            opcode = frame.opcode
            if opcode is TEXT or opcode is BINARY:
                if frame.fin:
                    failed = not self._message(opcode is TEXT, frame.data)
                else:
                    self._fragments = [frame.data]
                    self._fragments_text = opcode is TEXT
            elif opcode is CONT:
                self._fragments.append(frame.data)
                if frame.fin:
                    whole, self._fragments = b"".join(self._fragments), []
                    failed = not self._message(self._fragments_text, whole)
            elif opcode is CLOSE:
                # RFC 6455 section 5.5.1: the library echoed it (unless it was our close's
                # answer) and asks for the TCP close: the server closes first (7.1.1).
                rcvd = ws.close_rcvd
                assert rcvd is not None
                self._end(rcvd.code, rcvd.reason)
            elif opcode is PONG:
                self._pong(frame.data)
            # PING: the library queued the pong (RFC 6455 section 5.5.2).
            if failed:
                break
        if (failed or ws.parser_exc is not None) and ws.close_sent is not None:
            # RFC 6455 section 7.1.7: the connection failed with the code we sent (1002 for
            # a protocol error, 1007 for bad UTF-8, 1009 for a message over max_size).
            self._end(ws.close_sent.code, ws.close_sent.reason)
        self._flush()

    def eof(self) -> None:
        """The client closed its sending side."""
        ws = self._ws
        if ws is None:
            self.channel.close()  # before the switch: nothing more can come
            return
        ws.receive_eof()  # without a close frame first, the connection failed: 1006
        self._end(ABNORMAL, "")
        self._flush()
        self.channel.close()

    def disconnect(self) -> None:
        """The connection is gone."""
        self._end(ABNORMAL, "")

    def shutdown(self) -> None:
        """Graceful stop: close with 1012 (Service Restart), now or right after the accept."""
        self._shutdown = True
        if self._state is _State.OPEN and not self.disconnected:
            self._close(SERVICE_RESTART, "server shutting down")
            self._end(SERVICE_RESTART, "server shutting down")

    def cancel(self) -> None:
        """Graceful shutdown ran out of time."""
        if self.task is not None:
            self.task.cancel()

    def on_deadline(self) -> None:
        """The reaper found our deadline passed: a ping is due, a pong or a close is late."""
        ws = self._ws
        if self._closing or ws is None or ws.state is not OPEN:
            self.channel.close()  # RFC 6455 section 7.1.1: the peer did not close in time
            return
        config = self.config
        now = self.runner.loop.time()
        if self._ping is not None:
            # The pong did not come back in time: fail the connection (RFC 6455 7.1.7).
            ws.fail(INTERNAL_ERROR, "keepalive ping timeout")
            self._end(INTERNAL_ERROR, "keepalive ping timeout")
            self._flush()
            return
        payload = os.urandom(4)  # tells this ping's pong from an unsolicited one (5.5.3)
        ws.send_ping(payload)
        self._flush()
        if config.ping_timeout:
            self._ping = payload
            self._ping_sent = now
            self.channel.deadline = now + config.ping_timeout
        else:
            self.channel.deadline = now + config.ping_interval

    # -- the app's side ------------------------------------------------------------------

    async def receive(self) -> Message:
        if self._connect_pending:
            self._connect_pending = False
            return dict(_CONNECT)
        queue = self._queue
        if queue:
            message = queue.popleft()
            if self._read_paused and len(queue) < self._max_queue:
                self._read_paused = False
                self.channel.resume_reading()
            return message
        if self.disconnected:
            return self._disconnect_message()
        waiter: asyncio.Future[Message] = self.runner.loop.create_future()
        self._waiter = waiter
        return await waiter

    async def send(self, message: Message) -> None:
        kind = message.get("type")
        state = self._state
        if self.disconnected:
            raise ClientDisconnected(f"the WebSocket is closed ({self.close_code}); {kind!r}")
        if state is _State.OPEN:
            ws = self._ws
            assert ws is not None
            if kind == "websocket.send":
                text = message.get("text")
                data = message.get("bytes")
                if text is not None and data is None:
                    if type(text) is not str:
                        raise TypeError(f"websocket.send 'text' must be str, got {type(text)}")
                    ws.send_text(text.encode())
                elif data is not None and text is None:
                    if not isinstance(data, bytes | bytearray | memoryview):
                        raise TypeError(f"websocket.send 'bytes' must be bytes, got {type(data)}")
                    ws.send_binary(data)
                else:
                    raise TypeError(
                        "websocket.send needs exactly one of 'bytes' and 'text' (ASGI spec)"
                    )
                channel = self.channel
                channel.write(b"".join(ws.data_to_send()))
                if channel.write_paused:
                    await channel.drain()
                return
            if kind == "websocket.close":
                self._close(message.get("code", NORMAL), message.get("reason") or "")
                return
        elif state is _State.CONNECTING:
            if kind == "websocket.accept":
                self._accept(message)
                return
            if kind == "websocket.close":
                # ASGI spec: a close before the accept is answered with 403.
                self._refuse(Refusal(403, "the app refused the WebSocket connection"))
                return
            if kind == "websocket.http.response.start":
                status = message.get("status")
                if type(status) is not int:
                    raise TypeError(
                        f"websocket.http.response.start 'status' must be an int, got {status!r}"
                    )
                self._denial = (status, message.get("headers", ()))
                self._state = _State.RESPONSE
                self.status = status
                return
        elif state is _State.RESPONSE and kind == "websocket.http.response.body":
            await self._denial_body(message)
            return
        raise RuntimeError(f"Unexpected ASGI message {kind!r}: the WebSocket was {state.value}")

    # -- the handshake answers -----------------------------------------------------------

    def _accept(self, message: Message) -> None:
        handshake = self._handshake
        assert handshake is not None
        fields = [
            (b"upgrade", b"websocket"),
            (b"connection", b"Upgrade"),
            (b"sec-websocket-accept", accept_key(handshake.key)),
        ]
        if handshake.extensions_header is not None:
            fields.append((b"sec-websocket-extensions", handshake.extensions_header))
        subprotocol = message.get("subprotocol")
        if subprotocol is not None:
            if subprotocol not in handshake.subprotocols:
                raise RuntimeError(
                    f"websocket.accept chose subprotocol {subprotocol!r}, which the client did "
                    f"not offer ({handshake.subprotocols}; RFC 6455 section 4.2.2)"
                )
            fields.append((b"sec-websocket-protocol", subprotocol.encode("ascii")))
        try:
            fields += [(bytes(name), bytes(value)) for name, value in message.get("headers", ())]
            head = self.channel.proto.send_switching_protocols(fields)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"websocket.accept 'headers' must be [name, value] pairs of bytes: {exc}"
            ) from None
        config = self.config
        ws = self._ws = ServerProtocol(state=OPEN, max_size=config.max_size or None)
        ws.extensions = handshake.extensions
        self._state = _State.OPEN
        self.status = 101
        channel = self.channel
        channel.write(head)
        held = channel.switch_protocol(self)
        if config.ping_interval:
            channel.deadline = self.runner.loop.time() + config.ping_interval
        if held:
            self.data_received(held)
        if self._shutdown:
            self.shutdown()

    def _refuse(self, refusal: Refusal) -> None:
        self._state = _State.CLOSED
        self.status = refusal.status
        channel = self.channel
        channel.write(channel.proto.refuse_upgrade(refusal.status, refusal.reason, refusal.headers))
        self._end(ABNORMAL, "")
        channel.answered()

    async def _denial_body(self, message: Message) -> None:
        body = message.get("body", b"")
        if not isinstance(body, bytes | bytearray | memoryview):
            raise TypeError(f"websocket.http.response.body 'body' must be bytes, got {type(body)}")
        body = bytes(body)
        more = message.get("more_body", False)
        channel = self.channel
        proto = channel.proto
        held = self._denial
        if held is not None:
            self._denial = None
            proto.close_after_response()  # the connection ends with the answer
            try:
                head = proto.send_response(held[0], held[1], None if more else body)
            except (TypeError, ValueError) as exc:
                raise TypeError(
                    "websocket.http.response.start 'headers' must be [name, value] pairs of "
                    f"bytes: {exc}"
                ) from None
            data = head + proto.send_data(body) if more else head
        else:
            data = proto.send_data(body)
        if more:
            channel.write(data)
            if channel.write_paused:
                await channel.drain()
            return
        self._state = _State.CLOSED
        try:
            data += proto.send_end()
        finally:
            channel.write(data)
            self._end(ABNORMAL, "")
            channel.answered()

    # -- the session ---------------------------------------------------------------------

    def _message(self, text: bool, data: BytesLike) -> bool:
        if self._state is not _State.OPEN:
            return True  # the app closed: what still arrives is dropped (RFC 6455 1.4)
        if text:
            try:
                message: Message = {"type": "websocket.receive", "text": str(data, "utf-8")}
            except UnicodeDecodeError:
                # RFC 6455 section 8.1: text must be UTF-8, else fail with 1007.
                assert self._ws is not None
                self._ws.fail(INVALID_DATA, "invalid UTF-8 in a text message")
                return False
        else:
            message = {"type": "websocket.receive", "bytes": bytes(data)}
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(message)
                return True
        queue = self._queue
        queue.append(message)
        if len(queue) >= self._max_queue and not self._read_paused:
            self._read_paused = True
            self.channel.pause_reading()
        return True

    def _pong(self, data: BytesLike) -> None:
        if self._ping is not None and data == self._ping:
            self._ping = None
            if not self._closing:
                interval = self.config.ping_interval
                now = self.runner.loop.time()
                self.channel.deadline = max(now, self._ping_sent + interval)

    def _close(self, code: int, reason: str) -> None:
        """Start the closing handshake (RFC 6455 section 7.1.2)."""
        ws = self._ws
        assert ws is not None
        try:
            ws.send_close(code, reason)
        except ProtocolError as exc:
            raise ValueError(
                f"websocket.close with code {code!r} and reason {reason!r}: {exc} "
                "(RFC 6455 section 7.4: 1000-1003, 1007-1014 or 3000-4999; a reason of at "
                "most 123 bytes)"
            ) from None
        self._state = _State.CLOSED
        self._closing = True
        self._ping = None
        self.channel.deadline = self.runner.loop.time() + CLOSE_TIMEOUT
        self._flush()

    def _flush(self) -> None:
        ws = self._ws
        assert ws is not None
        out = ws.data_to_send()
        if out:
            self.channel.write(b"".join(out))
            if out[-1] == SEND_EOF:
                self.channel.close()  # after the write: the transport flushes first

    def _end(self, code: int, reason: str) -> None:
        """The session is over for the app: it gets websocket.disconnect with `code`."""
        if self.disconnected:
            return
        self.disconnected = True
        self.close_code = code
        self.close_reason = reason
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(self._disconnect_message())

    def _disconnect_message(self) -> Message:
        return {
            "type": "websocket.disconnect",
            "code": self.close_code,
            "reason": self.close_reason,
        }

    # -- running the app -----------------------------------------------------------------

    def check(self) -> bool:
        """Check the handshake; refuse it (and return False) if it is not valid."""
        runner = self.runner
        checked = check_handshake(self.request, runner.factories)
        if isinstance(checked, Refusal):
            runner.log_refusal(self.channel.client_addr, self.request, checked)
            self._refuse(checked)
            return False
        self._handshake = checked
        channel = self.channel
        # ASGI spec 2.4, "WebSocket Connection Scope": the http scope's fields but `method`,
        # plus the client's subprotocols and the denial response extension.
        scope = build_scope(
            self.request,
            channel.server_addr,
            channel.client_addr,
            "ws",
            runner.root_path,
            runner.state,
        )
        scope["type"] = "websocket"
        del scope["method"]
        scope["subprotocols"] = checked.subprotocols
        scope["extensions"] = {"websocket.http.response": {}}
        self.scope = scope
        return True

    async def run(self, app: ASGIApp, running: Running) -> None:
        """Call the app; answer or close properly whatever it does. The cycle leaves
        `running` when the call is over."""
        try:
            result: object = await app(self.scope, self.receive, self.send)  # type: ignore[func-returns-value]
        except BaseException as exc:
            running.discard(self)
            if isinstance(exc, OSError) and self.disconnected:
                self._after_app(failed=False)
                return
            if not isinstance(exc, Exception):
                self._after_app(failed=True)
                raise
            logger.error(
                "Exception in ASGI app for WebSocket %s",
                printable(self.scope["path"]),
                exc_info=exc,
            )
            self._after_app(failed=True)
            return
        running.discard(self)
        if result is not None:
            logger.error("ASGI app returned %r; an ASGI app must return None", result)
        self._after_app(failed=False)

    def _after_app(self, *, failed: bool) -> None:
        state = self._state
        if state is _State.CONNECTING:
            if not failed:
                logger.error("ASGI app returned without accepting or closing the WebSocket")
            if self.disconnected:
                self.channel.close()
            else:
                self._refuse(Refusal(500, "Internal Server Error"))
        elif state is _State.RESPONSE:
            if not failed:
                logger.error("ASGI app returned without completing its denial response")
            if self._denial is not None and not self.disconnected:
                self._refuse(Refusal(500, "Internal Server Error"))
            else:
                self._state = _State.CLOSED
                self.channel.abort()  # a partial answer: only closing can say so
        elif state is _State.OPEN and not self.disconnected:
            # The app is done with an open session: close it properly (1011 if it failed).
            self._close(INTERNAL_ERROR if failed else NORMAL, "")


class WebSocketRunner:
    """Makes a WebSocket cycle for each handshake request and runs the app for it."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        root_path: str,
        state: dict[str, Any] | None,
        loop: asyncio.AbstractEventLoop,
        running: Running,
        config: WSConfig,
        log_refusals: bool = True,
    ) -> None:
        self.app = app
        self.root_path = root_path
        self.state = state
        self.loop = loop
        self.running = running  # shared with the HTTP runner: one concurrency count
        self.config = config
        self.factories = [deflate_factory()] if config.per_message_deflate else []
        self._log_refusals = log_refusals

    def cycle(self, request: Request, channel: WebSocketChannel) -> WebSocketCycle:
        return WebSocketCycle(request, channel, self)

    def start(self, cycle: WebSocketCycle) -> None:
        if not cycle.check():
            return
        self.running.add(cycle)
        cycle.task = self.loop.create_task(cycle.run(self.app, self.running))

    def log_refusal(
        self, client: tuple[str, int] | None, request: Request, refusal: Refusal
    ) -> None:
        if self._log_refusals:
            who = f"{client[0]}:{client[1]}" if client else "-"
            logger.info(
                "%s - WebSocket handshake refused: %d %s", who, refusal.status, refusal.reason
            )
