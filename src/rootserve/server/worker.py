"""A worker: one event loop serving an ASGI app on sockets it was handed.

How this works. `Server.serve()` runs lifespan startup, starts listening on the given
sockets (bound by the caller, so a supervisor can share them across workers), logs one
"Listening on ..." line per socket (the readiness signal tests and operators wait for) and
waits for a stop request (SIGINT/SIGTERM, or `request_stop()`). Then it stops accepting,
closes idle connections and WebSockets (1001, or 1012 when it is a restart), gives
requests and sessions in progress `timeout_graceful` seconds, cancels what is left, lets
closing handshakes finish, and runs lifespan shutdown. A reaper runs a few times a second:
it closes connections whose deadline (keep-alive idle, header or body read) has passed,
beats a supervisor's heart and checks the retirement limits (RetireLimits).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from rootserve.asgi._websocket_session import CLOSE_TIMEOUT
from rootserve.asgi.http import ASGIRunner
from rootserve.asgi.lifespan import Lifespan, LifespanFailed, NullLifespan
from rootserve.asgi.websocket import WebSocketRunner, WSConfig
from rootserve.config import Config
from rootserve.exit_codes import EXIT_APP, EXIT_OK
from rootserve.observe.process import rss_bytes
from rootserve.server.connection import Connection
from rootserve.server.state import Runner, ServerState
from rootserve.wsgi.runner import WSGIRunner

__all__ = ["RetireLimits", "Server", "new_event_loop"]

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
        self.loop_name = ""  # "uvloop" or "asyncio", once serving
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # The signals that ask for a graceful stop (a supervisor's worker takes only TERM:
        # CTRL+C reaches the supervisor, which drains its workers once).
        self.stop_signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)
        # The signals that ask for a graceful stop because another process takes over (a
        # supervisor retiring this worker): WebSockets are told 1012, Service Restart,
        # rather than 1001, Going Away.
        self.restart_signals: tuple[int, ...] = ()
        self.restarting = False
        # Called on the loop at every reaper pass (at most MAX_TICK apart): a supervisor's
        # worker proves with it that its loop is alive (supervisor/arbiter.py).
        self.heartbeat: Callable[[], None] = _no_heartbeat
        # Called once when --limit-max-requests or --limit-worker-memory is reached, with
        # the reason: alone, the server stops (a process manager starts a fresh one); a
        # supervisor's worker asks instead to be replaced (supervisor/child.py).
        self.on_limit: Callable[[str], None] = self._stop_at_limit
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

    def request_stop(self, *, restart: bool = False) -> None:
        """Ask for a graceful stop; safe to call from any thread. `restart`: another
        process takes over (WebSockets get 1012 rather than 1001)."""
        self.restarting = self.restarting or restart
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            # RuntimeError: the loop closed in between, so the server has stopped already.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop.set)

    async def serve(self) -> int:
        config = self.config
        loop = asyncio.get_running_loop()
        self._loop = loop
        self.loop_name = type(loop).__module__.partition(".")[0]
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
        limits = RetireLimits.from_config(config)
        beat = self.heartbeat
        if limits is not None:

            def beat_and_check() -> None:
                beat()
                why = limits.reached(state.requests) if not state.shutting_down else None
                if why is not None:
                    reaper.on_pass = beat  # once: the retirement is under way
                    self.on_limit(why)

            reaper = _Reaper(state, _tick(config), beat_and_check)
        else:
            reaper = _Reaper(state, _tick(config), beat)
        reaper.start()
        if not self.multiprocess:  # (a supervisor says it once for all its workers)
            logger.info(
                "Serving %s (%s, loop %s)",
                config.app or "the built-in demo app",
                self.interface.upper(),
                self.loop_name,
            )
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
            logger.info("Shutting down%s", " (a new worker has taken over)" * self.restarting)
            await self._shutdown(state, servers)
            reaper.stop()
            await runner.aclose()
            await lifespan.shutdown()
            self._remove_signal_handlers(loop)
        return self.exit_code

    async def _shutdown(self, state: ServerState, servers: list[asyncio.Server]) -> None:
        state.shutting_down = True
        state.restarting = self.restarting
        started = state.loop.time()
        for srv in servers:
            srv.close()
        for conn in list(state.connections):
            conn.shutdown()
        running = state.running
        for exchange in list(running):
            exchange.receiver.server_stopping()
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

    def _stop_at_limit(self, why: str) -> None:
        logger.info("%s: stopping, for a process manager to start a fresh process", why)
        self.request_stop()

    def _install_signal_handlers(self, loop: asyncio.AbstractEventLoop) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # embedded in a thread (tests): stopped through request_stop()
        for sig in (*self.stop_signals, *self.restart_signals):
            loop.add_signal_handler(sig, self._on_signal, sig)

    def _remove_signal_handlers(self, loop: asyncio.AbstractEventLoop) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (*self.stop_signals, *self.restart_signals):
            loop.remove_signal_handler(sig)

    def _on_signal(self, sig: int) -> None:
        assert self._stop is not None
        if self._stop.is_set():
            logger.warning("Second %s: stopping now", signal.Signals(sig).name)
            for task in asyncio.all_tasks():
                task.cancel()
            return
        self.restarting = sig in self.restart_signals
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


@dataclass(frozen=True)
class RetireLimits:
    """When a worker has done enough: --limit-max-requests (plus a random share of
    --max-requests-jitter, drawn once per worker) and --limit-worker-memory."""

    max_requests: int  # 0: no limit
    max_rss: int  # bytes; 0: no limit

    @classmethod
    def from_config(cls, config: Config) -> RetireLimits | None:
        if not (config.limit_max_requests or config.limit_worker_memory):
            return None
        max_requests = config.limit_max_requests
        if max_requests and config.max_requests_jitter:
            max_requests += random.randint(0, config.max_requests_jitter)
        return cls(max_requests, config.limit_worker_memory * 1024 * 1024)

    def reached(self, requests: int) -> str | None:
        """Why this worker should retire now, or None."""
        if self.max_requests and requests >= self.max_requests:
            return (
                f"Served {requests} requests, the limit set for this process "
                f"(--limit-max-requests with --max-requests-jitter: {self.max_requests})"
            )
        if self.max_rss:
            rss = rss_bytes()
            if rss > self.max_rss:
                return (
                    f"Resident memory {rss / 2**20:.0f} MiB is over "
                    f"--limit-worker-memory {self.max_rss // 2**20} MiB"
                )
        return None


class _Reaper:
    """Closes connections whose deadline has passed; one pass per tick. Each pass also
    calls `on_pass`: a supervisor's worker beats its heart there, proving that its event
    loop runs, and the retirement limits are checked."""

    def __init__(self, state: ServerState, tick: float, on_pass: Callable[[], None]) -> None:
        self.state = state
        self.tick = tick
        self.on_pass = on_pass
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
        self.on_pass()
        self.start()

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
