"""The states of an exchange's answer, and what an exchange holds before its adapter takes
it: shared by the HTTP/1.1 exchange (exchange.py) and the HTTP/2 one (h2_exchange.py), which
apply the same rules to them."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from rootserve.protocol.events import Headers, Request
from rootserve.protocol.exchange import Address, ClientDisconnected, Receiver, ResponseError
from rootserve.server.tls import ConnectionTLS

__all__ = [
    "CUT",
    "DONE",
    "INTERNAL_ERROR",
    "NO_RECEIVER",
    "STREAMING",
    "WAITING",
    "Answer",
    "AnswerSide",
    "not_streaming",
    "not_waiting",
]


class Answer(enum.Enum):
    WAITING = "no response yet"
    STREAMING = "the head is sent, the body goes on"
    DONE = "the response is complete"
    CUT = "cut off: the client is gone, or the connection was aborted"


# Module-level names: Python 3.11 looks `Answer.DONE` up through a descriptor each time
# (about 70 ns), and a request passes several of these tests.
WAITING: Final = Answer.WAITING
STREAMING: Final = Answer.STREAMING
DONE: Final = Answer.DONE
CUT: Final = Answer.CUT
INTERNAL_ERROR: Final = "Internal Server Error"


class _NoReceiver:
    """Until the adapter sets itself as the receiver (and for an exchange nobody answers)."""

    def feed(self, data: bytes) -> None:
        pass

    def end(self) -> None:
        pass

    def disconnect(self) -> None:
        pass

    def writable(self) -> None:
        pass

    def server_stopping(self) -> None:
        pass

    def cancel(self) -> None:
        pass


NO_RECEIVER: Final = _NoReceiver()


@dataclass(slots=True, eq=False, init=False)
class AnswerSide(Request):
    """What the HTTP/1.1 and the HTTP/2 exchange hold alike, and tell their adapter alike
    from the state of the answer. Each exchange is a slotted dataclass under it that
    declares `conn` (a connection of its own kind, so not declared here). An attribute is
    declared once in a chain: a compiled class showed the garbage collector each attribute
    declared twice as two references, and the collector then freed what it still held
    (tests/test_compiled_build.py)."""

    _answer: Answer
    receiver: Receiver
    status: int  # the status answered, 0 until the response starts
    # Set by the connection as the request arrives (not in __init__: stores fewer).
    server: Address | None
    client: Address | None
    request_complete: bool
    # Whether the client waits for 100 Continue before it sends the body.
    awaiting_continue: bool
    # What the access log reads (observe/access.py `Answered`), kept as the answer goes
    # out: the app's header fields and the body bytes handed to the protocol. `started` is
    # set only by the access log's runner (`AccessLog.timed`), when its lines need it.
    response_headers: Iterable[tuple[bytes, bytes]] = field(repr=False)
    sent: int = field(repr=False)
    started: float = field(repr=False)
    # `http`, or `https` on a TLS connection, which sets it as the request arrives; a
    # field of each exchange, so that proxy headers can change it per request.
    scheme: str
    root_path: str | None  # a trusted proxy's prefix (server/proxied.py)

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
        # (Written out: see Request's.) The protocols make their requests of an exchange's
        # class, with Request's arguments.
        Request.__init__(
            self,
            method,
            target,
            path,
            query,
            http_version,
            headers,
            keep_alive,
            expect_continue,
            has_body,
            upgrade,
        )
        self._answer = WAITING
        self.receiver = NO_RECEIVER
        self.status = 0
        self.request_complete = True
        self.awaiting_continue = False
        self.scheme = "http"
        self.root_path = None

    def _connection_tls(self) -> ConnectionTLS | None:
        """Each exchange's: its connection's TLS facts."""
        raise NotImplementedError

    @property
    def tls(self) -> dict[str, Any] | None:
        """The ASGI TLS extension's dict for this request's connection; None when the
        connection is not TLS (asgi/http.py asks only for an `https` request)."""
        tls = self._connection_tls()
        return None if tls is None else tls.extension()

    @property
    def disconnected(self) -> bool:
        return self._answer is CUT

    @property
    def response_started(self) -> bool:
        return self._answer is not WAITING

    @property
    def complete(self) -> bool:
        return self._answer is DONE or self._answer is CUT


# What an exchange raises when the app sends out of turn. The callers test the state
# inline (`if answer is not WAITING`), the common case, and call these only to say why.


def not_waiting(answer: Answer, gone: str) -> Exception:
    """A response head, or a refusal, once the answer has begun (or was cut: `gone`)."""
    if answer is CUT:
        return ClientDisconnected(gone)
    return ResponseError("the response was already started")


def not_streaming(answer: Answer, gone: str, what: str = "body") -> Exception:
    """Body or trailers (`what`) outside a response in progress."""
    if answer is CUT:
        return ClientDisconnected(gone)
    if answer is WAITING:
        return ResponseError(f"{what} sent before the response head")
    return ResponseError(f"{what} sent after the response was complete")
