"""Serving behind proxies: --proxy-headers and --proxy-protocol, paid for only when on.

How this works.
- `ForwardedRunner` wraps the app's runner (and the WebSocket runner) when --proxy-headers
  is on. Before the adapter sees a request, `attach` asks protocol/forwarded.py what the
  trusted proxies say about it and sets the exchange's client address, scheme, server
  (host, port), Host header and root path from it: the ASGI scope and the WSGI environ are
  made from those, so both contracts see the client, not the proxy. An untrusted peer's
  headers change nothing. Without the setting there is no wrapper: nothing is checked.
- `ProxyHeader` is what a connection reads first when --proxy-protocol is on: a peer in
  --forwarded-allow-ips must begin with a PROXY header (v1 or v2, protocol/proxy_protocol.py)
  within --timeout-header; its addresses replace the connection's, then the rest of the
  bytes are HTTP: HTTP/1.1, or HTTP/2 by prior knowledge, whose connection (h2_detect.py)
  keeps those addresses. A peer not trusted, a header that is not valid, or none in time: the
  connection is closed, with one line in the log at info level (it is the network's
  business, not the app's).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Final

from rootserve.config import Config
from rootserve.observe.access import printable
from rootserve.protocol.exchange import Exchange
from rootserve.protocol.forwarded import TrustedPeers, resolve
from rootserve.protocol.proxy_protocol import ProxyHeaderParser, ProxyProtocolError
from rootserve.server.state import HEAD, NO_DEADLINE, Runner

if TYPE_CHECKING:
    from rootserve.server.connection import Connection

__all__ = ["ForwardedRunner", "ProxyHeader", "check_proxy_settings"]

logger = logging.getLogger("rootserve.error")

_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


def check_proxy_settings(config: Config) -> TrustedPeers | None:
    """The trusted peers, when a proxy setting needs them. ValueError: one line naming the
    bad value and the fix (the command calls this before serving; --forwarded-allow-ips
    is read even when unused, so that a typo shows before it is needed)."""
    trusted = TrustedPeers.from_settings(config.forwarded_allow_ips)
    if not (config.proxy_headers or config.proxy_protocol):
        return None
    if config.proxy_protocol and config.ssl_certfile:
        raise ValueError(
            "--proxy-protocol with --ssl-certfile: the PROXY header comes before TLS, which "
            "this server cannot read; terminate TLS at the proxy, or drop one of the two"
        )
    return trusted


class ForwardedRunner:
    """A runner that applies the trusted proxy headers to each exchange, then hands it on."""

    def __init__(self, inner: Runner, trusted: TrustedPeers) -> None:
        self.inner = inner
        self.trusted = trusted

    def attach(self, exchange: Exchange) -> None:
        said = resolve(exchange.headers, exchange.client, self.trusted)
        if said is not None:
            if said.client is not None:
                exchange.client = said.client
            if said.scheme is not None:
                exchange.scheme = said.scheme
            if said.host is not None:
                _set_host(exchange, said.host, said.port, exchange.scheme)
            elif said.port is not None and exchange.server is not None:
                exchange.server = (exchange.server[0], said.port)
            if said.prefix is not None:
                exchange.root_path = said.prefix
        self.inner.attach(exchange)

    def start(self, exchange: Exchange) -> None:
        self.inner.start(exchange)

    async def aclose(self) -> None:
        await self.inner.aclose()


def _set_host(exchange: Exchange, host: str, port: int | None, scheme: str) -> None:
    """The Host the client used: the header the app reads (PEP 3333 and ASGI rebuild URLs
    from it) and the server address of the scope and environ. The two name the same port:
    X-Forwarded-Port's when there is one (it wins over the host's own, as `resolve` says),
    written into the header unless it is the scheme's default, since a proxy such as
    nginx forwards `$host`, which never carries the port."""
    name = host.rpartition(":")[0] if host.rfind(":") > host.rfind("]") else host
    default = _DEFAULT_PORTS.get(scheme, 80)
    if port is None:
        port = default
    exchange.server = (name.strip("[]"), port)
    value = (name if port == default else f"{name}:{port}").encode("ascii")
    headers = exchange.headers
    for i, (field, _) in enumerate(headers):
        if field == b"host":
            headers[i] = (b"host", value)
            break
    else:
        headers.append((b"host", value))


class ProxyHeader:
    """The PROXY protocol header a connection must begin with (--proxy-protocol): where its
    bytes go until the header is whole (the connection's sink), and what its deadline means
    meanwhile (the connection's preamble)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.parser = ProxyHeaderParser()

    @classmethod
    def expect(cls, conn: Connection) -> None:
        """`conn` was just accepted: a trusted peer owes the header, and any other is closed."""
        peer: Any = conn.client_addr
        if not conn.state.proxy_peers.trusts(peer):
            logger.info("%s - closed: PROXY protocol from a peer not trusted", _who(peer))
            conn.close()
            return
        header = cls(conn)
        conn.preamble = header
        conn._sink = header.feed
        # Until the header is whole: the header deadline, then a plain close (no HTTP yet).
        limit = conn.state.timeouts[HEAD]  # 0: no limit, as for a request's head
        conn.deadline = conn.state.loop.time() + limit if limit else NO_DEADLINE

    def feed(self, data: bytes) -> None:
        conn = self.conn
        try:
            result = self.parser.feed(data)
        except ProxyProtocolError as exc:
            logger.info("%s - closed: %s", _who(conn.client_addr), printable(str(exc)))
            conn.abort()
            return
        if result is None:
            return
        if not result.local:
            conn.client_addr = result.source
            conn.server_addr = result.destination
        conn.preamble = None
        conn._sink = None
        state = conn.state
        conn.deadline = state.loop.time() + state.idle_seconds
        if result.rest:
            # The rest is HTTP, read as if it had just arrived; with --metrics-bind, its
            # bytes were counted already, with the header's.
            if conn._metered:
                state.received -= len(result.rest)
            conn.data_received(result.rest)

    def expired(self) -> None:
        """No header in time. No HTTP was spoken yet, so no 408: the close is the answer,
        and the log line says why (an idle connection's close says nothing)."""
        logger.info(
            "%s - closed: no PROXY protocol header in time (--timeout-header)",
            _who(self.conn.client_addr),
        )
        self.conn.close()


def _who(peer: Any) -> str:
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "unix peer"
