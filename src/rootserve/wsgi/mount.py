"""`WSGIMount`: a WSGI app inside an ASGI app, served by rootserve's WSGI adapter.

The WSGI call is the same `WSGICall` the server uses (environ rules, start_response checks,
close() on every path) on the same kind of app threads; only the way out differs: each part
of the response becomes an ASGI message, and the app thread waits until `send()` has taken
it, so a slow client holds the thread, not memory. The request body is read whole before the
app is called (bounded by the server's --max-body-size), which suits the small mounted apps
this is for; a WSGI app that streams large uploads should be served by rootserve directly.
Under --trace, the WSGI call is traced into the block of the ASGI request it serves.
"""

from __future__ import annotations

import asyncio
import io
from typing import Any

from rootserve.observe.trace import current, traced_wsgi_call
from rootserve.protocol.events import Request
from rootserve.types import Receive, Scope, Send, SendMessage, WSGIApp
from rootserve.wsgi.call import FileWrapper, WSGICall
from rootserve.wsgi.environ import base_environ, build_environ
from rootserve.wsgi.threads import AppThreads

__all__ = ["WSGIMount"]


class _ASGIOutput:
    """The app thread's way out: ASGI messages sent on the loop, one at a time."""

    def __init__(self, send: Send, loop: asyncio.AbstractEventLoop, describe: str) -> None:
        self._send = send
        self._loop = loop
        self._describe = describe
        self.disconnected = False
        self.failed = False

    async def _sending(self, message: SendMessage) -> None:
        await self._send(message)

    def _message(self, message: SendMessage) -> None:
        future = asyncio.run_coroutine_threadsafe(self._sending(message), self._loop)
        try:
            future.result()
        except OSError:
            self.disconnected = True  # the client went away (ASGI spec 2.4: send raises)

    def _start(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        # The ASGI spec ("Response Start") asks for lowercase names; WSGI's are as written.
        lowered = [(name.lower(), value) for name, value in headers]
        self._message({"type": "http.response.start", "status": status, "headers": lowered})

    def hand_whole(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self._start(status, headers)
        self._message({"type": "http.response.body", "body": body})

    def hand_head(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self._start(status, headers)
        self.hand_chunk(body)

    def hand_chunk(self, body: bytes) -> None:
        self._message({"type": "http.response.body", "body": body, "more_body": True})

    def hand_end(self) -> None:
        self._message({"type": "http.response.body", "body": b""})

    def hand_error(self, sent: bool) -> None:
        if sent:
            self.failed = True  # the ASGI call raises, and the server cuts the connection
        else:
            body = b"Internal Server Error\n"
            headers = [(b"content-type", b"text/plain; charset=utf-8")]
            self.hand_whole(500, headers, body)

    def hand_nothing(self) -> None:
        return None

    def can_send_file(self) -> bool:
        return False

    def hand_file(self, status: int, headers: list[tuple[bytes, bytes]], file: Any) -> None:
        raise RuntimeError("a mounted WSGI app sends its files through send()")

    def describe(self) -> str:
        return self._describe


class _Job:
    def __init__(self, call: WSGICall, app: WSGIApp, environ: Any, done: Any, loop: Any) -> None:
        self.call, self.app, self.environ, self.done, self.loop = call, app, environ, done, loop

    def run(self) -> None:
        try:
            self.call.run(self.app, self.environ)
        finally:
            self.loop.call_soon_threadsafe(_set_done, self.done)


def _set_done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class WSGIMount:
    """An ASGI app that serves `app` (WSGI) on `threads` app threads of its own."""

    def __init__(self, app: WSGIApp, *, threads: int = 4) -> None:
        self.app = app
        self.threads = threads
        self._pool: AppThreads | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # lifespan belongs to the app this is mounted in
        if self._pool is None:
            self._pool = AppThreads(self.threads, name="rootserve-mount")
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # http.disconnect: the client is gone
            body += message["body"]
            if not message.get("more_body", False):
                break
        root_path: str = scope.get("root_path", "")
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode("utf-8")
        prefix = root_path.encode("utf-8")
        if prefix and raw_path.startswith(prefix):
            raw_path = raw_path[len(prefix) :]
        query: bytes = scope.get("query_string", b"")
        target = raw_path + (b"?" + query if query else b"")
        request = Request(
            scope["method"],
            target,
            raw_path or b"/",
            query,
            scope.get("http_version", "1.1"),
            list(scope["headers"]),
            True,
        )
        environ = build_environ(
            base_environ(
                root_path=root_path,
                scheme=scope.get("scheme", "http"),
                multiprocess=False,
                file_wrapper=FileWrapper,
            ),
            request,
            scope.get("server"),
            scope.get("client"),
            io.BytesIO(bytes(body)),
        )
        loop = asyncio.get_running_loop()
        out = _ASGIOutput(send, loop, f"{scope['method']} {scope['path']}")
        done: asyncio.Future[None] = loop.create_future()
        app = self.app
        block = current()
        if block is not None:  # --trace: the WSGI side of this request, in its block

            def app(environ: Any, start_response: Any) -> Any:
                return traced_wsgi_call(self.app, environ, start_response, block, nested=True)

        self._pool.submit(_Job(WSGICall(out), app, environ, done, loop))
        await done
        if out.failed:
            raise RuntimeError("the mounted WSGI app failed after its response had started")
