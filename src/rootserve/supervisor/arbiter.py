"""The supervisor: `rootserve -w N` runs N worker processes on sockets the parent holds.

How this works. The parent binds every socket first (cli.py) and keeps them open while
it serves: each worker (child.py, a fresh interpreter) imports the app and accepts from
them, so a worker that dies or is replaced never makes the port refuse a connection.
Signal handlers and the --reload watcher only enqueue; one loop waits, without polling,
on the workers' sentinels and pipes and a wake-up pipe, and dispatches:
- a dead worker is replaced at once (with a growing delay while starts keep failing; an
  app that cannot start ends the server with EXIT_APP, or with --reload waits for a fix);
- TERM/INT: the workers drain (server/worker.py), exit 0; again, or QUIT: KILL;
- HUP, a --reload change, a retirement limit: one-at-a-time replacement (_replacing.py);
- a worker silent for --timeout-worker-healthcheck: its stacks written, killed, replaced;
- TTIN / TTOU: one worker more, or one fewer. docs/workers.md tells the whole story.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import time
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from typing import Any, Final

from rootserve.config import Config
from rootserve.exit_codes import EXIT_APP, EXIT_OK
from rootserve.observe.metrics import mark_process_dead, worker_restarts
from rootserve.server.probes import ProbeServer
from rootserve.server.worker import describe
from rootserve.supervisor._replacing import Replacing
from rootserve.supervisor.child import (
    NEVER,
    READY,
    RETIRE,
    STACKS_SIGNAL,
    WorkerHandle,
    start_worker,
)
from rootserve.supervisor.reload import Watcher

__all__ = ["Arbiter"]

logger = logging.getLogger("rootserve.error")

MAX_FAILED_STARTS: Final = 5  # workers in a row that die before they are ready
BACKOFF_SECONDS: Final = (0.0, 0.1, 0.5, 1.0, 2.0)  # before each respawn, by failed starts
KILL_AFTER_GRACE_SECONDS: Final = 5.0  # past --timeout-graceful, before KILL
STACKS_WAIT_SECONDS: Final = 1.0  # for a hung worker's stacks to be written before the kill
# USR1 and USR2 (gunicorn's "reopen the logs" and "upgrade the binary") are logged and
# ignored: logs go to stderr, and a logrotate script sending them must not end the server.
_HANDLED: Final = (
    *(signal.SIGHUP, signal.SIGTERM, signal.SIGINT, signal.SIGQUIT),
    *(signal.SIGTTIN, signal.SIGTTOU, signal.SIGUSR1, signal.SIGUSR2),
)


def _alive() -> str | None:
    return None  # the supervisor answers: it is alive (it replaces hung workers itself)


@dataclass(eq=False)
class Arbiter(Replacing):
    """Keep `config.workers` workers (one with --reload) serving `sockets` until told to
    stop."""

    config: Config
    sockets: list[socket.socket]
    metrics_sock: socket.socket | None = None  # --metrics-bind: the probes, served here
    workers: list[WorkerHandle] = field(default_factory=list)
    _events: deque[int | list[str]] = field(default_factory=deque)  # signals, file changes
    _wake_w: int = -1
    _failed_starts: int = 0
    _exit_code: int = EXIT_OK
    _stopping: bool = False
    _deadline: float = NEVER  # once stopping: when the workers left are killed
    _to_retire: list[WorkerHandle] = field(default_factory=list)  # waiting for a replacement
    _replacement: WorkerHandle | None = None  # the new worker starting now, one at a time
    _roll: str = ""  # why workers are being replaced ("HUP", "Reload"), if all of them
    _reload_pending: bool = False  # files changed while a roll was under way
    _respawns: int = 0  # workers owed, started at _respawn_at (a backoff)
    _respawn_at: float = NEVER
    _announced: bool = False
    _where: str = ""  # the sockets, described once: TERM closes them before the last log

    def __post_init__(self) -> None:
        tls = bool(self.config.ssl_certfile)
        self._where = ", ".join(describe(sock, tls=tls) for sock in self.sockets)

    _restarts: Any = None  # with --metrics-bind: the worker restarts counter

    def run(self) -> int:
        wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        previous = {sig: signal.signal(sig, self._enqueue) for sig in _HANDLED}
        old_wakeup = signal.set_wakeup_fd(self._wake_w)
        watcher = Watcher(self.config, self._changed) if self.config.reload else None
        probes = None
        if self.metrics_sock is not None:
            probes = ProbeServer(self.config, self.metrics_sock, self._not_ready, _alive)
            self._restarts = worker_restarts()
        try:
            if probes is not None:
                probes.start()
            logger.info(
                "Supervisor %d: starting %d worker(s) for %s on %s",
                os.getpid(),
                self._target(),
                self.config.app or "the built-in demo app",
                self._where,
            )
            if watcher is not None:
                watcher.start()
                logger.info("Reloading on changes in %s", ", ".join(map(str, watcher.roots)))
            for _ in range(self._target()):
                self._spawn()
            self._loop(wake_r)
        finally:
            if probes is not None:
                probes.stop()
            if watcher is not None:
                watcher.stop()
            signal.set_wakeup_fd(old_wakeup)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            os.close(wake_r)
            os.close(self._wake_w)
        return self._exit_code

    def _not_ready(self) -> str | None:
        """/readyz, from the probes' thread: ready while a worker serves and no stop was
        asked for (reads of attributes the loop sets: no lock needed under the GIL)."""
        if self._stopping:
            return "draining: a stop was asked for"
        if not any(w.ready and not w.stopping for w in list(self.workers)):
            return "no worker ready"
        return None

    def _count_restart(self, reason: str) -> None:
        if self._restarts is not None:
            self._restarts.labels(reason).inc()

    def _target(self) -> int:
        return max(self.config.workers, 1)

    # -- the one loop -------------------------------------------------------------------

    def _enqueue(self, sig: int, frame: Any) -> None:
        self._events.append(sig)  # only enqueue: the loop acts on it

    def _changed(self, paths: list[str]) -> None:
        """From the watcher's thread: enqueue, then wake the loop."""
        self._events.append(paths)
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_w, b"\0")

    def _loop(self, wake_r: int) -> None:
        # With --reload the supervisor waits for a change even with no worker left.
        while self.workers or self._respawns or (self.config.reload and not self._stopping):
            waitables: list[Any] = [wake_r]
            for worker in self.workers:
                waitables += (worker.process.sentinel, worker.beat_pipe)
                if not worker.ready:
                    waitables.append(worker.ready_pipe)
            if wake_r in wait(waitables, self._next_timeout()):
                os.read(wake_r, 512)
            self._read_beats()
            while self._events:
                event = self._events.popleft()
                if isinstance(event, list):
                    self._on_change(event)
                else:
                    self._on_signal(event)
            self._check_ready()
            self._check_hung()
            self._reap()
            now = time.monotonic()
            if self._respawns and now >= self._respawn_at and not self._stopping:
                for _ in range(self._respawns):
                    self._spawn()
                self._respawns, self._respawn_at = 0, NEVER
            if self._stopping and now >= self._deadline:
                for worker in self.workers:
                    if worker.process.is_alive():
                        logger.warning(
                            "Worker %d still running after the graceful time: killing it",
                            worker.pid,
                        )
                        worker.process.kill()
                self._deadline = NEVER

    def _next_timeout(self) -> float | None:
        """Seconds until something is due: a kill, a respawn, a health check."""
        due = min([self._deadline, self._respawn_at, *(w.kill_at for w in self.workers)])
        limit = self.config.timeout_worker_healthcheck
        if limit and not self._stopping:
            for worker in self.workers:
                if worker.ready and not worker.stopping:
                    due = min(due, worker.last_beat + limit)
        return None if due == NEVER else max(0.0, due - time.monotonic())

    def _read_beats(self) -> None:
        now = time.monotonic()
        for worker in self.workers:
            if worker.beat_pipe.poll():
                data = b""
                with contextlib.suppress(OSError):
                    data = os.read(worker.beat_pipe.fileno(), 4096)
                worker.last_beat = now
                if RETIRE in data and not (worker.stopping or self._stopping):
                    self._retire([worker])

    def _check_hung(self) -> None:
        now = time.monotonic()
        for worker in self.workers:
            if now >= worker.kill_at:
                worker.kill_at = NEVER
                worker.process.kill()
        limit = self.config.timeout_worker_healthcheck
        if not limit or self._stopping:
            return
        for worker in self.workers:
            silent = now - worker.last_beat
            if not worker.ready or worker.stopping or silent < limit:
                continue
            worker.stopping = True  # replaced once it is reaped, as if it had died
            worker.kill_at = now + STACKS_WAIT_SECONDS
            logger.error(
                "Worker %d is hung: its event loop has not run for %.1fs "
                "(--timeout-worker-healthcheck %gs). Its threads' stacks follow; then it is "
                "killed and replaced. An ASGI app blocks its loop when it calls blocking "
                "code (time.sleep, a synchronous client) or computes for long without "
                "awaiting: await instead, or run it in a thread.",
                worker.pid,
                silent,
                limit,
            )
            worker.signal(STACKS_SIGNAL)
            if not any(w.replacing is worker for w in self.workers):
                self._owe_respawn(0.0)  # (else the worker starting in its place takes it)
            self._count_restart("hung")

    def _check_ready(self) -> None:
        for worker in self.workers:
            if worker.ready or not worker.ready_pipe.poll():
                continue
            message = b""
            with contextlib.suppress(EOFError, OSError):
                message = worker.ready_pipe.recv_bytes()
            if not message.startswith(READY):
                continue
            worker.ready = True
            worker.last_beat = time.monotonic()
            self._failed_starts = 0
            how = message[len(READY) :].decode().strip()
            logger.info("Worker %d ready (%s)", worker.pid, how)
            if not self._announced:
                self._announced = True
                logger.info(
                    "Serving with %d worker(s), %s, on %s",
                    self._target(),
                    how,
                    self._where,
                )
            if worker is self._replacement:
                self._replacement = None
                old, worker.replacing = worker.replacing, None
                if old is not None and old in self.workers and not old.stopping:
                    old.stopping = True
                    old.signal(signal.SIGHUP)  # drain: a new worker has taken over
                self._replace_next()

    def _reap(self) -> None:
        for worker in [w for w in self.workers if not w.process.is_alive()]:
            self.workers.remove(worker)
            worker.process.join()
            for pipe in (worker.ready_pipe, worker.alive_pipe, worker.beat_pipe):
                pipe.close()
            if self._restarts is not None:
                mark_process_dead(worker.pid)  # its live gauges stop counting
            code = worker.process.exitcode
            if worker in self._to_retire:
                self._to_retire.remove(worker)
            if self._stopping or worker.stopping:
                continue  # drained as asked (a hung worker's respawn is owed already)
            if worker is self._replacement:
                self._replacement = None
                self._on_failed_replacement(worker, code)
                continue
            if any(w.replacing is worker for w in self.workers):
                # Died while its replacement starts: the replacement takes its place.
                for w in self.workers:
                    if w.replacing is worker:
                        w.replacing = None
                continue
            if not worker.ready:
                if self.config.reload:
                    logger.error(
                        "Worker %d exited with %s before it was ready (see its error above): "
                        "waiting for a change to the code",
                        worker.pid,
                        code,
                    )
                    continue
                self._failed_starts += 1
                if code == EXIT_APP or self._failed_starts >= MAX_FAILED_STARTS:
                    logger.error(
                        "Worker %d exited with %s before it was ready (%d failed start(s) in "
                        "a row): stopping (fix the app's import or startup)",
                        worker.pid,
                        code,
                        self._failed_starts,
                    )
                    self._exit_code = EXIT_APP
                    self._stop(signal.SIGTERM)
                    return
            logger.warning("Worker %d exited with %s; starting another", worker.pid, code)
            self._owe_respawn(BACKOFF_SECONDS[min(self._failed_starts, len(BACKOFF_SECONDS) - 1)])
            self._count_restart("died")

    def _owe_respawn(self, delay: float) -> None:
        """Start one more worker in `delay` seconds: the loop does it, without sleeping, so
        that a worker that keeps dying neither spins the parent nor stops it listening."""
        self._respawns += 1
        self._respawn_at = min(self._respawn_at, time.monotonic() + delay)

    # -- signals and changes --------------------------------------------------------------

    def _on_signal(self, sig: int) -> None:
        name = signal.Signals(sig).name
        if sig in (signal.SIGTERM, signal.SIGINT):
            if self._stopping:
                logger.warning("Second %s: stopping the workers now", name)
                self._stop(signal.SIGKILL)
            else:
                logger.info("%s: draining %d worker(s)", name, self._serving())
                self._stop(signal.SIGTERM)
        elif sig in (signal.SIGUSR1, signal.SIGUSR2):
            logger.info("%s: ignored (logs go to stderr: nothing to reopen)", name)
        elif sig == signal.SIGQUIT:
            logger.warning("QUIT: stopping the workers now")
            self._stop(signal.SIGKILL)
        elif self._stopping:
            return
        elif sig == signal.SIGHUP:
            if self._roll:
                logger.info("HUP: a rolling restart is under way already")
            else:
                self._start_roll("HUP")
        elif sig == signal.SIGTTIN:
            self._spawn()
            logger.info("TTIN: %d worker(s)", self._serving())
        elif sig == signal.SIGTTOU and self._serving() > 1:
            youngest = [w for w in self.workers if not w.stopping and w.replacing is None][-1]
            youngest.stopping = True
            youngest.signal(signal.SIGHUP)
            logger.info("TTOU: %d worker(s)", self._serving())

    def _on_change(self, paths: list[str]) -> None:
        if self._stopping:
            return
        shown = ", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
        logger.info("Changed: %s", shown)
        if self._roll:
            self._reload_pending = True  # once this roll ends, roll again onto the newest
        elif not any(not w.stopping for w in self.workers) and not self._respawns:
            for _ in range(self._target()):  # nothing serving: the last code did not start
                self._spawn()
        else:
            self._start_roll("Reload")

    def _serving(self) -> int:
        return sum(1 for w in self.workers if not w.stopping)

    def _stop(self, sig: int) -> None:
        if not self._stopping:
            self._stopping = True
            # Close the parent's copies of the listening sockets: once the workers close
            # theirs (at the start of their drain, after --shutdown-delay), the port
            # refuses new connections, and a load balancer sends them elsewhere, instead
            # of leaving them in a backlog that nobody will accept from.
            for sock in self.sockets:
                sock.close()
            self._respawns, self._respawn_at = 0, NEVER
            self._deadline = time.monotonic() + (
                (self.config.timeout_graceful or 24 * 3600.0) + KILL_AFTER_GRACE_SECONDS
            )
        for worker in self.workers:
            worker.signal(sig)

    def _spawn(self) -> WorkerHandle:
        worker = start_worker(self.config, self.sockets)
        self.workers.append(worker)
        return worker
