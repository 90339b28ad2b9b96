"""A worker: one event loop serving an ASGI app on sockets it was handed.

How this works. `Server.serve()` runs lifespan startup, starts listening on the given
sockets (bound by the caller, so a supervisor can share them across workers), logs one
"Listening on ..." line per socket (the readiness signal tests and operators wait for) and
waits for a stop request (SIGINT/SIGTERM, or `request_stop()`). Then it stops accepting,
closes idle connections and WebSockets (1012), gives requests and sessions in progress
`timeout_graceful` seconds, cancels what is left, lets closing handshakes finish, and runs
lifespan shutdown. A reaper runs a few times a second and closes
connections whose deadline (keep-alive idle or header read) has passed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import threading
from collections.abc import Callable
from typing import Any, Final

from rootserve.asgi._websocket_session import CLOSE_TIMEOUT
from rootserve.asgi.http import ASGIRunner
from rootserve.asgi.lifespan import Lifespan, LifespanFailed, NullLifespan
from rootserve.asgi.websocket import WebSocketRunner, WSConfig
from rootserve.config import Config
from rootserve.exit_codes import EXIT_APP, EXIT_OK
from rootserve.server.connection import Connection
from rootserve.server.state import Runner, ServerState
from rootserve.wsgi.runner import WSGIRunner

__all__ = ["Server", "new_event_loop"]

logger = logging.getLogger("rootserve.error")

MAX_TICK: Final = 1.0  # seconds between reaper passes, at most
CLOSE_FLUSH_SECONDS: Final = 2.0  # at the end of a stop, for closing connections to flush


def new_event_loop(kind: str) -> asyncio.AbstractEventLoop:
    """uvloop when asked for or, with `auto`, when importable; else asyncio's loop."""
    if kind in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if kind == "uvloop":
                raise
        else:
            loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
            return loop
    return asyncio.new_event_loop()


def describe(sock: socket.socket) -> str:
    name = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        return f"unix:{name}"
    if sock.family == socket.AF_INET6:
        return f"http://[{name[0]}]:{name[1]}"
    return f"http://{name[0]}:{name[1]}"


class Server:
    """Serve `app` on `sockets` until asked to stop."""

    def __init__(
        self,
        config: Config,
        app: Any,
        sockets: list[socket.socket],
        *,
        interface: str = "asgi",
        multiprocess: bool = False,
    ) -> None:
        self.config = config
        self.app = app
        self.interface = interface
        self.multiprocess = multiprocess
        self.sockets = sockets
        self.addresses: list[str] = []
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # The signals that ask for a graceful stop (a supervisor's worker takes only TERM:
        # CTRL+C reaches the supervisor, which drains its workers once).
        self.stop_signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)
        # Called on the loop at every reaper pass (at most MAX_TICK apart): a supervisor's
        # worker proves with it that its loop is alive (supervisor/arbiter.py).
        self.heartbeat: Callable[[], None] = _no_heartbeat
        self.started = threading.Event()  # set once listening: for tests and embedding
        self.stopped = threading.Event()  # set once serve() has returned
        self.exit_code = EXIT_OK

    def run(self) -> int:
        """Run on a new event loop in this thread; return the exit code."""
        loop = new_event_loop(self.config.loop)
        try:
            return loop.run_until_complete(self.serve())
        except asyncio.CancelledError:
            return self.exit_code  # a second CTRL+C cancelled everything
        finally:
            loop.close()
            self.stopped.set()

    def request_stop(self) -> None:
        """Ask for a graceful stop; safe to call from any thread."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            # RuntimeError: the loop closed in between, so the server has stopped already.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop.set)

    async def serve(self) -> int:
        config = self.config
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._stop = asyncio.Event()
        lifespan: Lifespan | NullLifespan
        if config.lifespan == "off" or self.interface == "wsgi":
            lifespan = NullLifespan()  # WSGI has no lifespan
        else:
            lifespan = Lifespan(self.app, required=config.lifespan == "on")
        try:
            await lifespan.startup()
        except LifespanFailed as exc:
            logger.error("%s (fix the app's startup, or pass --lifespan off)", exc)
            self.exit_code = EXIT_APP
            return self.exit_code
        root_path = config.root_path.rstrip("/")
        runner: Runner
        if self.interface == "wsgi":
            runner = WSGIRunner(
                self.app,
                threads=config.threads,
                root_path=root_path,
                multiprocess=self.multiprocess,
                loop=loop,
            )
        else:
            runner = ASGIRunner(self.app, root_path=root_path, state=lifespan.state, loop=loop)
        websocket = None
        if self.interface != "wsgi" and config.ws != "off":
            websocket = WebSocketRunner(
                self.app,
                root_path=root_path,
                state=lifespan.state,
                loop=loop,
                config=WSConfig.from_config(config),
            )
        state = ServerState.from_config(config, runner=runner, websocket=websocket, loop=loop)
        servers: list[asyncio.Server] = []
        for sock in self.sockets:
            if sock.family == socket.AF_UNIX:
                srv = await loop.create_unix_server(
                    lambda: Connection(state), sock=sock, backlog=config.backlog
                )
            else:
                srv = await loop.create_server(
                    lambda: Connection(state), sock=sock, backlog=config.backlog
                )
            servers.append(srv)
            self.addresses.append(describe(sock))
        self._install_signal_handlers(loop)
        reaper = _Reaper(state, _tick(config), self.heartbeat)
        reaper.start()
        for address in self.addresses:
            logger.info("Listening on %s (press CTRL+C to stop)", address)
        self.started.set()
        try:
            await self._stop.wait()
            if config.shutdown_delay:
                # A load balancer (or Kubernetes, after a pod is marked terminating) still
                # sends for a while: keep serving, then drain. A second signal cuts it short.
                logger.info("Stop requested: serving %.1fs more first", config.shutdown_delay)
                await asyncio.sleep(config.shutdown_delay)
        finally:
            logger.info("Shutting down")
            await self._shutdown(state, servers)
            reaper.stop()
            await runner.aclose()
            await lifespan.shutdown()
            self._remove_signal_handlers(loop)
        return self.exit_code

    async def _shutdown(self, state: ServerState, servers: list[asyncio.Server]) -> None:
        state.shutting_down = True
        started = state.loop.time()
        for srv in servers:
            srv.close()
        for conn in list(state.connections):
            conn.shutdown()
        running = state.running
        if not await running.wait_empty(self.config.timeout_graceful or None):
            logger.warning(
                "Cancelling %d request(s) still running after %.1fs of graceful shutdown",
                len(running),
                self.config.timeout_graceful,
            )
            for exchange in list(running):
                exchange.cancel()
            await running.wait_empty(5)
        # WebSockets whose closing handshake is under way (RFC 6455 section 7.1.1) get what
        # is left of the graceful time; the reaper ends each CLOSE_TIMEOUT after its close
        # frame at the latest. The close frames are written already, so closing sends them.
        wait = CLOSE_TIMEOUT + 2 * MAX_TICK
        if self.config.timeout_graceful:
            wait = min(wait, max(0.0, started + self.config.timeout_graceful - state.loop.time()))
        await state.sessions.wait_empty(wait)
        for conn in list(state.connections):
            conn.close()
        # Closing is asynchronous: let the transports flush what they hold and close
        # before the loop stops, so no answer is cut off by a reset.
        await state.connections.wait_empty(CLOSE_FLUSH_SECONDS)

    def _install_signal_handlers(self, loop: asyncio.AbstractEventLoop) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # embedded in a thread (tests): stopped through request_stop()
        for sig in self.stop_signals:
            loop.add_signal_handler(sig, self._on_signal, sig)

    def _remove_signal_handlers(self, loop: asyncio.AbstractEventLoop) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in self.stop_signals:
            loop.remove_signal_handler(sig)

    def _on_signal(self, sig: int) -> None:
        assert self._stop is not None
        if self._stop.is_set():
            logger.warning("Second %s: stopping now", signal.Signals(sig).name)
            for task in asyncio.all_tasks():
                task.cancel()
            return
        self._stop.set()


def _tick(config: Config) -> float:
    timeouts = [
        t
        for t in (
            config.timeout_keep_alive,
            config.timeout_header,
            config.timeout_body,
            config.ws_ping_interval,
            config.ws_ping_timeout,
            # A supervisor's worker beats at each pass: four beats per health-check time.
            config.timeout_worker_healthcheck if config.workers else 0,
        )
        if t > 0
    ]
    return min([MAX_TICK, *(t / 4 for t in timeouts)])


def _no_heartbeat() -> None:
    return None


class _Reaper:
    """Closes connections whose deadline has passed; one pass per tick. Each pass also
    beats the heart: a supervisor's worker proves with it that its event loop runs."""

    def __init__(self, state: ServerState, tick: float, heartbeat: Callable[[], None]) -> None:
        self.state = state
        self.tick = tick
        self.heartbeat = heartbeat
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._handle = self.state.loop.call_later(self.tick, self._run)

    def _run(self) -> None:
        state = self.state
        now = state.loop.time()
        for conn in [c for c in state.connections if c.deadline <= now]:
            conn.on_deadline()
        # A switched connection's session (WebSocket) keeps its own time: pings, closes.
        for session in [s for s in state.sessions if s.deadline <= now]:
            session.on_deadline()
        self.heartbeat()
        self.start()

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
