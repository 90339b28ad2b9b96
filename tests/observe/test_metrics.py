"""observe/metrics.py: what a flush publishes, read back through the Prometheus text format.

prometheus_client picks its storage when it is first imported (multiprocess files only if
PROMETHEUS_MULTIPROC_DIR is set then), so each check runs in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from tests.helpers import ROOT

from rootserve.observe.metrics import BUCKETS, NullMetrics, status_class

SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    from rootserve.observe.metrics import (
        mark_process_dead, metrics_text, shared_metrics, use_multiprocess_dir,
    )
    cleanup = use_multiprocess_dir()  # before prometheus_client is imported
    try:
        from prometheus_client.parser import text_string_to_metric_families

        m = shared_metrics()
        assert m is shared_metrics()
        for seconds in (0.0005, 0.003, 0.003, 0.2, 30.0):
            m.request_done("GET", 200, seconds, 100)
        m.request_done("BREW", 418, 0.001, 5)  # an unknown method: one label value
        m.request_done("POST", 503, 0.001, 0)
        m.request_done("HEAD", 200, 0.001, 50)  # its body is never sent: no bytes counted
        m.app_exception()
        m.flush(running=3, connections=7, websockets=2, received=1000)
        m.request_done("GET", 200, 0.001, 1)
        m.flush(running=1, connections=2, websockets=0, received=1500)
        samples = {}
        for family in text_string_to_metric_families(metrics_text()[0].decode()):
            for s in family.samples:
                key = s.name + json.dumps(s.labels, sort_keys=True)
                samples[key] = s.value
        print(json.dumps(samples))
    finally:
        cleanup()
    """
)


def published() -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_a_flush_publishes_counts_histogram_bytes_and_gauges():
    got = published()
    get_2xx = 'rootserve_requests_total{"method": "GET", "status": "2xx"}'
    assert got[get_2xx] == 6
    assert got['rootserve_requests_total{"method": "other", "status": "4xx"}'] == 1
    assert got['rootserve_requests_total{"method": "POST", "status": "5xx"}'] == 1
    assert got['rootserve_requests_total{"method": "HEAD", "status": "2xx"}'] == 1
    # The histogram is cumulative: le=0.001 holds 0.0005 and the four 0.001s.
    assert got['rootserve_request_duration_seconds_bucket{"le": "0.001"}'] == 5
    assert got['rootserve_request_duration_seconds_bucket{"le": "0.005"}'] == 7
    assert got['rootserve_request_duration_seconds_bucket{"le": "0.25"}'] == 8
    assert got['rootserve_request_duration_seconds_bucket{"le": "10.0"}'] == 8
    assert got['rootserve_request_duration_seconds_bucket{"le": "+Inf"}'] == 9
    assert got["rootserve_request_duration_seconds_count{}"] == 9
    total = 0.0005 + 0.003 + 0.003 + 0.2 + 30.0 + 0.001 * 4
    assert abs(got["rootserve_request_duration_seconds_sum{}"] - total) < 1e-9
    assert got["rootserve_response_body_bytes_total{}"] == 506
    assert got["rootserve_received_bytes_total{}"] == 1500
    assert got["rootserve_app_errors_total{}"] == 1
    assert got["rootserve_requests_in_progress{}"] == 1  # the gauges are as of the last flush
    assert got["rootserve_connections_open{}"] == 2
    assert got["rootserve_websockets_open{}"] == 0


def test_status_classes_and_the_null_object():
    assert [status_class(s) for s in (101, 200, 304, 404, 599, 600, 42)] == [
        "1xx", "2xx", "3xx", "4xx", "5xx", "other", "other",
    ]  # fmt: skip
    null = NullMetrics()
    assert not null.enabled
    null.request_done("GET", 200, 0.1, 1)
    null.flush(1, 1, 1, 1)
    assert list(BUCKETS) == sorted(BUCKETS)
