"""`rootserve -w N`: a supervisor and its worker processes, over real sockets and signals.

Each test starts the CLI as a subprocess on 127.0.0.1 port 0, reads its log as it goes (a
thread, so that a full pipe never blocks the server) and waits on log lines, never on
sleeps; every process is ended by its pid, and every load is bounded in count and time.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from tests.e2e.workers_support import (
    APP,
    WAIT,
    KeepAliveClient,
    NoAnswerOnNewConnection,
    get_pid,
    raw_get,
    still_running,
    supervisor,
)
from tests.helpers import ROOT, cli_env

pytestmark = pytest.mark.slow


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
        under_way = threading.Event()  # a first answer came
        target = [0]  # answers to reach before `reached` is set (0: none yet)
        reached = threading.Event()

        def load() -> None:
            deadline = time.monotonic() + WAIT
            while not stop.is_set() and time.monotonic() < deadline and len(answered) < 5000:
                try:
                    answered.append(get_pid(port))
                except (OSError, AssertionError) as exc:  # a refusal, a reset, a bad answer
                    failures.append(exc)
                under_way.set()
                if target[0] and len(answered) >= target[0]:
                    reached.set()
            reached.set()  # the load is over: nothing more will come

        client = threading.Thread(target=load)
        client.start()
        try:
            assert under_way.wait(WAIT)
            killed_at = time.monotonic()
            os.kill(first[0], signal.SIGKILL)
            replacement = running.worker_pids(int(workers) + 1)[-1]
            replaced_after = time.monotonic() - killed_at
            count = len(answered)
            target[0] = count + 20  # requests after the replacement
            reached.wait(WAIT)
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
        assert not still_running({added}), "the youngest worker did not exit after TTOU"
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
        assert not still_running(old)  # the old workers drained and exited
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
        assert not still_running(old)  # each old worker serves until it has drained
        assert not {get_pid(port) for _ in range(20)} & old
        assert running.stop() == 0


def slow_get(port: int) -> bytes:
    """GET /slow (it takes a second); everything received until the server closes."""
    return raw_get(port, "/slow", timeout=10, close=False)  # the server says when to close


def test_term_under_load_finishes_what_was_sent_refuses_new_connections_and_exits_0():
    with supervisor(APP, "-w", "2") as running:
        running.worker_pids(2)
        port = running.port
        slow: list[bytes] = []
        in_flight = [threading.Thread(target=lambda: slow.append(slow_get(port))) for _ in range(6)]
        for thread in in_flight:
            thread.start()
        running.wait_for(r"slow request in", 6)  # each is with a worker
        answered: list[int] = []
        failures: list[BaseException] = []
        refused = threading.Event()
        reset: list[int] = []
        term_sent = threading.Event()

        def load() -> None:
            client = KeepAliveClient(port)
            try:
                for _ in range(20_000):  # bounded; ends when the server refuses
                    try:
                        answered.append(client.get())
                    except ConnectionRefusedError:
                        refused.set()  # the port is closed: nothing was sent
                        return
                    except NoAnswerOnNewConnection:
                        # Connected in the instant the last listener closed: the kernel
                        # resets what is still in its accept queue (no worker read it).
                        reset.append(1)
                        return
                    except (OSError, AssertionError) as exc:
                        failures.append(exc)
                        return
                    if len(answered) >= 300 and not term_sent.is_set():
                        term_sent.set()
                        running.proc.send_signal(signal.SIGTERM)
            finally:
                client.close()

        clients = [threading.Thread(target=load) for _ in range(4)]
        for client in clients:
            client.start()
        for client in clients:
            client.join(WAIT * 2)
        for thread in in_flight:
            thread.join(WAIT)
        print(f"TERM under load: {len(answered)} answered, {len(failures)} failed, "
              f"then new connections refused: {refused.is_set()}, reset from the closing "
            f"listener's queue: {len(reset)}; "
              f"{len(slow)}/6 slow requests finished")  # fmt: skip
        assert term_sent.is_set() and not failures
        assert refused.is_set() or reset  # new connections are refused during the drain
        assert len(slow) == 6
        for data in slow:
            assert data.startswith(b"HTTP/1.1 200 "), data
            assert b"connection: close" in data.lower()  # told not to send another
        assert running.proc.wait(WAIT) == 0
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
