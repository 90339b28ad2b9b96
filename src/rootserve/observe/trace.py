"""`--trace`: the conversation between the server and the app, one block per request.

How this works. With --trace, the loaded app is wrapped once (`Tracer.wrap`, called where
the app is loaded, for the server, every worker and `rootserve.testing`): `_TracedASGI`
records the scope, every message `receive()` hands the app and every message it passes to
`send()`; `_TracedWSGI` (with _trace_wsgi.py) records the environ, the `start_response`
call, what the app reads from `wsgi.input`, each `write()`, each body chunk the server
takes from the iterable, and `close()`. Each step is an `Event` with its time in
milliseconds since the server called the app, kept in a `Block` that is written when the
call ends. A long conversation is written in parts as it goes: a WebSocket session or
lifespan each time the app waits in `receive()` for the other side, and any conversation
once a step of it has waited unwritten for a second (with the steps after it), so that a
chat or an endless stream shows while it happens.

Without --trace nothing is wrapped: the server runs exactly the code it runs when the
setting does not exist, which is how tracing that is off costs nothing (`make bench`
measures it).

The head line of an HTTP/2 request's block names its stream (`h2 stream 3`), and a JSON
block has it as `stream`: the scope's `rootserve.http2` extension says which (for a WSGI
app, the environ key of that name).

A WSGI app mounted inside an ASGI app (`rootserve.wsgi.mount.WSGIMount`) is shown inside
the ASGI request's block: the ASGI wrapper leaves its block in a context variable, which the
mount reads (`current`) to trace the WSGI call into the same block.

Blocks go to the `rootserve.trace` logger, which setup_logging (logs.py) writes to stderr
as they are: coloured text on a terminal (not with NO_COLOR), plain text otherwise, or one
JSON object per block with --trace-format json.
"""

from __future__ import annotations

import contextvars
import fnmatch
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Final

from rootserve.config import Config
from rootserve.observe._trace_render import Event, outcome, render_json, render_text, snapshot
from rootserve.observe._trace_wsgi import environ_snapshot, traced_wsgi_call
from rootserve.observe.access import printable
from rootserve.observe.ids import request_id
from rootserve.observe.logs import JSON_LINE
from rootserve.protocol.exchange import STREAM_EXTENSION
from rootserve.types import ASGIApp, Receive, Scope, Send, WSGIApp, WSGIEnviron

__all__ = ["Block", "Tracer", "current", "traced_wsgi_call"]

logger = logging.getLogger("rootserve.trace")

_CURRENT: contextvars.ContextVar[Block | None] = contextvars.ContextVar(
    "rootserve_trace_block", default=None
)
# A step waiting unwritten longer than this is written, with those after it, as a part.
_PART_SECONDS: Final = 1.0
_PART_EVENTS: Final = 500  # and so is one with this many events waiting
# Scope types whose conversation waits on the other side for long: written at each wait.
_LONG_LIVED: Final = frozenset({"websocket", "lifespan"})


def current() -> Block | None:
    """The block of the ASGI request this code runs for, when it is traced."""
    return _CURRENT.get()


class Tracer:
    """Which conversations to trace, and how to write them."""

    def __init__(
        self,
        *,
        fmt: str = "text",
        paths: Iterable[str] = (),
        colour: bool = False,
        sink: Callable[[str], None] | None = None,
    ) -> None:
        self.json = fmt == "json"
        self.paths = tuple(paths)
        self.colour = colour and not self.json
        self.sink = sink if sink is not None else self._log

    @classmethod
    def from_config(cls, config: Config, sink: Callable[[str], None] | None = None) -> Tracer:
        colour = (
            sink is None
            and not config.log_config
            and "NO_COLOR" not in os.environ
            and sys.stderr.isatty()
        )
        return cls(fmt=config.trace_format, paths=config.trace_path, colour=colour, sink=sink)

    def _log(self, text: str) -> None:
        logger.info(text, extra={JSON_LINE: True} if self.json else None)

    def wants(self, path: str | None) -> bool:
        """Whether a conversation for `path` (None: lifespan, which has none) is traced."""
        if not self.paths:
            return True
        return path is not None and any(fnmatch.fnmatchcase(path, glob) for glob in self.paths)

    def wrap(self, app: Any, interface: str) -> Any:
        """`app`, traced: what --trace serves instead of it."""
        return _TracedASGI(app, self) if interface == "asgi" else _TracedWSGI(app, self)


class Block:
    """One conversation's events, written when it ends (or in parts: module docstring)."""

    def __init__(
        self, tracer: Tracer, fields: dict[str, Any], head: str, kind: str, value: Any
    ) -> None:
        self.tracer = tracer
        self.fields = fields  # what a JSON block says of the conversation
        self.head = head  # a text block's first line
        self.events = [Event(0.0, kind, value)]  # the scope or environ: the call's start
        self.started = time.perf_counter()
        self._oldest = self.started  # when the oldest step not yet written happened
        self._part = 0
        self._lock = threading.Lock()  # a mounted WSGI app adds events from its thread

    def add(self, kind: str, value: Any = None, *, note: str = "", nested: bool = False) -> None:
        now = time.perf_counter()
        event = Event((now - self.started) * 1000, kind, value, nested, note)
        with self._lock:
            if not self.events:
                self._oldest = now
            self.events.append(event)
            if now - self._oldest > _PART_SECONDS or len(self.events) >= _PART_EVENTS:
                self._write(final=False)

    def waiting(self) -> None:
        """The app waits for the other side: a long-lived conversation shows what it has
        (once there is more than its scope)."""
        if self.fields["type"] in _LONG_LIVED and len(self.events) > (self._part == 0):
            with self._lock:
                self._write(final=False)

    def close(self, kind: str, note: str) -> None:
        now = time.perf_counter()
        with self._lock:
            self.events.append(Event((now - self.started) * 1000, kind, None, False, note))
            self._write(final=True)

    def _write(self, *, final: bool) -> None:
        events, self.events = self.events, []
        self._part += 1
        tracer = self.tracer
        if tracer.json:
            fields = {**self.fields, "part": self._part, "final": final}
            tracer.sink(render_json(fields, events))
        else:
            head = self.head if self._part == 1 else f"{self.head} (continued)"
            tracer.sink(render_text(head, events, tracer.colour))


# -- ASGI ----------------------------------------------------------------------------------


class _TracedASGI:
    """The app, with each conversation it has recorded (scope, receive, send, its end)."""

    def __init__(self, app: ASGIApp, tracer: Tracer) -> None:
        self.app = app
        self.tracer = tracer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope.get("type")
        path = scope.get("path") if kind != "lifespan" else None
        if not self.tracer.wants(path):
            return await self.app(scope, receive, send)
        block = _asgi_block(self.tracer, scope)

        async def traced_receive() -> Any:
            block.waiting()
            try:
                message = await receive()
            except BaseException as exc:
                block.add("receive", note=f"raised {outcome(exc)}")
                raise
            block.add("receive", snapshot(message))
            return message

        async def traced_send(message: Any) -> None:
            block.add("send", snapshot(message))
            try:
                await send(message)
            except BaseException as exc:
                block.add("send", note=f"raised {outcome(exc)}")
                raise

        token = _CURRENT.set(block)
        try:
            result: object = await self.app(scope, traced_receive, traced_send)  # type: ignore[func-returns-value]
        except BaseException as exc:
            block.close("raised", outcome(exc))
            raise
        finally:
            _CURRENT.reset(token)
        block.close("returned", repr(result)[:80])
        return result  # type: ignore[return-value]  # the server logs an app's non-None


def _asgi_block(tracer: Tracer, scope: Scope) -> Block:
    kind = str(scope.get("type"))
    fields: dict[str, Any] = {"contract": "asgi", "type": kind}
    shown = snapshot(dict(scope))
    if kind == "lifespan":
        return Block(tracer, fields, "asgi lifespan", "scope", shown)
    headers = scope.get("headers") or ()
    fields["id"] = request_id(headers)
    fields["path"] = printable(str(scope.get("path", "")))
    if kind == "http":
        fields["method"] = printable(str(scope.get("method", "")))
        what = f"{fields['method']} {fields['path']}"
    else:
        what = fields["path"]
    head = f"asgi {kind} · {what} · id {fields['id']}"
    head += _stream(fields, (scope.get("extensions") or {}).get(STREAM_EXTENSION))
    return Block(tracer, fields, head, "scope", shown)


def _stream(fields: dict[str, Any], extension: Any) -> str:
    """An HTTP/2 request's stream (the scope's extension, or the environ key of that name),
    which tells apart the blocks of requests that ran side by side on one connection (the
    block's every message is that stream's): put in `fields`, and said in the head line."""
    if isinstance(extension, dict) and type(extension.get("stream_id")) is int:
        fields["stream"] = extension["stream_id"]
        return f" · h2 stream {fields['stream']}"
    return ""


# -- WSGI ----------------------------------------------------------------------------------


class _TracedWSGI:
    """The WSGI app, each call of it traced in a block of its own."""

    def __init__(self, app: WSGIApp, tracer: Tracer) -> None:
        self.app = app
        self.tracer = tracer

    def __call__(self, environ: WSGIEnviron, start_response: Callable[..., Any]) -> Any:
        path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        if not self.tracer.wants(path):
            return self.app(environ, start_response)
        method = printable(str(environ.get("REQUEST_METHOD", "")))
        given = environ.get("HTTP_X_REQUEST_ID")
        fields = {
            "contract": "wsgi",
            "type": "http",
            "id": request_id([(b"x-request-id", given.encode("latin-1"))] if given else ()),
            "method": method,
            "path": printable(path),
        }
        head = f"wsgi · {method} {fields['path']} · id {fields['id']}"
        head += _stream(fields, environ.get(STREAM_EXTENSION))
        block = Block(self.tracer, fields, head, "environ", environ_snapshot(environ))
        return traced_wsgi_call(self.app, environ, start_response, block, nested=False)
