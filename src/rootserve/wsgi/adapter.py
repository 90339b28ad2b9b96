"""One WSGI request on an app thread, its response handed to the exchange on the loop thread.

How this works. The server makes an exchange for each request; the runner (runner.py) makes
a `WSGICycle` for it and hands it to the app threads (`threads.py`) once its body is in, or
its first HIGH_WATER bytes are: a client that sends its body slowly holds a little memory,
never an app thread. The app thread builds the environ, calls the app, walks the body
iterable and calls its `close()` on every path (PEP 3333 "Specification Details"). It never
touches the exchange: it hands plain parts (status, headers, body chunks) to the loop with
`call_soon_threadsafe`, and the loop gives them to the exchange, which frames and writes
them. The common answer, a body of one piece, crosses threads once, already joined, and
leaves with a Content-Length. A streaming answer crosses once per chunk, and the app thread
waits while the bytes it handed over but the socket has not taken pass `WRITE_HIGH_WATER`,
so a slow reader holds the app thread, not the server's memory.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable
from typing import Any, Final, Protocol

from rootserve.observe.access import printable
from rootserve.protocol.exchange import (
    STREAM_EXTENSION,
    ClientDisconnected,
    Exchange,
    ResponseError,
    stream_id,
)
from rootserve.types import WSGIApp, WSGIEnviron
from rootserve.units import KIB
from rootserve.wsgi.call import FileWrapper, WSGICall
from rootserve.wsgi.environ import build_environ
from rootserve.wsgi.input import EMPTY_INPUT, HIGH_WATER, BodyInput, EmptyInput

__all__ = ["FileWrapper", "WSGICycle"]

logger = logging.getLogger("rootserve.error")

WRITE_HIGH_WATER: Final = 256 * KIB  # bytes handed to the loop and not yet on the socket


class WSGIRunner(Protocol):
    """What a cycle uses of its runner (runner.py), declared here so that the two modules
    do not import each other."""

    app: WSGIApp
    base_environ: WSGIEnviron
    loop: asyncio.AbstractEventLoop

    def submit(self, cycle: WSGICycle) -> None:
        """From the loop thread: run `cycle` on an app thread."""

    def back(self, callback: Callable[..., None], *args: Any) -> None:
        """From an app thread: run `callback(*args)` on the loop, in order."""


class WSGICycle:
    """One request. Loop side: the exchange's receiver and the deliver_* callbacks.
    App thread side: `run()` and the hand_* methods the call hands its answer to."""

    __slots__ = (
        "_body",
        "_held_back",
        "_runner",
        "_sent_bytes",
        "_writable",
        "_written_bytes",
        "disconnected",
        "exchange",
    )

    def __init__(self, exchange: Exchange, runner: WSGIRunner) -> None:
        self.exchange = exchange
        self._runner = runner
        request = exchange
        self._body: BodyInput | EmptyInput = EMPTY_INPUT
        if request.has_body:
            ask = self._ask_for_body if request.expect_continue else None
            self._body = BodyInput(resume_reading=self._resume_reading, ask_for_body=ask)
        self._held_back = False  # started, waiting for its body before an app thread
        self.disconnected = False
        self._sent_bytes = 0  # app thread only
        self._written_bytes = 0  # loop thread only
        # Made by the app thread the first time it must wait for the socket to drain.
        self._writable: threading.Event | None = None

    # -- loop thread: the exchange's receiver ------------------------------------------

    def start(self) -> None:
        """The request's turn. A body still arriving is buffered before the app is called
        (up to HIGH_WATER, when reading pauses anyway): a client that sends a byte a second
        then holds a buffer, not one of the few app threads (issue 05)."""
        exchange = self.exchange
        if exchange.request_complete or self._body.full:  # type: ignore[union-attr]
            self._runner.submit(self)
            return
        request = exchange
        if request.expect_continue:
            length = _content_length(request.headers)
            if length < 0 or length > HIGH_WATER:
                # Large or of unknown size: the app decides whether it wants the body (its
                # first read sends 100 Continue), so it is called at once.
                self._runner.submit(self)
                return
            exchange.want_body()  # small: ask for it now, and call the app once it is in
        self._held_back = True

    def feed(self, data: bytes) -> None:
        if self.exchange.complete:
            return  # answered already: the rest of the body is read and dropped
        if self._body.feed(data):  # type: ignore[union-attr]
            self.exchange.pause_reading()
            self._release()

    def end(self) -> None:
        self._body.end()  # type: ignore[union-attr]
        self._release()

    def _release(self) -> None:
        if self._held_back:
            self._held_back = False
            self._runner.submit(self)

    def disconnect(self) -> None:
        self.disconnected = True
        if isinstance(self._body, BodyInput):
            self._body.abort()
        self.writable()
        if self._held_back:
            self._held_back = False  # the app was never called, and never will be
            self.exchange.finish()

    def writable(self) -> None:
        """The transport drained: an app thread waiting to hand over more may go on."""
        event = self._writable
        if event is not None:
            event.set()

    def server_stopping(self) -> None:
        """A WSGI app cannot be told: PEP 3333 has no disconnect. Its response finishes
        within --timeout-graceful, or is cut."""

    def cancel(self) -> None:
        self.disconnect()

    def _resume_reading(self) -> None:
        self._runner.loop.call_soon_threadsafe(self.exchange.resume_reading)

    def _ask_for_body(self) -> None:
        self._runner.loop.call_soon_threadsafe(self.exchange.want_body)

    # -- loop thread: handing over what the app thread gave ----------------------------

    def deliver_whole(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        exchange = self.exchange
        try:  # _respond, inlined: the common answer (a frame per request, runner.py)
            exchange.respond(status, headers, body, True)
        except ClientDisconnected:
            pass
        except (ResponseError, TypeError) as exc:
            logger.error("WSGI app response refused: %s", exc)
            self.disconnect()  # the app thread stops walking the body, and closes it
            exchange.fail()
        exchange.finish()

    def deliver_head(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        if self._respond(status, headers, body, False):
            self._wrote(len(body))

    def _respond(
        self, status: int, headers: list[tuple[bytes, bytes]], body: bytes, end: bool
    ) -> bool:
        exchange = self.exchange
        try:
            exchange.respond(status, headers, body, end)
        except ClientDisconnected:
            return False
        except (ResponseError, TypeError) as exc:
            logger.error("WSGI app response refused: %s", exc)
            self.disconnect()  # the app thread stops walking the body, and closes it
            exchange.fail()
            return False
        return True

    def deliver_chunk(self, body: bytes) -> None:
        exchange = self.exchange
        if exchange.disconnected or not exchange.response_started:
            return
        try:
            exchange.send_body(body, False)
        except ResponseError as exc:
            # More bytes than the app's Content-Length: the exchange cut the connection.
            logger.error("WSGI app: %s", exc)
            self.disconnect()
            return
        self._wrote(len(body))

    def _wrote(self, size: int) -> None:
        self._written_bytes += size
        if not self.exchange.write_paused:
            self.writable()

    def deliver_end(self) -> None:
        exchange = self.exchange
        if exchange.response_started and not exchange.complete:
            try:
                exchange.send_body(b"", True)
            except ResponseError as exc:
                logger.error("WSGI app: %s; closing the connection", exc)
        exchange.finish()

    def deliver_file(
        self, status: int, headers: list[tuple[bytes, bytes]], file: Any, done: threading.Event
    ) -> None:
        exchange = self.exchange
        try:
            offset = file.tell()
            size = os.fstat(file.fileno()).st_size - offset
        except (OSError, AttributeError, ValueError) as exc:
            logger.error("wsgi.file_wrapper: cannot size the file (%s)", exc)
            exchange.finish()
            done.set()
            return
        if not any(name.lower() == b"content-length" for name, _ in headers):
            headers = [*headers, (b"content-length", b"%d" % size)]
        if not self._respond(status, headers, b"", False):
            exchange.finish()
            done.set()
            return
        self._runner.loop.create_task(self._send_file(file, offset, size, done))

    async def _send_file(self, file: Any, offset: int, size: int, done: threading.Event) -> None:
        try:
            await self.exchange.send_file(file, offset, size)
        except ResponseError as exc:
            logger.error("wsgi.file_wrapper: %s; closing", exc)
        except ClientDisconnected:
            pass
        finally:
            self.exchange.finish()
            done.set()

    def deliver_error(self) -> None:
        """The app failed: a 500 if nothing was sent yet, else a cut connection."""
        self.exchange.finish()

    def finished(self) -> None:
        self.exchange.finish()

    # -- app thread: the _Output the call hands the response to -------------------------

    def run(self) -> None:
        """Build the environ and call the app, on an app thread."""
        runner = self._runner
        exchange = self.exchange
        environ = build_environ(
            runner.base_environ,
            exchange,
            exchange.server,
            exchange.client,
            self._body,
            exchange.scheme,
        )
        if exchange.root_path is not None:  # a trusted proxy's prefix
            environ["SCRIPT_NAME"] = exchange.root_path
        if exchange.http_version == "2":
            # The stream it came on, under the name and in the shape of the ASGI scope's
            # extension (a server's own environ key carries its name, PEP 3333).
            environ[STREAM_EXTENSION] = {"stream_id": stream_id(exchange)}
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
        self._runner.back(self.deliver_error)

    def hand_nothing(self) -> None:
        self._runner.back(self.finished)

    def can_send_file(self) -> bool:
        return self.exchange.method != "HEAD" and self.exchange.can_send_file()

    def hand_file(self, status: int, headers: list[tuple[bytes, bytes]], file: Any) -> None:
        """Send an open file as the whole body with the loop's sendfile (zero-copy where
        the transport allows it); the app thread waits, since the file is closed after."""
        done = threading.Event()
        self._runner.back(self.deliver_file, status, headers, file, done)
        while not done.wait(1.0) and not self.disconnected:
            pass

    def describe(self) -> str:
        request = self.exchange
        return f"{request.method} {printable(request.target.decode('latin-1'))}"

    def _must_wait(self) -> bool:
        # Too much handed over and not yet written, or the transport's buffer is over its
        # high-water mark (the socket is not taking bytes): either way, hold the app thread.
        if self.disconnected:
            return False
        return (
            self._sent_bytes - self._written_bytes > WRITE_HIGH_WATER or self.exchange.write_paused
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


def _content_length(headers: list[tuple[bytes, bytes]]) -> int:
    """The request's Content-Length (the protocol checked it), or -1 for a chunked body."""
    for name, value in headers:
        if name == b"content-length":
            return int(value)
    return -1
