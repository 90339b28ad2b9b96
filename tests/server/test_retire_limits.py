"""When a worker has served enough (server/worker.py RetireLimits)."""

from __future__ import annotations

import random

import pytest

from rootserve.config import Config
from rootserve.observe.process import rss_bytes
from rootserve.server.worker import RetireLimits


def test_no_limit_is_no_object():
    assert RetireLimits.from_config(Config()) is None


def test_max_requests_is_reached_at_the_count():
    limits = RetireLimits.from_config(Config(limit_max_requests=10))
    assert limits is not None
    assert limits.reached(9) is None
    assert "Served 10 requests" in (limits.reached(10) or "")


def test_jitter_draws_once_per_worker_within_its_range(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(random, "randint", lambda a, b: b)  # the largest draw
    limits = RetireLimits.from_config(Config(limit_max_requests=100, max_requests_jitter=7))
    assert limits is not None and limits.max_requests == 107
    drawn = {
        limits.max_requests
        for limits in (
            RetireLimits.from_config(Config(limit_max_requests=100, max_requests_jitter=7))
            for _ in range(5)
        )
        if limits is not None
    }
    assert drawn == {107}
    monkeypatch.undo()
    spread = {
        limits.max_requests
        for limits in (
            RetireLimits.from_config(Config(limit_max_requests=100, max_requests_jitter=7))
            for _ in range(200)
        )
        if limits is not None
    }
    assert min(spread) >= 100 and max(spread) <= 107 and len(spread) > 1


def test_memory_is_the_resident_set_now():
    assert 1 << 20 < rss_bytes() < 1 << 40
    small = RetireLimits.from_config(Config(limit_worker_memory=1))  # 1 MiB: passed already
    assert small is not None
    assert "over --limit-worker-memory 1 MiB" in (small.reached(0) or "")
    large = RetireLimits.from_config(Config(limit_worker_memory=1 << 20))  # 1 TiB
    assert large is not None and large.reached(0) is None
