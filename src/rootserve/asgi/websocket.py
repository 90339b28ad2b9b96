"""One ASGI WebSocket cycle: from the handshake request to the end of the app's call.

How this works. The server makes a `WebSocketCycle` for a request that asked to switch to
WebSocket (the sans-IO HTTP protocol holds the bytes after it). When the request's turn
comes, `WebSocketRunner.start` checks the handshake (RFC 6455 section 4.2.1; a bad one gets
400 or 426 and the app never sees it) and runs the app with a `websocket` scope (ASGI spec
2.4). The app's first `receive()` gives `websocket.connect`; its answer decides the rest:

- `websocket.accept`: the 101 goes out, the connection switches, and a `WebSocketSession`
  (_websocket_session.py) carries the messages both ways until both sides have closed.
- `websocket.close` first: 403, and the connection closes.
- `websocket.http.response.start` and `.body` (the denial response extension): that HTTP
  answer, then the connection closes.

The app sees `websocket.disconnect` with a close code when the peer closes (its code), the
connection drops (1006), a protocol error fails it (1002, 1007, 1009), a ping goes
unanswered (1011), or the server shuts down (1001 Going Away; 1012 Service Restart when
another process takes over). When the app's call ends, an open session is closed for it
(1000; 1011 if the app raised), and a handshake it never answered gets 500.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Awaitable
from typing import Any, Final, cast

from rootserve.asgi._scope import add_tls_extension, build_scope
from rootserve.asgi._websocket_handshake import (
    Handshake,
    Refusal,
    accept_key,
    check_handshake,
    deflate_factory,
)
from rootserve.asgi._websocket_session import (
    ABNORMAL,
    CLOSE_TIMEOUT,
    NORMAL,
    WebSocketSession,
    WSConfig,
)
from rootserve.observe.access import printable
from rootserve.protocol.events import Request
from rootserve.protocol.exchange import ByteStream, ClientDisconnected, Exchange
from rootserve.types import (
    ASGIApp,
    Scope,
    SendMessage,
    WebSocketDisconnectMessage,
    WebSocketEvent,
)

__all__ = [
    "CLOSE_TIMEOUT",
    "WSConfig",
    "WebSocketCycle",
    "WebSocketRunner",
]

logger = logging.getLogger("rootserve.error")

INTERNAL_ERROR: Final = 1011  # RFC 6455 section 7.4.1


class _State(enum.Enum):
    CONNECTING = "expecting websocket.accept, websocket.close or websocket.http.response.start"
    RESPONSE = "expecting websocket.http.response.body"
    OPEN = "accepted: the session carries the messages"
    CLOSED = "refused, or the whole denial response was sent"


class WebSocketCycle:
    """The lifetime of one WebSocket handshake request and the app's call for it."""

    def __init__(self, exchange: Exchange, runner: WebSocketRunner):
        self.exchange = exchange
        self.runner = runner
        self.scope: Scope = {}
        self.task: asyncio.Task[None] | None = None
        self.session: WebSocketSession | None = None
        self._state = _State.CONNECTING
        self._handshake: Handshake | None = None
        self._connect_pending = True
        self._waiter: asyncio.Future[WebSocketEvent] | None = None  # receive() before the accept
        self._gone = False  # the connection ended before the accept
        self._denial: tuple[int, Any] | None = None  # a denial response's head, held

    @property
    def disconnected(self) -> bool:
        session = self.session
        return session.ended if session is not None else self._gone

    # -- the exchange's side (a Receiver) ------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Request body (a handshake has none)."""

    def end(self) -> None:
        """End of the request body."""

    def writable(self) -> None:
        """The connection drained (the session hears of it once switched)."""

    def disconnect(self) -> None:
        """The connection ended before the switch."""
        self._gone = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(_disconnect(ABNORMAL))

    def server_stopping(self) -> None:
        """A handshake being answered: the session, once open, is closed by the stop."""

    def cancel(self) -> None:
        """Graceful shutdown ran out of time."""
        if self.task is not None:
            self.task.cancel()

    # -- the app's side ------------------------------------------------------------------

    def receive(self) -> Awaitable[WebSocketEvent]:
        session = self.session
        if session is not None:
            return session.receive()  # no extra coroutine on the way
        return self._receive_before_accept()

    def send(self, message: SendMessage) -> Awaitable[None]:
        session = self.session
        if session is not None:
            return session.send(message)
        return self._send_before_accept(message)

    async def _receive_before_accept(self) -> WebSocketEvent:
        if self._connect_pending:
            self._connect_pending = False
            return {"type": "websocket.connect"}
        if self._gone or self._state is _State.CLOSED:
            return _disconnect(ABNORMAL)
        self._waiter = asyncio.get_running_loop().create_future()
        return await self._waiter

    async def _send_before_accept(self, message: SendMessage) -> None:
        kind = message.get("type")
        state = self._state
        if self._gone or state is _State.CLOSED:
            raise ClientDisconnected(f"the WebSocket connection is closed; {kind!r}")
        if state is _State.CONNECTING:
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
                return
        elif kind == "websocket.http.response.body":
            await self._denial_body(message)
            return
        raise RuntimeError(f"Unexpected ASGI message {kind!r}: the WebSocket was {state.value}")

    # -- the handshake answers -----------------------------------------------------------

    def _accept(self, message: SendMessage) -> None:
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
            headers: Any = message.get("headers", ())
            fields += [(bytes(name), bytes(value)) for name, value in headers]
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"websocket.accept 'headers' must be [name, value] pairs of bytes: {exc}"
            ) from None
        config, loop, extensions = self.runner.config, self.runner.loop, handshake.extensions

        def open_session(stream: ByteStream) -> WebSocketSession:
            session = self.session = WebSocketSession(stream, config, loop, extensions)
            return session

        self.exchange.switch(fields, open_session)
        self._state = _State.OPEN

    def _refuse(self, refusal: Refusal) -> None:
        self._state = _State.CLOSED
        self.exchange.refuse(refusal.status, refusal.reason, refusal.headers)

    async def _denial_body(self, message: SendMessage) -> None:
        body = message.get("body", b"")
        if not isinstance(body, bytes | bytearray | memoryview):
            raise TypeError(f"websocket.http.response.body 'body' must be bytes, got {type(body)}")
        body = bytes(body)
        more = message.get("more_body", False)
        exchange = self.exchange
        held = self._denial
        if held is not None:
            # The exchange ends the connection after this answer: the bytes after a
            # request that asked to switch are never parsed as HTTP.
            try:
                exchange.respond(held[0], held[1], body, not more)
            except TypeError as exc:
                raise TypeError(
                    "websocket.http.response.start 'headers' must be [name, value] pairs of "
                    f"bytes: {exc}"
                ) from None
            self._denial = None
        else:
            exchange.send_body(body, not more)
        if not more:
            self._state = _State.CLOSED
        elif exchange.write_paused:
            await exchange.drain()

    # -- running the app -----------------------------------------------------------------

    def check(self) -> bool:
        """Check the handshake; refuse it (and return False) if it is not valid."""
        runner = self.runner
        exchange = self.exchange
        checked = check_handshake(exchange, runner.factories)
        if isinstance(checked, Refusal):
            runner.log_refusal(exchange.client, checked)
            self._refuse(checked)
            exchange.finish()
            return False
        self._handshake = checked
        # ASGI spec 2.4, "WebSocket Connection Scope": the http scope's fields but `method`,
        # plus the client's subprotocols and the denial response extension.
        secure = exchange.scheme == "https"
        request: Request = exchange  # type: ignore[assignment]  # (see ASGIRunner.attach)
        scope = build_scope(
            request,
            exchange.server,
            exchange.client,
            "wss" if secure else "ws",
            runner.root_path if exchange.root_path is None else exchange.root_path,
            runner.state,
        )
        scope["type"] = "websocket"
        del scope["method"]
        scope["subprotocols"] = checked.subprotocols
        scope["extensions"] = {"websocket.http.response": {}}
        if secure:
            add_tls_extension(scope, exchange)
        self.scope = scope
        return True

    async def run(self, app: ASGIApp) -> None:
        """Call the app; answer or close properly whatever it does."""
        try:
            # Called as Any: an app that breaks the contract by returning a value is logged
            # below, and the compiled build would refuse that value at an await typed None.
            call: Any = app
            result = await call(self.scope, self.receive, self.send)
        except BaseException as exc:
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
        if result is not None:
            logger.error("ASGI app returned %r; an ASGI app must return None", result)
        self._after_app(failed=False)

    def _after_app(self, *, failed: bool) -> None:
        state = self._state
        if state is _State.CONNECTING and not failed and not self._gone:
            logger.error("ASGI app returned without accepting or closing the WebSocket")
        elif state is _State.RESPONSE and not failed and not self._gone:
            logger.error("ASGI app returned without completing its denial response")
        elif state is _State.OPEN:
            session = self.session
            if session is not None and not (session.ended or session.closing):
                # The app is done with an open session: close it (1011 if the app failed).
                session.close(INTERNAL_ERROR if failed else NORMAL, "")
        self._state = _State.CLOSED
        # An answer the app never gave is a 500; one it began and did not end, a cut.
        self.exchange.finish()


def _disconnect(code: int) -> WebSocketDisconnectMessage:
    return {"type": "websocket.disconnect", "code": code, "reason": ""}


class WebSocketRunner:
    """Makes a WebSocket cycle for each handshake request and runs the app for it."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        root_path: str,
        state: dict[str, Any] | None,
        loop: asyncio.AbstractEventLoop,
        config: WSConfig,
        log_refusals: bool = True,
    ) -> None:
        self.app = app
        self.root_path = root_path
        self.state = state
        self.loop = loop
        self.config = config
        self.factories = [deflate_factory()] if config.per_message_deflate else []
        self._log_refusals = log_refusals

    def attach(self, exchange: Exchange) -> None:
        exchange.receiver = WebSocketCycle(exchange, self)

    def start(self, exchange: Exchange) -> None:
        cycle = cast(WebSocketCycle, exchange.receiver)
        if not cycle.check():
            return
        cycle.task = self.loop.create_task(cycle.run(self.app))

    def log_refusal(self, client: tuple[str, int] | None, refusal: Refusal) -> None:
        if self._log_refusals:
            who = f"{client[0]}:{client[1]}" if client else "-"
            logger.info(
                "%s - WebSocket handshake refused: %d %s", who, refusal.status, refusal.reason
            )

    async def aclose(self) -> None:
        return None
