"""How a connection ends: refusals (a request that broke a rule, or ran out of time),
lingering after a closing answer, closing, aborting, and the graceful stop. A layer of
`Connection` (connection.py), which holds the state.
"""

from __future__ import annotations

import os
import socket
from collections import deque
from collections.abc import Callable
from typing import Any, Final, Protocol

from rootserve.protocol.events import BadRequest
from rootserve.protocol.exchange import Upgraded
from rootserve.protocol.http11 import HTTP11Connection
from rootserve.server.exchange import HTTP11Exchange
from rootserve.server.state import CLOSED, HEAD, LINGER, NO_DEADLINE, ConnState, ServerState
from rootserve.server.tls import ConnectionTLS
from rootserve.units import MIB

__all__ = ["ClosingSide", "Preamble"]

LINGER_MAX_BYTES: Final = 4 * MIB


class Preamble(Protocol):
    """Bytes a connection reads before HTTP, which its deadline waits for."""

    def expired(self) -> None:
        """The deadline passed first: end the connection, saying why."""


class ClosingSide:
    """The ending layer of Connection, the first of its layers (ClosingSide, DeadlineSide,
    each a subclass of the one before): one chain, as mypyc compiles classes. Connection's
    __init__ sets these attributes up."""

    state: ServerState
    proto: HTTP11Connection
    transport: Any
    client_addr: tuple[str, int] | None
    current: HTTP11Exchange | None
    receiving: HTTP11Exchange | None
    pipeline: deque[HTTP11Exchange | BadRequest]
    session: Upgraded | None
    at: ConnState
    deadline: float
    _sink: Callable[[bytes], None] | None
    _read_paused: bool
    _eof: bool
    _lingered: int
    upgrade: HTTP11Exchange | None
    tls: ConnectionTLS | None  # None on plain HTTP
    preamble: Preamble | None  # what must come before HTTP (a PROXY header: proxied.py)

    # The layers above override these (a layer calls up only through a method it
    # declares: mypyc needs each one defined): Connection's, then DeadlineSide's.
    def write(self, data: bytes) -> None:
        raise NotImplementedError

    def enter(self, new: ConnState) -> None:
        raise NotImplementedError

    def eof_received(self) -> bool:
        self._on_eof()
        # Half-open for the answers still owed; TLS cannot be (the loop warns if asked).
        return self.tls is None

    def _on_eof(self) -> None:
        # A half-close (RFC 9112 section 9.6): requests already received are still
        # answered; a request whose body was cut short sees a disconnect.
        self._eof = True
        if self.at is LINGER:
            self.close()
            return
        if self.session is not None:
            self.session.eof_received()
            return
        upgrade = self.upgrade
        if upgrade is not None:
            # A switch can go no further without the client: nothing to answer.
            if upgrade is self.current:
                upgrade.disconnect()
                self.close()
                return
            if upgrade in self.pipeline:
                self.pipeline.remove(upgrade)  # still waiting: it will never be answered
        self.proto.receive_data(b"")
        receiving = self.receiving
        if receiving is not None and not receiving.request_complete:
            # That request can never be whole: end the connection, and with it the
            # request (its app sees the disconnect).
            self.close()
        elif self.current is None and not self.pipeline:
            self.close()

    def _on_bad_request(self, event: BadRequest) -> None:
        if self.at is LINGER or self.at is CLOSED:
            return  # answered for the last time already (--http h2 refuses many in a read)
        receiving = self.receiving
        if receiving is not None:
            # The body of a request whose head was fine broke a rule (a bad chunk, a 413
            # by chunked size) or stalled (408): that request is over.
            self.receiving = None
            if receiving in self.pipeline:
                self.pipeline.remove(receiving)  # still waiting: the app never sees it
            elif receiving is not self.current or receiving.response_started:
                # Answered already, or answering: the connection can only be cut.
                receiving.disconnect()
                self.state.log_bad_request(self.client_addr, event)
                self.abort()
                return
            else:
                # The app is reading it and has not answered: the refusal answers it.
                receiving.disconnect()
                self.current = None
                self.proto.abandon()
                self._answer_bad_request(event)
                return
        if self.current is None and not self.pipeline:
            self._answer_bad_request(event)
        else:
            self.pipeline.append(event)

    def _answer_bad_request(self, event: BadRequest) -> None:
        self.state.log_bad_request(self.client_addr, event)
        self.write(self.proto.error_response(event.status, event.reason))
        self._linger()

    def _linger(self) -> None:
        """Close after a closing answer without losing it. Closing a socket with unread
        bytes makes the kernel reset the connection, and a reset can destroy the answer
        before the client reads it; so stop sending (FIN), drop what the client still
        sends for up to LINGER_SECONDS or LINGER_MAX_BYTES, then close."""
        if self.at is CLOSED or self.at is LINGER:
            return
        if self._eof:
            self.close()
            return
        try:
            self.transport.write_eof()
        except (NotImplementedError, OSError, RuntimeError):
            self.close()
            return
        self.enter(LINGER)
        self._sink = self._drop_lingering
        if self._read_paused:
            self._read_paused = False
            self.transport.resume_reading()

    def _drop_lingering(self, data: bytes) -> None:
        self._lingered += len(data)
        if self._lingered > LINGER_MAX_BYTES:
            self.close()

    def abort(self) -> None:
        if self.at is not CLOSED:
            self.at = CLOSED
            self.deadline = NO_DEADLINE
            self.transport.abort()

    def close(self) -> None:
        if self.at is not CLOSED:
            self.at = CLOSED
            self.deadline = NO_DEADLINE
            self.transport.close()

    def shutdown(self) -> None:
        """Graceful stop: close when idle; otherwise after the response in progress,
        whose head (if not sent yet) says so (RFC 9112 section 9.6). A session closes
        its own way (WebSocket: 1001 Going Away, or 1012 Service Restart when the stop is
        a restart)."""
        if self.session is not None:
            self.session.shutdown(self.state.restarting)
        elif self.current is not None:
            self.proto.close_after_response()
        elif self.at is HEAD or self._bytes_waiting():
            # A request is arriving (its first bytes may still be in the kernel: a new
            # connection, or a keep-alive one whose next request crossed the stop): it is
            # answered, with Connection: close, before the connection closes, within the
            # header deadline. Closing with unread bytes would reset it, unanswered.
            self.state.arriving.add(self)
            self.proto.close_after_response()
        else:
            self.close()

    def _bytes_waiting(self) -> bool:
        """Whether the client sent bytes not read yet: a peek at the socket, done only on
        a graceful stop (the transport's own socket object cannot recv: peek on a dup)."""
        sock = self.transport.get_extra_info("socket")
        if sock is None:
            return False
        try:
            with socket.socket(fileno=os.dup(sock.fileno())) as peek:
                return bool(peek.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
        except OSError:  # nothing waiting (EAGAIN), or the connection is gone
            return False
