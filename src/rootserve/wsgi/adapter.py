"""One WSGI request on an app thread, its response framed and written on the loop thread.

How this works. The server makes a `WSGICycle` for each `Request` and hands it to the app
threads (`threads.py`). The app thread builds the environ, calls the app, walks the body
iterable and calls its `close()` on every path (PEP 3333 "Specification Details"). It never
touches the socket or the protocol: it hands plain parts (status, headers, body chunks) to
the loop with `call_soon_threadsafe`, and the loop frames them through the sans-IO protocol
and writes them. The common answer, a body of one piece, crosses threads once, already
joined, and leaves with a Content-Length. A streaming answer crosses once per chunk, and the
app thread waits while the bytes it handed over but the socket has not taken pass
`WRITE_HIGH_WATER`, so a slow reader holds the app thread, not the server's memory.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, Final, Protocol

from rootserve.observe.access import printable
from rootserve.protocol.events import Request
from rootserve.protocol.http11 import HTTP11Connection
from rootserve.protocol.rules import LocalProtocolError
from rootserve.running import Running
from rootserve.types import WSGIApp
from rootserve.wsgi.call import FileWrapper, WSGICall
from rootserve.wsgi.environ import base_environ, build_environ
from rootserve.wsgi.input import EMPTY_INPUT, BodyInput, EmptyInput
from rootserve.wsgi.threads import AppThreads

__all__ = ["FileWrapper", "WSGICycle", "WSGIRunner"]

logger = logging.getLogger("rootserve.error")

WRITE_HIGH_WATER: Final = 256 * 1024  # bytes handed to the loop and not yet on the socket


class WSGIChannel(Protocol):
    """What a WSGI cycle needs from its connection (the server's Connection)."""

    proto: HTTP11Connection
    write_paused: bool
    closed: bool
    server_addr: tuple[str, int] | None
    client_addr: tuple[str, int] | None
    transport: Any

    def write(self, data: bytes) -> None: ...
    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def response_complete(self, keep_alive: bool) -> None: ...
    def abort(self) -> None: ...


class WSGICycle:
    """One request. Loop side: feed, end, disconnect, the deliver_* callbacks.
    App thread side: `run()`."""

    __slots__ = (
        "_body",
        "_expect_continue",
        "_loop",
        "_runner",
        "_sent_bytes",
        "_writable",
        "_written_bytes",
        "channel",
        "complete",
        "disconnected",
        "request",
        "request_complete",
        "status",
    )

    def __init__(
        self, request: Request, channel: WSGIChannel, runner: WSGIRunner, loop: Any
    ) -> None:
        self.request = request
        self.channel = channel
        self._runner = runner
        self._loop = loop
        self.request_complete = not request.has_body
        self._body: BodyInput | EmptyInput = EMPTY_INPUT
        if request.has_body:
            ask = self._ask_for_body if request.expect_continue else None
            self._body = BodyInput(resume_reading=self._resume_reading, ask_for_body=ask)
        self._expect_continue = request.expect_continue
        self.disconnected = False
        self.complete = False
        self.status = 0
        self._sent_bytes = 0  # app thread only
        self._written_bytes = 0  # loop thread only
        # Made by the app thread the first time it must wait for the socket to drain.
        self._writable: threading.Event | None = None

    # -- loop thread: the request body and the connection's state --------------------

    def feed(self, data: bytes) -> None:
        if self.complete:
            return  # answered already: the rest of the body is read and dropped
        if self._body.feed(data):  # type: ignore[union-attr]
            self.channel.pause_reading()

    def end(self) -> None:
        self.request_complete = True
        self._body.end()  # type: ignore[union-attr]

    def disconnect(self) -> None:
        self.disconnected = True
        if isinstance(self._body, BodyInput):
            self._body.abort()
        self.writable()

    def writable(self) -> None:
        """The transport drained: an app thread waiting to hand over more may go on."""
        event = self._writable
        if event is not None:
            event.set()

    def cancel(self) -> None:
        self.disconnect()

    def _resume_reading(self) -> None:
        self._loop.call_soon_threadsafe(self.channel.resume_reading)

    def _ask_for_body(self) -> None:
        self._loop.call_soon_threadsafe(self._send_continue)

    def _send_continue(self) -> None:
        if not self.channel.closed and self.status == 0:
            self._expect_continue = False
            self.channel.write(self.channel.proto.send_informational(100))

    @property
    def response_started(self) -> bool:
        return self.status != 0

    # -- loop thread: writing what the app thread handed over ------------------------

    def _before_head(self) -> None:
        if self._expect_continue and not self.request_complete:
            # The client waits for a 100 it will not get; its body may or may not follow,
            # so this connection ends here (RFC 9110 section 10.1.1).
            self.channel.proto.close_after_response()

    def deliver_whole(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self._runner.running.discard(self)
        if self.disconnected or self.channel.closed:
            return
        self.status = status
        self._before_head()
        proto = self.channel.proto
        try:
            data = proto.send_whole_response(status, headers, body)
        except LocalProtocolError as exc:
            self._fail(str(exc))
            return
        self.channel.write(data)
        self._complete(proto.response_keep_alive)

    def deliver_head(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        if self.disconnected or self.channel.closed:
            return
        self.status = status
        self._before_head()
        try:
            data = self.channel.proto.send_response(status, headers)
            if body:
                data += self.channel.proto.send_data(body)
        except LocalProtocolError as exc:
            self._fail(str(exc))
            return
        self._write(data, len(body))

    def deliver_chunk(self, body: bytes) -> None:
        if self.disconnected or self.channel.closed or not self.status:
            return
        try:
            data = self.channel.proto.send_data(body)
        except LocalProtocolError as exc:
            # More bytes than the app's Content-Length: cut the connection (RFC 9112 6.3).
            logger.error("WSGI app: %s", exc)
            self.channel.abort()
            return
        self._write(data, len(body))

    def _write(self, data: bytes, size: int) -> None:
        self.channel.write(data)
        self._written_bytes += size
        if not self.channel.write_paused:
            self.writable()

    def deliver_file(
        self, status: int, headers: list[tuple[bytes, bytes]], file: Any, done: threading.Event
    ) -> None:
        if self.disconnected or self.channel.closed:
            self._runner.running.discard(self)
            done.set()
            return
        try:
            offset = file.tell()
            size = os.fstat(file.fileno()).st_size - offset
        except (OSError, AttributeError, ValueError) as exc:
            logger.error("wsgi.file_wrapper: cannot size the file (%s)", exc)
            self._runner.running.discard(self)
            self._fail(None)
            done.set()
            return
        if not any(name.lower() == b"content-length" for name, _ in headers):
            headers = [*headers, (b"content-length", b"%d" % size)]
        self.status = status
        self._before_head()
        try:
            head = self.channel.proto.send_response(status, headers)
        except LocalProtocolError as exc:
            self._runner.running.discard(self)
            self._fail(str(exc))
            done.set()
            return
        self.channel.write(head)
        self._loop.create_task(self._send_file(file, offset, size, done))

    async def _send_file(self, file: Any, offset: int, size: int, done: threading.Event) -> None:
        proto = self.channel.proto
        try:
            sent = await self._loop.sendfile(self.channel.transport, file, offset, size)
            proto.send_data_sent_elsewhere(sent)
            end = proto.send_end()
        except (OSError, RuntimeError, LocalProtocolError) as exc:
            if not self.disconnected:
                logger.error("wsgi.file_wrapper: sendfile failed (%s); closing", exc)
            self.channel.abort()
        else:
            if end:
                self.channel.write(end)
            self._complete(proto.response_keep_alive)
        finally:
            self._runner.running.discard(self)
            done.set()

    def deliver_end(self) -> None:
        self._runner.running.discard(self)
        if self.disconnected or self.channel.closed or not self.status:
            return
        proto = self.channel.proto
        try:
            end = proto.send_end()
        except LocalProtocolError as exc:
            logger.error("WSGI app: %s; closing the connection", exc)
            self.channel.abort()
            return
        if end:
            self.channel.write(end)
        self._complete(proto.response_keep_alive)

    def deliver_error(self, closing_only: bool) -> None:
        """The app failed: a 500 if nothing was sent yet, else cut the connection."""
        self._runner.running.discard(self)
        if self.disconnected or self.channel.closed:
            return
        if closing_only or self.status:
            self.channel.abort()
            return
        self._fail(None)

    def finished(self) -> None:
        self._runner.running.discard(self)

    def _fail(self, reason: str | None) -> None:
        if reason:
            logger.error("WSGI app response refused: %s", reason)
        # The app thread may still be walking the body: it must stop and close() it.
        self.disconnect()
        self.status = 500
        proto = self.channel.proto
        proto.abandon()
        self.channel.write(proto.error_response(500, "Internal Server Error"))
        self._complete(False)

    def _complete(self, keep_alive: bool) -> None:
        # A client told to wait for 100-continue that never got it may or may not send
        # the body: the connection cannot be reused (RFC 9110 section 10.1.1).
        if self._expect_continue and not self.request_complete:
            keep_alive = False
        self.complete = True
        self.channel.response_complete(keep_alive)

    # -- app thread: the _Output the call hands the response to -------------------------

    def run(self) -> None:
        """Build the environ and call the app, on an app thread."""
        runner = self._runner
        channel = self.channel
        environ = build_environ(
            runner.base_environ, self.request, channel.server_addr, channel.client_addr, self._body
        )
        WSGICall(self).run(runner.app, environ)

    def hand_whole(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self._runner.back(self.deliver_whole, status, headers, body)

    def hand_head(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self._runner.back(self.deliver_head, status, headers, body)
        self._wait_for_socket(len(body))

    def hand_chunk(self, body: bytes) -> None:
        self._runner.back(self.deliver_chunk, body)
        self._wait_for_socket(len(body))

    def hand_end(self) -> None:
        self._runner.back(self.deliver_end)

    def hand_error(self, sent: bool) -> None:
        self._runner.back(self.deliver_error, sent)

    def hand_nothing(self) -> None:
        self._runner.back(self.finished)

    def can_send_file(self) -> bool:
        return self._runner.sendfile and self.request.method != "HEAD"

    def hand_file(self, status: int, headers: list[tuple[bytes, bytes]], file: Any) -> None:
        """Send an open file as the whole body with the loop's sendfile (zero-copy where
        the transport allows it); the app thread waits, since the file is closed after."""
        done = threading.Event()
        self._runner.back(self.deliver_file, status, headers, file, done)
        while not done.wait(1.0) and not self.disconnected:
            pass

    def describe(self) -> str:
        return f"{self.request.method} {printable(self.request.target.decode('latin-1'))}"

    def _must_wait(self) -> bool:
        # Too much handed over and not yet written, or the transport's buffer is over its
        # high-water mark (the socket is not taking bytes): either way, hold the app thread.
        if self.disconnected:
            return False
        return (
            self._sent_bytes - self._written_bytes > WRITE_HIGH_WATER or self.channel.write_paused
        )

    def _wait_for_socket(self, size: int) -> None:
        self._sent_bytes += size
        # The loop thread updates _written_bytes and write_paused before it sets the event,
        # so checking again after clear() cannot miss a wake-up.
        while self._must_wait():
            event = self._writable
            if event is None:
                event = self._writable = threading.Event()
            event.clear()
            if not self._must_wait():
                break
            event.wait(1.0)


class WSGIRunner:
    """Makes WSGI cycles and hands them to the app threads."""

    def __init__(
        self,
        app: WSGIApp,
        *,
        threads: int,
        root_path: str,
        multiprocess: bool,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.app = app
        self.root_path = root_path
        self.multiprocess = multiprocess
        self.loop = loop
        self.running = Running()
        self.base_environ = base_environ(
            root_path=root_path, scheme="http", multiprocess=multiprocess, file_wrapper=FileWrapper
        )
        self.pool = AppThreads(threads)
        # loop.sendfile sends from the kernel's page cache (os.sendfile) on asyncio's own
        # transports; uvloop's have no sendfile, so there the app thread reads the file.
        self.sendfile = isinstance(loop, asyncio.BaseEventLoop)
        # Hand-offs go in batches, both ways. Every switch of the GIL between the loop
        # thread and an app thread costs futex calls, and uvloop lets the GIL go between
        # its callbacks; so the requests of one pass of the loop reach the app threads
        # together, after the pass, and the answers of the app threads come back to the
        # loop in one wake-up however many there are (DESIGN.md: the hand-off is on the
        # hot path). An app thread still takes one request at a time.
        self._to_threads: list[WSGICycle] = []
        self._back: deque[tuple[Callable[..., None], tuple[Any, ...]]] = deque()
        self._back_scheduled = False

    def cycle(self, request: Request, channel: Any) -> WSGICycle:
        return WSGICycle(request, channel, self, self.loop)

    def start(self, cycle: WSGICycle) -> None:
        self.running.add(cycle)
        self._to_threads.append(cycle)
        if len(self._to_threads) == 1:
            self.loop.call_soon(self._submit_all)

    def _submit_all(self) -> None:
        cycles, self._to_threads = self._to_threads, []
        submit = self.pool.submit
        for cycle in cycles:
            submit(cycle)

    def back(self, callback: Callable[..., None], *args: Any) -> None:
        """From an app thread: run `callback(*args)` on the loop, in order."""
        self._back.append((callback, args))
        if not self._back_scheduled:
            self._back_scheduled = True
            self.loop.call_soon_threadsafe(self._run_back)

    def _run_back(self) -> None:
        # The flag drops before the queue is drained: an item added after the drain sees
        # it down and schedules another pass, so none is left behind.
        self._back_scheduled = False
        popleft = self._back.popleft
        while self._back:
            callback, args = popleft()
            try:
                callback(*args)
            except Exception as exc:  # one answer's failure must not strand the others
                logger.critical("Error handing a WSGI response to the loop", exc_info=exc)

    def release(self, channel: Any) -> None:
        return None

    async def aclose(self) -> None:
        self.pool.stop()
