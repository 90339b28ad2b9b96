"""The PROXY protocol header (HAProxy's proxy-protocol.txt, versions 1 and 2), sans-IO.

A load balancer that forwards TCP without reading HTTP (HAProxy `send-proxy`, AWS NLB) sends
this header first, to say whom it is relaying. A connection from a trusted peer feeds its
first bytes to a `ProxyHeaderParser` until `feed` returns a `ProxyResult`; its `rest` is the
start of the HTTP stream. The spec (section 2) forbids guessing whether a header is there,
so a connection that expects one and gets anything else fails: `ProxyProtocolError`, the
reason in its message, and the server closes the connection.

How it works. The parser keeps what it was fed and re-reads it on each call, so the outcome
is a function of the bytes alone, never of how they were split. The checks run in the same
order on any prefix of the input, each as soon as its bytes are there: the first byte picks
the version (v1 begins "PROXY ", v2 with a 12-byte signature that begins with CR), so bytes
that cannot begin either fail at once; v2's version, command, family and length are checked
as each of bytes 13 to 16 arrives; v1 waits for its CRLF (spec section 2.1: never decode a
partial line) and fails once 107 bytes have come without one. A v2 header's TLVs are
walked to check that each fits; of them only the authority and the TLS flag are kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from typing import Final

from rootserve.units import KIB

__all__ = [
    "MAX_V1_LINE",
    "MAX_V2_HEADER",
    "ProxyHeaderParser",
    "ProxyProtocolError",
    "ProxyResult",
]

V1_PREFIX: Final = b"PROXY "
V2_SIGNATURE: Final = b"\r\n\r\n\x00\r\nQUIT\n"
# Spec section 2.1: the longest v1 line, CRLF included ("PROXY UNKNOWN" with two full IPv6
# addresses and ports).
MAX_V1_LINE: Final = 107
# Spec section 2.2: the 16-bit length would let a peer make every connection hold 64 KiB
# before its first HTTP byte. Real headers are addresses (216 bytes at most, AF_UNIX) and a
# few TLVs (SNI, TLS details, a cloud's endpoint ID): 4 KiB in all leaves them ample room.
MAX_V2_HEADER: Final = 4 * KIB
_V2_FIXED: Final = 16  # signature, version and command, family and transport, length

_V1_PROTOCOLS: Final = (b"TCP4 ", b"TCP6 ", b"UNKNOWN")
# Spec section 2.1: ports are decimal 0-65535 without leading zeroes.
_V1_PORT: Final = re.compile(rb"0|[1-9][0-9]{0,4}")

# Spec section 2.2, the 13th byte: version 2 in the high nibble, then the command.
_LOCAL, _PROXY = 0x0, 0x1
# The 14th byte: the family in the high nibble, the transport in the low one.
_AF_UNSPEC, _AF_INET, _AF_INET6, _AF_UNIX = 0x0, 0x1, 0x2, 0x3
_UNSPEC, _STREAM, _DGRAM = 0x0, 0x1, 0x2
# The address block's size per family: two addresses, then two ports for IP.
_ADDRESS_BYTES: Final = {_AF_INET: 2 * 4 + 2 * 2, _AF_INET6: 2 * 16 + 2 * 2, _AF_UNIX: 2 * 108}
# Spec sections 2.2.2 and 2.2.6: the TLVs read here. Every other type is skipped, CRC32C
# included: the spec asks its check only of receivers that support it.
_PP2_TYPE_AUTHORITY: Final = 0x02
_PP2_TYPE_SSL: Final = 0x20
_PP2_CLIENT_SSL: Final = 0x01
_TLV_HEAD: Final = 3  # type, then a 16-bit length
_SSL_HEAD: Final = 5  # client flags, then the 32-bit verify result


class ProxyProtocolError(ValueError):
    """The bytes are not a valid PROXY protocol header; the message says why."""


@dataclass(frozen=True, slots=True)
class ProxyResult:
    """A complete header. `local`: the header names no relayed client (v2 LOCAL, as for a
    health check; v1 UNKNOWN; a v2 family or transport without addresses to use), so the
    connection's own addresses stand. Otherwise `source` is the client and `destination`
    the address it connected to; both are None when the client came over a unix socket.
    `rest` is what followed the header: the beginning of the HTTP stream."""

    source: tuple[str, int] | None
    destination: tuple[str, int] | None
    local: bool
    rest: bytes
    version: int
    # v2 TLVs: PP2_TYPE_AUTHORITY (the host the client asked for, SNI under TLS, as sent:
    # check it before using it as a Host) and
    # PP2_TYPE_SSL's PP2_CLIENT_SSL flag (the client connected over TLS).
    authority: str | None = None
    tls: bool = False


class ProxyHeaderParser:
    """Feed a connection's first bytes until a `ProxyResult` comes back. `feed` returns
    None while more bytes are needed, and raises ProxyProtocolError (again on every later
    call) as soon as the bytes cannot be a valid header."""

    __slots__ = ("_buffer", "_error", "_result")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._error: ProxyProtocolError | None = None
        self._result: ProxyResult | None = None

    def feed(self, data: bytes) -> ProxyResult | None:
        if self._result is not None:
            raise RuntimeError("the PROXY header was already read; its rest holds what followed")
        if self._error is not None:
            raise self._error
        self._buffer += data
        try:
            self._result = _parse(self._buffer)
        except ProxyProtocolError as error:
            self._error = error
            raise
        return self._result


def _parse(buffer: bytearray) -> ProxyResult | None:
    if buffer[:1] == V1_PREFIX[:1]:
        return _parse_v1(buffer)
    if buffer[:1] == V2_SIGNATURE[:1]:
        return _parse_v2(buffer)
    if buffer:
        raise ProxyProtocolError(
            "not a PROXY protocol header (expected 'PROXY ' or the v2 signature)"
        )
    return None


def _parse_v1(buffer: bytearray) -> ProxyResult | None:
    if buffer[: len(V1_PREFIX)] != V1_PREFIX[: len(buffer)]:
        raise ProxyProtocolError("not a PROXY protocol header (expected 'PROXY ')")
    after = len(V1_PREFIX)
    if len(buffer) > after and not any(
        buffer[after : after + len(name)] == name[: len(buffer) - after] for name in _V1_PROTOCOLS
    ):
        raise ProxyProtocolError("PROXY v1: the protocol is not TCP4, TCP6 or UNKNOWN")
    end = buffer.find(b"\n", 0, MAX_V1_LINE)
    if end < 0:
        if len(buffer) >= MAX_V1_LINE:
            raise ProxyProtocolError(f"PROXY v1: no CRLF in the first {MAX_V1_LINE} bytes")
        return None
    if buffer[end - 1 : end] != b"\r":
        raise ProxyProtocolError("PROXY v1: the line ends with a bare LF, not CRLF")
    line, rest = bytes(buffer[: end - 1]), bytes(buffer[end + 1 :])
    if line.startswith(b"PROXY UNKNOWN"):
        # Spec section 2.1: whatever follows UNKNOWN on the line is to be ignored.
        if line[len(b"PROXY UNKNOWN") :][:1] not in (b"", b" "):
            raise ProxyProtocolError("PROXY v1: the protocol is not TCP4, TCP6 or UNKNOWN")
        return ProxyResult(None, None, local=True, rest=rest, version=1)
    fields = line.split(b" ")
    if len(fields) != 6 or not all(fields):
        raise ProxyProtocolError(
            "PROXY v1: expected 'PROXY TCP4|TCP6 SOURCE DESTINATION SOURCE-PORT "
            "DESTINATION-PORT' with single spaces"
        )
    family = IPv4Address if fields[1] == b"TCP4" else IPv6Address
    source_host, destination_host = (_v1_address(field, family) for field in fields[2:4])
    source_port, destination_port = (_v1_port(field) for field in fields[4:6])
    return ProxyResult(
        (source_host, source_port), (destination_host, destination_port), False, rest, 1
    )


def _v1_address(field: bytes, family: type[IPv4Address] | type[IPv6Address]) -> str:
    text = field.decode("ascii", "replace")
    # The ipaddress module refuses leading zeroes in IPv4, as the spec does; a zone index
    # ("%eth0") is none of the spec's forms.
    if "%" not in text:
        try:
            return str(family(text))
        except ValueError:
            pass
    name = "IPv4" if family is IPv4Address else "IPv6"
    raise ProxyProtocolError(f"PROXY v1: {text!r} is not an {name} address")


def _v1_port(field: bytes) -> int:
    if _V1_PORT.fullmatch(field) is None or int(field) > 0xFFFF:
        text = field.decode("ascii", "replace")
        raise ProxyProtocolError(f"PROXY v1: {text!r} is not a port (0-65535, no leading zero)")
    return int(field)


def _parse_v2(buffer: bytearray) -> ProxyResult | None:
    if buffer[: len(V2_SIGNATURE)] != V2_SIGNATURE[: len(buffer)]:
        raise ProxyProtocolError("not a PROXY protocol header (the v2 signature is wrong)")
    if len(buffer) <= len(V2_SIGNATURE):
        return None
    version, command = buffer[12] >> 4, buffer[12] & 0xF
    if version != 2:
        raise ProxyProtocolError(f"PROXY v2: version {version}, expected 2")
    if command not in (_LOCAL, _PROXY):
        raise ProxyProtocolError(f"PROXY v2: unknown command {command:#x}")
    family = transport = _UNSPEC
    if len(buffer) > 13 and command == _PROXY:
        # Spec section 2.2: for LOCAL the family byte is to be ignored, whatever it holds.
        family, transport = buffer[13] >> 4, buffer[13] & 0xF
        if family not in (_AF_UNSPEC, *_ADDRESS_BYTES):
            raise ProxyProtocolError(f"PROXY v2: unknown address family {family:#x}")
        if transport not in (_UNSPEC, _STREAM, _DGRAM):
            raise ProxyProtocolError(f"PROXY v2: unknown transport {transport:#x}")
    if len(buffer) < _V2_FIXED:
        return None
    length = int.from_bytes(buffer[14:16], "big")
    if _V2_FIXED + length > MAX_V2_HEADER:
        raise ProxyProtocolError(
            f"PROXY v2: a {_V2_FIXED + length}-byte header, more than the {MAX_V2_HEADER} allowed"
        )
    needed = _ADDRESS_BYTES.get(family, 0)
    if length < needed:
        raise ProxyProtocolError(
            f"PROXY v2: {length} address bytes, fewer than the family's {needed}"
        )
    if len(buffer) < _V2_FIXED + length:
        return None
    block = bytes(buffer[_V2_FIXED : _V2_FIXED + length])
    rest = bytes(buffer[_V2_FIXED + length :])
    if command == _LOCAL or family == _AF_UNSPEC:
        # The block is to be skipped: LOCAL's and UNSPEC's addresses are to be ignored
        # (spec section 2.2), and without a family nothing says where TLVs would begin.
        return ProxyResult(None, None, local=True, rest=rest, version=2)
    authority, tls = _read_tlvs(block[needed:])
    if transport != _STREAM:
        # Spec section 2.2: a receiver falls back to UNSPEC (the connection's own
        # addresses) for the valid combinations it does not support; datagrams are one.
        return ProxyResult(None, None, True, rest, 2, authority, tls)
    if family == _AF_UNIX:
        return ProxyResult(None, None, False, rest, 2, authority, tls)
    size = 4 if family == _AF_INET else 16
    kind = IPv4Address if family == _AF_INET else IPv6Address
    ports = block[2 * size :]
    source = (str(kind(block[:size])), int.from_bytes(ports[0:2], "big"))
    destination = (str(kind(block[size : 2 * size])), int.from_bytes(ports[2:4], "big"))
    return ProxyResult(source, destination, False, rest, 2, authority, tls)


def _read_tlvs(data: bytes) -> tuple[str | None, bool]:
    """Walk the TLVs after the addresses (spec section 2.2): each must fit exactly. Returns
    the authority and whether the client used TLS."""
    authority: str | None = None
    tls = False
    pos = 0
    while pos < len(data):
        if len(data) - pos < _TLV_HEAD:
            raise ProxyProtocolError("PROXY v2: a TLV is cut short")
        kind, size = data[pos], int.from_bytes(data[pos + 1 : pos + 3], "big")
        value = data[pos + _TLV_HEAD : pos + _TLV_HEAD + size]
        if len(value) != size:
            raise ProxyProtocolError(f"PROXY v2: TLV {kind:#04x} is longer than the header")
        if kind == _PP2_TYPE_AUTHORITY:
            try:
                authority = value.decode("utf-8")
            except UnicodeDecodeError:
                raise ProxyProtocolError("PROXY v2: the authority TLV is not UTF-8") from None
        elif kind == _PP2_TYPE_SSL:
            if size < _SSL_HEAD:
                raise ProxyProtocolError("PROXY v2: the SSL TLV is shorter than 5 bytes")
            tls = bool(value[0] & _PP2_CLIENT_SSL)
        pos += _TLV_HEAD + size
    return authority, tls
