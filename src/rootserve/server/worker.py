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
With --ssl-certfile every socket serves TLS (server/tls.py), and a server running on its
own re-reads the certificate on SIGHUP.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, Final, cast

from rootserve.asgi._websocket_close import CLOSE_TIMEOUT
from rootserve.asgi.lifespan import Lifespan, LifespanFailed, NullLifespan
from rootserve.config import Config
from rootserve.exit_codes import EXIT_APP, EXIT_OK
from rootserve.server.assembly import build_runners
from rootserve.server.connection import Connection
from rootserve.server.reaper import MAX_TICK, Reaper, RetireLimits, no_heartbeat, tick
from rootserve.server.state import ServerState
from rootserve.server.tls import ServerContext, make_context

__all__ = ["RetireLimits", "Server", "new_event_loop"]

logger = logging.getLogger("rootserve.error")

CLOSE_FLUSH_SECONDS: Final = 2.0  # at the end of a stop, for closing connections to flush
CANCEL_GRACE: Final = 5.0  # after a stop cancels ASGI requests, for their cleanup to run


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


def describe(sock: socket.socket, *, tls: bool = False) -> str:
    name = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        return f"unix:{name}" + " (TLS)" * tls
    scheme = "https" if tls else "http"
    if sock.family == socket.AF_INET6:
        return f"{scheme}://[{name[0]}]:{name[1]}"
    return f"{scheme}://{name[0]}:{name[1]}"


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
        announce: bool = True,
    ) -> None:
        self.config = config
        self.app = app
        self.interface = interface
        self.multiprocess = multiprocess
        self.announce = announce  # the "Listening on" lines (not for the metrics port)
        self.sockets = sockets
        self.addresses: list[str] = []
        self.loop_name = ""  # "uvloop" or "asyncio", once serving
        self.last_pass = time.monotonic()  # the reaper's last pass: the loop runs
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tls: ServerContext | None = None  # once serving, with --ssl-certfile
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
        self.heartbeat: Callable[[], None] = no_heartbeat
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

    @property
    def draining(self) -> bool:
        """A stop was asked for (the server may still serve, for --shutdown-delay)."""
        stop = self._stop
        return stop is not None and stop.is_set()

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
        try:
            # Before the app's startup: a worker whose certificate cannot load serves nothing.
            self._tls = make_context(config)  # None: plain HTTP (cli.py checked the settings)
        except ValueError as exc:
            logger.error("%s", exc)
            self.exit_code = EXIT_APP
            return self.exit_code
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
        runner, websocket = build_runners(
            config, self.app, self.interface, lifespan.state, loop, multiprocess=self.multiprocess
        )
        state = ServerState.from_config(config, runner=runner, websocket=websocket, loop=loop)
        servers: list[asyncio.Server] = []
        tls: dict[str, Any] = {}
        if self._tls is not None:
            # The handshake comes before the request's head: it gets the header's time.
            tls = {"ssl": self._tls, "ssl_handshake_timeout": config.timeout_header or None}

        def connect() -> asyncio.BaseProtocol:
            # An asyncio protocol by its methods, not by its class: mypyc compiles Connection
            # as a native class, which cannot derive from asyncio.Protocol's Python class.
            return cast(asyncio.BaseProtocol, Connection(state))

        for sock in self.sockets:
            if sock.family == socket.AF_UNIX:
                srv = await loop.create_unix_server(
                    connect, sock=sock, backlog=config.backlog, **tls
                )
            else:
                srv = await loop.create_server(connect, sock=sock, backlog=config.backlog, **tls)
            servers.append(srv)
            self.addresses.append(describe(sock, tls=bool(tls)))
        self._install_signal_handlers(loop)
        limits = RetireLimits.from_config(config)
        beat = self.heartbeat
        metrics = state.metrics

        def on_pass() -> None:
            """At each reaper pass: prove the loop runs, publish the metrics, check the
            retirement limits."""
            self.last_pass = time.monotonic()
            beat()
            if metrics.enabled:
                metrics.flush(
                    len(state.running),
                    len(state.connections),
                    len(state.sessions),
                    state.received,
                )
            nonlocal limits
            if limits is not None and not state.shutting_down:
                why = limits.reached(state.requests)
                if why is not None:
                    limits = None  # once: the retirement is under way
                    self.on_limit(why)

        reaper = Reaper(state, tick(config), on_pass)
        reaper.start()
        if self.announce and not self.multiprocess:  # (a supervisor says it for all)
            logger.info(
                "Serving %s (%s, loop %s)",
                config.app or "the built-in demo app",
                self.interface.upper(),
                self.loop_name,
            )
        for address in self.addresses if self.announce else ():
            logger.info("Listening on %s (press CTRL+C to stop)", address)
        if threading.current_thread() is threading.main_thread():  # (not in a test's thread)
            # What exists now (the app, its imports, the server) lives as long as the
            # process: frozen, a full collection no longer scans it. Measured: a start-up
            # of 65,000 objects (FastAPI and Flask imported) took 75-80 ms per full
            # collection, a pause every request waits through (a slow-body test's p99 went
            # past 50 ms on it); frozen, under 1 ms.
            gc.freeze()
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
        graceful = self.config.timeout_graceful or None
        await state.arriving.wait_empty(graceful)  # each then runs, or closed unanswered
        if graceful is not None:
            graceful = max(0.0, started + graceful - state.loop.time())
        if not await running.wait_empty(graceful):
            logger.warning(
                "Cancelling %d request(s) still running after %.1fs of graceful shutdown",
                len(running),
                self.config.timeout_graceful,
            )
            for exchange in list(running):
                exchange.cancel()
            # A cancelled ASGI task gets a moment for its cleanup; a WSGI app thread cannot
            # be cancelled, so waiting for one would only overrun --timeout-graceful.
            await running.wait_empty(0 if self.interface == "wsgi" else CANCEL_GRACE)
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
        if self._hup_is_ours():
            loop.add_signal_handler(signal.SIGHUP, self._on_hup)

    def _remove_signal_handlers(self, loop: asyncio.AbstractEventLoop) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (*self.stop_signals, *self.restart_signals):
            loop.remove_signal_handler(sig)
        if self._hup_is_ours():
            loop.remove_signal_handler(signal.SIGHUP)

    def _hup_is_ours(self) -> bool:
        """Serving alone, HUP re-reads the TLS files (else it would end the process: its
        default action); a supervisor's worker takes HUP as its restart instead (its
        replacement loads the files afresh)."""
        return signal.SIGHUP not in (*self.stop_signals, *self.restart_signals)

    def _on_hup(self) -> None:
        if self._tls is not None:
            self._tls.reload()
        else:
            logger.info("HUP: nothing to reload (a rolling restart needs --workers)")

    def _on_signal(self, sig: int) -> None:
        assert self._stop is not None
        if self._stop.is_set():
            logger.warning("Second %s: stopping now", signal.Signals(sig).name)
            for task in asyncio.all_tasks():
                task.cancel()
            return
        self.restarting = sig in self.restart_signals
        self._stop.set()
