"""Malformed WebSocket handshakes and frames over raw sockets.

A bad handshake gets a clear 400 or 426 and never reaches the app; a client that breaks the
framing rules after a good handshake gets a close frame with the code RFC 6455 names
(1002, 1007, 1009), then the TCP close, and the worker goes on serving.
"""

from __future__ import annotations

import base64
import os
import socket
import struct
from collections.abc import Iterator

import pytest
from tests.apps import ws_apps
from tests.apps.ws_apps import CALLS, wait_done
from tests.helpers import Running, serve

TIMEOUT = 10.0
KEY = base64.b64encode(b"0123456789abcdef").decode()
# RFC 6455 section 1.3's worked example: this key gives this accept value.
EXAMPLE_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
EXAMPLE_ACCEPT = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def handshake(
    path: str = "/echo", *, method: str = "GET", key: str | None = KEY, **fields: str
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: example.com", "Upgrade: websocket",
             "Connection: Upgrade"]  # fmt: skip
    if key is not None:
        lines.append(f"Sec-WebSocket-Key: {key}")
    fields.setdefault("Sec_WebSocket_Version", "13")
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in fields.items() if value]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def frame(
    opcode: int, payload: bytes, *, fin: bool = True, mask: bool = True, rsv: int = 0
) -> bytes:
    """A client frame (RFC 6455 section 5.2)."""
    head = bytes([(0x80 if fin else 0) | rsv << 4 | opcode])
    length = len(payload)
    bit = 0x80 if mask else 0
    if length < 126:
        head += bytes([bit | length])
    elif length < 1 << 16:
        head += bytes([bit | 126]) + struct.pack("!H", length)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", length)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


class Raw:
    """A socket speaking WebSocket by hand."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.buffer = b""

    def close(self) -> None:
        self.sock.close()

    def _more(self) -> bool:
        chunk = self.sock.recv(65536)
        self.buffer += chunk
        return bool(chunk)

    def head(self, data: bytes) -> tuple[bytes, dict[bytes, bytes], bytes]:
        """Send `data`; read the HTTP answer head: (status line, fields, rest of a body)."""
        self.sock.sendall(data)
        while b"\r\n\r\n" not in self.buffer:
            assert self._more(), f"closed before a whole head: {self.buffer!r}"
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        status, *lines = head.split(b"\r\n")
        fields = {n.lower(): v.strip() for n, _, v in (ln.partition(b":") for ln in lines)}
        return status, fields, self.buffer

    def rest(self) -> bytes:
        """Everything until the server closes."""
        while self._more():
            pass
        data, self.buffer = self.buffer, b""
        return data

    def frame(self) -> tuple[int, bytes]:
        """The next frame from the server: (opcode, payload); (-1, b"") at EOF."""
        while len(self.buffer) < 2:
            if not self._more():
                return -1, b""
        length = self.buffer[1] & 0x7F
        assert not self.buffer[1] & 0x80, "a server frame must not be masked (RFC 6455 5.1)"
        start = 2 + {126: 2, 127: 8}.get(length, 0)
        while len(self.buffer) < start:
            assert self._more()
        if length == 126:
            (length,) = struct.unpack("!H", self.buffer[2:4])
        elif length == 127:
            (length,) = struct.unpack("!Q", self.buffer[2:10])
        while len(self.buffer) < start + length:
            assert self._more()
        opcode, payload = self.buffer[0] & 0x0F, self.buffer[start : start + length]
        self.buffer = self.buffer[start + length :]
        return opcode, payload

    def close_code(self) -> tuple[int, bytes]:
        """Read frames up to the server's close frame; its code and reason."""
        while True:
            opcode, payload = self.frame()
            assert opcode != -1, "the server closed without a close frame"
            if opcode == 0x8:
                return struct.unpack("!H", payload[:2])[0], payload[2:]

    def closed(self) -> bool:
        """Whether the server closed the TCP connection (read to EOF)."""
        try:
            return self.rest() == b""
        except ConnectionResetError:
            return True


@pytest.fixture(scope="module")
def server() -> Iterator[Running]:
    with serve(ws_apps.app, ws_max_size=1024) as running:
        yield running


def open_session(server: Running, path: str = "/echo", extra: bytes = b"") -> Raw:
    raw = Raw(server.port)
    status, _, _ = raw.head(handshake(path) + extra)
    assert status == b"HTTP/1.1 101 Switching Protocols"
    return raw


def still_serving(server: Running) -> None:
    raw = open_session(server)
    try:
        raw.sock.sendall(frame(0x1, b"still here"))
        assert raw.frame() == (0x1, b"still here")
    finally:
        raw.close()


# -- handshakes --------------------------------------------------------------------------


def test_accept_key_is_rfc_6455_example(server: Running):
    raw = Raw(server.port)
    try:
        status, fields, _ = raw.head(handshake(key=EXAMPLE_KEY))
        assert status == b"HTTP/1.1 101 Switching Protocols"
        assert fields[b"sec-websocket-accept"] == EXAMPLE_ACCEPT
        assert fields[b"upgrade"] == b"websocket"
        assert fields[b"connection"].lower() == b"upgrade"
    finally:
        raw.close()


@pytest.mark.parametrize(
    ("request_bytes", "status", "words"),
    [
        (handshake(key=None), 400, b"Sec-WebSocket-Key"),
        (handshake(key="not base64!"), 400, b"16 bytes"),
        (handshake(key=base64.b64encode(b"short").decode()), 400, b"16 bytes"),
        (handshake(method="POST"), 400, b"GET"),
        (handshake(Sec_WebSocket_Version="8"), 426, b"version must be 13"),
        (handshake(Sec_WebSocket_Version=""), 426, b"version must be 13"),
        (
            handshake().replace(
                b"\r\n\r\n", b"\r\nSec-WebSocket-Key: " + KEY.encode() + b"\r\n\r\n"
            ),
            400,
            b"one Sec-WebSocket-Key",
        ),
        (handshake(Sec_WebSocket_Extensions="permessage-deflate; ="), 400, b"Extensions"),
    ],
    ids=[
        "no-key",
        "key-not-base64",
        "key-short",
        "post",
        "version-8",
        "no-version",
        "two-keys",
        "bad-extensions",
    ],
)
def test_invalid_handshake_never_reaches_the_app(
    server: Running, request_bytes: bytes, status: int, words: bytes
):
    before = dict(CALLS)
    raw = Raw(server.port)
    try:
        line, fields, _ = raw.head(request_bytes)
        body = raw.rest()
    finally:
        raw.close()
    assert line.startswith(b"HTTP/1.1 %d " % status)
    assert words in body
    assert fields[b"connection"].lower().endswith(b"close")
    if status == 426:
        # RFC 6455 section 4.4: the answer names the version we speak.
        assert fields[b"sec-websocket-version"] == b"13"
    assert dict(CALLS) == before


def test_frames_sent_with_the_handshake_are_kept(server: Running):
    raw = open_session(server, extra=frame(0x1, b"early"))
    try:
        assert raw.frame() == (0x1, b"early")
    finally:
        raw.close()


def test_http_request_pipelined_before_a_handshake(server: Running):
    raw = Raw(server.port)
    try:
        first = b"GET /plain HTTP/1.1\r\nHost: example.com\r\n\r\n"
        status, fields, _ = raw.head(first + handshake())
        assert status == b"HTTP/1.1 200 OK"
        length = int(fields[b"content-length"])
        while len(raw.buffer) < length:
            assert raw._more()
        raw.buffer = raw.buffer[length:]
        status, _, _ = raw.head(b"")
        assert status == b"HTTP/1.1 101 Switching Protocols"
        raw.sock.sendall(frame(0x2, b"\x01\x02"))
        assert raw.frame() == (0x2, b"\x01\x02")
    finally:
        raw.close()


# -- frames --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "code"),
    [
        (frame(0x1, b"unmasked", mask=False), 1002),
        (frame(0x3, b"reserved opcode"), 1002),
        (frame(0x1, b"rsv1 without an extension", rsv=4), 1002),
        (frame(0x9, b"p" * 126), 1002),  # control frames carry at most 125 bytes (5.5)
        (frame(0x9, b"fragmented ping", fin=False), 1002),
        (frame(0x0, b"continuation of nothing"), 1002),
        (frame(0x1, b"\xff\xfe not UTF-8"), 1007),
        (frame(0x1, b"\xe2\x82", fin=False) + frame(0x0, b"\x28"), 1007),
        (frame(0x2, b"x" * 1025), 1009),
        (frame(0x2, b"x" * 600, fin=False) + frame(0x0, b"x" * 600), 1009),
    ],
    ids=[
        "unmasked",
        "bad-opcode",
        "rsv-bit",
        "long-control",
        "fragmented-control",
        "stray-continuation",
        "bad-utf8",
        "bad-utf8-fragmented",
        "too-big",
        "too-big-fragmented",
    ],
)
def test_protocol_error_closes_with_its_code(server: Running, bad: bytes, code: int):
    token = os.urandom(8).hex()
    raw = open_session(server, f"/echo?token={token}")
    try:
        raw.sock.sendall(bad)
        assert raw.close_code()[0] == code
        assert raw.closed()
    finally:
        raw.close()
    assert wait_done(token)[-1]["code"] == code
    still_serving(server)


def test_ping_is_answered_with_pong(server: Running):
    raw = open_session(server)
    try:
        raw.sock.sendall(frame(0x9, b"are you there"))
        assert raw.frame() == (0xA, b"are you there")
    finally:
        raw.close()


def test_close_frame_is_echoed_then_tcp_closed(server: Running):
    raw = open_session(server)
    try:
        raw.sock.sendall(frame(0x8, struct.pack("!H", 1000) + b"done"))
        assert raw.close_code() == (1000, b"done")
        assert raw.closed()
    finally:
        raw.close()


def test_server_pings_and_closes_1011_without_pong():
    # A generous timeout: the first pong must make it in time even on a loaded machine.
    with serve(ws_apps.app, ws_ping_interval=0.2, ws_ping_timeout=1.0) as running:
        raw = open_session(running)
        try:
            opcode, payload = raw.frame()
            assert opcode == 0x9 and len(payload) == 4
            raw.sock.sendall(frame(0xA, payload))  # the pong: the session lives on
            opcode, payload = raw.frame()
            assert opcode == 0x9  # the next ping; this one goes unanswered
            assert raw.close_code() == (1011, b"keepalive ping timeout")
            assert raw.closed()
        finally:
            raw.close()


def test_concurrency_limit_answers_503(server: Running):
    with serve(ws_apps.app, limit_concurrency=1) as running:
        first = open_session(running, "/wait")
        try:
            assert first.frame() == (0x1, b"ready")
            second = Raw(running.port)
            try:
                status, _, _ = second.head(handshake("/wait"))
                assert status.startswith(b"HTTP/1.1 503")
            finally:
                second.close()
        finally:
            first.close()


def test_slow_reader_pauses_reading_and_loses_nothing():
    token = os.urandom(8).hex()
    with serve(ws_apps.app, ws_max_queue=2) as running:
        raw = open_session(running, f"/slow-reader?token={token}")
        try:
            assert raw.frame() == (0x1, b"ready")
            raw.sock.sendall(b"".join(frame(0x1, b"m%d" % i) for i in range(50)))
            ws_apps.RELEASE[token].set()
            raw.sock.sendall(frame(0x8, struct.pack("!H", 1000)))
            assert raw.close_code()[0] == 1000
        finally:
            raw.close()
        seen = wait_done(token)
    assert [m.get("text") for m in seen[:-1]] == [f"m{i}" for i in range(50)]
    assert seen[-1]["code"] == 1000


def test_shutdown_does_not_wait_past_the_graceful_timeout_for_a_silent_client():
    with serve(ws_apps.app, timeout_graceful=0.5) as running:
        raw = open_session(running, "/wait")
        try:
            assert raw.frame() == (0x1, b"ready")
            running.server.request_stop()
            # 1001 (Going Away); the client never answers the close frame...
            assert raw.close_code() == (1001, b"server shutting down")
            # ...and the server stops within the graceful time, not CLOSE_TIMEOUT (10 s).
            assert running.server.stopped.wait(5)
        finally:
            raw.close()
