"""Log safety (issue 15): no byte a client sends reaches a log line raw. Every control byte
(0x00-0x1f, 0x7f) and every byte 0x80-0xff is sent, one request each, in every place a
client controls: the path and the query (raw, and percent-encoded), the method, a header
value (User-Agent), X-Request-ID, and with --proxy-headers X-Forwarded-For, -Host,
-Proto, -Prefix and Forwarded. The protocol refuses many of these (400); the rest reach
the app. Then every line the server wrote (text, and --log-format json) is checked byte by
byte: no control byte but the line's own end, no byte above 0x7e, and each line is one of
the server's own (a level prefix, or one JSON object), so none was forged.

The server is a `rootserve` subprocess whose output is kept as raw bytes, split at b"\\n"
only (tests/e2e/hostile_support.py); the access log is on, with a format that shows every
field a client controls.
"""

from __future__ import annotations

import json
import socket
from collections import Counter

import pytest
from tests.e2e.hostile_support import raw_server

ACCESS_FORMAT = (
    'ACCESS %(h)s "%(r)s" %(s)s %(m)s %(U)s %(q)s %(i)s "%({user-agent}i)s" '
    '"%({x-forwarded-host}i)s" "%({x-forwarded-proto}i)s" "%({x-forwarded-prefix}i)s" '
    '"%({forwarded}i)s"'
)
FLAGS = (
    "tests.apps.hostile:asgi_app",
    "--lifespan", "off",
    "--access-log",
    "--proxy-headers",  # from 127.0.0.1, trusted by the default --forwarded-allow-ips
    "--access-log-format", ACCESS_FORMAT,
)  # fmt: skip
CONTROL = [*range(0x20), 0x7F]
HIGH = list(range(0x80, 0x100))
TIMEOUT = 5.0
LEVELS = (b"DEBUG: ", b"INFO: ", b"WARNING: ", b"ERROR: ", b"CRITICAL: ")


def _request(line: bytes, *fields: bytes) -> bytes:
    return b"\r\n".join([line, b"Host: t", *fields, b"Connection: close", b"", b""])


# Each place: the request carrying byte `b` there.
PLACES = {
    "path": lambda b: _request(b"GET /a" + bytes([b]) + b"b HTTP/1.1"),
    "path-escaped": lambda b: _request(b"GET /a%%%02Xb HTTP/1.1" % b),
    "query": lambda b: _request(b"GET /q?x=" + bytes([b]) + b"y HTTP/1.1"),
    "query-escaped": lambda b: _request(b"GET /q?x=%%%02Xy HTTP/1.1" % b),
    "method": lambda b: _request(b"GE" + bytes([b]) + b"T / HTTP/1.1"),
    "header": lambda b: _request(b"GET / HTTP/1.1", b"User-Agent: a" + bytes([b]) + b"b"),
    "request-id": lambda b: _request(b"GET / HTTP/1.1", b"X-Request-ID: id" + bytes([b]) + b"x"),
    "x-forwarded-for": lambda b: _request(
        b"GET / HTTP/1.1", b"X-Forwarded-For: 10.0.0.1" + bytes([b]) + b", 10.0.0.2"
    ),
    "x-forwarded-host": lambda b: _request(
        b"GET / HTTP/1.1", b"X-Forwarded-Host: h" + bytes([b]) + b".example"
    ),
    "x-forwarded-proto": lambda b: _request(
        b"GET / HTTP/1.1", b"X-Forwarded-Proto: http" + bytes([b])
    ),
    "x-forwarded-prefix": lambda b: _request(
        b"GET / HTTP/1.1", b"X-Forwarded-Prefix: /p" + bytes([b])
    ),
    "forwarded": lambda b: _request(
        b"GET / HTTP/1.1", b'Forwarded: for="10.0.0.' + bytes([b]) + b'";host=h'
    ),
}


def _send(port: int, data: bytes) -> bytes:
    """The status line's code, or b"" when the server closed without an answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(data)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer[9:12]


def _check_lines(lines: list[bytes], log_format: str) -> Counter[str]:
    """Each line is the server's own and carries no raw byte a client could have sent;
    the kinds of lines, counted."""
    kinds: Counter[str] = Counter()
    for raw in lines:
        assert raw.endswith(b"\n"), raw
        line = raw[:-1]
        bad = [b for b in line if b < 0x20 or b > 0x7E]
        assert not bad, f"raw bytes {bytes(bad)!r} in {line!r}"
        if log_format == "json":
            record = json.loads(line)
            assert isinstance(record, dict), line
            if "status" in record:
                kinds["access"] += 1
            elif "rejected: " in record.get("message", ""):
                kinds["rejected"] += 1
            else:
                kinds["other"] += 1
        else:
            assert line.startswith(LEVELS), f"a line that is not the server's: {line!r}"
            if line.startswith(b"INFO: ACCESS "):
                kinds["access"] += 1
            elif b" - rejected: " in line:
                kinds["rejected"] += 1
            else:
                kinds["other"] += 1
    return kinds


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_no_client_byte_reaches_a_log_line_raw(log_format: str):
    answers: Counter[tuple[str, bytes]] = Counter()
    with raw_server(*FLAGS, "--log-format", log_format) as server:
        port = server.port
        for place, make in PLACES.items():
            for byte in CONTROL + HIGH:
                answers[(place, _send(port, make(byte)))] += 1
    lines = server.lines
    kinds = _check_lines(lines, log_format)
    statuses = Counter(status for (_, status) in answers.elements())
    by_place = {
        place: dict(Counter(s.decode() for (p, s) in answers.elements() if p == place))
        for place in PLACES
    }
    print(f"\nlog safety ({log_format}): {len(lines)} lines; {dict(kinds)}; answers {by_place}")
    assert set(statuses) <= {b"200", b"400"}, statuses
    # Every request was logged: an access line for each answer of the app's, a rejection
    # line for each of the protocol's.
    assert kinds["access"] == statuses[b"200"]
    assert kinds["rejected"] == statuses[b"400"]
    # Both kinds happened: the test saw bytes the protocol takes, and bytes it refuses.
    assert statuses[b"200"] > 0 and statuses[b"400"] > 0


def test_the_escaped_bytes_are_shown_in_a_text_line():
    """What a reader of the text log sees instead: `\\xHH` for each byte outside
    printable ASCII, and for `"` and `\\` inside a quoted field."""
    with raw_server(*FLAGS) as server:
        port = server.port
        assert _send(port, PLACES["header"](0x09)) == b"200"  # HTAB: a header admits it
        assert _send(port, PLACES["header"](0xE9)) == b"200"  # obs-text (RFC 9110 5.5)
        assert _send(port, PLACES["path-escaped"](0x0A)) == b"200"
        assert _send(port, _request(b"GET / HTTP/1.1", b'User-Agent: q"\\')) == b"200"
    access = [line for line in server.lines if line.startswith(b"INFO: ACCESS ")]
    assert len(access) == 4, server.lines
    assert b'"a\\x09b"' in access[0]
    assert b'"a\\xe9b"' in access[1]
    assert b"/a%0Ab" in access[2]  # the target as sent: its escape is already printable
    assert b'"q\\x22\\x5c"' in access[3]


# An app's exception whose message quotes the request (a path, a header value) is common:
# `int(value)` says "invalid literal for int() with base 10: '...'". Found by this test:
# the text formatter wrote the traceback with the exception's message as it was, so a path
# of /boom%0D%0AINFO:%20forged logged a line "INFO: forged" of the client's, and ESC, DEL
# and C1 bytes raw; observe/logs.py's TextFormatter now escapes the message. (JSON lines
# escape it by construction.)
def test_an_exception_quoting_the_request_forges_no_line():
    with raw_server(*FLAGS) as server:
        port = server.port
        target = b"/boom%0D%0AINFO:%20forged%1B%5B31m%7F%C2%85"
        assert _send(port, _request(b"GET " + target + b" HTTP/1.1")) == b"500"
        assert _send(port, _request(b"GET / HTTP/1.1")) == b"200"
    error = [line for line in server.lines if b"Exception in ASGI app" in line]
    assert len(error) == 1, server.lines
    for raw in server.lines:
        line = raw[:-1]
        assert not [b for b in line if b < 0x20 or b == 0x7F], line
        assert not line.startswith(b"INFO: forged"), line
