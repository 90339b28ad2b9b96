"""The metrics port (--metrics-bind): /metrics, /healthz and /readyz, apart from the app's.

How this works. `ProbeServer` runs a second rootserve `Server` on its own event loop in a
thread, serving `ProbeApp`, a small ASGI app; the process that owns it (the supervisor
with --workers, else the one server process) says what healthy and ready mean through two
callables. Kept off the app's port so that a probe never waits behind the app's requests
and an app route never shadows a probe; a thread of its own so that the probes answer
while the app's loop is busy (and say so when it is blocked).

- /healthz: 200 while the process is alive and its app loop runs; 503 when the loop has
  not run for --timeout-worker-healthcheck (single process: Kubernetes' liveness probe
  then restarts it; under a supervisor, which replaces hung workers itself, it is 200
  while the supervisor runs).
- /readyz: 200 once the app's lifespan startup is done (under a supervisor: a worker is
  ready) and until a stop is asked for; 503 from the moment TERM arrives, before
  --shutdown-delay ends, so that a load balancer stops sending first.
- /metrics: the Prometheus text format, every process's metrics added up.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Final

from rootserve.config import Config
from rootserve.observe.metrics import metrics_text
from rootserve.server.worker import Server
from rootserve.types import Receive, Scope, Send

__all__ = ["ProbeApp", "ProbeServer", "server_probes"]

logger = logging.getLogger("rootserve.error")

STOP_WAIT_SECONDS: Final = 5.0


class ProbeApp:
    """The ASGI app of the metrics port."""

    def __init__(self, ready: Callable[[], str | None], alive: Callable[[], str | None]):
        # Each returns None when all is well, else the reason it is not.
        self.ready = ready
        self.alive = alive

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        if scope["method"] not in ("GET", "HEAD"):
            await _answer(send, 405, b"GET or HEAD\n", [(b"allow", b"GET, HEAD")])
        elif path == "/metrics":
            # Reading every process's files takes milliseconds: off this loop's thread.
            body, content_type = await asyncio.to_thread(metrics_text)
            await _answer(send, 200, body, [(b"content-type", content_type.encode())])
        elif path in ("/healthz", "/readyz"):
            why = self.alive() if path == "/healthz" else self.ready()
            if why is None:
                await _answer(send, 200, b"ok\n")
            else:
                await _answer(send, 503, why.encode() + b"\n")
        else:
            await _answer(send, 404, b"/metrics, /healthz, /readyz\n")


async def _answer(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    head = [(b"content-type", b"text/plain; charset=utf-8"), (b"cache-control", b"no-store")]
    if headers and headers[0][0] == b"content-type":
        head = headers + head[1:]
    elif headers:
        head += headers
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})


class ProbeServer:
    """`ProbeApp` served on `sock` by a Server in a thread of its own."""

    def __init__(
        self,
        config: Config,
        sock: socket.socket,
        ready: Callable[[], str | None],
        alive: Callable[[], str | None],
    ) -> None:
        quiet = replace(
            config,
            access_log=False,
            lifespan="off",
            ws="off",
            workers=0,
            static=[],
            limit_max_requests=0,
            limit_worker_memory=0,
            ssl_certfile="",  # the probes speak plain HTTP inside the cluster
            proxy_headers=False,
            proxy_protocol=False,
            metrics_bind="",
        )
        self.server = Server(quiet, ProbeApp(ready, alive), [sock], announce=False)
        self.sock = sock
        self._thread = threading.Thread(target=self.server.run, name="rootserve-probes")

    def start(self) -> None:
        self._thread.daemon = True
        self._thread.start()
        if not self.server.started.wait(STOP_WAIT_SECONDS):
            raise RuntimeError("the metrics port did not start")
        host, port = self.sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        logger.info("Metrics and probes on http://%s:%d (/metrics, /healthz, /readyz)", shown, port)

    def stop(self) -> None:
        self.server.request_stop()
        self._thread.join(STOP_WAIT_SECONDS)


def server_probes(
    server: Server, config: Config
) -> tuple[Callable[[], str | None], Callable[[], str | None]]:
    """Readiness and liveness of a server alone in its process (no supervisor)."""
    limit = config.timeout_worker_healthcheck

    def ready() -> str | None:
        if server.draining:
            return "draining: a stop was asked for"
        if not server.started.is_set():
            return "starting"
        return None

    def alive() -> str | None:
        silent = time.monotonic() - server.last_pass
        if limit and server.started.is_set() and silent > limit:
            return f"the event loop has not run for {silent:.1f}s (--timeout-worker-healthcheck)"
        return None

    return ready, alive
