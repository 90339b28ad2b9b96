"""Harness: forwarded.resolve and TrustedPeers.from_settings on any header values.

The payload is header lines, one per LF: a line's first byte picks its name (Forwarded or
an X-Forwarded-* header), the rest is its value. Checks: resolve never raises and gives
None or values a scope can take (tests/protocol/test_fuzz_proxy_headers.check_forwarded);
from_settings, given the lines as setting items, raises nothing but ValueError.
"""

from __future__ import annotations

import contextlib

from _common import run, seed, split
from tests.protocol.test_fuzz_proxy_headers import HEADER_NAMES, check_forwarded

from rootserve.protocol.forwarded import TrustedPeers, resolve

TRUSTED = [
    TrustedPeers.from_settings(items)
    for items in (["*"], ["10.0.0.0/8", "192.0.2.1", "2001:db8::/32"], ["unix"])
]
PEERS = [("10.0.0.1", 1), ("2001:db8::2", 2), "/run/app.sock", None]


def test_one_input(data: bytes) -> None:
    options, payload, _ = split(data)
    lines = payload.split(b"\n")
    headers = [(HEADER_NAMES[line[0] % len(HEADER_NAMES)], line[1:]) for line in lines if line]
    trusted = TRUSTED[options % len(TRUSTED)]
    check_forwarded(resolve(headers, PEERS[options // len(TRUSTED) % len(PEERS)], trusted))
    with contextlib.suppress(ValueError):  # a bad entry, named in the message
        TrustedPeers.from_settings([line.decode("latin-1") for line in lines])


def seeds() -> list[bytes]:
    values = [
        b"\x00for=192.0.2.60;proto=http;by=203.0.113.43, for=10.0.0.1",
        b'\x00for="[2001:db8:cafe::17]:4711";host=example.com:8443, for=unknown',
        b"\x00for=_hidden;proto=https\n\x00for=10.0.0.2",
        b"\x01192.0.2.1, 10.0.0.1\n\x02https\n\x03example.com\n\x04443\n\x05/app%20x/",
        b"\x01[2001:db8::1]:80, ::ffff:10.0.0.1\n\x02wss",
        b"10.0.0.0/8, 192.0.2.1\nunix\n*",
    ]
    return [seed(value, options=options) for value in values for options in range(12)]


if __name__ == "__main__":
    run(test_one_input, seeds)
