"""--metrics-bind: /metrics counts what was sent, across workers; /healthz and /readyz say
what Kubernetes needs, on their own port. Real processes on 127.0.0.1, parsed with
prometheus_client's own parser."""

from __future__ import annotations

import signal
import socket
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from tests.e2e.workers_support import APP, WAIT, KeepAliveClient, supervisor

pytestmark = pytest.mark.slow

METRICS_LINE = r"Metrics and probes on http://127\.0\.0\.1:(\d+)"


def scrape(port: int) -> dict[str, float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}"] = sample.value
    return samples


def scrape_until(port: int, key: str, value: float) -> dict[str, float]:
    """Metrics are published at each reaper pass (a second apart at most): poll, bounded."""
    deadline = time.monotonic() + WAIT
    while True:
        samples = scrape(port)
        if samples.get(key) == value or time.monotonic() > deadline:
            return samples
        time.sleep(0.2)  # noqa: sleep-ok (poll: the workers publish once a second)


def get_status(port: int, path: str) -> int:
    return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5).status_code


def test_metrics_across_two_workers_match_the_traffic_sent():
    with supervisor(APP, "-w", "2", "--metrics-bind", "127.0.0.1:0") as running:
        metrics_port = int(running.wait_for(METRICS_LINE)[0][1])
        running.worker_pids(2)
        port = running.port
        assert get_status(metrics_port, "/healthz") == 200
        assert get_status(metrics_port, "/readyz") == 200
        client = KeepAliveClient(port)
        try:
            pids = {client.get() for _ in range(300)}
        finally:
            client.close()
        for _ in range(40):  # new connections: the kernel spreads them over both workers
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n"
                             b"Connection: close\r\n\r\nabc")  # fmt: skip
                data = b""
                while chunk := sock.recv(65536):
                    data += chunk
                pids.add(int(data.partition(b"\r\n\r\n")[2]))
        key = "rootserve_requests_total{method=GET,status=2xx}"
        samples = scrape_until(metrics_port, key, 300)
        print(f"metrics after 300 GET + 40 POST over {len(pids)} worker(s): "
              f"GET {samples.get(key)}, POST "
              f"{samples.get('rootserve_requests_total{method=POST,status=2xx}')}")  # fmt: skip
        assert samples[key] == 300
        samples = scrape_until(metrics_port, "rootserve_requests_total{method=POST,status=2xx}", 40)
        assert samples["rootserve_requests_total{method=POST,status=2xx}"] == 40
        assert samples["rootserve_request_duration_seconds_count{}"] == 340
        assert samples["rootserve_response_body_bytes_total{}"] > 0
        assert samples["rootserve_received_bytes_total{}"] > 340 * 20
        assert get_status(metrics_port, "/nothing") == 404
        assert get_status(port, "/metrics") == 200  # the app's port: the app's answer
        assert running.stop() == 0


def test_readyz_turns_not_ready_at_term_while_the_shutdown_delay_still_serves():
    with supervisor(
        APP, "-w", "1", "--metrics-bind", "127.0.0.1:0", "--shutdown-delay", "3"
    ) as running:
        metrics_port = int(running.wait_for(METRICS_LINE)[0][1])
        running.worker_pids(1)
        port = running.port
        assert get_status(metrics_port, "/readyz") == 200
        running.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + WAIT
        while get_status(metrics_port, "/readyz") != 503:
            assert time.monotonic() < deadline
        assert get_status(metrics_port, "/healthz") == 200
        client = KeepAliveClient(port)
        try:
            client.get()  # the delay: still served while the load balancer moves away
        finally:
            client.close()
        assert running.proc.wait(WAIT) == 0


def test_single_process_probes_and_worker_restart_count():
    with supervisor(APP, "--metrics-bind", "127.0.0.1:0") as running:
        metrics_port = int(running.wait_for(METRICS_LINE)[0][1])
        running.wait_for(r"Listening on")
        assert get_status(metrics_port, "/readyz") == 200
        assert get_status(metrics_port, "/healthz") == 200
        assert get_status(metrics_port, "/metrics") == 200
        assert running.stop() == 0


def test_metrics_bind_without_a_port_is_a_usage_error():
    from tests.helpers import run_cli

    done = run_cli("--metrics-bind", "nowhere")
    assert done.returncode == 2
    assert done.stderr.startswith("error: --metrics-bind: ")
    assert len(done.stderr.strip().splitlines()) == 1
