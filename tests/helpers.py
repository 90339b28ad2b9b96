"""Running rootserve for tests: in a thread of this process, or as a CLI subprocess.

Both wait for the server's own readiness signal (the `started` event, or the
"Listening on" log line), never for a fixed time.
"""

from __future__ import annotations

import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rootserve.config import Config
from rootserve.server.worker import Server
from rootserve.supervisor.sockets import bind_all

READY_TIMEOUT = 15.0
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Running:
    host: str
    port: int
    server: Server

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


@contextmanager
def serve(app: Any, **settings: Any) -> Iterator[Running]:
    """Serve `app` on 127.0.0.1 port 0 in a thread until the block ends."""
    settings.setdefault("access_log", False)
    config = Config(host="127.0.0.1", port=0, **settings)
    sockets = bind_all(["127.0.0.1:0"], 128)
    port = sockets[0].getsockname()[1]
    server = Server(config, app, sockets)
    thread = threading.Thread(target=server.run, name="rootserve-test", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while not server.started.wait(0.05):
            if server.stopped.is_set():
                raise RuntimeError(f"server stopped before listening (exit {server.exit_code})")
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start listening in time")
        yield Running("127.0.0.1", port, server)
    finally:
        server.request_stop()
        thread.join(READY_TIMEOUT)
        for sock in sockets:
            sock.close()
        assert not thread.is_alive(), "server thread did not stop"


@dataclass
class CLIServer:
    proc: subprocess.Popen[bytes]
    url: str
    lines: list[str] = field(default_factory=list)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        self.lines.extend(out.decode(errors="replace").splitlines())
        return self.proc.returncode


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROOTSERVE_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def run_cli(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run `rootserve ARGS` to completion (for commands that exit by themselves)."""
    kwargs.setdefault("env", cli_env())
    kwargs.setdefault("timeout", 30)
    return subprocess.run(
        [sys.executable, "-m", "rootserve", *args], capture_output=True, text=True, **kwargs
    )


@contextmanager
def start_cli(
    *args: str,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    ready: str = r"Listening on (\S+)",
    pass_fds: tuple[int, ...] = (),
) -> Iterator[CLIServer]:
    """Start `rootserve ARGS` and wait for its "Listening on URL" line."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "rootserve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=cwd,
        env=env or cli_env(),
        pass_fds=pass_fds,
    )
    server = CLIServer(proc, "")
    assert proc.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    buffer = b""
    deadline = time.monotonic() + READY_TIMEOUT
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RuntimeError(f"no readiness line; output so far: {buffer!r}")
            if not selector.select(remaining):
                continue
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                raise RuntimeError(f"rootserve exited early: {buffer.decode(errors='replace')}")
            buffer += chunk
            match = re.search(ready.encode(), buffer)
            if match and buffer.endswith(b"\n"):
                server.url = match.group(1).decode()
                server.lines.extend(buffer.decode(errors="replace").splitlines())
                break
        selector.close()
        yield server
    finally:
        selector.close()
        server.stop()


def raw_request(port: int, data: bytes, *, timeout: float = 10.0) -> bytes:
    """Send raw bytes, read until the server closes; return everything it sent."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
