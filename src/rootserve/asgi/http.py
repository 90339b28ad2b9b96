"""One ASGI HTTP request/response cycle: the exchange's request in, ASGI messages out, and back.

How this works. The server makes an exchange for each request; `ASGIRunner.attach` makes an
`HTTPCycle` for it (the exchange's receiver) and `start` runs `cycle.run(app)` as one task.
`receive()` hands the app the body the exchange `feed`s in, as `http.request` messages, then
`http.disconnect` once the response is done or the client is gone. `send()` checks each
message against the order the ASGI HTTP spec allows (a state table; an illegal step raises an
error naming the rule) and hands the answer to the exchange, which frames and writes it. The
first body message is held back with the head, so the common "start + one body" answer is
one write with a Content-Length.

Response trailers (the ASGI "HTTP Trailers" extension) are offered in an HTTP/2 request's
scope (_scope.py says why not HTTP/1.1's); the exchange sends them where they can go
(`accepts_trailers`: HTTP/2, or HTTP/1.1 to a client that said `TE: trailers`, in a chunked
body) and drops them elsewhere, as a recipient may (RFC 9110 section 6.5.1). An app that
starts with `trailers: True` has its last body message (more_body False) sent without ending
the response; the `http.response.trailers` messages that follow are gathered, and the last
one (more_trailers False) ends it through the exchange's `send_trailers`.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from typing import Any, Final, cast

from rootserve.asgi._scope import add_http2_extensions, add_tls_extension, build_scope
from rootserve.observe.access import printable
from rootserve.protocol.events import Request
from rootserve.protocol.exchange import (
    ClientDisconnected,
    Exchange,
    ResponseError,
)
from rootserve.types import ASGIApp, HTTPReceiveMessage, Scope, SendMessage
from rootserve.units import KIB
from rootserve.validate._errors import ContractError

__all__ = [
    "TASK_NAME",
    "ASGIRunner",
    "ClientDisconnected",
    "HTTPCycle",
]

logger = logging.getLogger("rootserve.error")

BODY_HIGH_WATER: Final = 64 * KIB  # buffered request body bytes before reading pauses

# No body yet: one shared empty list (never appended to: feed() makes a list of its own),
# so that a request without a body allocates none (a list costs ~150 instructions).
_NO_BODY: Final[list[bytes]] = []
TASK_NAME: Final = "rootserve.http"  # the name of each request's task
_Task: Final = asyncio.Task  # not `asyncio.Task` per request: 250 instructions (compiled)


class _Send(enum.Enum):
    START = "expecting http.response.start"
    HEAD_HELD = "expecting the first http.response.body"
    BODY = "expecting more http.response.body"
    TRAILERS = "expecting http.response.trailers"
    DONE = "response complete"


# Module-level names for the members: Python 3.11 looks `_Send.DONE` up through a
# descriptor each time (about 70 ns), and a request passes a dozen of these tests.
_START: Final = _Send.START
_HEAD_HELD: Final = _Send.HEAD_HELD
_BODY: Final = _Send.BODY
_TRAILERS: Final = _Send.TRAILERS
_DONE: Final = _Send.DONE


_PAIRS: Final = "'headers' must be an iterable of [name, value] pairs of bytes"
# The answer to a request whose app broke its contract under --strict: the rule, in words.
_CONTRACT_PAGE: Final = [(b"content-type", b"text/plain; charset=utf-8")]


class HTTPCycle:
    """The lifetime of one request: its body going in, its response going out."""

    __slots__ = (
        "_body",
        "_buffered",
        "_end_delivered",
        "_headers",
        "_more_body",
        "_send_state",
        "_status",
        "_stopping",
        "_trailers",
        "_waiter",
        "exchange",
        "scope",
        "task",
    )

    # The response's status and headers, from http.response.start to the first body.
    _status: int
    _headers: Any

    def __init__(self, scope: Scope, exchange: Exchange, has_body: bool) -> None:
        self.scope = scope
        self.exchange = exchange
        self._body: list[bytes] = _NO_BODY  # a list of its own once body arrives
        self._buffered = 0
        self._more_body = has_body  # (the exchange's, as `attach` read it)
        self._end_delivered = False
        self._waiter: Any = None  # an asyncio future while receive() waits for body
        self._send_state = _START
        self._stopping = False
        # The trailer fields gathered so far, once http.response.start said `trailers`.
        self._trailers: list[Any] | None = None
        self.task: asyncio.Task[None] | None = None

    # -- the exchange's side (a Receiver) --------------------------------------------

    def feed(self, data: bytes) -> None:
        if self._send_state is _DONE:
            return  # the app is done with this request: discard the rest of its body
        if self._body:
            self._body.append(data)
        else:
            self._body = [data]
        self._buffered += len(data)
        if self._buffered > BODY_HIGH_WATER:
            self.exchange.pause_reading()
        self._wake()

    def end(self) -> None:
        self._more_body = False
        self._wake()

    def disconnect(self) -> None:
        self._wake()  # receive() sees the exchange's `disconnected`

    def writable(self) -> None:
        """The transport drained (send() waits on the exchange's drain() instead)."""

    def server_stopping(self) -> None:
        """The server drains: once the response has started and the request was read
        whole, receive() says http.disconnect, so that an endless stream (server-sent
        events) ends instead of holding the stop up; what the app still sends goes out."""
        self._stopping = True
        self._wake()

    def cancel(self) -> None:
        """Graceful shutdown ran out of time."""
        self.disconnect()
        if self.task is not None:
            self.task.cancel()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # -- the app's side ----------------------------------------------------------------

    async def receive(self) -> HTTPReceiveMessage:
        if not self._body:
            if self._more_body and self._send_state is _START:
                self.exchange.want_body()  # 100 Continue, if the client waits for it
            # Once the whole body was handed over, receive() waits for the disconnect:
            # the response finishing or the client going away (ASGI HTTP spec 2.4).
            while (
                not self._body
                and (self._more_body or self._end_delivered)
                and not self.exchange.disconnected
                and self._send_state is not _DONE
                and not (self._stopping and self._end_delivered and self._send_state is not _START)
            ):
                self.exchange.resume_reading()
                self._waiter = asyncio.get_running_loop().create_future()
                await self._waiter
            if not self._body and (
                self._end_delivered or self._send_state is _DONE or self.exchange.disconnected
            ):
                return {"type": "http.disconnect"}
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        if self._buffered > BODY_HIGH_WATER:
            self.exchange.resume_reading()
        self._body = _NO_BODY
        self._buffered = 0
        more_body = self._more_body
        self._end_delivered = not more_body
        return {"type": "http.request", "body": body, "more_body": more_body}

    async def send(self, message: SendMessage) -> None:
        kind = message.get("type")
        state = self._send_state
        if state is _START:
            if kind != "http.response.start":
                raise RuntimeError(
                    f"Expected ASGI message 'http.response.start', got {kind!r} "
                    "(ASGI HTTP spec: the response starts with http.response.start)"
                )
            status = message.get("status")
            if type(status) is not int:
                raise TypeError(f"http.response.start 'status' must be an int, got {status!r}")
            self._status = status
            self._headers = message.get("headers", ())
            self._send_state = _HEAD_HELD
            if message.get("trailers"):
                self._trailers = []
            return
        if kind != "http.response.body":
            if kind == "http.response.trailers":
                self._send_trailers(message, state)
                return
            if state is _DONE:
                raise RuntimeError(
                    f"Unexpected ASGI message {kind!r} sent after the response was complete"
                )
            raise RuntimeError(
                f"Expected ASGI message 'http.response.body', got {kind!r} "
                "(ASGI HTTP spec: after http.response.start only http.response.body)"
            )
        if state is _DONE or state is _TRAILERS:
            raise RuntimeError(
                "Unexpected ASGI message 'http.response.body' sent after the "
                + ("response was complete" if state is _DONE else "last one, before the trailers")
                + " (more_body was False)"
            )
        body = message.get("body", b"")
        if type(body) is not bytes:
            if not isinstance(body, bytes | bytearray | memoryview):
                raise TypeError(f"http.response.body 'body' must be bytes, got {type(body)}")
            body = bytes(body)
        more = message.get("more_body", False)
        exchange = self.exchange
        last = False
        if not more and self._trailers is not None:
            more = last = True  # the trailers will end the response, not this body
        if state is _HEAD_HELD:
            try:
                exchange.respond(self._status, self._headers, body, not more)
            except TypeError as exc:
                raise TypeError(f"http.response.start {_PAIRS}: {exc}") from None
            if more:
                self._send_state = _BODY
            else:
                self._send_state = _DONE
                if self._waiter is not None:
                    self._wake()
                return
        elif more:
            if body:
                exchange.send_body(body, False)
        else:
            self._send_state = _DONE
            if self._waiter is not None:
                self._wake()
            exchange.send_body(body, True)
            return
        if last:
            self._send_state = _TRAILERS
        if exchange.write_paused:
            await exchange.drain()

    def _send_trailers(self, message: SendMessage, state: _Send) -> None:
        """An http.response.trailers message (ASGI HTTP Trailers extension)."""
        trailers = self._trailers
        if trailers is None:
            raise RuntimeError(
                "Expected ASGI message 'http.response.body', got 'http.response.trailers' "
                "(ASGI HTTP Trailers extension: http.response.start did not set "
                "'trailers': True)"
            )
        if state is not _TRAILERS:
            when = "before the last http.response.body (more_body False)"
            if state is _DONE:
                when = "after the response was complete"
            raise RuntimeError(f"Unexpected ASGI message 'http.response.trailers' {when}")
        headers: Any = message.get("headers", ())
        try:
            trailers += [(name, value) for name, value in headers]
            if message.get("more_trailers", False):
                return
            self._send_state = _DONE
            if self._waiter is not None:
                self._wake()
            self.exchange.send_trailers(trailers)
        except TypeError as exc:
            raise TypeError(f"http.response.trailers {_PAIRS}: {exc}") from None
        except ValueError as exc:
            if isinstance(exc, ResponseError):
                raise
            raise TypeError(f"http.response.trailers {_PAIRS}: {exc}") from None

    # -- running the app ---------------------------------------------------------------

    async def run(self, app: ASGIApp) -> None:
        """Call the app for this request. Whatever it does, the exchange is finished when
        the call is over: an answer it did not complete becomes a 500 or a cut connection."""
        exchange = self.exchange
        try:
            # As Any: a value returned is logged below (compiled code would refuse it here).
            result = await cast(Any, app)(self.scope, self.receive, self.send)
        except BaseException as exc:
            if not isinstance(exc, Exception):
                self._send_state = _DONE
                exchange.finish()
                raise
            if isinstance(exc, ContractError):  # --strict: the rule, not a traceback
                logger.error("%s %s: %s", self.scope["method"], printable(self.scope["path"]), exc)
                if self._send_state is _START and not exchange.disconnected:
                    self._send_state = _DONE
                    exchange.respond(500, _CONTRACT_PAGE, str(exc).encode(), True)
            elif not isinstance(exc, ClientDisconnected) and not (
                exchange.disconnected and isinstance(exc, OSError)
            ):
                logger.error(
                    "Exception in ASGI app for %s %s",
                    self.scope["method"],
                    printable(self.scope["path"]),
                    exc_info=exc,
                )
        else:
            if result is not None:
                logger.error("ASGI app returned %r; an ASGI app must return None", result)
            if self._send_state is not _DONE and not exchange.disconnected:
                if self._send_state is _START:
                    logger.error("ASGI app returned without starting a response")
                else:
                    logger.error("ASGI app returned without completing its response")
        self._send_state = _DONE
        exchange.finish()


class ASGIRunner:
    """Makes an ASGI cycle for each request and runs the app for it in a task of its own.

    One task per request, not one per connection: a task runs in its own copy of the
    context, so what an app sets in a contextvar for one request (asgiref's Local, logging
    and tracing libraries) never shows in the next request on the same connection."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        root_path: str,
        state: dict[str, Any] | None,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.app = app
        self.root_path = root_path
        self.state = state
        self.loop = loop
        # Tasks are made here, with a name: an unnamed task formats "Task-N" for itself
        # (about 1,500 instructions, a tenth of a request). A task factory the app set on
        # the loop (by the end of lifespan startup) is honoured instead.
        self._own_tasks = loop.get_task_factory() is None

    def attach(self, exchange: Exchange) -> None:
        # Every exchange is a Request (server/_answer.py): compiled, its fields are read at
        # fixed offsets, not looked up (180 instructions each). Not cast(): a call, in source.
        request: Request = exchange  # type: ignore[assignment]
        scheme = exchange.scheme
        scope = build_scope(
            request,
            exchange.server,
            exchange.client,
            scheme,
            self.root_path if exchange.root_path is None else exchange.root_path,
            self.state,
        )
        if scheme == "https":  # (plain HTTP pays this one comparison for TLS)
            add_tls_extension(scope, exchange)
        if request.http_version == "2":  # (trailers: see _scope.py)
            add_http2_extensions(scope, exchange)
        exchange.receiver = HTTPCycle(scope, exchange, request.has_body)

    def start(self, exchange: Exchange) -> None:
        """Start the app in a task that runs its first step from the loop's ready queue,
        not at once. Python 3.12's eager start (the first step inside this call) was
        measured and dropped: an app that answers without waiting then writes each
        response between two reads, instead of after the loop pass has read every ready
        connection, and under wrk that doubled the kernel time per request (37.6 against
        24.3 us of CPU per request on Python 3.13, `make bench` asgi-hello)."""
        cycle: HTTPCycle = exchange.receiver  # type: ignore[assignment]  # attach() made it
        coro = cycle.run(self.app)
        if self._own_tasks:
            cycle.task = _Task(coro, loop=self.loop, name=TASK_NAME)
            return
        try:
            cycle.task = self.loop.create_task(coro, name=TASK_NAME)
        except BaseException:
            coro.close()  # the app's task factory failed: nothing will run the cycle
            raise

    async def aclose(self) -> None:
        return None
