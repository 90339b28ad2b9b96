"""What the supervisor tests share: a `rootserve -w N` subprocess whose log is read as it
comes, waits on its log lines (never on sleeps), and clients that count what they get."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from tests.helpers import ROOT, cli_env

APP = "tests.apps.pid_app:app"
WAIT = 30.0  # seconds, at most, for a line the supervisor or a worker must log


class Supervisor:
    """A `rootserve -w N` subprocess and its log, read by a thread as it comes."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rootserve", "--app-dir", str(ROOT), "--port", "0",
             "--no-access-log", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=cli_env(),
        )  # fmt: skip
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            with self._changed:
                self.lines.append(raw.decode(errors="replace").rstrip())
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for(self, pattern: str, count: int = 1) -> list[re.Match[str]]:
        """The first `count` log lines matching `pattern`, waiting for them."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + WAIT
        with self._changed:
            while True:
                found = [m for m in map(regex.search, self.lines) if m]
                if len(found) >= count:
                    return found[:count]
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    log = "\n".join(self.lines[-30:])
                    raise AssertionError(f"no {count} line(s) like {pattern!r}; log:\n{log}")
                self._changed.wait(left)

    @property
    def port(self) -> int:
        return int(self.wait_for(r"Listening on http://127\.0\.0\.1:(\d+)")[0][1])

    def worker_pids(self, count: int) -> list[int]:
        return [int(m[1]) for m in self.wait_for(r"Worker (\d+) ready", count)]

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(WAIT)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self._reader.join(WAIT)
            if self.proc.stdout is not None:
                self.proc.stdout.close()


@contextmanager
def supervisor(*args: str) -> Iterator[Supervisor]:
    running = Supervisor(*args)
    try:
        yield running
    finally:
        running.stop()
        # Workers left behind would keep serving the port: each must be gone.
        ready = map(re.compile(r"Worker (\d+) ready").search, running.lines)
        left = still_running({int(m[1]) for m in ready if m})
        assert not left, f"workers {left} outlived their supervisor"


def still_running(pids: set[int]) -> set[int]:
    """Those of `pids` still running after waiting up to WAIT seconds for them to end."""
    pids = set(pids)
    deadline = time.monotonic() + WAIT
    while pids and time.monotonic() < deadline:
        for pid in list(pids):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                pids.discard(pid)
        if pids:
            time.sleep(0.05)  # noqa: sleep-ok (poll: not our children, nothing to wait on)
    return pids


def raw_get(port: int, path: str = "/", *, timeout: float = 5, close: bool = True) -> bytes:
    """One GET on a fresh connection; everything received until the server closes (a
    keep-alive GET, `close=False`, waits for the server to close it)."""
    head = f"GET {path} HTTP/1.1\r\nHost: t\r\n" + ("Connection: close\r\n" if close else "")
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head.encode() + b"\r\n")
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    return data


def get_pid(port: int) -> int:
    """One GET on a fresh connection; the pid of the worker that answered."""
    data = raw_get(port)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), data
    return int(body)


class NoAnswerOnNewConnection(ConnectionError):
    """A new connection was closed or reset before any byte of an answer."""


class KeepAliveClient:
    """GETs on one keep-alive connection, as a browser or curl does them: a new connection
    after a response that says `Connection: close`, and one retry of a GET whose reused
    connection was closed before any byte of the answer (RFC 9112 section 9.3.1)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock: socket.socket | None = None
        self.retries = 0

    def get(self) -> int:
        for attempt in range(2):
            reused = self.sock is not None
            if self.sock is None:
                try:
                    self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
                except ConnectionResetError as exc:
                    # The handshake finished in the listener's queue and the listener closed
                    # before connect() returned: the same reset, seen one call earlier.
                    raise NoAnswerOnNewConnection("reset while connecting") from exc
            try:
                self.sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
                answer = self._read()
            except OSError:
                answer = None
            if answer is None:  # closed before any byte of the answer
                self.close()
                if reused and attempt == 0:
                    self.retries += 1
                    continue
                raise NoAnswerOnNewConnection("no answer on a new connection")
            head, body = answer
            if b"connection: close" in head.lower():
                self.close()
            assert head.startswith(b"HTTP/1.1 200 "), head
            return int(body)
        raise AssertionError("unreachable")

    def _read(self) -> tuple[bytes, bytes] | None:
        assert self.sock is not None
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = self.sock.recv(4096)
            if not chunk:
                if data:
                    raise ConnectionError(f"cut mid-answer: {data!r}")
                return None
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = int(re.search(rb"content-length: (\d+)", head.lower())[1])  # type: ignore[index]
        while len(body) < length:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("cut mid-body")
            body += chunk
        return head, body

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
