"""Who the client is behind trusted proxies: --forwarded-allow-ips and the proxy headers.

How it works. `TrustedPeers.from_settings` reads --forwarded-allow-ips once. For each request,
`resolve` first asks whether the direct peer is trusted; only then does it read the headers.
Each proxy on the way records one hop: the address that connected to it, and (RFC 7239) the
scheme and Host that it received. The list grows to the right, so only its right end was
written by proxies we trust; anything to the left may come from the client. The walk goes
from the right, passes over hops whose address is a trusted proxy, and stops at the first
that is not: that hop is the client, and its scheme and host are what the client used. When
every hop is trusted, the leftmost one is the client.

Header forms. RFC 7239 `Forwarded` takes precedence: when a request carries it, the
X-Forwarded-* headers are not read at all, not even when `Forwarded` cannot be parsed
(otherwise a client could send a broken `Forwarded` to make us fall back to an X-Forwarded-For
it wrote itself). A proxy that writes one form must drop or overwrite the other as the
client sent it, or the client can pose as a hop; that is true of every server that reads
these headers. `Forwarded` elements are hops with all their parameters; the `X-Forwarded-For`
list is the hops, and `X-Forwarded-Proto/-Host/-Port/-Prefix` are separate lists that proxies
usually send with one value: the value at the client's position is taken when a list is as
long as X-Forwarded-For (each proxy appended to all of them), else the rightmost value (the
nearest proxy's word, the only one we can attribute).

Bad values are ignored, never raised: header content comes from the network, and refusing
the request would let one proxy's quirk (or a client's garbage, passed along) take a site
down. Ignoring is safe because of the walk: a `Forwarded` line that breaks the grammar
counts as one hop that names nobody, so the walk stops there and learns nothing from it or
from anything to its left; a `for=` that is `unknown`, obfuscated (`_name`) or invalid stops
it the same way (the client is then unknown, but that hop's scheme and host still hold:
the trusted proxy to its right wrote them); an invalid scheme, host, port or prefix is left
out, so the connection's own value stays.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from typing import Final
from urllib.parse import unquote

from rootserve.protocol.events import Headers
from rootserve.protocol.rules import _QUOTED_STRING, HOST, TCHAR

__all__ = ["Forwarded", "Peer", "TrustedPeers", "resolve"]

Address = IPv4Address | IPv6Address
# A connection's peer as the server holds it: (host, port) over TCP; None or a socket path
# over a unix socket.
Peer = tuple[str, int] | str | None
# A hop of the chain: its address and port (0 when not given), or None when it names no
# address we can check (`unknown`, obfuscated, invalid).
_Hop = tuple[Address, int] | None

_FLAG: Final = "--forwarded-allow-ips"


def _unmapped(address: Address) -> Address:
    """An IPv4-mapped IPv6 address (::ffff:a.b.c.d, RFC 4291 2.5.5.2) as its IPv4 address:
    a dual-stack socket reports IPv4 peers this way."""
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@dataclass(frozen=True, slots=True)
class TrustedPeers:
    """The peers allowed to speak for a client (proxy headers, PROXY protocol)."""

    addresses: frozenset[Address] = frozenset()
    networks: tuple[IPv4Network | IPv6Network, ...] = ()
    unix: bool = False  # a peer over a unix socket
    everything: bool = False  # `*`

    @classmethod
    def from_settings(cls, items: list[str]) -> TrustedPeers:
        """Read --forwarded-allow-ips: each item an address, a CIDR network, `unix` or `*`,
        or several of these separated by commas. Raises ValueError naming a bad entry."""
        addresses: set[Address] = set()
        networks: list[IPv4Network | IPv6Network] = []
        unix = everything = False
        for item in items:
            for entry in (part.strip() for part in item.split(",")):
                if not entry:
                    continue
                if entry == "*":
                    everything = True
                elif entry.lower() == "unix":
                    unix = True
                elif "/" in entry:
                    networks.append(_network(entry))
                else:
                    bracketed = entry[:1] == "[" and entry[-1:] == "]"
                    address = _parse_address(entry[1:-1] if bracketed else entry)
                    if address is None:
                        raise ValueError(
                            f"{_FLAG}: {entry!r} is not an IP address, a CIDR network "
                            "(10.0.0.0/8), unix or *"
                        )
                    addresses.add(_unmapped(address))
        return cls(frozenset(addresses), tuple(networks), unix, everything)

    def trusts(self, peer: Peer) -> bool:
        """Whether `peer` is trusted: a (host, port) pair or an IP address in text; None or
        any other text is a unix-socket peer (asyncio gives its path, often empty)."""
        if self.everything:
            return True
        host = peer[0] if isinstance(peer, tuple) else peer
        address = None if host is None else _parse_address(host.partition("%")[0])
        if address is None:
            return self.unix and not isinstance(peer, tuple)
        return self._trusts_address(address)

    def _trusts_address(self, address: Address) -> bool:
        unmapped = _unmapped(address)
        for candidate in {address, unmapped}:
            if candidate in self.addresses:
                return True
            # Membership across IP versions is simply False in the ipaddress module.
            if any(candidate in network for network in self.networks):
                return True
        return False

    def _trusts_hop(self, hop: _Hop) -> bool:
        # A hop without an address cannot be checked: only `*` passes over it.
        return self.everything or (hop is not None and self._trusts_address(hop[0]))


def _network(entry: str) -> IPv4Network | IPv6Network:
    try:
        return ip_network(entry)
    except ValueError:
        pass
    try:
        loose = ip_network(entry, strict=False)
    except ValueError:
        raise ValueError(
            f"{_FLAG}: {entry!r} is not a CIDR network (write it as 10.0.0.0/8 or fd00::/8)"
        ) from None
    raise ValueError(f"{_FLAG}: {entry!r} has host bits set (write it as {loose})")


def _parse_address(text: str) -> Address | None:
    try:
        return ip_address(text)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class Forwarded:
    """What trusted proxies say about a request. Each None means "the headers say nothing
    usable": keep what the connection knows."""

    # The client's address and port (0 when the proxy gave none, or obfuscated it).
    client: tuple[str, int] | None
    # "http" or "https": ws and wss read as these, since a scope's scheme is http/https
    # (a WebSocket scope derives ws/wss from it).
    scheme: str | None
    host: str | None  # the Host to use, as `host[:port]`
    # An explicit port: X-Forwarded-Port, else the forwarded host's. With a host but no
    # port, the scheme's default port applies.
    port: int | None
    # X-Forwarded-Prefix, percent-decoded as root_path is, without a trailing "/" (so "/"
    # reads as "": the proxy mounts the app at the root).
    prefix: str | None


# RFC 7239 section 4: Forwarded = 1#forwarded-element; forwarded-element =
# [ forwarded-pair ] *( ";" [ forwarded-pair ] ); forwarded-pair = token "=" value;
# value = token / quoted-string. OWS is allowed around "," (the list rule, RFC 9110 5.6.1)
# and tolerated around ";" (no ambiguity); never around "=".
_PAIR: Final = re.compile(b"(" + TCHAR + b"+)=(" + TCHAR + b"+|" + _QUOTED_STRING + b")")
_QUOTED_PAIR: Final = re.compile(rb"\\(.)", re.DOTALL)
# RFC 7239 section 6.3: obfport = "_" 1*(ALPHA / DIGIT / "." / "_" / "-").
_OBFUSCATED_PORT: Final = re.compile(rb":_[A-Za-z0-9._-]+")
_PORT: Final = re.compile(rb":([0-9]{1,5})")
_SCHEMES: Final = {b"http": "http", b"https": "https", b"ws": "http", b"wss": "https"}
# The prefix becomes root_path: no way up (".."), no second authority ("//", "://", and "\\",
# which browsers read as "/"), no query or fragment, no control characters.
_PREFIX_FORBIDDEN: Final = re.compile(r"\.\.|://|[\\?#\x00-\x1f\x7f]")
_VISIBLE: Final = re.compile(rb"[!-~]+")
_X_HEADERS: Final = (b"for", b"proto", b"host", b"port", b"prefix")


def _elements(line: bytes) -> list[dict[bytes, bytes]] | None:
    """The forwarded-elements of one `Forwarded` field line, each as its lower-cased
    parameter names to unquoted values; None when the line breaks the grammar."""
    elements: list[dict[bytes, bytes]] = []
    pairs: dict[bytes, bytes] | None = None  # the element being read
    pos, end = 0, len(line)
    while True:
        pos = _skip_ows(line, pos)
        if pos == end:
            break
        char = line[pos : pos + 1]
        if char == b",":
            # An empty list element (", ,") is no hop (RFC 9110 section 5.6.1).
            if pairs is not None:
                elements.append(pairs)
                pairs = None
            pos += 1
            continue
        if pairs is None:
            pairs = {}
        if char == b";":
            pos += 1
            continue
        match = _PAIR.match(line, pos)
        if match is None:
            return None
        name, value = match[1].lower(), match[2]
        if name in pairs:  # RFC 7239 section 4: a parameter occurs once per element
            return None
        if value[:1] == b'"':
            value = _QUOTED_PAIR.sub(rb"\1", value[1:-1])
        pairs[name] = value
        pos = _skip_ows(line, match.end())
        if pos < end and line[pos : pos + 1] not in (b";", b","):
            return None
    if pairs is not None:
        elements.append(pairs)
    return elements


def _skip_ows(line: bytes, pos: int) -> int:
    while pos < len(line) and line[pos] in b" \t":
        pos += 1
    return pos


def _node(value: bytes, *, rfc7239: bool) -> _Hop:
    """A hop's address and port, from a `for=` value (RFC 7239 section 6: an IPv6 address
    is bracketed, a port may be obfuscated) or an X-Forwarded-For entry (a bare address,
    or one with a port as some proxies write it)."""
    if value[:1] == b"[":
        close = value.find(b"]")
        if close < 0:
            return None
        name, rest, version = value[1:close], value[close + 1 :], 6
    elif rfc7239 or value.count(b":") == 1:
        name, colon, port_text = value.partition(b":")
        rest, version = colon + port_text, 4
    else:
        name, rest, version = value, b"", 0  # a bare address of either version
    if not name.isascii() or b"%" in name:  # a zone index means nothing to another host
        return None
    address = _parse_address(name.decode("ascii"))
    if address is None or (version and address.version != version):
        return None
    port = 0
    if rest:
        match = _PORT.fullmatch(rest)
        if match is not None and 0 < int(match[1]) < 65536:
            port = int(match[1])
        elif not (rfc7239 and _OBFUSCATED_PORT.fullmatch(rest)):
            return None
    return address, port


def _host(value: bytes) -> tuple[str, int | None] | None:
    """`host[:port]`, checked as the Host header is (rules.HOST), with a non-empty host, a
    port in 1-65535 and a bracketed name that is an IPv6 address; with its port."""
    if HOST.fullmatch(value) is None:
        return None
    if value[:1] == b"[":
        close = value.index(b"]")
        name, rest = value[1:close], value[close + 1 :]
        if _parse_address(name.decode("ascii")) is None or b"%" in name:
            return None
    else:
        name, colon, port_text = value.partition(b":")
        rest = colon + port_text
    port = None
    if rest:
        match = _PORT.fullmatch(rest)
        if match is None or not 0 < int(match[1]) < 65536:
            return None
        port = int(match[1])
    if not name:
        return None
    return value.decode("ascii"), port


def _port(value: bytes) -> int | None:
    match = _PORT.fullmatch(b":" + value)
    return int(match[1]) if match is not None and 0 < int(match[1]) < 65536 else None


def _prefix(value: bytes) -> str | None:
    if _VISIBLE.fullmatch(value) is None:
        return None
    try:
        text = unquote(value.decode("ascii"), errors="strict")
    except UnicodeDecodeError:
        return None
    if text[:1] != "/" or text[:2] == "//" or _PREFIX_FORBIDDEN.search(text):
        return None
    return text.rstrip("/")


def _walk(hops: list[_Hop], trusted: TrustedPeers) -> int:
    """The client's position: from the right, the first hop that is not a trusted proxy."""
    for position in range(len(hops) - 1, -1, -1):
        if not trusted._trusts_hop(hops[position]):
            return position
    return 0


def _client(hop: _Hop) -> tuple[str, int] | None:
    return None if hop is None else (str(hop[0]), hop[1])


_NOTHING: Final = Forwarded(None, None, None, None, None)


def resolve(headers: Headers, peer: Peer, trusted: TrustedPeers) -> Forwarded | None:
    """What the proxies in front say about this request, or None when the peer is not
    trusted or the headers say nothing usable. `headers` as a Request carries them (names
    lower-cased); never raises for their content (see the module's docstring)."""
    if not trusted.trusts(peer):
        return None
    forwarded: list[bytes] = []
    x_headers: dict[bytes, list[bytes]] = {}
    for name, value in headers:
        if name == b"forwarded":
            forwarded.append(value)
        elif name[:12] == b"x-forwarded-" and name[12:] in _X_HEADERS:
            # Several lines of a list header are one list (RFC 9110 section 5.3).
            entries = (entry.strip(b" \t") for entry in value.split(b","))
            x_headers.setdefault(name[12:], []).extend(entry for entry in entries if entry)
    if forwarded:
        result = _from_forwarded(forwarded, trusted)
    elif x_headers:
        result = _from_x_forwarded(x_headers, trusted)
    else:
        return None
    return None if result == _NOTHING else result


def _from_forwarded(lines: list[bytes], trusted: TrustedPeers) -> Forwarded:
    elements: list[dict[bytes, bytes]] = []
    for line in lines:
        # A line that breaks the grammar counts as one hop that names nobody.
        elements.extend(_elements(line) or [{}])
    if not elements:
        return _NOTHING
    hops = [_node(element.get(b"for", b""), rfc7239=True) for element in elements]
    position = _walk(hops, trusted)
    element = elements[position]
    host = _host(element[b"host"]) if b"host" in element else None
    proto = element.get(b"proto")
    return Forwarded(
        client=_client(hops[position]),
        scheme=None if proto is None else _SCHEMES.get(proto.lower()),
        host=None if host is None else host[0],
        port=None if host is None else host[1],
        prefix=None,  # RFC 7239 has no parameter for it
    )


def _from_x_forwarded(lists: dict[bytes, list[bytes]], trusted: TrustedPeers) -> Forwarded:
    fors = lists.get(b"for", [])
    hops = [_node(entry, rfc7239=False) for entry in fors]
    position = _walk(hops, trusted) if hops else -1

    def pick(name: bytes) -> bytes | None:
        values = lists.get(name)
        if not values:
            return None
        return values[position] if hops and len(values) == len(hops) else values[-1]

    proto, host_value, port_value, prefix_value = (
        pick(b"proto"),
        pick(b"host"),
        pick(b"port"),
        pick(b"prefix"),
    )
    host = None if host_value is None else _host(host_value)
    port = None if port_value is None else _port(port_value)
    return Forwarded(
        client=_client(hops[position]) if hops else None,
        scheme=None if proto is None else _SCHEMES.get(proto.lower()),
        host=None if host is None else host[0],
        port=port if port is not None else (None if host is None else host[1]),
        prefix=None if prefix_value is None else _prefix(prefix_value),
    )
