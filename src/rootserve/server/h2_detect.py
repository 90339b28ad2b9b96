"""HTTP/2 on the HTTP/1.1 listeners: how a server that serves HTTP/2 (--http auto or h2)
hands an HTTP/1.1 connection over to `H2Connection` (h2_connection.py) when its client
speaks HTTP/2.

How this works. Three things tell a server that a client speaks HTTP/2, each met on a cold
path of the HTTP/1.1 connection, so that an HTTP/1.1 request pays nothing for HTTP/2:
- on TLS, the handshake's ALPN chose "h2" (RFC 9113 section 3.2; server/tls.py offers
  it): known before any byte is read, so `connection_made` hands the connection over;
- prior knowledge (section 3.3): the connection begins with the preface, which no
  HTTP/1.1 request can be. The HTTP/1.1 protocol refuses it as it refuses any other
  version, with a `PrefaceReceived` (protocol/_refuse.py) that carries the bytes so far,
  and `take_over_at_preface` hands them over;
- the h2c upgrade (RFC 7540 section 3.2), on plain TCP only: a request whose fields ask
  for it (`h2c_settings`) is read whole on HTTP/1.1, its body kept by `_UpgradeBody`
  (within --max-body-size, which the HTTP/1.1 protocol holds it to), then answered 101,
  and it becomes stream 1 of the HTTP/2 connection (`_switch`). Over TLS, Upgrade: h2c is
  ignored (ALPN is the way there), and so is an upgrade behind requests not yet answered.
The HTTP/1.1 connection object then leaves the worker's sets and is forgotten (`_leave`);
the new one takes the transport, with the addresses the old one knew (a PROXY header's
too, server/proxied.py).

With --http h2, HTTP/1.1 is refused: TLS offers h2 alone in ALPN, and a client that speaks
HTTP/1.1 all the same (no ALPN, or plain TCP without prior knowledge) gets 505 HTTP Version
Not Supported (RFC 9110 section 15.6.6) and the connection closes. RFC 9113 section 3.4
would have a GOAWAY for a preface that is not one, but a GOAWAY frame means nothing to an
HTTP/1.1 client, while a 505 tells its user what is wrong.

There is one connection class, whatever the settings: `Connection` reads them from the
server's state (`h2`, `h2_only`) and calls the functions here on the paths named above.
mypyc compiles that class, and a compiled class cannot be combined with others at start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from rootserve.protocol._refuse import PrefaceReceived
from rootserve.protocol.events import BadRequest
from rootserve.server.exchange import HTTP11Exchange
from rootserve.server.state import CLOSED, NO_DEADLINE

if TYPE_CHECKING:
    from rootserve.server.connection import Connection
    from rootserve.server.h2_connection import H2Connection

__all__ = ["HTTP2_ONLY", "successor", "take_over_at_preface", "upgrades_to_h2c"]

HTTP2_ONLY: Final = BadRequest(505, "this server speaks HTTP/2 only (--http h2)")


def take_over_at_preface(conn: Connection, event: PrefaceReceived) -> None:
    """The connection began with the preface: HTTP/2 by prior knowledge. (The protocol
    reports it only as the connection's first bytes: nothing is owed on HTTP/1.1.)"""
    _leave(conn)
    addresses = (conn.server_addr, conn.client_addr)
    successor(conn).take_over(conn.transport, event.received, addresses=addresses)


def upgrades_to_h2c(conn: Connection, exchange: HTTP11Exchange) -> bool:
    """Whether `exchange` asks for h2c and is taken as the switch's request (plain TCP, and
    nothing before it still to answer); its body, if any, is read on HTTP/1.1 first."""
    if conn.tls is not None or conn.current is not None or conn.pipeline:
        return False
    from rootserve.protocol._h2_upgrade import h2c_settings  # (see successor)

    settings = h2c_settings(exchange)
    if settings is None:
        return False
    exchange.bind(conn)
    # Current until the switch, and after it: requests the client sent behind this one
    # (it should have waited for the 101) wait in the pipeline, never to be served.
    conn.current = exchange
    if exchange.has_body:
        exchange.receiver = _UpgradeBody(conn, exchange, settings)
        conn.receiving = exchange
        exchange.want_body()  # 100 Continue, if the client waits for it
    else:
        _switch(conn, exchange, settings, b"")
    return True


def _switch(conn: Connection, exchange: HTTP11Exchange, settings: bytes, body: bytes) -> None:
    """The h2c upgrade request is whole: 101, then HTTP/2 with it as stream 1."""
    from rootserve.protocol._h2_upgrade import H2C_SWITCH  # (see successor)

    after = successor(conn)
    try:
        events = after.proto.upgrade(settings, exchange, body)
    except ValueError as exc:  # RFC 7540 section 3.2.1: HTTP2-Settings is a SETTINGS
        exchange.refuse(400, str(exc), [])
        return
    exchange.status = 101
    exchange.response_headers = ()
    exchange.sent = 0
    conn.state.access_log.log(exchange.client, exchange, 101)
    conn.write(H2C_SWITCH)
    _leave(conn)
    addresses = (conn.server_addr, conn.client_addr)
    after.take_over(conn.transport, b"", addresses=addresses, events=events)


def _leave(conn: Connection) -> None:
    """`conn` is done with, and must not close the transport it hands over."""
    state = conn.state
    state.connections.discard(conn)  # (the new connection joins before it can empty)
    if conn in state.arriving:  # accepted as the server stops: it refuses new streams
        state.arriving.discard(conn)
        if not state.arriving:
            state.arriving.removed()
    if conn._read_paused:  # (the transport goes on, and its new protocol reads)
        conn._read_paused = False
        conn.transport.resume_reading()
    conn.at = CLOSED
    conn.deadline = NO_DEADLINE


def successor(conn: Connection) -> H2Connection:
    """The HTTP/2 connection that takes `conn`'s transport over. Its modules are imported
    with the first one: h2, hpack and hyperframe cost a start about 30 ms (python -X
    importtime), which a server that no client speaks HTTP/2 to never needs."""
    from rootserve.server.h2_connection import H2Connection

    limits = conn.state.h2
    assert limits is not None  # (only a server with HTTP/2 on calls this)
    return H2Connection(conn.state, limits)


class _UpgradeBody:
    """The receiver of an h2c upgrade request's body, read on HTTP/1.1 before the switch."""

    def __init__(self, conn: Connection, exchange: HTTP11Exchange, settings: bytes) -> None:
        self.conn = conn
        self.exchange = exchange
        self.settings = settings
        self.parts: list[bytes] = []

    def feed(self, data: bytes) -> None:
        self.parts.append(data)

    def end(self) -> None:
        _switch(self.conn, self.exchange, self.settings, b"".join(self.parts))

    def disconnect(self) -> None:
        self.parts.clear()

    def writable(self) -> None:
        pass

    def server_stopping(self) -> None:
        pass

    def cancel(self) -> None:
        pass
