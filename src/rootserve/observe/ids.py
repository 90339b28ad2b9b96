"""Ids for a request's log lines: a request id (the client's X-Request-ID when sane, else a
new one unique across processes) and the W3C trace id of a valid `traceparent`."""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Iterable
from typing import Final

__all__ = ["PROCESS", "header_value", "request_id", "trace_id"]

# A request id taken from the client: printable ASCII without space, quote or backslash, and
# short; anything else is replaced, never written.
_GIVEN_ID: Final = re.compile(rb"[!#-\[\]-~]{1,128}")
# W3C Trace Context, section 3.2: version "00", a 32-hex trace id, a 16-hex parent id and
# 2-hex flags, lower-case; an all-zero trace or parent id is invalid (3.2.2.3, 3.2.2.4).
_TRACEPARENT: Final = re.compile(rb"00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}")
_ZERO_TRACE: Final = b"0" * 32
_ZERO_PARENT: Final = b"0" * 16


class _Process:
    """This process's pid and request-id prefix, made anew in a forked child.

    A new id is 64 random bits drawn once per process, then a counter: unique across
    workers and restarts, for one string format per request, where `uuid.uuid4()` reads
    the kernel's random source and builds a UUID object for each one."""

    def __init__(self) -> None:
        self.renew()
        os.register_at_fork(after_in_child=self.renew)

    def renew(self) -> None:
        self.pid = os.getpid()
        self.prefix = os.urandom(8).hex()
        self.counter = itertools.count(1)  # next() is atomic under the GIL

    def new_id(self) -> str:
        return f"{self.prefix}{next(self.counter):016x}"


PROCESS: Final = _Process()


def header_value(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    """The field `name` (lower-case), several joined with ", " (RFC 9110 section 5.3)."""
    values = [value for key, value in headers if key.lower() == name]
    return b", ".join(values) if values else None


def request_id(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The request's X-Request-ID when it is a sane token, else a new id."""
    given = header_value(headers, b"x-request-id")
    if given is not None and _GIVEN_ID.fullmatch(given):
        return given.decode("ascii")
    return PROCESS.new_id()


def trace_id(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The trace id of a valid W3C `traceparent` (one field, version 00), else None."""
    match = _TRACEPARENT.fullmatch(header_value(headers, b"traceparent") or b"")
    if match is None or match[1] == _ZERO_TRACE or match[2] == _ZERO_PARENT:
        return None
    return match[1].decode("ascii")
