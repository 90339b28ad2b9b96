"""Replay every corpus case through `HTTP11Connection`, whole, line by line, byte by byte and
in random chunks (fixed seeds), and compare the normalised events with the case file.

A valid case gives its requests, complete and in order, then `ConnectionClosed` at EOF.
An invalid case gives the good requests before it, perhaps the head of the failing request,
then one `BadRequest` with the expected status, and nothing at all after that.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from rootserve.protocol.rules import Limits

from ._corpus import (
    CASE_KEYS,
    CLASSES,
    FEEDS,
    REQUEST_KEYS,
    Case,
    check_invalid,
    check_valid,
    chunks_for,
    load_cases,
)

VALID = load_cases("valid")
INVALID = load_cases("invalid")
STATUSES = {400, 413, 414, 417, 431, 501, 505}


def _params(cases: list[Case]) -> list[Any]:
    params = []
    for case in cases:
        for feed in case.feeds:
            marks = []
            if case.fails_under(feed):
                reason = case.xfail["reason"] if case.xfail else ""
                marks.append(pytest.mark.xfail(strict=True, reason=reason))
            params.append(pytest.param(case, feed, id=f"{case.name}-{feed}", marks=marks))
    return params


def test_corpus_size() -> None:
    assert len(VALID) >= 60
    assert len(INVALID) >= 80
    assert len(VALID) + len(INVALID) >= 400


def test_every_class_has_cases(capsys: pytest.CaptureFixture[str]) -> None:
    valid = Counter(case.klass for case in VALID)
    invalid = Counter(case.klass for case in INVALID)
    with capsys.disabled():
        print(f"\n{'class':<20}{'valid':>6}{'invalid':>8}")
        for klass in CLASSES:
            print(f"{klass:<20}{valid[klass]:>6}{invalid[klass]:>8}")
        print(f"{'all':<20}{len(VALID):>6}{len(INVALID):>8}")
    # Each class has cases to accept and to reject, but plain requests (accepted only) and
    # bytes that are no HTTP (rejected only).
    assert all(invalid[klass] for klass in CLASSES if klass != "basics")
    assert all(valid[klass] for klass in CLASSES if klass != "not-http")


@pytest.mark.parametrize("case", VALID + INVALID, ids=lambda c: f"{c.kind}/{c.name}")
def test_case_file_is_well_formed(case: Case) -> None:
    assert set(case.data) <= CASE_KEYS
    assert case.klass in CLASSES
    assert case.description
    assert case.raw
    for request in case.requests:
        assert set(request) == REQUEST_KEYS
    if case.kind == "valid":
        assert case.status is None and case.partial is None
    else:
        assert case.status in STATUSES
        if case.partial is not None:
            assert set(case.partial) == REQUEST_KEYS
    assert set(case.feeds) <= set(FEEDS)
    if case.xfail is not None:
        assert case.xfail["reason"]
        assert set(case.xfail.get("feeds", FEEDS)) <= set(FEEDS)


@pytest.mark.parametrize(("case", "feed"), _params(VALID))
def test_valid(case: Case, feed: str) -> None:
    check_valid(case, chunks_for(case.raw, feed))


@pytest.mark.parametrize(("case", "feed"), _params(INVALID))
def test_invalid(case: Case, feed: str) -> None:
    check_invalid(case, chunks_for(case.raw, feed))


def test_limits_in_cases_are_real_fields() -> None:
    # A misspelt limit would raise TypeError at load time; this names the fields used.
    used = {key for case in VALID + INVALID for key in case.data.get("limits", {})}
    assert used <= set(Limits.__dataclass_fields__)
