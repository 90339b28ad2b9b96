"""A connection's states and deadlines: the moves between states (checked against the
table in state.py), the state the facts call for, the body's minimum rate, and what
happens when a deadline passes. A layer of `Connection` (connection.py), which holds the
state; the reaper (worker.py) calls `on_deadline` once `deadline` has passed.
"""

from __future__ import annotations

from typing import Final

from rootserve.protocol.events import BadRequest
from rootserve.server._closing import ClosingSide
from rootserve.server.exchange import HTTP11Exchange
from rootserve.server.state import (
    BODY,
    BUSY,
    CLOSED,
    HEAD,
    IDLE,
    NEXT,
    NO_DEADLINE,
    ConnState,
)

__all__ = ["DeadlineSide"]

_BODY_TIMEOUT: Final = BadRequest(408, "request body not received in time")
_HEAD_TIMEOUT: Final = "request headers not received in time"


class DeadlineSide(ClosingSide):
    """The timing layer of Connection, over the ending layer (_closing.py)."""

    def enter(self, new: ConnState) -> None:
        """Move to `new` (checked against the table in state.py) and set its deadline."""
        at = self.at
        if new is not at:
            if new not in NEXT[at]:
                raise RuntimeError(f"a connection cannot go from {at.name} to {new.name}")
            self.at = new
            state = self.state
            seconds = state.timeouts[new]  # 0 means "no timeout" for every setting
            self.deadline = state.loop.time() + seconds if seconds else NO_DEADLINE

    def _settle(self) -> None:
        """Enter the state the facts call for, while the connection speaks HTTP."""
        receiving = self.receiving
        if receiving is not None and not self._read_paused and not receiving.awaiting_continue:
            self.enter(BODY)
        elif self.current is not None:
            self.enter(BUSY)
        elif self.proto.head_in_progress:
            self.enter(HEAD)
        else:
            self.enter(IDLE)

    def body_due(self, exchange: HTTP11Exchange) -> None:
        """100 Continue went out: the client now owes the body."""
        if exchange is self.receiving and self.at is not CLOSED:
            self._settle()

    def _on_body(self, exchange: HTTP11Exchange, data: bytes) -> None:
        exchange.feed(data)
        if self.at is BODY and self.deadline != NO_DEADLINE:
            # The body's deadline moves later by the time the bytes earn at the minimum
            # rate, but never more than the grace time ahead: a client that sends a byte a
            # second, or a burst and then nothing, runs out of time (issue 05; Kestrel's
            # MinRequestBodyDataRate works alike).
            state = self.state
            now = state.loop.time()
            rate = state.min_body_rate
            earned = self.deadline + len(data) / rate if rate else NO_DEADLINE
            self.deadline = min(now + state.timeouts[BODY], earned)

    def _body_done(self, exchange: HTTP11Exchange) -> None:
        self.receiving = None
        exchange.end()
        if self.at is BODY:
            self._settle()  # no body is due any more

    def on_deadline(self) -> None:
        """Called by the reaper once `deadline` has passed."""
        at = self.at
        if at is BODY:
            self._on_bad_request(_BODY_TIMEOUT)
        elif at is HEAD:
            # RFC 9110 section 15.5.9: 408 for a request that did not arrive in time.
            self.write(self.proto.error_response(408, _HEAD_TIMEOUT))
            self._linger()
        elif self.preamble is not None:
            self.preamble.expired()
        else:
            self.close()
