"""The supervisor: `rootserve -w N` runs N worker processes on sockets the parent holds.

How this works. The parent binds every socket first (cli.py) and keeps them open for its
whole life; each worker is a fresh interpreter (multiprocessing's spawn) that imports the
app itself, receives the listening sockets and serves them with `server.worker.Server`.
A worker that dies or is replaced never makes the port refuse a connection: the sockets
stay open in the parent, so connections wait in the kernel's backlog until a worker
accepts them (a server that re-binds per worker refuses them meanwhile).

Signal handlers only enqueue the signal; one loop in the parent waits, without polling, on
the workers' process sentinels, their readiness pipes and the signal wake-up pipe, and
dispatches:
- a worker that exits is replaced at once, with a growing delay while workers keep dying
  before they get ready; a worker that exits with EXIT_APP before it was ready (its app
  cannot start), or too many failed starts in a row, ends the server with EXIT_APP;
- TERM or INT: each worker gets TERM and drains (server/worker.py: open requests finish,
  keep-alive connections are told to close, WebSockets get 1012, all within
  --timeout-graceful); the parent waits for them and exits 0; a second TERM or INT, or
  QUIT, stops the workers at once (KILL);
- HUP: a rolling restart. One new worker starts; once it is ready (its lifespan startup
  done), one old worker drains, and the next new one starts, until every worker is new:
  the new code serves before the old stops, so no request fails. A new worker that
  cannot start (its code does not import, its startup fails) stops the roll, and the old
  workers go on serving; one line says why;
- TTIN / TTOU: one worker more, or one fewer (the youngest drains).
"""

from __future__ import annotations

import contextlib
import faulthandler
import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection as Pipe
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from typing import Any, Final

from rootserve.config import Config
from rootserve.exit_codes import EXIT_APP, EXIT_OK
from rootserve.loading import AppLoadError, load_configured_app
from rootserve.observe.logs import setup_logging
from rootserve.server.worker import Server

__all__ = ["Arbiter", "worker_main"]

logger = logging.getLogger("rootserve.error")

MAX_FAILED_STARTS: Final = 5  # workers in a row that die before they are ready
BACKOFF_SECONDS: Final = (0.0, 0.1, 0.5, 1.0, 2.0)  # before each respawn, by failed starts
KILL_AFTER_GRACE_SECONDS: Final = 5.0  # past --timeout-graceful, before KILL
_HANDLED: Final = (
    signal.SIGHUP,
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGQUIT,
    signal.SIGTTIN,
    signal.SIGTTOU,
)
_READY: Final = b"ready"
STACKS_SIGNAL: Final = signal.SIGUSR1  # a worker writes its threads' stacks to stderr
STACKS_WAIT_SECONDS: Final = 1.0  # for the stacks to be written before the kill


def worker_main(
    config: Config, sockets: list[socket.socket], ready: Pipe, supervisor: Pipe, beat: Pipe
) -> None:
    """A worker process: import the app, serve the inherited sockets, exit with the code.
    `supervisor` is a pipe the parent never writes to: its end of file means the parent is
    gone (killed, say), and the worker drains and exits rather than serve unsupervised."""
    setup_logging(config.log_level, with_pid=True)
    try:
        app, interface = load_configured_app(
            config.app, factory=config.factory, app_dir=config.app_dir, interface=config.interface
        )
    except AppLoadError as exc:
        logger.error("%s", exc)
        raise SystemExit(EXIT_APP) from None
    server = Server(config, app, sockets, interface=interface, multiprocess=True)
    server.stop_signals = (signal.SIGTERM,)
    # The heartbeat: a byte on every pass of the loop's reaper. Never blocking: a parent
    # that reads late must not stop the loop it watches.
    beat_fd = beat.fileno()
    os.set_blocking(beat_fd, False)

    def heartbeat() -> None:
        with contextlib.suppress(BlockingIOError, BrokenPipeError):
            os.write(beat_fd, b".")

    server.heartbeat = heartbeat
    # A hung worker's stacks: the supervisor sends this signal before it kills it.
    faulthandler.register(STACKS_SIGNAL, all_threads=True)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # CTRL+C reaches the whole group

    def report_ready() -> None:
        if server.started.wait() and not server.stopped.is_set():
            with contextlib.suppress(OSError):
                ready.send_bytes(_READY)

    def watch_supervisor() -> None:
        with contextlib.suppress(EOFError, OSError):
            supervisor.recv_bytes()
        if not server.stopped.is_set():
            logger.warning("The supervisor is gone: stopping")
            server.request_stop()

    threading.Thread(target=report_ready, name="rootserve-ready", daemon=True).start()
    threading.Thread(target=watch_supervisor, name="rootserve-watch", daemon=True).start()
    raise SystemExit(server.run())


@dataclass(eq=False)
class _Worker:
    process: BaseProcess
    ready_pipe: Pipe
    alive_pipe: Pipe  # never written: the worker sees its end of file if we die
    beat_pipe: Pipe  # a byte from the worker's loop at every reaper pass
    last_beat: float = field(default_factory=time.monotonic)
    ready: bool = False
    stopping: bool = False
    rolling: bool = False  # started by a rolling restart, not ready yet
    hung: bool = False  # found hung and killed: replaced once it is reaped


@dataclass(eq=False)
class Arbiter:
    """Keep `config.workers` workers serving `sockets` until told to stop."""

    config: Config
    sockets: list[socket.socket]
    workers: list[_Worker] = field(default_factory=list)
    _signals: deque[int] = field(default_factory=deque)
    _failed_starts: int = 0
    _exit_code: int = EXIT_OK
    _stopping: bool = False
    _deadline: float = float("inf")  # once stopping: when the workers left are killed
    _to_retire: list[_Worker] = field(default_factory=list)  # old workers of a roll

    def run(self) -> int:
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        previous = {sig: signal.signal(sig, self._enqueue) for sig in _HANDLED}
        old_wakeup = signal.set_wakeup_fd(wake_w)
        try:
            self._banner()
            for _ in range(self.config.workers):
                self._spawn()
            self._loop(wake_r)
        finally:
            signal.set_wakeup_fd(old_wakeup)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            os.close(wake_r)
            os.close(wake_w)
        return self._exit_code

    # -- the one loop -------------------------------------------------------------------

    def _enqueue(self, sig: int, frame: Any) -> None:
        self._signals.append(sig)  # only enqueue: the loop acts on it

    def _loop(self, wake_r: int) -> None:
        while self.workers:
            waitables: list[Any] = [wake_r]
            for worker in self.workers:
                waitables += (worker.process.sentinel, worker.beat_pipe)
                if not worker.ready:
                    waitables.append(worker.ready_pipe)
            for ready in wait(waitables, self._next_timeout()):
                if ready == wake_r:
                    os.read(wake_r, 512)
            self._read_beats()
            while self._signals:
                self._on_signal(self._signals.popleft())
            self._check_ready()
            self._check_hung()
            self._reap()
            if self._stopping and time.monotonic() >= self._deadline:
                for worker in self.workers:
                    if worker.process.is_alive():
                        logger.warning(
                            "Worker %d still running after the graceful time: killing it",
                            worker.process.pid,
                        )
                        worker.process.kill()
                self._deadline = float("inf")

    def _next_timeout(self) -> float | None:
        """Seconds until something is due: the graceful deadline, or a health check."""
        due = self._deadline if self._stopping else float("inf")
        limit = self.config.timeout_worker_healthcheck
        if limit and not self._stopping:
            for worker in self.workers:
                if worker.ready and not worker.stopping:
                    due = min(due, worker.last_beat + limit)
        return None if due == float("inf") else max(0.0, due - time.monotonic())

    def _read_beats(self) -> None:
        now = time.monotonic()
        for worker in self.workers:
            if worker.beat_pipe.poll():
                with contextlib.suppress(OSError):
                    os.read(worker.beat_pipe.fileno(), 4096)
                worker.last_beat = now

    def _check_hung(self) -> None:
        limit = self.config.timeout_worker_healthcheck
        if not limit or self._stopping:
            return
        now = time.monotonic()
        for worker in self.workers:
            silent = now - worker.last_beat
            if not worker.ready or worker.stopping or worker.hung or silent < limit:
                continue
            worker.hung = True
            logger.error(
                "Worker %d is hung: its event loop has not run for %.1fs "
                "(--timeout-worker-healthcheck %gs). Its threads' stacks follow; then it is "
                "killed and replaced. An ASGI app blocks its loop when it calls blocking "
                "code (time.sleep, a synchronous client) or computes for long without "
                "awaiting: await instead, or run it in a thread.",
                worker.process.pid,
                silent,
                limit,
            )
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.process.pid or 0, STACKS_SIGNAL)
            worker.process.join(STACKS_WAIT_SECONDS)  # the stacks are written meanwhile
            worker.process.kill()

    def _check_ready(self) -> None:
        for worker in self.workers:
            if not worker.ready and worker.ready_pipe.poll():
                with contextlib.suppress(EOFError, OSError):
                    worker.ready = worker.ready_pipe.recv_bytes() == _READY
                if worker.ready:
                    self._failed_starts = 0
                    logger.info("Worker %d ready", worker.process.pid)
                    if worker.rolling:
                        worker.rolling = False
                        self._roll_on()

    def _reap(self) -> None:
        for worker in [w for w in self.workers if not w.process.is_alive()]:
            self.workers.remove(worker)
            worker.process.join()
            worker.ready_pipe.close()
            worker.alive_pipe.close()
            worker.beat_pipe.close()
            code = worker.process.exitcode
            if worker.stopping or self._stopping:
                continue
            if worker.rolling:
                logger.error(
                    "Rolling restart stopped: new worker %d exited with %s before it was ready "
                    "(see its error above); the %d old worker(s) go on serving",
                    worker.process.pid,
                    code,
                    len(self._to_retire),
                )
                self._to_retire.clear()
                continue
            if not worker.ready:
                self._failed_starts += 1
                if code == EXIT_APP or self._failed_starts >= MAX_FAILED_STARTS:
                    logger.error(
                        "Worker %d exited with %s before it was ready (%d failed start(s) in "
                        "a row): stopping (fix the app's import or startup)",
                        worker.process.pid,
                        code,
                        self._failed_starts,
                    )
                    self._exit_code = EXIT_APP
                    self._stop(signal.SIGTERM)
                    return
            logger.warning("Worker %d exited with %s; starting another", worker.process.pid, code)
            delay = BACKOFF_SECONDS[min(self._failed_starts, len(BACKOFF_SECONDS) - 1)]
            if delay:
                time.sleep(delay)  # a worker that keeps dying must not spin the parent
            self._spawn()

    # -- signals --------------------------------------------------------------------------

    def _on_signal(self, sig: int) -> None:
        name = signal.Signals(sig).name
        if sig in (signal.SIGTERM, signal.SIGINT):
            if self._stopping:
                logger.warning("Second %s: stopping the workers now", name)
                self._stop(signal.SIGKILL)
            else:
                logger.info("%s: draining %d worker(s)", name, len(self.workers))
                self._stop(signal.SIGTERM)
        elif sig == signal.SIGHUP and not self._stopping:
            if self._to_retire:
                logger.info("HUP: a rolling restart is under way already")
            else:
                self._to_retire = [w for w in self.workers if not w.stopping]
                logger.info("HUP: restarting %d worker(s), one at a time", len(self._to_retire))
                self._spawn(rolling=True)
        elif sig == signal.SIGQUIT:
            logger.warning("QUIT: stopping the workers now")
            self._stop(signal.SIGKILL)
        elif sig == signal.SIGTTIN and not self._stopping:
            self._spawn()
            logger.info("TTIN: %d worker(s)", self._serving())
        elif sig == signal.SIGTTOU and not self._stopping and self._serving() > 1:
            youngest = [w for w in self.workers if not w.stopping][-1]
            youngest.stopping = True
            with contextlib.suppress(ProcessLookupError):
                os.kill(youngest.process.pid or 0, signal.SIGTERM)
            logger.info("TTOU: %d worker(s)", self._serving())

    def _serving(self) -> int:
        return sum(1 for w in self.workers if not w.stopping)

    def _stop(self, sig: int) -> None:
        if not self._stopping:
            self._stopping = True
            self._deadline = time.monotonic() + (
                (self.config.timeout_graceful or 24 * 3600.0) + KILL_AFTER_GRACE_SECONDS
            )
        for worker in self.workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.process.pid or 0, sig)

    # -- workers --------------------------------------------------------------------------

    def _roll_on(self) -> None:
        """A new worker of a rolling restart is ready: retire one old worker, and start the
        next new one while old ones are left."""
        while self._to_retire:
            old = self._to_retire.pop(0)
            if old in self.workers and not old.stopping:
                old.stopping = True
                with contextlib.suppress(ProcessLookupError):
                    os.kill(old.process.pid or 0, signal.SIGTERM)
                break
        if self._to_retire:
            self._spawn(rolling=True)
        else:
            logger.info("Rolling restart done: %d worker(s)", self._serving())

    def _spawn(self, *, rolling: bool = False) -> None:
        context = multiprocessing.get_context("spawn")
        ready_r, ready_w = context.Pipe(duplex=False)
        alive_r, alive_w = context.Pipe(duplex=False)
        beat_r, beat_w = context.Pipe(duplex=False)
        process = context.Process(
            target=worker_main,
            args=(self.config, self.sockets, ready_w, alive_r, beat_w),
            name="rootserve-worker",
            daemon=False,
        )
        process.start()
        ready_w.close()  # the worker holds the other ends
        alive_r.close()
        beat_w.close()
        self.workers.append(_Worker(process, ready_r, alive_w, beat_r, rolling=rolling))

    def _banner(self) -> None:
        logger.info(
            "Supervisor %d: %d worker(s), app %s, loop %s",
            os.getpid(),
            self.config.workers,
            self.config.app or "(the built-in demo)",
            self.config.loop,
        )
