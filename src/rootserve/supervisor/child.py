"""A worker process of the supervisor: what runs on the other side of arbiter.py's pipes.

Three pipes join a worker to its supervisor:
- `ready`: the worker writes READY once it listens (its lifespan startup done);
- `beat`: the worker's event loop writes BEAT at every reaper pass (the heartbeat that
  tells a hung worker from a busy one) and RETIRE once, when --limit-max-requests or
  --limit-worker-memory is reached, asking to be replaced;
- `supervisor`: never written; its end of file means the supervisor is gone.
Signals from the supervisor: TERM drains (the server is stopping: WebSockets get 1001),
HUP drains because a new worker has taken over (WebSockets get 1012, Service Restart),
STACKS_SIGNAL writes every thread's stack to the log (a hung worker, before its kill).
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
from dataclasses import dataclass, field
from multiprocessing.connection import Connection as Pipe
from multiprocessing.process import BaseProcess
from typing import Final

from rootserve.config import Config
from rootserve.exit_codes import EXIT_APP
from rootserve.loading import AppLoadError, load_configured_app
from rootserve.observe.logs import setup_logging
from rootserve.server.worker import Server

__all__ = [
    "BEAT",
    "NEVER",
    "READY",
    "RETIRE",
    "STACKS_SIGNAL",
    "WorkerHandle",
    "start_worker",
    "worker_main",
]

logger = logging.getLogger("rootserve.error")

READY: Final = b"ready"
BEAT: Final = b"."
RETIRE: Final = b"R"
STACKS_SIGNAL: Final = signal.SIGUSR1
NEVER: Final = float("inf")


@dataclass(eq=False)
class WorkerHandle:
    """The supervisor's side of one worker: its process, its pipes, what it knows of it."""

    process: BaseProcess
    ready_pipe: Pipe
    alive_pipe: Pipe  # never written: the worker sees its end of file if we die
    beat_pipe: Pipe  # BEAT at every pass of the worker's loop; RETIRE once
    last_beat: float = field(default_factory=time.monotonic)
    ready: bool = False
    stopping: bool = False  # told to drain
    replacing: WorkerHandle | None = None  # the old worker this one retires once ready
    kill_at: float = NEVER  # found hung: killed then, once its stacks are written

    @property
    def pid(self) -> int:
        return self.process.pid or 0

    def signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, sig)


def start_worker(config: Config, sockets: list[socket.socket]) -> WorkerHandle:
    """Start a worker process (a fresh interpreter: multiprocessing's spawn) on `sockets`."""
    context = multiprocessing.get_context("spawn")
    ready_r, ready_w = context.Pipe(duplex=False)
    alive_r, alive_w = context.Pipe(duplex=False)
    beat_r, beat_w = context.Pipe(duplex=False)
    process = context.Process(
        target=worker_main,
        args=(config, sockets, ready_w, alive_r, beat_w),
        name="rootserve-worker",
        daemon=False,
    )
    process.start()
    ready_w.close()  # the worker holds the other ends
    alive_r.close()
    beat_w.close()
    return WorkerHandle(process, ready_r, alive_w, beat_r)


def worker_main(
    config: Config, sockets: list[socket.socket], ready: Pipe, supervisor: Pipe, beat: Pipe
) -> None:
    """A worker process: import the app, serve the inherited sockets, exit with the code.
    A worker whose supervisor is gone (killed, say) drains and exits rather than serve
    unsupervised."""
    setup_logging(
        config.log_level,
        with_pid=True,
        log_format=config.log_format,
        log_config=config.log_config,
    )
    try:
        app, interface = load_configured_app(config)
    except AppLoadError as exc:
        logger.error("%s", exc)
        raise SystemExit(EXIT_APP) from None
    if interface == "wsgi" and config.threads < 1:
        logger.error("--threads must be at least 1 for a WSGI app")
        raise SystemExit(EXIT_APP)
    server = Server(config, app, sockets, interface=interface, multiprocess=True)
    server.stop_signals = (signal.SIGTERM,)  # CTRL+C reaches the whole group: see below
    server.restart_signals = (signal.SIGHUP,)
    # Never blocking: a supervisor that reads late must not stop the loop it watches.
    beat_fd = beat.fileno()
    os.set_blocking(beat_fd, False)

    def write(message: bytes) -> None:
        with contextlib.suppress(BlockingIOError, BrokenPipeError):
            os.write(beat_fd, message)

    def heartbeat() -> None:
        write(BEAT)

    def retire(why: str) -> None:
        logger.info("%s: asking the supervisor for a replacement", why)
        write(RETIRE)

    server.heartbeat = heartbeat
    server.on_limit = retire
    faulthandler.register(STACKS_SIGNAL, all_threads=True)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor drains its workers once

    def report_ready() -> None:
        if server.started.wait() and not server.stopped.is_set():
            how = f" {interface.upper()}, loop {server.loop_name}"
            with contextlib.suppress(OSError):
                ready.send_bytes(READY + how.encode())

    def watch_supervisor() -> None:
        with contextlib.suppress(EOFError, OSError):
            supervisor.recv_bytes()
        if not server.stopped.is_set():
            logger.warning("The supervisor is gone: stopping")
            server.request_stop()

    threading.Thread(target=report_ready, name="rootserve-ready", daemon=True).start()
    threading.Thread(target=watch_supervisor, name="rootserve-watch", daemon=True).start()
    raise SystemExit(server.run())
