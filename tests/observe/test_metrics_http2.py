"""observe/metrics.py's HTTP/2 counts: streams counted by each H2Exchange of a real HTTP/2
server (tests/server/h2_server_support.py, httpx with prior knowledge), the connections
gauge, read back from the metrics page's text with prometheus_client's own parser. In a
fresh interpreter: prometheus_client picks its storage when it is first imported."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from tests.helpers import ROOT

from rootserve.observe.metrics import NullMetrics

SCRIPT = textwrap.dedent(
    """
    import json
    from rootserve.observe.metrics import metrics_text, use_multiprocess_dir
    cleanup = use_multiprocess_dir()  # before prometheus_client is imported
    try:
        from prometheus_client.parser import text_string_to_metric_families
        from tests.server.h2_server_support import asgi_app, h2_client, h2_server

        with h2_server(asgi_app, metrics_bind="127.0.0.1:0") as server:
            metrics = server.state.metrics
            assert metrics.enabled
            with h2_client() as client:
                for path in ("/a", "/b", "/c"):
                    assert client.get(server.url + path).http_version == "HTTP/2"
                # Read while the client's one connection is open (the gauge counts it).
                server.call(lambda: metrics.flush(0, 0, 0, 0))
        samples = {}
        for family in text_string_to_metric_families(metrics_text()[0].decode()):
            for s in family.samples:
                samples[s.name + json.dumps(s.labels, sort_keys=True)] = s.value
        print(json.dumps(samples))
    finally:
        cleanup()
    """
)


def test_http2_streams_and_connections_are_published() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert got["rootserve_http2_streams_total{}"] == 3
    assert got["rootserve_http2_connections_open{}"] == 1
    # Each stream is a request like any other in the request counts.
    assert got['rootserve_requests_total{"method": "GET", "status": "2xx"}'] == 3


def test_null_metrics_take_the_http2_counts_and_do_nothing() -> None:
    metrics = NullMetrics()
    assert metrics.http2_stream() is None
    assert metrics.http2_connections(1) is None
