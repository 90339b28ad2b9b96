"""The PROXY protocol header, versions 1 and 2 (HAProxy's proxy-protocol.txt).

Each valid case is read whole, split at every point and byte by byte, and the outcome
(result or error) must not change; the properties check the same for random splits and for
random bytes, which only ever give None, a result or ProxyProtocolError.
"""

from __future__ import annotations

import dataclasses
import itertools
from ipaddress import ip_address

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rootserve.protocol.proxy_protocol import (
    MAX_V1_LINE,
    MAX_V2_HEADER,
    ProxyHeaderParser,
    ProxyProtocolError,
    ProxyResult,
)

SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
HTTP = b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"
Outcome = ProxyResult | str | None  # a result, an error's message, or "need more"


def v2(block: bytes = b"", *, command: int = 0x1, family: int = 0x11, version: int = 2) -> bytes:
    head = bytes([version << 4 | command, family]) + len(block).to_bytes(2, "big")
    return SIGNATURE + head + block


def ip_block(source: str, destination: str, source_port: int, destination_port: int) -> bytes:
    return (
        ip_address(source).packed
        + ip_address(destination).packed
        + source_port.to_bytes(2, "big")
        + destination_port.to_bytes(2, "big")
    )


def tlv(kind: int, value: bytes) -> bytes:
    return bytes([kind]) + len(value).to_bytes(2, "big") + value


def unix_block(source: bytes = b"/run/lb.sock", destination: bytes = b"/run/app.sock") -> bytes:
    return source.ljust(108, b"\x00") + destination.ljust(108, b"\x00")


def run(chunks: list[bytes]) -> Outcome:
    """Feed `chunks` in turn; a result's rest then includes the chunks not fed."""
    parser = ProxyHeaderParser()
    for index, chunk in enumerate(chunks):
        try:
            result = parser.feed(chunk)
        except ProxyProtocolError as error:
            return str(error)
        if result is not None:
            return dataclasses.replace(result, rest=result.rest + b"".join(chunks[index + 1 :]))
    return None


def result(
    source: tuple[str, int] | None,
    destination: tuple[str, int] | None,
    *,
    local: bool = False,
    rest: bytes = HTTP,
    version: int = 1,
    authority: str | None = None,
    tls: bool = False,
) -> ProxyResult:
    return ProxyResult(source, destination, local, rest, version, authority, tls)


LOCAL_V1 = result(None, None, local=True)
LOCAL_V2 = result(None, None, local=True, version=2)
MAX_UNKNOWN = b"PROXY UNKNOWN " + b"ffff:" * 7 + b"ffff " + b"ffff:" * 7 + b"ffff 65535 65535\r\n"
assert len(MAX_UNKNOWN) == MAX_V1_LINE

VALID: list[tuple[bytes, ProxyResult]] = [
    # Version 1.
    (
        b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n",
        result(("192.0.2.1", 56324), ("198.51.100.2", 443)),
    ),
    (
        b"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n",
        result(("255.255.255.255", 65535), ("255.255.255.255", 65535)),
    ),
    (b"PROXY TCP4 0.0.0.0 0.0.0.0 0 0\r\n", result(("0.0.0.0", 0), ("0.0.0.0", 0))),
    (
        b"PROXY TCP6 2001:db8::1 2001:DB8:0:0:0:0:0:2 4711 80\r\n",
        result(("2001:db8::1", 4711), ("2001:db8::2", 80)),
    ),
    (b"PROXY TCP6 ::1 :: 1 2\r\n", result(("::1", 1), ("::", 2))),
    (b"PROXY UNKNOWN\r\n", LOCAL_V1),
    (b"PROXY UNKNOWN 192.0.2.1 198.51.100.2 1 2\r\n", LOCAL_V1),
    (b"PROXY UNKNOWN anything at all\r\n", LOCAL_V1),
    (MAX_UNKNOWN, LOCAL_V1),
    # Version 2.
    (
        v2(ip_block("192.0.2.1", "198.51.100.2", 56324, 443)),
        result(("192.0.2.1", 56324), ("198.51.100.2", 443), version=2),
    ),
    (
        v2(ip_block("2001:db8::1", "2001:db8::2", 4711, 80), family=0x21),
        result(("2001:db8::1", 4711), ("2001:db8::2", 80), version=2),
    ),
    (v2(unix_block(), family=0x31), result(None, None, version=2)),
    # LOCAL (a health check): the block is skipped, the family byte ignored.
    (v2(command=0x0, family=0x00), LOCAL_V2),
    (v2(ip_block("192.0.2.1", "198.51.100.2", 1, 2), command=0x0, family=0x11), LOCAL_V2),
    (v2(b"\xff" * 7, command=0x0, family=0xFF), LOCAL_V2),
    # A relayed client without addresses to use: the connection's own stand.
    (v2(family=0x00), LOCAL_V2),
    (v2(b"opaque", family=0x00), LOCAL_V2),
    (v2(ip_block("192.0.2.1", "198.51.100.2", 1, 2), family=0x12), LOCAL_V2),
    (v2(ip_block("192.0.2.1", "198.51.100.2", 1, 2), family=0x10), LOCAL_V2),
    (v2(unix_block(), family=0x32), LOCAL_V2),
    # TLVs: skipped, but for the authority and the TLS flag.
    (
        v2(
            ip_block("192.0.2.1", "198.51.100.2", 1, 2)
            + tlv(0x01, b"h2")
            + tlv(0x02, "bücher.example".encode())
            + tlv(0x04, b"")
            + tlv(0x20, b"\x01\x00\x00\x00\x00" + tlv(0x21, b"TLSv1.3"))
            + tlv(0xE0, b"custom")
        ),
        result(
            ("192.0.2.1", 1),
            ("198.51.100.2", 2),
            version=2,
            authority="bücher.example",
            tls=True,
        ),
    ),
    (
        v2(ip_block("192.0.2.1", "198.51.100.2", 1, 2) + tlv(0x20, b"\x00\x00\x00\x00\x01")),
        result(("192.0.2.1", 1), ("198.51.100.2", 2), version=2, tls=False),
    ),
    (
        v2(unix_block() + tlv(0x02, b"example.com"), family=0x31),
        result(None, None, version=2, authority="example.com"),
    ),
    # The largest header allowed.
    (
        v2(ip_block("192.0.2.1", "198.51.100.2", 1, 2) + tlv(0x04, bytes(MAX_V2_HEADER - 31))),
        result(("192.0.2.1", 1), ("198.51.100.2", 2), version=2),
    ),
]


def splits(raw: bytes) -> list[list[bytes]]:
    """`raw` whole, cut at each point, and byte by byte."""
    cuts = [[raw[:point], raw[point:]] for point in range(1, len(raw))]
    return [[raw], *cuts, [raw[i : i + 1] for i in range(len(raw))]]


@pytest.mark.parametrize(("header", "expected"), VALID, ids=range(len(VALID)))
def test_valid_headers_in_any_split(header: bytes, expected: ProxyResult) -> None:
    for chunks in splits(header + HTTP):
        assert run(chunks) == expected
    # Every proper prefix needs more bytes (the server's header timeout ends a stall).
    for point in range(len(header)):
        assert run([header[:point]]) is None


def test_the_header_may_be_all_there_is() -> None:
    header = b"PROXY TCP4 192.0.2.1 198.51.100.2 1 2\r\n"
    assert run([header]) == result(("192.0.2.1", 1), ("198.51.100.2", 2), rest=b"")


INVALID: list[tuple[bytes, str]] = [
    # Neither version: decided by the first bytes.
    (b"GET / HTTP/1.1\r\n\r\n", "not a PROXY protocol header"),
    (b"\x16\x03\x01", "not a PROXY protocol header"),
    (b"proxy TCP4 ", "not a PROXY protocol header"),
    (b"PROXY\tTCP4", "not a PROXY protocol header"),
    (b"PROXYTCP4", "not a PROXY protocol header"),
    (b"\r\n\r\n\x00\r\nQUIT\r", "the v2 signature is wrong"),
    (b"\r\nGET", "the v2 signature is wrong"),
    # Version 1: the protocol word, the line, the fields.
    (b"PROXY TCP5 ", "not TCP4, TCP6 or UNKNOWN"),
    (b"PROXY tcp4 ", "not TCP4, TCP6 or UNKNOWN"),
    (b"PROXY  TCP4 ", "not TCP4, TCP6 or UNKNOWN"),
    (b"PROXY UDP4 ", "not TCP4, TCP6 or UNKNOWN"),
    (b"PROXY UNKNOWNX\r\n", "not TCP4, TCP6 or UNKNOWN"),
    (b"PROXY TCP4\r\n", "not TCP4, TCP6 or UNKNOWN"),
    (b"PROXY \r\n", "not TCP4, TCP6 or UNKNOWN"),
    (b"PROXY TCP4 192.0.2.1 198.51.100.2 1 2\n", "bare LF"),
    (b"PROXY UNKNOWN\n", "bare LF"),
    (b"PROXY TCP4 192.0.2.1 198.51.100.2 1 2\rX\r\n", "'2\\rX' is not a port"),
    (b"PROXY TCP4 192.0.2.1 198.51.100.2 1 2\rX" + b" " * 80, "no CRLF in the first 107"),
    (b"PROXY UNKNOWN" + b" " * 100, "no CRLF in the first 107"),
    (MAX_UNKNOWN[:-2] + b" \r\n", "no CRLF in the first 107"),
    (b"PROXY TCP4 192.0.2.1  198.51.100.2 1 2\r\n", "single spaces"),
    (b"PROXY TCP4 192.0.2.1 198.51.100.2 1 2 \r\n", "single spaces"),
    (b"PROXY TCP4 192.0.2.1 198.51.100.2 1\r\n", "single spaces"),
    (b"PROXY TCP4 192.0.2.1 198.51.100.2 1 2 3\r\n", "single spaces"),
    (b"PROXY TCP4 192.0.2.1\t198.51.100.2 1 2\r\n", "single spaces"),
    (b"PROXY TCP4 2001:db8::1 198.51.100.2 1 2\r\n", "'2001:db8::1' is not an IPv4 address"),
    (b"PROXY TCP4 192.0.2.1 198.51.100.256 1 2\r\n", "is not an IPv4 address"),
    (b"PROXY TCP4 192.0.02.1 198.51.100.2 1 2\r\n", "is not an IPv4 address"),
    (b"PROXY TCP4 192.0.2 198.51.100.2 1 2\r\n", "is not an IPv4 address"),
    (b"PROXY TCP6 192.0.2.1 2001:db8::2 1 2\r\n", "'192.0.2.1' is not an IPv6 address"),
    (b"PROXY TCP6 2001:db8::1 2001:db8::g 1 2\r\n", "is not an IPv6 address"),
    (b"PROXY TCP6 fe80::1%eth0 2001:db8::2 1 2\r\n", "is not an IPv6 address"),
    (b"PROXY TCP6 2001:db8:::1 2001:db8::2 1 2\r\n", "is not an IPv6 address"),
    (b"PROXY TCP4 192.0.2.\xff 198.51.100.2 1 2\r\n", "is not an IPv4 address"),
    (b"PROXY TCP4 192.0.2.1 198.51.100.2 65536 2\r\n", "'65536' is not a port"),
    (b"PROXY TCP4 192.0.2.1 198.51.100.2 1 080\r\n", "'080' is not a port"),
    (b"PROXY TCP4 192.0.2.1 198.51.100.2 -1 2\r\n", "is not a port"),
    (b"PROXY TCP4 192.0.2.1 198.51.100.2 1 0x50\r\n", "is not a port"),
    (b"PROXY TCP4 192.0.2.1 198.51.100.2 100000 2\r\n", "is not a port"),
    # Version 2: version and command, family and transport, lengths.
    (v2(version=1), "version 1, expected 2"),
    (v2(version=3), "version 3, expected 2"),
    (v2(command=0x2), "unknown command 0x2"),
    (v2(command=0xF), "unknown command 0xf"),
    (v2(family=0x41), "unknown address family 0x4"),
    (v2(family=0xF1), "unknown address family 0xf"),
    (v2(family=0x13), "unknown transport 0x3"),
    (v2(ip_block("192.0.2.1", "198.51.100.2", 1, 2)[:-1]), "11 address bytes, fewer than"),
    (v2(family=0x21), "0 address bytes, fewer than the family's 36"),
    (v2(b"\x00" * 215, family=0x31), "215 address bytes, fewer than the family's 216"),
    (SIGNATURE + b"\x21\x11" + (MAX_V2_HEADER - 15).to_bytes(2, "big"), "more than the 4096"),
    (SIGNATURE + b"\x20\x00\xff\xff", "a 65551-byte header, more than the 4096 allowed"),
    # TLVs that do not fit.
    (v2(ip_block("192.0.2.1", "198.51.100.2", 1, 2) + b"\x04\x00"), "a TLV is cut short"),
    (v2(ip_block("192.0.2.1", "198.51.100.2", 1, 2) + b"\x04"), "a TLV is cut short"),
    (
        v2(ip_block("192.0.2.1", "198.51.100.2", 1, 2) + b"\x04\x00\x05abcd"),
        "TLV 0x04 is longer than the header",
    ),
    (
        v2(ip_block("192.0.2.1", "198.51.100.2", 1, 2) + tlv(0x04, b"") + b"\x02\xff\xff"),
        "TLV 0x02 is longer than the header",
    ),
    (
        v2(ip_block("192.0.2.1", "198.51.100.2", 1, 2) + tlv(0x20, b"\x01\x00\x00\x00")),
        "the SSL TLV is shorter than 5 bytes",
    ),
    (
        v2(ip_block("192.0.2.1", "198.51.100.2", 1, 2) + tlv(0x02, b"\xff\xfe")),
        "the authority TLV is not UTF-8",
    ),
]


@pytest.mark.parametrize(("data", "reason"), INVALID, ids=range(len(INVALID)))
def test_invalid_headers_in_any_split(data: bytes, reason: str) -> None:
    outcomes = {run(chunks) for chunks in splits(data + HTTP)}
    assert len(outcomes) == 1, outcomes
    (message,) = outcomes
    assert isinstance(message, str) and reason in message


@pytest.mark.parametrize(
    ("data", "failing_at"),
    [
        (b"GET / HTTP/1.1\r\n", 1),
        (b"PROXX", 5),
        (b"\r\n\r\n\x00\r\nQUI T", 11),
        (b"PROXY TCP7", 10),
        (SIGNATURE + b"\x11", 13),
        (SIGNATURE + b"\x21\x51", 14),
        (SIGNATURE + b"\x21\x11\x10\x00" + b"\x00" * 100, 16),
        (b"PROXY UNKNOWN" + b"x" * 200, MAX_V1_LINE),
    ],
)
def test_failure_comes_at_the_byte_that_decides(data: bytes, failing_at: int) -> None:
    parser = ProxyHeaderParser()
    for count, byte in enumerate(data, start=1):
        try:
            assert parser.feed(bytes([byte])) is None
        except ProxyProtocolError:
            assert count == failing_at
            return
    pytest.fail("no error")


def test_a_failed_parser_keeps_failing_and_a_done_one_refuses_more() -> None:
    parser = ProxyHeaderParser()
    with pytest.raises(ProxyProtocolError, match="not a PROXY protocol header") as first:
        parser.feed(b"GET")
    with pytest.raises(ProxyProtocolError) as second:
        parser.feed(b"PROXY UNKNOWN\r\n")
    assert second.value is first.value
    parser = ProxyHeaderParser()
    assert parser.feed(b"") is None
    assert parser.feed(b"PROXY UNKNOWN\r\n") == dataclasses.replace(LOCAL_V1, rest=b"")
    with pytest.raises(RuntimeError, match="already read"):
        parser.feed(b"GET")


# -- properties

PROPERTY = settings(
    max_examples=150,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)


def cut(raw: bytes, points: list[int]) -> list[bytes]:
    edges = [0, *sorted({p for p in points if 0 < p < len(raw)}), len(raw)]
    return [raw[a:b] for a, b in itertools.pairwise(edges)]


@PROPERTY
@given(st.sampled_from(VALID), st.binary(max_size=20), st.lists(st.integers(0, 300), max_size=20))
def test_random_splits_of_valid_headers(
    case: tuple[bytes, ProxyResult], tail: bytes, points: list[int]
) -> None:
    header, expected = case
    assert run(cut(header + tail, points)) == dataclasses.replace(expected, rest=tail)


_STARTS = st.sampled_from(
    [b"", b"PROXY ", b"PROXY TCP4 ", b"PROXY TCP6 ", b"PROXY UNKNOWN", SIGNATURE,
     SIGNATURE + b"\x21", SIGNATURE + b"\x20", SIGNATURE + b"\x21\x11", SIGNATURE + b"\x21\x31"]
)  # fmt: skip


@PROPERTY
@given(_STARTS, st.binary(max_size=300), st.lists(st.integers(0, 320), max_size=10))
def test_random_bytes_give_one_outcome_in_any_split(
    start: bytes, tail: bytes, points: list[int]
) -> None:
    data = start + tail
    whole = run([data])  # ProxyProtocolError is caught there; anything else fails the test
    assert run(cut(data, points)) == whole
    if isinstance(whole, ProxyResult):
        assert data.endswith(whole.rest)
