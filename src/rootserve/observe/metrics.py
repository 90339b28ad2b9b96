"""Prometheus metrics, counted on the hot path for almost nothing, or not at all.

How this works. With --metrics-bind, `Metrics` counts each finished request into plain
Python numbers (a dict and a list: a few additions), and `flush()`, called at every pass of
the worker's reaper (at most a second apart), moves them into prometheus_client's values.
prometheus_client runs in its multiprocess mode: each process writes its values to files
in one folder (PROMETHEUS_MULTIPROC_DIR, made by `use_multiprocess_dir` before
prometheus_client is first imported), and whoever serves /metrics adds up every process's
files, so workers' counts survive their restarts and a scrape sees all of them. Writing
to those files costs about a microsecond per value, which per request would cost a sixth
of a request; per flush it costs nothing that shows.

HTTP/2 is counted apart as well, in the same way: the streams that carried a request (a
counter: each stream is also one request in the request counts) and the HTTP/2 connections
open now (a gauge; `rootserve_connections_open` counts them with the HTTP/1.1 ones). Each
HTTP/2 count is one addition where it happens, published at the flush.

Without --metrics-bind the server holds `NullMetrics`, whose methods do nothing, and
prometheus_client is never imported.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
import time
from bisect import bisect_left
from collections.abc import Callable
from typing import Any, Final

from rootserve.observe.access import (
    AccessLog,
    Answered,
    NullAccessLog,
    timed_runner,
)

__all__ = [
    "BUCKETS",
    "MeteredLog",
    "Metrics",
    "NullMetrics",
    "mark_process_dead",
    "metrics_text",
    "shared_metrics",
    "status_class",
    "use_multiprocess_dir",
    "worker_restarts",
]

ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
# Latency buckets in seconds: from a fast in-memory answer to a slow report.
BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_METHODS: Final = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE"}
)


def status_class(status: int) -> str:
    """`2xx` for 200..299 and so on: label values stay few whatever the app answers."""
    return f"{status // 100}xx" if 100 <= status <= 599 else "other"


def use_multiprocess_dir() -> Callable[[], None]:
    """Make a fresh folder for every process's metric files and point
    PROMETHEUS_MULTIPROC_DIR at it (workers inherit it); return the clean-up. Call it
    before prometheus_client is imported: it chooses its storage on import."""
    folder = tempfile.mkdtemp(prefix="rootserve-metrics-")
    os.environ[ENV] = folder

    def remove() -> None:
        if os.environ.get(ENV) == folder:
            del os.environ[ENV]
        shutil.rmtree(folder, ignore_errors=True)

    return remove


class NullMetrics:
    """--metrics-bind off: nothing is counted."""

    enabled: Final = False

    def request_done(self, method: str, status: int, seconds: float, sent: int) -> None:
        return None

    def app_exception(self) -> None:
        return None

    def http2_stream(self) -> None:
        return None

    def http2_connections(self, change: int) -> None:
        return None

    def flush(self, running: int, connections: int, websockets: int, received: int) -> None:
        return None


class Metrics:
    """The metrics of one process; `flush()` publishes what was counted since the last."""

    enabled: Final = True

    def __init__(self) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        self._requests = Counter(
            "rootserve_requests", "Requests answered, by method and status class.",
            ["method", "status"], registry=None,
        )  # fmt: skip
        self._duration = Histogram(
            "rootserve_request_duration_seconds",
            "Time from a request's head to the end of its response.",
            buckets=BUCKETS,
            registry=None,
        )
        self._sent = Counter(
            "rootserve_response_body_bytes", "Response body bytes sent.", registry=None
        )
        self._received = Counter(
            "rootserve_received_bytes", "Bytes read from clients.", registry=None
        )
        self._exceptions = Counter(
            "rootserve_app_errors",
            "App calls that ended without a whole answer: an exception, or no response "
            "(answered 500, or the connection cut).",
            registry=None,
        )
        self._in_flight = Gauge(
            "rootserve_requests_in_progress", "Requests the app is answering now.",
            multiprocess_mode="livesum", registry=None,
        )  # fmt: skip
        self._connections = Gauge(
            "rootserve_connections_open", "Open client connections.",
            multiprocess_mode="livesum", registry=None,
        )  # fmt: skip
        self._websockets = Gauge(
            "rootserve_websockets_open", "Open WebSocket sessions.",
            multiprocess_mode="livesum", registry=None,
        )  # fmt: skip
        self._h2_streams = Counter(
            "rootserve_http2_streams", "HTTP/2 streams that carried a request.", registry=None
        )
        self._h2_connections = Gauge(
            "rootserve_http2_connections_open", "Open HTTP/2 client connections.",
            multiprocess_mode="livesum", registry=None,
        )  # fmt: skip
        self._done: list[tuple[str, int, float, int]] = []  # since the last flush
        self.record = self._done.append  # the hot path's one call (MeteredLog)
        self._counts: dict[tuple[str, str], int] = {}
        self._buckets = [0] * (len(BUCKETS) + 1)  # the last: above every bound (+Inf)
        self._seconds = 0.0
        self._bytes_sent = 0
        self._raised = 0
        self._received_before = 0
        self._h2_new_streams = 0  # since the last flush
        self._h2_open = 0  # HTTP/2 connections open now

    # -- on the hot path: plain arithmetic -----------------------------------------------

    def request_done(self, method: str, status: int, seconds: float, sent: int) -> None:
        """One answered request; `sent`: the body bytes the app gave (none are sent for
        HEAD, 204 and 304, which the flush accounts for)."""
        self.record((method, status, seconds, sent))

    def _tally(self) -> None:
        """Fold the requests recorded since the last flush into the counts. Per request,
        recording is one list append (measured: counting each request as it came cost
        4.6 µs of a 17 µs request in benchmarks/replay.py --metrics; the append, 0.1)."""
        counts = self._counts
        buckets = self._buckets
        for method, status, seconds, sent in self._done:
            key = (method if method in _METHODS else "other", status_class(status))
            counts[key] = counts.get(key, 0) + 1
            buckets[bisect_left(BUCKETS, seconds)] += 1
            self._seconds += seconds
            if status != 204 and status != 304 and method != "HEAD":
                self._bytes_sent += sent
        self._done.clear()

    def app_exception(self) -> None:
        self._raised += 1

    def http2_stream(self) -> None:
        """An HTTP/2 stream brought a request (server/h2_exchange.py)."""
        self._h2_new_streams += 1

    def http2_connections(self, change: int) -> None:
        """An HTTP/2 connection opened (1) or closed (-1) (server/h2_connection.py)."""
        self._h2_open += change

    # -- at every reaper pass --------------------------------------------------------------

    def flush(self, running: int, connections: int, websockets: int, received: int) -> None:
        """Publish the counts since the last flush, and the gauges as they are now.
        `received` is the process's running total of bytes read."""
        self._tally()
        for (method, status), count in self._counts.items():
            self._requests.labels(method, status).inc(count)
        self._counts = {}
        if any(self._buckets):
            # prometheus_client has no batch observe: its histogram keeps one value per
            # bucket (not cumulative) and one for the sum; add to them directly.
            # tests/observe/test_metrics.py checks the result through the text format.
            values: list[Any] = self._duration._buckets
            for value, count in zip(values, self._buckets, strict=True):
                if count:
                    value.inc(count)
            self._duration._sum.inc(self._seconds)
            self._buckets = [0] * len(self._buckets)
            self._seconds = 0.0
        if self._bytes_sent:
            self._sent.inc(self._bytes_sent)
            self._bytes_sent = 0
        if self._raised:
            self._exceptions.inc(self._raised)
            self._raised = 0
        if received > self._received_before:
            self._received.inc(received - self._received_before)
            self._received_before = received
        if self._h2_new_streams:
            self._h2_streams.inc(self._h2_new_streams)
            self._h2_new_streams = 0
        self._h2_connections.set(self._h2_open)
        self._in_flight.set(running)
        self._connections.set(connections)
        self._websockets.set(websockets)


@functools.cache
def shared_metrics() -> Metrics:
    """This process's one Metrics: in multiprocess mode a process keeps one value per
    metric and label set in its file, so two objects counting into it would overwrite
    each other's counts."""
    return Metrics()


class MeteredLog:
    """The access log as the metrics see it: each answered request is counted (method,
    status, duration from its arrival, body bytes), then handed to the access log."""

    def __init__(self, access_log: AccessLog | NullAccessLog, metrics: Metrics) -> None:
        self.access_log = access_log
        self._lines = access_log if isinstance(access_log, AccessLog) else None
        self._record = metrics.record

    def log(self, client: tuple[str, int] | None, request: Answered, status: int) -> None:
        started: float | None = getattr(request, "started", None)  # (the timed runner's)
        seconds = 0.0 if started is None else time.perf_counter() - started
        self._record((request.method, status, seconds, request.sent))
        if self._lines is not None:
            self._lines.log(client, request, status)

    def timed(self, runner: Any) -> Any:
        return timed_runner(runner)  # the duration needs each request's arrival


def metrics_text() -> tuple[bytes, str]:
    """Every process's metrics added up, in the Prometheus text format, and its
    content type."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry), CONTENT_TYPE_LATEST


def mark_process_dead(pid: int) -> None:
    """A worker is gone: its live gauges stop counting (its counters stay in the sums)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def worker_restarts() -> Any:
    """The supervisor's counter of workers it started in place of others, by reason."""
    from prometheus_client import Counter

    return Counter(
        "rootserve_worker_restarts",
        "Workers started in place of another: died, hung, retired (a limit), rolled "
        "(HUP or --reload).",
        ["reason"],
        registry=None,
    )
