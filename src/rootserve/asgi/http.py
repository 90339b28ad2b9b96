"""One ASGI HTTP request/response cycle: protocol events in, ASGI messages out, and back.

How this works. The server makes an `HTTPCycle` for each `Request` event and runs
`cycle.run(app)` as one task. `receive()` hands the app the body the server `feed`s in, as
`http.request` messages, then `http.disconnect` once the response is done or the client is
gone. `send()` checks each message against the order the ASGI HTTP spec allows (a state
table; an illegal step raises an error naming the rule) and turns it into bytes through the
sans-IO protocol. The first body message is held back with the head, so the common
"start + one body" answer is one write with a Content-Length.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from typing import Any, Final, Protocol
from urllib.parse import unquote

from rootserve.observe.access import printable
from rootserve.protocol.events import Request
from rootserve.protocol.http11 import HTTP11Connection
from rootserve.protocol.rules import LocalProtocolError
from rootserve.running import Running
from rootserve.types import ASGIApp, Message, Scope

__all__ = [
    "ASGI_VERSION",
    "TASK_NAME",
    "ASGIRunner",
    "Channel",
    "ClientDisconnected",
    "HTTPCycle",
    "build_scope",
]

logger = logging.getLogger("rootserve.error")

ASGI_VERSION: Final = {"version": "3.0", "spec_version": "2.4"}
BODY_HIGH_WATER: Final = 64 * 1024  # buffered request body bytes before reading pauses

_DISCONNECT: Final = {"type": "http.disconnect"}
TASK_NAME: Final = "rootserve.http"  # the name of each request's task


class ClientDisconnected(OSError):
    """`send()` was called after the client went away (ASGI HTTP spec 2.4)."""


class Channel(Protocol):
    """What a cycle needs from its connection (implemented by the server's Connection)."""

    proto: HTTP11Connection
    write_paused: bool
    server_addr: tuple[str, int] | None
    client_addr: tuple[str, int] | None

    def write(self, data: bytes) -> None: ...
    async def drain(self) -> None: ...
    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def response_complete(self, keep_alive: bool) -> None: ...
    def abort(self) -> None: ...


class _Send(enum.Enum):
    START = "expecting http.response.start"
    HEAD_HELD = "expecting the first http.response.body"
    BODY = "expecting more http.response.body"
    DONE = "response complete"


# Module-level names for the members: Python 3.11 looks `_Send.DONE` up through a
# descriptor each time (about 70 ns), and a request passes a dozen of these tests.
_START: Final = _Send.START
_HEAD_HELD: Final = _Send.HEAD_HELD
_BODY: Final = _Send.BODY
_DONE: Final = _Send.DONE


def build_scope(
    request: Request,
    server: tuple[str, int] | None,
    client: tuple[str, int] | None,
    scheme: str,
    root_path: str,
    state: dict[str, Any] | None,
) -> Scope:
    """The `http` scope for one request (ASGI HTTP spec 2.4, "HTTP Connection Scope")."""
    raw_path = request.path
    # ASGI HTTP spec: `path` is percent-decoded and UTF-8 decoded. llhttp admits only
    # ASCII in the target, so the raw bytes decode as ASCII.
    path = raw_path.decode("ascii")
    if "%" in path:
        path = unquote(path)
    if root_path:
        # The scope's path is the full path, root_path included (ASGI spec 2.x).
        path = root_path + path
        raw_path = root_path.encode("utf-8") + raw_path
    scope: Scope = {
        "type": "http",
        "asgi": ASGI_VERSION,
        "http_version": request.http_version,
        "server": server,
        "client": client,
        "scheme": scheme,
        "method": request.method,
        "root_path": root_path,
        "path": path,
        "raw_path": raw_path,
        "query_string": request.query,
        "headers": request.headers,
        "extensions": {},
    }
    if state is not None:
        scope["state"] = state.copy()  # each request gets its own shallow copy
    return scope


class HTTPCycle:
    """The lifetime of one request: its body going in, its response going out."""

    __slots__ = (
        "_body",
        "_buffered",
        "_end_delivered",
        "_expect_continue",
        "_held",
        "_more_body",
        "_send_state",
        "_waiter",
        "channel",
        "disconnected",
        "request",
        "request_complete",
        "scope",
        "status",
        "task",
    )

    _held: Any  # the response's headers, from http.response.start to the first body

    def __init__(self, scope: Scope, request: Request, channel: Channel) -> None:
        self.scope = scope
        self.request = request
        self.channel = channel
        self._expect_continue = request.expect_continue
        self._body: list[bytes] = []
        self._buffered = 0
        self._more_body = has_body = request.has_body
        self.request_complete = not has_body
        self._end_delivered = False
        self._waiter: Any = None  # an asyncio future while receive() waits for body
        self._send_state = _START
        self.disconnected = False
        self.status = 0
        self.task: asyncio.Task[None] | None = None

    # -- fed by the server -------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        if self._send_state is _DONE:
            return  # the app is done with this request: discard the rest of its body
        self._body.append(data)
        self._buffered += len(data)
        if self._buffered > BODY_HIGH_WATER:
            self.channel.pause_reading()
        self._wake()

    def end(self) -> None:
        self._more_body = False
        self.request_complete = True
        self._wake()

    def disconnect(self) -> None:
        self.disconnected = True
        self._wake()

    def writable(self) -> None:
        """The transport drained (send() waits on the channel's drain() instead)."""

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

    @property
    def response_started(self) -> bool:
        return self._send_state is not _START

    @property
    def response_complete(self) -> bool:
        return self._send_state is _DONE

    # -- the app's side ----------------------------------------------------------------

    async def receive(self) -> Message:
        if not self._body:
            if self._more_body and self._expect_continue:
                # RFC 9110 section 10.1.1: ask for the body only once the app wants it.
                self._expect_continue = False
                if self._send_state is _START:
                    self.channel.write(self.channel.proto.send_informational(100))
            # Once the whole body was handed over, receive() waits for the disconnect:
            # the response finishing or the client going away (ASGI HTTP spec 2.4).
            while (
                not self._body
                and (self._more_body or self._end_delivered)
                and not self.disconnected
                and self._send_state is not _DONE
            ):
                self.channel.resume_reading()
                self._waiter = asyncio.get_running_loop().create_future()
                await self._waiter
            if not self._body and (
                self.disconnected or self._end_delivered or self._send_state is _DONE
            ):
                return dict(_DISCONNECT)
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        if self._buffered > BODY_HIGH_WATER:
            self.channel.resume_reading()
        self._body = []
        self._buffered = 0
        more_body = self._more_body
        self._end_delivered = not more_body
        return {"type": "http.request", "body": body, "more_body": more_body}

    async def send(self, message: Message) -> None:
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
            headers = message.get("headers", ())
            self.status = status
            self._held = headers
            self._send_state = _HEAD_HELD
            return
        if kind != "http.response.body":
            if state is _DONE:
                raise RuntimeError(
                    f"Unexpected ASGI message {kind!r} sent after the response was complete"
                )
            raise RuntimeError(
                f"Expected ASGI message 'http.response.body', got {kind!r} "
                "(ASGI HTTP spec: after http.response.start only http.response.body)"
            )
        if state is _DONE:
            raise RuntimeError(
                "Unexpected ASGI message 'http.response.body' sent after the response was "
                "complete (more_body was False)"
            )
        if self.disconnected:
            raise ClientDisconnected("the client closed the connection")
        body = message.get("body", b"")
        if type(body) is not bytes:
            if not isinstance(body, bytes | bytearray | memoryview):
                raise TypeError(f"http.response.body 'body' must be bytes, got {type(body)}")
            body = bytes(body)
        more = message.get("more_body", False)
        channel = self.channel
        proto = channel.proto
        if state is _HEAD_HELD:
            status, headers = self.status, self._held
            if self._expect_continue and not self.request_complete:
                # The client waits for a 100 it will not get; its body may or may not
                # follow, so this connection ends here (RFC 9110 section 10.1.1).
                proto.close_after_response()
            try:
                if not more:
                    # The common answer: the head and the whole body, one write.
                    data = proto.send_whole_response(status, headers, body)
                    self._send_state = _DONE
                    channel.write(data)
                    if self._waiter is not None:
                        self._wake()
                    channel.response_complete(proto.response_keep_alive)
                    return
                data = proto.send_response(status, headers) + proto.send_data(body)
            except (TypeError, ValueError) as exc:
                raise TypeError(
                    "http.response.start 'headers' must be an iterable of [name, value] "
                    f"pairs of bytes: {exc}"
                ) from None
            self._send_state = _BODY
            channel.write(data)
        elif more:
            if body:
                channel.write(proto.send_data(body))
        else:
            self._send_state = _DONE
            self._finish(proto.send_data(body) if body else b"")
            return
        if channel.write_paused:
            await channel.drain()

    def _finish(self, data: bytes) -> None:
        channel = self.channel
        proto = channel.proto
        try:
            end = proto.send_end()
        except LocalProtocolError:
            channel.write(data)
            channel.abort()
            raise
        channel.write(data + end if end else data)
        if self._waiter is not None:
            self._wake()
        # If the client was told to wait for 100-continue and never was, its body may or
        # may not follow: the connection cannot be reused (RFC 9110 section 10.1.1).
        if self._expect_continue and not self.request_complete:
            channel.response_complete(False)
        else:
            channel.response_complete(proto.response_keep_alive)

    # -- running the app ---------------------------------------------------------------

    async def run(self, app: ASGIApp, running: Running) -> None:
        """Call the app for this request; answer 500 or close if it fails. The cycle
        leaves `running` (the worker's set of cycles whose app call is in progress) when
        the call is over."""
        try:
            result: object = await app(self.scope, self.receive, self.send)  # type: ignore[func-returns-value]
        except BaseException as exc:
            running.discard(self)
            if isinstance(exc, ClientDisconnected) or (
                self.disconnected and isinstance(exc, OSError)
            ):
                return
            if not isinstance(exc, Exception):
                self._fail_response()
                raise
            logger.error(
                "Exception in ASGI app for %s %s",
                self.scope["method"],
                printable(self.scope["path"]),
                exc_info=exc,
            )
            self._fail_response()
            return
        if result is not None:
            logger.error("ASGI app returned %r; an ASGI app must return None", result)
        if self._send_state is not _DONE and not self.disconnected:
            if self._send_state is _START:
                logger.error("ASGI app returned without starting a response")
            else:
                logger.error("ASGI app returned without completing its response")
            self._fail_response()
        running.discard(self)

    def _fail_response(self) -> None:
        if self.disconnected or self._send_state is _DONE:
            return
        channel = self.channel
        if self._send_state in (_START, _HEAD_HELD):
            self._send_state = _DONE
            self.status = 500
            proto = channel.proto
            proto.abandon()
            channel.write(proto.error_response(500, "Internal Server Error"))
            self._wake()
            channel.response_complete(False)
        else:
            # The head is on the wire: closing is the only way to say the body is broken.
            self._send_state = _DONE
            channel.abort()


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
        self.running = Running()
        # Tasks are made here, with a name: an unnamed task formats "Task-N" for itself
        # (about 1,500 instructions, a tenth of a request). A task factory the app set on
        # the loop (by the end of lifespan startup) is honoured instead.
        self._own_tasks = loop.get_task_factory() is None

    def cycle(self, request: Request, channel: Channel) -> HTTPCycle:
        scope = build_scope(
            request, channel.server_addr, channel.client_addr, "http", self.root_path, self.state
        )
        return HTTPCycle(scope, request, channel)

    def start(self, cycle: HTTPCycle) -> None:
        """Start the app for `cycle` in a task that runs its first step from the loop's
        ready queue, not at once. Python 3.12's eager start (the first step inside this
        call) was measured and dropped: an app that answers without waiting then writes
        each response between two reads, instead of after the loop pass has read every
        ready connection, and under wrk that doubled the kernel time per request (37.6
        against 24.3 us of CPU per request on Python 3.13, `make bench` asgi-hello)."""
        running = self.running
        running.add(cycle)  # first: with an eager task factory, the app may finish at once
        coro = cycle.run(self.app, running)
        if self._own_tasks:
            cycle.task = asyncio.Task(coro, loop=self.loop, name=TASK_NAME)
            return
        try:
            cycle.task = self.loop.create_task(coro, name=TASK_NAME)
        except BaseException:
            # The app's task factory failed: nothing will run the cycle, so it must not
            # hold up a graceful stop.
            running.discard(cycle)
            coro.close()
            raise

    def release(self, channel: Channel) -> None:
        return None

    async def aclose(self) -> None:
        return None
