"""The events that cross the sans-IO boundary of the HTTP/1.1 protocol.

Received: `Request`, then zero or more `Data`, then `EndOfMessage`; `BadRequest` when the
bytes break a rule (the server answers with its status and closes); `ConnectionClosed` when
the peer sent EOF. Sent: `InformationalResponse`, `Response`, `Data`, `EndOfMessage`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

__all__ = [
    "END_OF_MESSAGE",
    "BadRequest",
    "ConnectionClosed",
    "Data",
    "EndOfMessage",
    "Event",
    "Head",
    "Headers",
    "InformationalResponse",
    "Request",
    "Response",
]

Headers = list[tuple[bytes, bytes]]


@dataclass(slots=True, eq=False, init=False)
class Request:
    """A request head. Header names are lower-cased, values stripped of surrounding OWS.

    Equal only to itself: two identical pipelined requests are two requests, and the
    server keeps each exchange (a subclass, server/exchange.py) in a set while it runs.

    `path` and `query` are raw bytes of the target (for an absolute-form target, its path
    and query; the `host` header then holds the target's authority, RFC 9112 section 3.2.2).
    """

    method: str
    target: bytes
    path: bytes
    query: bytes
    http_version: str
    headers: Headers
    keep_alive: bool
    expect_continue: bool
    has_body: bool
    upgrade: bytes

    def __init__(
        self,
        method: str,
        target: bytes,
        path: bytes,
        query: bytes,
        http_version: str,
        headers: Headers,
        keep_alive: bool,
        expect_continue: bool = False,
        has_body: bool = False,
        upgrade: bytes = b"",
    ) -> None:
        # Written out, here and in each event made per request or per read: mypyc compiles
        # a class's own __init__, while the one @dataclass makes stays interpreted Python
        # (about 2,000 instructions a request in the compiled build, callgrind).
        self.method = method
        self.target = target
        self.path = path
        self.query = query
        self.http_version = http_version
        self.headers = headers
        self.keep_alive = keep_alive
        self.expect_continue = expect_continue
        self.has_body = has_body
        self.upgrade = upgrade


class Head(Protocol):
    """What the adapters read of a request head: a `Request`, or an exchange (which is
    one, with its answer's side added; see exchange.py)."""

    method: str
    target: bytes
    path: bytes
    query: bytes
    http_version: str
    headers: Headers
    keep_alive: bool
    expect_continue: bool
    has_body: bool
    upgrade: bytes


@dataclass(slots=True, init=False)
class Data:
    data: bytes

    def __init__(self, data: bytes) -> None:
        self.data = data  # (written out: see Request)


@dataclass(slots=True, frozen=True)
class EndOfMessage:
    pass


END_OF_MESSAGE = EndOfMessage()


@dataclass(slots=True, frozen=True)
class BadRequest:
    """The request broke a rule: answer `status` (reason in the body) and close."""

    status: int
    reason: str


@dataclass(slots=True, frozen=True)
class ConnectionClosed:
    pass


@dataclass(slots=True)
class Response:
    status: int
    headers: Headers = field(default_factory=list)


@dataclass(slots=True)
class InformationalResponse:
    status: int = 100
    headers: Headers = field(default_factory=list)


Event = Request | Data | EndOfMessage | BadRequest | ConnectionClosed
