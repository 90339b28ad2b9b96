"""What the hostile-client, app-fault and log-safety tests share: a `rootserve` subprocess
whose output is kept as raw bytes (a log line is checked byte by byte, and a server that
logs a line per refused client must never block on a full pipe), its resident memory read
from /proc, the file-descriptor limit, and a well-behaved client that times its requests.
"""

from __future__ import annotations

import math
import re
import resource
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from tests.e2e.workers_support import Supervisor
from tests.helpers import ROOT, cli_env

WAIT = 30.0  # seconds, at most, for a line the server must log, or for it to exit
CLIENT_TIMEOUT = 5.0  # seconds a normal request may take before it counts as failed


class RawServer(Supervisor):
    """`rootserve ARGS` (one process: no supervisor, so its pid is the server's), its
    output read as it comes by a thread and kept as raw lines; stopped as a Supervisor is."""

    def __init__(self, *args: str) -> None:  # (no --no-access-log of its own)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rootserve", "--app-dir", str(ROOT), "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=cli_env(),
        )
        self.lines: list[bytes] = []  # type: ignore[assignment]  # raw, not decoded
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, name="server-output", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:  # split at b"\n" only: a forged line shows as its own
            with self._changed:
                self.lines.append(raw)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for(self, pattern: bytes, count: int = 1) -> list[re.Match[bytes]]:  # type: ignore[override]
        """The first `count` output lines matching `pattern`, waiting for them."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + WAIT
        with self._changed:
            while True:
                found = [m for m in map(regex.search, self.lines) if m]
                if len(found) >= count:
                    return found[:count]
                left = deadline - time.monotonic()
                if left <= 0 or not self._reader.is_alive():
                    tail = b"".join(self.lines[-30:]).decode(errors="replace")
                    raise AssertionError(f"no {count} line(s) like {pattern!r}; output:\n{tail}")
                self._changed.wait(left)

    @property
    def port(self) -> int:
        return int(self.wait_for(rb"Listening on http://127\.0\.0\.1:(\d+)")[0][1])

    def rss(self) -> int:
        """The server's resident memory in bytes (VmRSS of /proc/PID/status)."""
        with open(f"/proc/{self.proc.pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS line")


@contextmanager
def raw_server(*args: str) -> Iterator[RawServer]:
    server = RawServer(*args)
    try:
        yield server
    finally:
        server.stop()


def raise_fd_limit(wanted: int) -> int:
    """Raise this process's soft limit on open files towards `wanted` (a server started
    afterwards inherits it); the limit now in force, at most the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def p99(samples: list[float]) -> float:
    """The 99th percentile (nearest rank) of `samples`."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]


def timed_get(port: int, path: str = "/") -> tuple[float, bytes]:
    """One GET on a fresh connection, read to the server's close: (seconds, answer)."""
    start = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return time.perf_counter() - start, data


class NormalClient:
    """A client that behaves: `count` GETs, one after another on fresh connections, a
    deliberate `interval` apart, in a thread; each one's latency is kept."""

    def __init__(self, port: int, count: int, interval: float) -> None:
        self.port = port
        self.count = count
        self.interval = interval
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self._thread = threading.Thread(target=self._run, name="normal-client", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        for _ in range(self.count):
            try:
                seconds, data = timed_get(self.port)
            except OSError as exc:
                self.failures.append(repr(exc))
            else:
                if data.startswith(b"HTTP/1.1 200 ") and data.endswith(b"\r\n\r\nok"):
                    self.latencies.append(seconds)
                else:
                    self.failures.append(repr(data[:100]))
            time.sleep(self.interval)  # noqa: sleep-ok (the normal client's pace)

    def join(self) -> None:
        self._thread.join(self.count * (CLIENT_TIMEOUT + self.interval))
        assert not self._thread.is_alive(), "the normal client did not finish"
