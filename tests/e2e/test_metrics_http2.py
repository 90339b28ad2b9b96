"""--metrics-bind with HTTP/2: a `rootserve` process serving h2c (prior knowledge, --http
auto) counts each stream in rootserve_http2_streams_total, as /metrics shows it, parsed
with prometheus_client's own parser (tests/e2e/test_metrics.py's scrape)."""

from __future__ import annotations

import httpx
import pytest
from tests.e2e.test_metrics import METRICS_LINE, scrape_until
from tests.e2e.workers_support import APP, supervisor

pytestmark = pytest.mark.slow

STREAMS = "rootserve_http2_streams_total{}"


def test_http2_streams_are_counted_on_the_metrics_page() -> None:
    with supervisor(APP, "--metrics-bind", "127.0.0.1:0", "--http", "auto") as running:
        metrics_port = int(running.wait_for(METRICS_LINE)[0][1])
        url = f"http://127.0.0.1:{running.port}/"
        with httpx.Client(http1=False, http2=True, timeout=10) as client:
            versions = {client.get(url).http_version for _ in range(5)}
        assert versions == {"HTTP/2"}
        with httpx.Client(timeout=10) as client:  # HTTP/1.1 requests are no streams
            assert client.get(url).http_version == "HTTP/1.1"
        samples = scrape_until(metrics_port, STREAMS, 5)
        assert samples[STREAMS] == 5
        requests = sum(v for k, v in samples.items() if k.startswith("rootserve_requests_total"))
        assert requests == 6
        assert running.stop() == 0
