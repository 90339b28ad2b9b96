"""Workers retired on purpose (--limit-max-requests, --limit-worker-memory) through the same
one-at-a-time replacement as HUP, and the close codes WebSockets get when a worker drains.
Real processes on 127.0.0.1, bounded in requests and time, ended by pid."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
from tests.e2e.workers_support import APP, WAIT, KeepAliveClient, get_pid, supervisor
from tests.helpers import ROOT, cli_env
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

pytestmark = pytest.mark.slow

ASKED = r"Served \d+ requests.*asking the supervisor for a replacement"


def test_max_requests_with_jitter_retires_workers_without_a_failed_request():
    with supervisor(
        APP, "-w", "2", "--limit-max-requests", "100", "--max-requests-jitter", "50"
    ) as running:
        first = set(running.worker_pids(2))
        port = running.port
        answered: list[int] = []
        failures: list[BaseException] = []
        enough = threading.Event()

        def load() -> None:
            client = KeepAliveClient(port)
            deadline = time.monotonic() + WAIT * 2
            try:
                # Bounded in count and time; ends once the replacements have served.
                for _ in range(50_000):
                    if enough.is_set() or time.monotonic() > deadline:
                        break
                    try:
                        answered.append(client.get())
                    except (OSError, AssertionError) as exc:
                        failures.append(exc)
            finally:
                client.close()

        clients = [threading.Thread(target=load) for _ in range(4)]
        for client in clients:
            client.start()
        try:
            replacements = set(running.worker_pids(4)[2:])  # two retirements at least
            count = len(answered)
            while len(answered) < count + 400 and any(c.is_alive() for c in clients):
                clients[0].join(0.05)  # a poll interval: requests after the replacements
        finally:
            enough.set()
            for client in clients:
                client.join(WAIT * 2)
        asked = running.wait_for(ASKED, 2)
        print(f"--limit-max-requests 100 + jitter 50: {len(answered)} answered, "
              f"{len(failures)} failed, {len(set(answered))} worker pids, "
              f"{len(asked)}+ retirements asked")  # fmt: skip
        assert not failures
        assert set(answered) & replacements  # the replacements served
        assert not first & set(answered[-100:])  # the first workers retired
        assert not [line for line in running.lines if "exited with" in line]  # none crashed
        assert running.stop() == 0


def test_max_requests_without_workers_stops_the_server_cleanly():
    proc = subprocess.Popen(
        [sys.executable, "-m", "rootserve", APP, "--app-dir", str(ROOT), "--port", "0",
         "--no-access-log", "--limit-max-requests", "5"],
        stderr=subprocess.PIPE, text=True, env=cli_env(),
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if "Listening on" in line:
                port = int(line.split(":")[-1].split()[0])
                break
        for _ in range(5):
            get_pid(port)
        assert proc.wait(WAIT) == 0
        rest = proc.stderr.read()
        assert "Served 5 requests" in rest and "stopping" in rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


def test_worker_over_its_memory_limit_is_replaced_and_no_request_fails():
    with supervisor(APP, "-w", "1", "--limit-worker-memory", "150") as running:
        (first,) = running.worker_pids(1)
        port = running.port
        client = KeepAliveClient(port)
        try:
            assert client.get() == first
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(b"GET /grow HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                while sock.recv(65536):
                    pass
            running.wait_for(r"Resident memory \d+ MiB is over --limit-worker-memory 150 MiB")
            (_, replacement) = running.worker_pids(2)
            running.wait_for(rf"Worker {replacement} ready")
            answered = [client.get() for _ in range(50)]  # bounded
        finally:
            client.close()
        assert replacement != first
        assert answered[-1] == replacement
        assert running.stop() == 0


def test_websockets_get_1012_from_a_retired_worker_and_1001_on_stop():
    with supervisor(APP, "-w", "1") as running:
        running.worker_pids(1)
        url = f"ws://127.0.0.1:{running.port}/"
        with connect(url, open_timeout=WAIT) as ws:
            old = int(ws.recv(WAIT))
            running.proc.send_signal(signal.SIGHUP)  # a new worker takes over
            with pytest.raises(ConnectionClosed):
                ws.recv(WAIT)
            assert ws.close_code == 1012
        running.wait_for(r"Rolling restart done")
        with connect(url, open_timeout=WAIT) as ws:
            assert int(ws.recv(WAIT)) != old
            running.proc.send_signal(signal.SIGTERM)  # the server goes down
            with pytest.raises(ConnectionClosed):
                ws.recv(WAIT)
            assert ws.close_code == 1001
        assert running.stop() == 0
