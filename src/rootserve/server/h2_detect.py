"""HTTP/2 on the HTTP/1.1 listeners: a connection class that hands a connection over to
`H2Connection` (h2_connection.py) when its client speaks HTTP/2.

How this works. Two ways tell a server that a client speaks HTTP/2 (RFC 9113 section 3):
- on TLS, the handshake's ALPN chose "h2" (section 3.2; the listener's context must offer
  it, `make_context(config, alpn=("h2", "http/1.1"))`): known before any byte is read, so
  the connection is handed over in `connection_made`;
- a client with prior knowledge (section 3.3) begins with the connection preface,
  `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`, which no HTTP/1.1 request can be: the first bytes are
  held until they tell (`sniff_preface`), then go to one protocol or the other.
The HTTP/1.1 connection object then leaves the worker's sets and is forgotten; the new one
takes the transport (`H2Connection.take_over`). The h2c upgrade (`Upgrade: h2c`, section
3.1 of RFC 7540) is not offered: RFC 9113 deprecates it, and clients use the other two.

`HTTP2Connection.for_limits(limits, base)` makes the class of a server's connections from
its base (plain or metered), as `ProxyProtocolConnection.for_peers` does.
"""

from __future__ import annotations

import asyncio

from rootserve.protocol.http2 import H2Limits, sniff_preface
from rootserve.server.connection import Connection
from rootserve.server.h2_connection import H2Connection
from rootserve.server.state import CLOSED, NO_DEADLINE

__all__ = ["HTTP2Connection"]


class HTTP2Connection(Connection):
    """An HTTP/1.1 connection that turns into an HTTP/2 one when the client speaks it."""

    h2_limits: H2Limits  # set on the class made for a server (see `for_limits`)

    @classmethod
    def for_limits(cls, limits: H2Limits, base: type[Connection]) -> type[Connection]:
        """The connection class of a server: `base` (plain or metered), HTTP/2-capable."""
        return type("HTTP2Connection", (cls, base), {"h2_limits": limits})

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None and ssl_object.selected_alpn_protocol() == "h2":
            H2Connection(self.state, self.h2_limits).take_over(transport, b"")
            return  # this object was never one of the worker's connections
        super().connection_made(transport)
        self._sniffing = True
        self._held = b""

    def data_received(self, data: bytes) -> None:
        if self._sniffing:
            held = self._held + data if self._held else data
            verdict = sniff_preface(held)
            if verdict is None:
                self._held = held  # (at most 23 bytes)
                return
            self._sniffing = False
            self._held = b""
            if verdict:
                self._hand_over(held)
                return
            data = held
        super().data_received(data)

    def _hand_over(self, received: bytes) -> None:
        state = self.state
        state.connections.discard(self)  # (the new connection joins before it can empty)
        if self in state.arriving:  # accepted as the server stops: it refuses new streams
            state.arriving.discard(self)
            if not state.arriving:
                state.arriving.removed()
        self.at = CLOSED  # this object is done, and must not close the transport
        self.deadline = NO_DEADLINE
        H2Connection(state, self.h2_limits).take_over(self.transport, received)
