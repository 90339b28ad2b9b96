"""The raw-request corpus: loading the case files, feeding them, normalising the events.

Each case is one JSON file under `corpus/valid/` or `corpus/invalid/`. `raw` holds the exact
request bytes as a string: JSON escapes give CR, LF and control bytes, and code points
0x80-0xFF stand for single bytes (the string is encoded as latin-1). Every other text field
(target, header values, body) is bytes decoded the same way. Keys:

- `class`: what part of the protocol the case is about, one of CLASSES.
- `description`: what the case shows, with its RFC section.
- `limits` (optional): keyword arguments for `Limits`.
- `requests`: the requests that come out complete, in order; each has method, target, path,
  query, http_version, headers ([name, value] after lower-casing and OWS stripping), body
  (the joined Data), keep_alive, expect_continue, has_body and upgrade.
- invalid only: `status` of the BadRequest that ends the case, and `partial` when the head of
  the failing request came out before the error: its fields, with `body` the most that may
  have come out before the error (how much did depends on the chunking).
- `xfail` (optional): `{"reason": ..., "feeds": [...]}` for a known protocol bug; `feeds`
  names the feeding modes that fail (all when absent).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rootserve.protocol.events import (
    BadRequest,
    ConnectionClosed,
    Data,
    EndOfMessage,
    Event,
    Request,
)
from rootserve.protocol.http11 import HTTP11Connection
from rootserve.protocol.rules import Limits

__all__ = [
    "CLASSES",
    "CORPUS",
    "FEEDS",
    "Case",
    "check_invalid",
    "check_valid",
    "chunks_for",
    "load_cases",
    "normalise",
    "replay",
]

CORPUS = Path(__file__).parent / "corpus"
RANDOM_SEEDS = (1, 2, 3, 4)
FEEDS = ("whole", "lines", "bytes", *(f"random-{seed}" for seed in RANDOM_SEEDS))
REQUEST_KEYS = frozenset(
    {
        "method",
        "target",
        "path",
        "query",
        "http_version",
        "headers",
        "body",
        "keep_alive",
        "expect_continue",
        "has_body",
        "upgrade",
    }
)
CASE_KEYS = frozenset(
    {"class", "description", "raw", "limits", "requests", "partial", "status", "xfail", "feeds"}
)
# The classes of cases: the fields that frame a message or steer the connection, field
# syntax in general, the chunked coding and its trailers, the request line and its parts,
# bytes that are no HTTP/1.1, the size limits, pipelines, and plain requests.
CLASSES = (
    "transfer-encoding",
    "content-length",
    "host",
    "connection",
    "upgrade",
    "expect",
    "field-syntax",
    "chunked",
    "trailers",
    "request-line",
    "method",
    "target",
    "not-http",
    "limits",
    "pipelining",
    "basics",
)

Normalised = dict[str, Any] | str


@dataclass(frozen=True)
class Case:
    kind: str  # "valid" or "invalid"
    name: str
    klass: str  # one of CLASSES
    description: str
    raw: bytes
    limits: Limits
    requests: list[dict[str, Any]]
    partial: dict[str, Any] | None
    status: int | None
    xfail: dict[str, Any] | None
    feeds: tuple[str, ...]  # the feeding modes that apply (all unless the file says)
    data: dict[str, Any]  # the file as loaded, for the schema test

    def fails_under(self, feed: str) -> bool:
        if self.xfail is None:
            return False
        feeds = self.xfail.get("feeds")
        return feeds is None or feed in feeds


def load_cases(kind: str) -> list[Case]:
    cases = []
    for path in sorted((CORPUS / kind).glob("*.json")):
        data = json.loads(path.read_text(encoding="ascii"))
        cases.append(
            Case(
                kind=kind,
                name=path.stem,
                klass=data["class"],
                description=data.get("description", ""),
                raw=data["raw"].encode("latin-1"),
                limits=Limits(**data.get("limits", {})),
                requests=data.get("requests", []),
                partial=data.get("partial"),
                status=data.get("status"),
                xfail=data.get("xfail"),
                feeds=tuple(data.get("feeds", FEEDS)),
                data=data,
            )
        )
    return cases


def chunks_for(raw: bytes, feed: str) -> list[bytes]:
    """`raw` cut up the way `feed` names: whole, line by line, byte by byte or at random."""
    if feed == "whole":
        return [raw]
    if feed == "lines":
        return raw.splitlines(keepends=True)
    if feed == "bytes":
        return [raw[i : i + 1] for i in range(len(raw))]
    seed = int(feed.removeprefix("random-"))
    rng = random.Random(seed)
    top = max(1, len(raw) // 3)
    chunks, start = [], 0
    while start < len(raw):
        size = rng.randint(1, rng.choice((3, 17, top)))
        chunks.append(raw[start : start + size])
        start += size
    return chunks


def _text(value: bytes) -> str:
    return value.decode("latin-1")


def normalise(events: Iterable[Event]) -> list[Normalised]:
    """Events in the corpus's shape: one dict per request, its Data joined into `body`;
    `{"bad_request": status}` for a BadRequest and "closed" for ConnectionClosed."""
    out: list[Normalised] = []
    current: dict[str, Any] | None = None
    for event in events:
        if isinstance(event, Request):
            assert current is None, f"a new request before the end of {current}"
            current = {
                "method": event.method,
                "target": _text(event.target),
                "path": _text(event.path),
                "query": _text(event.query),
                "http_version": event.http_version,
                "headers": [[_text(n), _text(v)] for n, v in event.headers],
                "body": "",
                "keep_alive": event.keep_alive,
                "expect_continue": event.expect_continue,
                "has_body": event.has_body,
                "upgrade": _text(event.upgrade),
                "complete": False,
            }
            out.append(current)
        elif isinstance(event, Data):
            assert current is not None, f"{event} outside a request"
            assert event.data, "an empty Data event"
            current["body"] += _text(event.data)
        elif isinstance(event, EndOfMessage):
            assert current is not None, "EndOfMessage outside a request"
            current["complete"] = True
            current = None
        elif isinstance(event, BadRequest):
            assert isinstance(event.reason, str) and event.reason, event
            out.append({"bad_request": event.status})
        elif isinstance(event, ConnectionClosed):
            out.append("closed")
        else:  # pragma: no cover - a new event type would need a shape here
            raise AssertionError(f"unexpected event {event!r}")
    return out


def replay(
    chunks: Iterable[bytes], limits: Limits | None = None
) -> tuple[HTTP11Connection, list[Event]]:
    """Feed every chunk, then EOF; all the events, in order."""
    conn = HTTP11Connection(limits=limits)
    events: list[Event] = []
    for chunk in chunks:
        events += conn.receive_data(chunk)
    events += conn.receive_data(b"")
    return conn, events


def complete(request: dict[str, Any]) -> dict[str, Any]:
    return {**request, "complete": True}


def check_valid(case: Case, chunks: list[bytes]) -> None:
    """Its requests come out complete and in order, then ConnectionClosed at EOF."""
    assert b"".join(chunks) == case.raw
    _, events = replay(chunks, case.limits)
    assert normalise(events) == [complete(r) for r in case.requests] + ["closed"]


def check_invalid(case: Case, chunks: list[bytes]) -> None:
    """The good requests before it, perhaps the head of the failing one, then exactly one
    BadRequest with the case's status; nothing after it, not even for EOF or more bytes."""
    assert b"".join(chunks) == case.raw
    conn, events = replay(chunks, case.limits)
    got = normalise(events)
    done = len(case.requests)
    assert got[:done] == [complete(r) for r in case.requests]
    rest = got[done:]
    if case.partial is not None:
        assert rest, "the head of the failing request did not come out"
        head = rest.pop(0)
        assert isinstance(head, dict), head
        body = head.pop("body")
        expected = dict(case.partial)
        most = expected.pop("body")
        assert head == {**expected, "complete": False}
        assert most.startswith(body), f"body {body!r} is not a prefix of {most!r}"
    # Exactly one BadRequest, last: EOF (fed by `replay`) gave nothing after it.
    assert rest == [{"bad_request": case.status}]
    # Nothing more is parsed once the request was refused.
    assert conn.receive_data(b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n") == []
    assert conn.receive_data(b"") == []
