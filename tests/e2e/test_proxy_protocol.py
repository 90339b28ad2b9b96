"""--proxy-protocol over real sockets: a PROXY header (v1, v2, LOCAL) from a trusted peer
gives the app the client's address, whole or in pieces; an untrusted peer, an invalid
header or none in time closes the connection without an answer, with one log line."""

from __future__ import annotations

import logging
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.proxy_support import (
    INTERFACES,
    TIMEOUT,
    V2_SIGNATURE,
    Seen,
    answer,
    direct,
    request_bytes,
    served,
    served_on_unix,
    unix_ask,
    v1,
    v2,
    v2_local,
)
from tests.helpers import Peer


def closed_unanswered(port: int, data: bytes = b"") -> bytes:
    """Send `data` (if any) and read until the server closes; what it sent."""
    with Peer(port, timeout=TIMEOUT, resets_are_eof=True) as peer:
        if data:
            peer.send(data)
        return peer.to_eof()


@pytest.mark.parametrize("interface", INTERFACES)
@pytest.mark.parametrize(
    ("header", "client", "server"),
    [
        (v1("198.51.100.22", "203.0.113.9", 35646, 443), ("198.51.100.22", 35646),
         ("203.0.113.9", 443)),
        (v2("198.51.100.22", "203.0.113.9", 35646, 443), ("198.51.100.22", 35646),
         ("203.0.113.9", 443)),
        # With a TLV after the addresses (type 0x04, NOOP): skipped.
        (v2("2001:db8::22", "2001:db8::9", 1234, 80, tlvs=b"\x04\x00\x02ab"),
         ("2001:db8::22", 1234), ("2001:db8::9", 80)),
        (v1("2001:db8::22", "2001:db8::9", 1234, 80), ("2001:db8::22", 1234),
         ("2001:db8::9", 80)),
    ],
    ids=["v1-tcp4", "v2-tcp4", "v2-tcp6-tlv", "v1-tcp6"],
)  # fmt: skip
def test_a_proxy_header_from_a_trusted_peer_gives_the_source(
    interface: str, header: bytes, client: tuple[str, int], server: tuple[str, int]
) -> None:
    with served(interface, proxy_protocol=True) as port, Peer(port, timeout=TIMEOUT) as peer:
        peer.send(header + request_bytes())  # header and request in one packet
        first = answer(peer, interface)
        peer.send(request_bytes())  # the next request on the connection: the same client
        second = answer(peer, interface)
    assert first == second == Seen(client, "http", server, "app.internal:8000", "", "/x")


@pytest.mark.parametrize(("interface", "version"), [("asgi", v2), ("wsgi", v1)])
def test_a_proxy_header_split_byte_by_byte(interface: str, version: Any) -> None:
    data = version("198.51.100.22", "203.0.113.9", 35646, 443) + request_bytes()
    with served(interface, proxy_protocol=True) as port, Peer(port, timeout=TIMEOUT) as peer:
        peer.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for index in range(len(data)):
            peer.send(data[index : index + 1])
            time.sleep(0.001)  # noqa: sleep-ok (pacing: each byte its own segment and read)
        got = answer(peer, interface)
    assert (got.client, got.server) == (("198.51.100.22", 35646), ("203.0.113.9", 443))


@pytest.mark.parametrize("interface", INTERFACES)
def test_a_local_header_keeps_the_real_peer(interface: str) -> None:
    with served(interface, proxy_protocol=True) as port, Peer(port, timeout=TIMEOUT) as peer:
        peer.send(v2_local() + request_bytes())
        got = answer(peer, interface)
        assert got == direct(peer.local_port, port)


# A header deadline far beyond TIMEOUT: a connection closed within TIMEOUT was closed for
# what it sent, not for running out of time.
PATIENT = {"proxy_protocol": True, "timeout_header": 60}


def test_a_proxy_header_from_an_untrusted_peer_is_closed_unanswered(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logging.getLogger("rootserve"), "propagate", True)
    caplog.set_level(logging.INFO, logger="rootserve.error")
    header = v1("198.51.100.22", "203.0.113.9", 35646, 443)
    with served("asgi", forwarded_allow_ips=["10.0.0.1"], **PATIENT) as port:
        assert closed_unanswered(port, header + request_bytes()) == b""
        assert closed_unanswered(port) == b""  # closed at once, before any byte
    said = [r.getMessage() for r in caplog.records if "PROXY protocol" in r.getMessage()]
    assert len(said) == 2, said
    assert all(line.startswith("127.0.0.1:") and "not trusted" in line for line in said)


@pytest.mark.parametrize(
    "data",
    [
        request_bytes(),  # HTTP without the header the setting asks for
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(64),  # a TLS ClientHello
        b"PROXY TCP4 198.51.100.22 203.0.113.9 35646 443\n" + request_bytes(),  # bare LF
        b"PROXY TCP4 not-an-address 203.0.113.9 35646 443\r\n" + request_bytes(),
        V2_SIGNATURE + bytes([0x31, 0x11, 0, 12]) + bytes(12),  # version 3
        b"PROXY " + b"A" * 200,  # no CRLF within the longest line
    ],
    ids=["http", "tls", "bare-lf", "bad-address", "v2-version-3", "too-long"],
)
def test_an_invalid_proxy_header_is_closed_unanswered(
    data: bytes, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logging.getLogger("rootserve"), "propagate", True)
    caplog.set_level(logging.INFO, logger="rootserve.error")
    with served("asgi", **PATIENT) as port:
        assert closed_unanswered(port, data) == b""
    said = [r.getMessage() for r in caplog.records if " - closed: " in r.getMessage()]
    assert len(said) == 1 and "PROXY" in said[0], said


def test_a_peer_that_sends_no_proxy_header_is_closed_after_timeout_header(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logging.getLogger("rootserve"), "propagate", True)
    caplog.set_level(logging.INFO, logger="rootserve.error")
    with served("asgi", proxy_protocol=True, timeout_header=1) as port:
        started = time.monotonic()
        assert closed_unanswered(port) == b""
        silent = time.monotonic() - started
        # Half a header, then nothing: closed the same way.
        started = time.monotonic()
        assert closed_unanswered(port, b"PROXY TCP4 198.51") == b""
        partial = time.monotonic() - started
    # The reaper looks every quarter of the timeout: closed within [1, 1.25] s, give or
    # take the scheduling of a shared machine.
    assert 0.9 <= silent < 5.0
    assert 0.9 <= partial < 5.0
    said = [r.getMessage() for r in caplog.records if "PROXY protocol" in r.getMessage()]
    assert len(said) == 2, said
    assert all("no PROXY protocol header in time" in line for line in said), said


def test_unix_trusts_a_proxy_header_over_a_unix_socket(tmp_path: Path) -> None:
    path = tmp_path / "app.sock"
    header = v1("198.51.100.22", "203.0.113.9", 35646, 443)
    with served_on_unix(path, proxy_protocol=True, forwarded_allow_ips=["unix"]):
        view = unix_ask(path, header + request_bytes([("Connection", "close")]))
    assert view["client"] == ["198.51.100.22", 35646]
    assert view["server"] == ["203.0.113.9", 443]
