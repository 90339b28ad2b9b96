"""What a server is made of, chosen once at start: the runners a request goes through.
Each optional part is a wrapper put in place only when its setting is on, so that a part
that is off costs the hot path nothing.

A request reaches, from the outside in: ForwardedRunner (--proxy-headers: the client as
the trusted proxies tell it, first, so that the access log and the app see the same
client), StaticRunner (--static: files answered before the app), then the app's runner
(ASGI or WSGI). Connections are of one class, `Connection`, whatever the settings: it reads
the few it needs (--metrics-bind, --http, --proxy-protocol) from ServerState, each on a
cold path but the byte count of --metrics-bind, one test per read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from rootserve.asgi.http import ASGIRunner
from rootserve.config import Config
from rootserve.protocol.exchange import Exchange
from rootserve.server.state import Runner

# The parts of a setting that is off by default (WSGI, --static, the proxy settings) are
# imported in the functions below when it is on: a plain start skips their modules (a
# tenth of the import time, python -X importtime; tests/test_startup_imports.py).

__all__ = ["WebSocketOnFirstUse", "build_runners"]


class WebSocketOnFirstUse:
    """The WebSocket runner, made at the first handshake: the websockets library and the
    session code are imported then, not at start. They were a fifth of the import time of
    a plain start (python -X importtime: about 40 ms, with the importlib.metadata that
    websockets imports); an app that takes no WebSocket never pays it, and the first
    handshake of each worker pays it once."""

    __slots__ = ("_make", "_runner")

    def __init__(self, make: Callable[[], Runner]) -> None:
        self._make = make
        self._runner: Runner | None = None

    def _made(self) -> Runner:
        if self._runner is None:
            self._runner = self._make()
        return self._runner

    def attach(self, exchange: Exchange) -> None:
        self._made().attach(exchange)

    def start(self, exchange: Exchange) -> None:
        self._made().start(exchange)

    async def aclose(self) -> None:
        if self._runner is not None:
            await self._runner.aclose()


def build_runners(
    config: Config,
    app: Any,
    interface: str,
    lifespan_state: dict[str, Any] | None,
    loop: asyncio.AbstractEventLoop,
    *,
    multiprocess: bool,
) -> tuple[Runner, Runner | None]:
    """The runner of HTTP requests, and of WebSocket handshakes (None: not served)."""
    root_path = config.root_path.rstrip("/")
    runner: Runner
    if interface == "wsgi":
        from rootserve.wsgi.runner import WSGIRunner

        runner = WSGIRunner(
            app, threads=config.threads, root_path=root_path, multiprocess=multiprocess, loop=loop
        )
    else:
        runner = ASGIRunner(app, root_path=root_path, state=lifespan_state, loop=loop)
    websocket: Runner | None = None
    if interface != "wsgi" and config.ws != "off":

        def make_websocket() -> Runner:
            from rootserve.asgi.websocket import WebSocketRunner, WSConfig

            return WebSocketRunner(
                app,
                root_path=root_path,
                state=lifespan_state,
                loop=loop,
                config=WSConfig.from_config(config),
            )

        websocket = WebSocketOnFirstUse(make_websocket)
    if config.static:  # (cli.py checked the values)
        from rootserve.server.static import StaticRunner, parse_static

        mounts = parse_static(config.static)
        runner = StaticRunner(runner, mounts, loop=loop)
        if websocket is not None:
            websocket = StaticRunner(websocket, mounts, loop=loop)
    if config.proxy_headers:
        from rootserve.protocol.forwarded import TrustedPeers
        from rootserve.server.proxied import ForwardedRunner

        trusted = TrustedPeers.from_settings(config.forwarded_allow_ips)
        runner = ForwardedRunner(runner, trusted)
        if websocket is not None:
            websocket = ForwardedRunner(websocket, trusted)
    return runner, websocket
