"""HTTP/2 on the HTTP/1.1 listeners: the connection class of a server that serves HTTP/2
(--http auto or h2), which hands a connection over to `H2Connection` (h2_connection.py)
when its client speaks HTTP/2.

How this works. Three things tell a server that a client speaks HTTP/2, each met on a cold
path of the HTTP/1.1 connection, so that an HTTP/1.1 request pays nothing for HTTP/2:
- on TLS, the handshake's ALPN chose "h2" (RFC 9113 section 3.2; server/tls.py offers
  it): known before any byte is read, so `connection_made` hands the connection over;
- prior knowledge (section 3.3): the connection begins with the preface, which no
  HTTP/1.1 request can be. The HTTP/1.1 protocol refuses it as it refuses any other
  version, with a `PrefaceReceived` (protocol/_refuse.py) that carries the bytes so far,
  and `_on_preface` hands them over;
- the h2c upgrade (RFC 7540 section 3.2), on plain TCP only: a request whose fields ask
  for it (`h2c_settings`) is read whole on HTTP/1.1, its body kept by `_UpgradeBody`
  (within --max-body-size, which the HTTP/1.1 protocol holds it to), then answered 101,
  and it becomes stream 1 of the HTTP/2 connection (`_switch`). Over TLS, Upgrade: h2c is
  ignored (ALPN is the way there), and so is an upgrade behind requests not yet answered.
The HTTP/1.1 connection object then leaves the worker's sets and is forgotten (`_leave`);
the new one takes the transport, with the addresses the old one knew (a PROXY header's
too, server/proxied.py).

With --http h2, `HTTP2OnlyConnection`: TLS offers h2 alone in ALPN, and a client that
speaks HTTP/1.1 all the same (no ALPN, or plain TCP without prior knowledge) gets 505 HTTP
Version Not Supported (RFC 9110 section 15.6.6) and the connection closes. RFC 9113 section
3.4 would have a GOAWAY for a preface that is not one, but a GOAWAY frame means nothing to
an HTTP/1.1 client, while a 505 tells its user what is wrong.

`HTTP2Connection.for_limits(limits, base)` makes the class of a server's connections from
its base (plain or metered), as `ProxyProtocolConnection.for_peers` does.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Final

from rootserve.protocol._h2_limits import H2Limits
from rootserve.protocol._refuse import PrefaceReceived
from rootserve.protocol.events import BadRequest, Event
from rootserve.server.connection import Connection
from rootserve.server.exchange import HTTP11Exchange
from rootserve.server.state import CLOSED, LINGER, NO_DEADLINE

if TYPE_CHECKING:
    from rootserve.server.h2_connection import H2Connection

__all__ = ["HTTP2Connection", "HTTP2OnlyConnection"]

_HTTP2_ONLY: Final = BadRequest(505, "this server speaks HTTP/2 only (--http h2)")


class HTTP2Connection(Connection):
    """An HTTP/1.1 connection that turns into an HTTP/2 one when the client speaks it."""

    h2_limits: H2Limits  # set on the class made for a server (see `for_limits`)

    @classmethod
    def for_limits(cls, limits: H2Limits, base: type[Connection]) -> type[Connection]:
        """The connection class of a server: `base` (plain or metered), HTTP/2-capable."""
        return type(cls.__name__, (cls, base), {"h2_limits": limits})

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None and ssl_object.selected_alpn_protocol() == "h2":
            _successor(self).take_over(transport, b"")
            return  # this object was never one of the worker's connections
        super().connection_made(transport)

    def _on_preface(self, event: PrefaceReceived) -> None:
        # (The protocol reports it only as the connection's first bytes: nothing is owed.)
        self._leave()
        addresses = (self.server_addr, self.client_addr)
        _successor(self).take_over(self.transport, event.received, addresses=addresses)

    def _on_upgrade(self, exchange: HTTP11Exchange, events: list[Event]) -> None:
        settings = None
        if self.tls is None and self.current is None and not self.pipeline:
            from rootserve.protocol._h2_upgrade import h2c_settings  # (see _successor)

            settings = h2c_settings(exchange)
        if settings is None:
            super()._on_upgrade(exchange, events)
            return
        exchange.bind(self)
        # Current until the switch, and after it: requests the client sent behind this one
        # (it should have waited for the 101) wait in the pipeline, never to be served.
        self.current = exchange
        if exchange.has_body:
            exchange.receiver = _UpgradeBody(self, exchange, settings)
            self.receiving = exchange
            exchange.want_body()  # 100 Continue, if the client waits for it
        else:
            self._switch(exchange, settings, b"")

    def _switch(self, exchange: HTTP11Exchange, settings: bytes, body: bytes) -> None:
        """The h2c upgrade request is whole: 101, then HTTP/2 with it as stream 1."""
        from rootserve.protocol._h2_upgrade import H2C_SWITCH  # (see _successor)

        state = self.state
        successor = _successor(self)
        try:
            events = successor.proto.upgrade(settings, exchange, body)
        except ValueError as exc:  # RFC 7540 section 3.2.1: HTTP2-Settings is a SETTINGS
            exchange.refuse(400, str(exc), [])
            return
        exchange.status = 101
        exchange.response_headers = ()
        exchange.sent = 0
        state.access_log.log(exchange.client, exchange, 101)
        self.write(H2C_SWITCH)
        self._leave()
        addresses = (self.server_addr, self.client_addr)
        successor.take_over(self.transport, b"", addresses=addresses, events=events)

    def _leave(self) -> None:
        """This object is done with, and must not close the transport it hands over."""
        state = self.state
        state.connections.discard(self)  # (the new connection joins before it can empty)
        if self in state.arriving:  # accepted as the server stops: it refuses new streams
            state.arriving.discard(self)
            if not state.arriving:
                state.arriving.removed()
        if self._read_paused:  # (the transport goes on, and its new protocol reads)
            self._read_paused = False
            self.transport.resume_reading()
        self.at = CLOSED
        self.deadline = NO_DEADLINE


def _successor(conn: HTTP2Connection) -> H2Connection:
    """The HTTP/2 connection that takes `conn`'s transport over. Its modules are imported
    with the first one: h2, hpack and hyperframe cost a start about 30 ms (python -X
    importtime), which a server that no client speaks HTTP/2 to never needs."""
    from rootserve.server.h2_connection import H2Connection

    return H2Connection(conn.state, conn.h2_limits)


class HTTP2OnlyConnection(HTTP2Connection):
    """--http h2: HTTP/2 as HTTP2Connection takes it; an HTTP/1.1 request gets 505."""

    def _on_request(self, exchange: HTTP11Exchange) -> None:
        self._on_bad_request(_HTTP2_ONLY)

    def _on_upgrade(self, exchange: HTTP11Exchange, events: list[Event]) -> None:
        self._on_bad_request(_HTTP2_ONLY)

    def _on_bad_request(self, event: BadRequest) -> None:
        # Requests after the refused one, in the same read, are refused with it already.
        if self.at is not LINGER and self.at is not CLOSED:
            super()._on_bad_request(event)


class _UpgradeBody:
    """The receiver of an h2c upgrade request's body, read on HTTP/1.1 before the switch."""

    def __init__(self, conn: HTTP2Connection, exchange: HTTP11Exchange, settings: bytes) -> None:
        self.conn = conn
        self.exchange = exchange
        self.settings = settings
        self.parts: list[bytes] = []

    def feed(self, data: bytes) -> None:
        self.parts.append(data)

    def end(self) -> None:
        self.conn._switch(self.exchange, self.settings, b"".join(self.parts))

    def disconnect(self) -> None:
        self.parts.clear()

    def writable(self) -> None:
        pass

    def server_stopping(self) -> None:
        pass

    def cancel(self) -> None:
        pass
