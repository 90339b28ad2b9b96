"""`rootserve -w N`: a supervisor and its worker processes, over real sockets and signals.

Each test starts the CLI as a subprocess on 127.0.0.1 port 0, reads its log as it goes (a
thread, so that a full pipe never blocks the server) and waits on log lines, never on
sleeps; every process is ended by its pid, and every load is bounded in count and time.
"""

from __future__ import annotations

import contextlib
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
from pathlib import Path

import pytest
from tests.helpers import ROOT, cli_env

pytestmark = pytest.mark.slow

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


def get_pid(port: int) -> int:
    """One GET on a fresh connection; the pid of the worker that answered."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), data
    return int(body)


def test_two_workers_serve_from_two_pids_and_stop_on_term():
    with supervisor(APP, "-w", "2") as running:
        pids = set(running.worker_pids(2))
        port = running.port
        assert os.getpid() not in pids and running.proc.pid not in pids
        seen: set[int] = set()
        for _ in range(400):  # bounded: the kernel hands connections to either worker
            seen.add(get_pid(port))
            if seen == pids:
                break
        assert seen == pids
        assert running.stop(signal.SIGTERM) == 0
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_killed_worker_is_replaced_and_no_connection_is_refused(workers: str):
    with supervisor(APP, "-w", workers) as running:
        first = running.worker_pids(int(workers))
        port = running.port
        answered: list[int] = []
        failures: list[BaseException] = []
        stop = threading.Event()

        def load() -> None:
            deadline = time.monotonic() + WAIT
            while not stop.is_set() and time.monotonic() < deadline and len(answered) < 5000:
                try:
                    answered.append(get_pid(port))
                except (OSError, AssertionError) as exc:  # a refusal, a reset, a bad answer
                    failures.append(exc)

        client = threading.Thread(target=load)
        client.start()
        try:
            while not answered:
                time.sleep(0.01)  # a poll interval: wait for the load to be under way
            killed_at = time.monotonic()
            os.kill(first[0], signal.SIGKILL)
            replacement = running.worker_pids(int(workers) + 1)[-1]
            replaced_after = time.monotonic() - killed_at
            count = len(answered)
            while len(answered) < count + 20 and client.is_alive():
                time.sleep(0.01)  # a poll interval: requests after the replacement
        finally:
            stop.set()
            client.join(WAIT)
        assert replacement not in first
        assert replacement in answered[count:] or int(workers) > 1
        print(f"-w {workers}: {len(answered)} answered, {len(failures)} failed; "
              f"replaced {replaced_after:.2f} s after the KILL")  # fmt: skip
        # A connection to a dying worker may be reset; the port itself is never refused.
        assert not [f for f in failures if isinstance(f, ConnectionRefusedError)]
        assert running.stop() == 0


def test_ttin_and_ttou_change_the_number_of_workers():
    with supervisor(APP, "-w", "1") as running:
        running.worker_pids(1)
        running.proc.send_signal(signal.SIGTTIN)
        added = running.worker_pids(2)[1]
        running.wait_for(r"TTIN: 2 worker")
        running.proc.send_signal(signal.SIGTTOU)
        running.wait_for(r"TTOU: 1 worker")
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            try:
                os.kill(added, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)  # a poll interval: the youngest worker drains and exits
        else:
            pytest.fail("the youngest worker did not exit after TTOU")
        assert running.stop() == 0


def test_workers_that_cannot_start_end_the_server_with_exit_3():
    started = time.monotonic()
    with supervisor("tests.apps.pid_app:failing_startup", "-w", "2") as running:
        assert running.proc.wait(WAIT) == 3
        assert time.monotonic() - started < WAIT
        running.wait_for(r"before it was ready")
        running.wait_for(r"no database")


def test_workers_stop_when_the_supervisor_is_killed():
    with supervisor(APP, "-w", "2") as running:
        pids = running.worker_pids(2)
        running.proc.kill()
        running.proc.wait(WAIT)
        alive = still_running(set(pids))
        assert not alive, f"workers {alive} kept running without their supervisor"


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
                self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
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
                raise ConnectionError("no answer on a new connection")
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


def test_hup_restarts_every_worker_under_load_without_a_failed_request():
    with supervisor(APP, "-w", "2") as running:
        old = set(running.worker_pids(2))
        port = running.port
        answered: list[int] = []
        failures: list[BaseException] = []
        retries: list[int] = []
        hup_sent = threading.Event()

        def load(count: int) -> None:
            client = KeepAliveClient(port)
            try:
                for _ in range(count):
                    try:
                        answered.append(client.get())
                    except (OSError, AssertionError) as exc:
                        failures.append(exc)
                    if len(answered) >= 200 and not hup_sent.is_set():
                        hup_sent.set()
                        running.proc.send_signal(signal.SIGHUP)
            finally:
                retries.append(client.retries)
                client.close()

        clients = [threading.Thread(target=load, args=(500,)) for _ in range(4)]
        for client in clients:
            client.start()
        for client in clients:
            client.join(WAIT * 2)
        running.wait_for(r"Rolling restart done")
        new = set(running.worker_pids(4)[2:])
        print(f"HUP under load: {len(answered)} answered, {len(failures)} failed, "
              f"{sum(retries)} GET(s) retried on a closed keep-alive connection")  # fmt: skip
        assert not failures
        assert len(answered) == 2000
        assert not new & old
        assert {get_pid(port) for _ in range(50)} <= new
        assert running.stop() == 0


def test_hup_with_code_that_cannot_import_keeps_the_old_workers(tmp_path: Path):
    module = tmp_path / "edited_app.py"
    module.write_text((ROOT / "tests" / "apps" / "pid_app.py").read_text())
    with supervisor("edited_app:app", "--app-dir", str(tmp_path), "-w", "2") as running:
        old = set(running.worker_pids(2))
        port = running.port
        module.write_text("this is not python\n")
        running.proc.send_signal(signal.SIGHUP)
        running.wait_for(r"Rolling restart stopped")
        assert {get_pid(port) for _ in range(20)} <= old  # the old code goes on serving
        module.write_text((ROOT / "tests" / "apps" / "pid_app.py").read_text())
        running.proc.send_signal(signal.SIGHUP)
        running.wait_for(r"Rolling restart done")
        assert not {get_pid(port) for _ in range(20)} & old
        assert running.stop() == 0


def slow_get(port: int) -> bytes:
    """GET /slow (it takes a second); everything received until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    return data


def test_term_lets_requests_in_flight_finish_and_exits_0():
    with supervisor(APP, "-w", "2") as running:
        running.worker_pids(2)
        port = running.port
        results: list[bytes] = []
        in_flight = [
            threading.Thread(target=lambda: results.append(slow_get(port))) for _ in range(6)
        ]
        for thread in in_flight:
            thread.start()
        time.sleep(0.3)  # a deliberate wait: the slow requests reach the workers first
        running.proc.send_signal(signal.SIGTERM)
        for thread in in_flight:
            thread.join(WAIT)
        assert len(results) == 6
        for data in results:
            assert data.startswith(b"HTTP/1.1 200 "), data
            assert b"connection: close" in data.lower()  # told not to send another
        assert running.stop() == 0
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_shutdown_delay_keeps_serving_before_the_drain():
    with supervisor(APP, "-w", "1", "--shutdown-delay", "1.5") as running:
        running.worker_pids(1)
        port = running.port
        running.proc.send_signal(signal.SIGTERM)
        termed = time.monotonic()
        running.wait_for(r"serving 1\.5s more first")
        served = 0
        while time.monotonic() - termed < 1.0:  # well inside the delay
            get_pid(port)
            served += 1
        assert served > 0
        assert running.proc.wait(WAIT) == 0  # no second TERM: that would cut the drain
        assert time.monotonic() - termed >= 1.5


def test_pid_file_holds_the_supervisor_pid_and_is_removed_at_exit(tmp_path: Path):
    path = tmp_path / "rootserve.pid"
    with supervisor(APP, "-w", "1", "--pid", str(path)) as running:
        running.worker_pids(1)
        assert path.read_text() == f"{running.proc.pid}\n"
        assert running.stop() == 0
        assert not path.exists()


def test_pid_file_that_cannot_be_written_is_a_usage_error(tmp_path: Path):
    done = subprocess.run(
        [sys.executable, "-m", "rootserve", "--port", "0", "--pid", str(tmp_path / "no/x.pid")],
        capture_output=True,
        text=True,
        timeout=WAIT,
        env=cli_env(),
    )
    assert done.returncode == 2
    assert "--pid" in done.stderr.strip().splitlines()[-1]


def request_quietly(port: int, path: str) -> None:
    """A request whose answer does not matter (the worker may be killed under it)."""
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        with contextlib.suppress(OSError):
            sock.recv(4096)


def test_a_worker_whose_loop_is_blocked_is_dumped_killed_and_replaced():
    with supervisor(APP, "-w", "1", "--timeout-worker-healthcheck", "2") as running:
        hung = running.worker_pids(1)[0]
        port = running.port
        blocker = threading.Thread(target=request_quietly, args=(port, "/block"))
        blocker.start()
        line = running.wait_for(rf"Worker {hung} is hung: .* for (\d+\.\d)s")[0]
        assert float(line[1]) >= 2.0
        running.wait_for(r"time\.sleep\(BLOCK_SECONDS\)|pid_app\.py\", line \d+ in app")
        replacement = running.worker_pids(2)[1]
        assert replacement != hung
        assert get_pid(port) == replacement
        blocker.join(WAIT)
        assert running.stop() == 0


def test_a_wsgi_worker_busy_on_every_thread_is_not_hung():
    app = "tests.apps.pid_app:wsgi_busy"
    with supervisor(
        app, "-w", "1", "--threads", "1", "--timeout-worker-healthcheck", "1"
    ) as running:
        pid = running.worker_pids(1)[0]
        port = running.port
        answers: list[int] = []
        clients = [threading.Thread(target=lambda: answers.append(get_pid(port))) for _ in range(2)]
        for client in clients:
            client.start()
        for client in clients:
            client.join(WAIT)
        assert answers == [pid, pid]  # 2 x BUSY_SECONDS on one thread: the loop still beat
        assert not [line for line in running.lines if "is hung" in line]
        assert running.stop() == 0
