"""Running rootserve for tests: in a thread of this process, or as a CLI subprocess.

Both wait for the server's own readiness signal (the `started` event, or the
"Listening on" log line), never for a fixed time.
"""

from __future__ import annotations

import logging
import os
import re
import select
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rootserve.config import Config
from rootserve.loading import dress_app
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
    server = Server(config, dress_app(app, "asgi", config), sockets)  # --strict, --trace
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
    command: Sequence[str] = (sys.executable, "-m", "rootserve"),
) -> Iterator[CLIServer]:
    """Start `rootserve ARGS` and wait for its "Listening on URL" line. `command` is how
    rootserve is run: this interpreter's by default, or another install's script."""
    proc = subprocess.Popen(
        [*command, *args],
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


# -- a raw HTTP/1.1 client -----------------------------------------------------------------

PEER_TIMEOUT = 10.0  # seconds a Peer waits on its socket
KIB = 1024


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    head: bytes

    def header(self, name: str) -> str | None:
        values = [v for n, v in self.headers if n == name]
        assert len(values) <= 1, f"{name} appears {len(values)} times"
        return values[0] if values else None


class Peer:
    """A client socket with a read buffer: send raw bytes, read whole responses."""

    def __init__(
        self,
        port: int,
        *,
        timeout: float = PEER_TIMEOUT,
        rcvbuf: int | None = None,
        sndbuf: int | None = None,
        resets_are_eof: bool = False,
    ) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if sndbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        self.buffer = b""
        # A server that closes with bytes of ours unread resets the connection; tests that
        # provoke that on purpose may count the reset as the end of the stream.
        self._eof_errors: tuple[type[Exception], ...] = (
            (EOFError, ConnectionResetError) if resets_are_eof else (EOFError,)
        )

    def __enter__(self) -> Peer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    @property
    def local_port(self) -> int:
        port: int = self.sock.getsockname()[1]
        return port

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_until_stalled(self, data: bytes, stall: float) -> int:
        """Send what the peer takes until it takes nothing for `stall` seconds; the count."""
        view = memoryview(data)
        sent = 0
        while sent < len(view):
            _, writable, _ = select.select([], [self.sock], [], stall)
            if not writable:
                break
            sent += self.sock.send(view[sent : sent + 64 * KIB])
        return sent

    def _more(self) -> None:
        chunk = self.sock.recv(256 * KIB)
        if not chunk:
            raise EOFError(f"connection closed; unread: {self.buffer[:200]!r}")
        self.buffer += chunk

    def until(self, marker: bytes) -> bytes:
        """The bytes up to and including `marker`."""
        while (end := self.buffer.find(marker)) < 0:
            self._more()
        end += len(marker)
        data, self.buffer = self.buffer[:end], self.buffer[end:]
        return data

    def exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self._more()
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def to_eof(self) -> bytes:
        try:
            while True:
                self._more()
        except self._eof_errors:
            data, self.buffer = self.buffer, b""
            return data

    def at_eof(self) -> bool:
        """True when the server has closed and everything it sent has been read."""
        if self.buffer:
            return False
        try:
            return self.sock.recv(1) == b""
        except self._eof_errors[1:]:
            return True

    def head(self) -> Reply:
        """The next response head (status line and fields), its body left unread."""
        raw = self.until(b"\r\n\r\n")
        lines = raw[:-4].decode("latin-1").split("\r\n")
        version, status, _ = (lines[0] + " ").split(" ", 2)
        assert version == "HTTP/1.1", lines[0]
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.append((name.lower(), value.strip()))
        return Reply(int(status), headers, b"", raw)

    def response(self, *, head: bool = False) -> Reply:
        """One response, framed as RFC 9112 section 6.3 says (`head`: it answers HEAD)."""
        reply = self.head()
        if head or reply.status in (204, 304) or reply.status < 200:
            return reply
        if reply.header("transfer-encoding") == "chunked":
            reply.body = b"".join(self.chunks())
        elif (length := reply.header("content-length")) is not None:
            reply.body = self.exactly(int(length))
        else:
            reply.body = self.to_eof()  # close-delimited (RFC 9112 section 6.3 (8))
        return reply

    def chunks(self) -> Iterator[bytes]:
        """The chunks of a chunked body, as they arrive."""
        while True:
            size = int(self.until(b"\r\n").split(b";")[0], 16)
            if size == 0:
                while self.until(b"\r\n") != b"\r\n":
                    pass  # trailer fields
                return
            yield self.exactly(size)
            assert self.exactly(2) == b"\r\n"


# -- log records a test waits on -----------------------------------------------------------


class RecordedLog(logging.Handler):
    """Every message a logger writes, in order, for a test to wait on."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []
        self._changed = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        with self._changed:
            self.messages.append(record.getMessage())
            self._changed.notify_all()

    def wait_for(self, text: str, timeout: float = 10.0) -> list[str]:
        """The messages so far, once one of them contains `text`."""
        with self._changed:
            found = self._changed.wait_for(
                lambda: any(text in message for message in self.messages), timeout
            )
            assert found, f"no log message with {text!r}: {self.messages!r}"
            return list(self.messages)


@contextmanager
def recorded_log(name: str) -> Iterator[RecordedLog]:
    """What the logger `name` writes at INFO and above while the block runs."""
    logger = logging.getLogger(name)
    handler, level = RecordedLog(), logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
