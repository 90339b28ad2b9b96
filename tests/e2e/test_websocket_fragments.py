"""Fragmented WebSocket messages over raw sockets (RFC 6455 sections 5.4, 5.5.1 and 8.1).

A close frame between the fragments of a message is answered with a close that echoes its
code, and the unfinished message is dropped; a text message turns out to be invalid UTF-8 at
its first bad fragment, and the connection fails with 1007 then, without waiting for the
message's end (the Autobahn Testsuite's cases 7.1.5 and 6.4.1-6.4.2 check the same).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator

import pytest
from tests.apps import ws_apps
from tests.apps.ws_apps import wait_done
from tests.e2e.test_websocket_raw import frame, open_session
from tests.helpers import Running, serve

TEXT, BINARY, CONT, CLOSE = 0x1, 0x2, 0x0, 0x8
# Autobahn case 6.4.1's message: "κόσμε", then a 4-byte sequence for U+110000 (out of
# range, invalid from its second byte on, RFC 3629 section 4), then valid ASCII.
VALID = "κόσμε".encode()
INVALID = b"\xf4\x90\x80\x80"
# Long enough to notice a server that waits for the end of the message; short next to the
# suite's timeouts.
FAIL_FAST_WAIT = 3.0


@pytest.fixture(scope="module")
def server() -> Iterator[Running]:
    with serve(ws_apps.app) as running:
        yield running


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return struct.pack("!H", code) + reason


@pytest.mark.parametrize("first", [TEXT, BINARY], ids=["text", "binary"])
@pytest.mark.parametrize("code", [1000, 1001, 4000])
def test_close_between_fragments_is_echoed(server: Running, first: int, code: int):
    token = os.urandom(8).hex()
    raw = open_session(server, f"/echo?token={token}")
    try:
        raw.sock.sendall(
            frame(first, b"fragment1", fin=False)
            + frame(CLOSE, close_payload(code, b"bye"))
            + frame(CONT, b"fragment2")  # after the close: discarded (RFC 6455 1.4)
        )
        assert raw.close_code() == (code, b"bye")
        assert raw.closed()
    finally:
        raw.close()
    seen = wait_done(token)
    # The unfinished message never reaches the app; its disconnect carries the peer's code.
    assert [m["type"] for m in seen] == ["websocket.disconnect"]
    assert (seen[0]["code"], seen[0]["reason"]) == (code, "bye")


def test_ping_between_fragments_then_whole_message(server: Running):
    raw = open_session(server)
    try:
        raw.sock.sendall(
            frame(TEXT, VALID[:3], fin=False)  # splits the second character
            + frame(0x9, b"ping")
            + frame(CONT, b"", fin=False)
            + frame(CONT, VALID[3:])
        )
        assert raw.frame() == (0xA, b"ping")
        assert raw.frame() == (TEXT, VALID)
    finally:
        raw.close()


def test_text_after_fragmented_binary_and_text(server: Running):
    raw = open_session(server)
    try:
        raw.sock.sendall(
            frame(BINARY, b"\xff\xfe", fin=False)  # not UTF-8, and need not be
            + frame(CONT, b"\x00")
            + frame(TEXT, VALID[:1], fin=False)
            + frame(CONT, VALID[1:])
            + frame(TEXT, b"whole")
        )
        assert raw.frame() == (BINARY, b"\xff\xfe\x00")
        assert raw.frame() == (TEXT, VALID)
        assert raw.frame() == (TEXT, b"whole")
    finally:
        raw.close()


@pytest.mark.parametrize(
    "fragments",
    [
        [VALID, INVALID],  # case 6.4.1: the whole bad sequence in the second fragment
        [VALID + INVALID[:1], INVALID[1:2]],  # case 6.4.2: bad from the second fragment's byte
        [b"\xff"],  # a first fragment that cannot start any character
    ],
    ids=["bad-fragment", "bad-byte-split", "bad-first-fragment"],
)
def test_invalid_utf8_fails_at_the_bad_fragment(server: Running, fragments: list[bytes]):
    token = os.urandom(8).hex()
    raw = open_session(server, f"/echo?token={token}")
    raw.sock.settimeout(FAIL_FAST_WAIT)
    try:
        opcodes = [TEXT] + [CONT] * (len(fragments) - 1)
        # The message's last fragment is never sent: the failure must not wait for it.
        raw.sock.sendall(
            b"".join(
                frame(op, data, fin=False) for op, data in zip(opcodes, fragments, strict=True)
            )
        )
        assert raw.close_code()[0] == 1007
        assert raw.closed()
    finally:
        raw.close()
    assert wait_done(token)[-1]["code"] == 1007
