"""Fuzzing properties (Hypothesis) of the parsers of the proxy headers: broken input fails
cleanly, as test_fuzz_properties.py checks of HTTP/1.1 itself.

- `forwarded.resolve`, on header values made of address pieces, delimiters and random bytes,
  never raises and gives None or values a scope can take as they are;
  `TrustedPeers.from_settings` raises only ValueError, naming the setting;
- `ProxyHeaderParser`, on PROXY v1 and v2 headers broken as the requests are (and random
  bytes), raises only ProxyProtocolError (the same one again after it, RuntimeError once its
  result is out), and its outcome, with what followed the header, is the same for any cut.

The coverage-guided counterparts are fuzz/fuzz_forwarded.py and fuzz/fuzz_proxy_protocol.py.
"""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rootserve.protocol.forwarded import Forwarded, TrustedPeers, resolve
from rootserve.protocol.proxy_protocol import (
    V2_SIGNATURE,
    ProxyHeaderParser,
    ProxyProtocolError,
    ProxyResult,
)

from .test_fuzz_properties import MANY, mutated
from .test_properties import PROPERTY, splits

ADDRESSES = [b"192.0.2.1", b"2001:db8::1", b"[2001:db8::1]:80", b"::ffff:10.0.0.1", b"unknown"]
HEADER_NAMES = [b"forwarded", b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host"]
HEADER_NAMES += [b"x-forwarded-port", b"x-forwarded-prefix", b"x-other"]


@st.composite
def proxy_header_value(draw: st.DrawFn) -> bytes:
    pieces = st.sampled_from(
        [*ADDRESSES, b"for=", b"proto=https", b"host=", b'"', b";", b",", b" ", b"/", b"%2"]
    )
    return b"".join(draw(st.lists(pieces | st.binary(max_size=4), max_size=8)))


@MANY
@given(
    st.lists(st.tuples(st.sampled_from(HEADER_NAMES), proxy_header_value()), max_size=5),
    st.sampled_from([["*"], ["10.0.0.0/8", "192.0.2.1", "2001:db8::/32"], ["unix"]]),
    st.sampled_from([("10.0.0.1", 1), ("2001:db8::2", 2), "/run/app.sock", None]),
)
def test_forwarded_never_raises(headers: Any, allowed: list[str], peer: Any) -> None:
    check_forwarded(resolve(headers, peer, TrustedPeers.from_settings(allowed)))


def check_forwarded(result: Forwarded | None) -> None:
    """What `resolve` gives is None or values a scope can take as they are."""
    if result is None:
        return
    assert isinstance(result, Forwarded)
    if result.client is not None:
        ipaddress.ip_address(result.client[0])
        assert 0 <= result.client[1] < 65536
    assert result.scheme in {None, "http", "https"}
    assert result.port is None or 0 < result.port < 65536
    assert result.prefix is None or result.prefix == "" or result.prefix.startswith("/")


@PROPERTY
@given(st.lists(st.text(st.sampled_from("0123456789abcdef.:/[],* unix%"), max_size=12), max_size=3))
def test_trusted_peers_raise_only_value_error(items: list[str]) -> None:
    try:
        trusted = TrustedPeers.from_settings(items)
    except ValueError as error:
        assert "--forwarded-allow-ips" in str(error)
        return
    for peer in [("192.0.2.1", 1), ("fe80::1%eth0", 2), "x", None, ("", 0)]:
        assert trusted.trusts(peer) in {True, False}


V1 = [
    b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n",
    b"PROXY TCP6 2001:db8::1 ::1 1 65535\r\n",
    b"PROXY UNKNOWN\r\n",
]
V2 = [
    V2_SIGNATURE + b"\x21\x11\x00\x0c" + bytes(range(12)),
    V2_SIGNATURE + b"\x21\x21\x00\x27" + bytes(36) + b"\x02\x00\x00",
    V2_SIGNATURE + b"\x21\x11\x00\x14" + bytes(12) + b"\x20\x00\x05\x01\x00\x00\x00\x00",
    V2_SIGNATURE + b"\x20\x00\x00\x00",
]


def proxy_outcome(chunks: list[bytes]) -> tuple[object, ...]:
    """The header's error, or its result with what followed it: its `rest` and the chunks
    not fed (the server hands both to HTTP)."""
    parser = ProxyHeaderParser()
    for i, chunk in enumerate(chunks):
        try:
            result = parser.feed(chunk)
        except ProxyProtocolError as error:
            # The same error again on every later call.
            try:
                parser.feed(b"")
            except ProxyProtocolError as again:
                assert again is error
            return ("error", str(error))
        if result is not None:
            assert isinstance(result, ProxyResult)
            with pytest.raises(RuntimeError):
                parser.feed(b"")
            return ("result", replace(result, rest=b"".join([result.rest, *chunks[i + 1 :]])))
    return ("more",)


@MANY
@given(
    st.sampled_from(V1 + V2).flatmap(mutated) | st.binary(max_size=40),
    st.binary(max_size=8),
    st.data(),
)
def test_proxy_header_is_the_same_however_cut(
    header: bytes, rest: bytes, data: st.DataObject
) -> None:
    raw = header + rest
    whole = proxy_outcome([raw])
    assert proxy_outcome(data.draw(splits(raw), label="chunks")) == whole


@PROPERTY
@given(st.sampled_from(V1 + V2), st.binary(max_size=8), st.data())
def test_proxy_header_rest_is_what_follows(header: bytes, rest: bytes, data: st.DataObject) -> None:
    outcome = proxy_outcome(data.draw(splits(header + rest), label="chunks"))
    assert outcome[0] == "result"
    assert outcome[1].rest == rest  # type: ignore[attr-defined]
