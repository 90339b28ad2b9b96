"""The live inspector: a page of the demo app that shows, as they happen, the conversations
between the server and the app (what `--trace` writes), for requests made from the page or
from anywhere else, ASGI and WSGI alike.

How this works. `Inspector` wraps the demo's routes. `/inspector` is the page
(inspector.html); the page opens a WebSocket to `/inspector/feed`, which subscribes to the
`Hub`. While at least one page is subscribed, every other request and WebSocket session is
served through a `Tracer` (observe/trace.py) whose blocks, JSON objects, go to the hub; the
hub hands each block to every subscriber's queue and each feed session sends it to its
page, which draws it (a block of an HTTP/2 request carries its stream, which the page shows
beside the request). With no page open, requests go straight to the routes: tracing costs
them nothing. The inspector's own paths are never traced (a feed that traced itself would
feed itself).

A block may be written on an app thread (the WSGI side of a request, when a part is due),
so the hub moves it to the loop's thread first. A page that falls behind loses its oldest
blocks (its queue is bounded), never the server's memory.

The page is for a developer's own machine: it shows each request's headers, cookies
included, to whoever opens it, so it is part of the demo app only.
"""

from __future__ import annotations

import asyncio
import threading
from importlib import resources
from typing import Any, Final

from rootserve.observe.trace import Tracer
from rootserve.types import ASGIApp, Receive, Scope, Send

__all__ = ["FEED_PATH", "PAGE_PATH", "Hub", "Inspector"]

PAGE_PATH: Final = "/inspector"
FEED_PATH: Final = "/inspector/feed"
QUEUE_BLOCKS: Final = 256  # blocks a page may fall behind before its oldest are dropped


class Hub:
    """The subscribed pages' queues, and the way blocks reach them from any thread."""

    def __init__(self) -> None:
        self.queues: set[asyncio.Queue[str]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0

    def subscribe(self) -> asyncio.Queue[str]:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        queue: asyncio.Queue[str] = asyncio.Queue(QUEUE_BLOCKS)
        self.queues.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[str]) -> None:
        self.queues.discard(queue)

    def publish(self, block: str) -> None:
        """A written block (the tracer's sink): to every page, from whichever thread."""
        loop = self._loop
        if loop is None:
            return
        if threading.get_ident() == self._loop_thread:
            self._deliver(block)
        else:
            loop.call_soon_threadsafe(self._deliver, block)

    def _deliver(self, block: str) -> None:
        for queue in self.queues:
            if queue.full():
                queue.get_nowait()  # the oldest goes: a slow page must not hold memory
            queue.put_nowait(block)


class Inspector:
    """An ASGI app: `app`, plus the inspector's page and feed, tracing while a page watches."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.hub = Hub()
        self.traced = Tracer(fmt="json", sink=self.hub.publish).wrap(app, "asgi")
        self.page = resources.files(__package__).joinpath("inspector.html").read_bytes()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        path = scope.get("path", "")[len(scope.get("root_path", "")) :]
        if kind == "http" and path == PAGE_PATH:
            await _page(send, self.page)
        elif kind == "websocket" and path == FEED_PATH:
            await self._feed(receive, send)
        elif self.hub.queues and kind != "lifespan" and not path.startswith(PAGE_PATH):
            await self.traced(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _feed(self, receive: Receive, send: Send) -> None:
        """One page's feed: each block as a text message, until the page goes away."""
        if (await receive())["type"] != "websocket.connect":
            return
        await send({"type": "websocket.accept"})
        queue = self.hub.subscribe()
        client = asyncio.ensure_future(receive())
        block: asyncio.Future[str] | None = None
        try:
            while True:
                block = asyncio.ensure_future(queue.get())
                await asyncio.wait({client, block}, return_when=asyncio.FIRST_COMPLETED)
                if client.done():
                    if client.result()["type"] == "websocket.disconnect":
                        return
                    client = asyncio.ensure_future(receive())  # the page says nothing we use
                if block.done():
                    await send({"type": "websocket.send", "text": block.result()})
                else:
                    block.cancel()
        finally:
            self.hub.unsubscribe(queue)
            for waiting in (client, block):
                if waiting is not None and not waiting.done():
                    waiting.cancel()


async def _page(send: Send, page: bytes) -> None:
    headers: list[Any] = [
        (b"content-type", b"text/html; charset=utf-8"),
        # The page's script is its own, inline; nothing else may run or be fetched.
        (
            b"content-security-policy",
            b"default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'",
        ),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": page})
