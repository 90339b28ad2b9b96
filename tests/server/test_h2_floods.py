"""Each HTTP/2 flood over a real socket, against the server's defaults: the flooding
connection gets GOAWAY with ENHANCE_YOUR_CALM and is closed, while a client connected before
the flood and one connecting after it are both served by the same worker. (The counting
itself, at its limits and split across reads, is tested in memory in
tests/protocol/test_http2_limits.py.)"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable

import h2.connection
import h2.events
import pytest
from h2.errors import ErrorCodes
from h2.settings import SettingCodes
from hyperframe.frame import ContinuationFrame, HeadersFrame

from .h2_server_support import (
    asgi_app,
    h2_client,
    h2_server,
    raw_client,
    read_until_closed,
    request_headers,
    wsgi_app,
)

pytestmark = pytest.mark.timeout(60)

Flood = Callable[[socket.socket, h2.connection.H2Connection, int], None]


def rapid_reset(sock: socket.socket, conn: h2.connection.H2Connection, port: int) -> None:
    """CVE-2023-44487: open a stream and reset it at once, over and over (default 200)."""
    for i in range(400):
        stream_id = 1 + 2 * i
        conn.send_headers(stream_id, request_headers(port, f"/r{i}"), end_stream=True)
        conn.reset_stream(stream_id)
    send_all(sock, conn)


def ping_flood(sock: socket.socket, conn: h2.connection.H2Connection, port: int) -> None:
    """CVE-2019-9512: PINGs, each asking for an answer (default 100 a window)."""
    for i in range(300):
        conn.ping(b"%08d" % i)
    send_all(sock, conn)


def settings_flood(sock: socket.socket, conn: h2.connection.H2Connection, port: int) -> None:
    """CVE-2019-9515: SETTINGS frames, each asking for an ACK (default 100 a window)."""
    for _ in range(300):
        conn.update_settings({SettingCodes.MAX_CONCURRENT_STREAMS: 100})
    send_all(sock, conn)


def continuation_flood(sock: socket.socket, conn: h2.connection.H2Connection, port: int) -> None:
    """CVE-2024-27316 and kin: a header block that never ends (default 16 frames)."""
    send_all(sock, conn)  # the preface and the client's SETTINGS
    frames = [HeadersFrame(1, data=b"\x82").serialize()]  # :method GET, no END_HEADERS
    frames += [ContinuationFrame(1, data=b"\x84").serialize() for _ in range(200)]
    sock.sendall(b"".join(frames))


def huge_header_list(sock: socket.socket, conn: h2.connection.H2Connection, port: int) -> None:
    """A header field that HPACK sends small and that decodes past twice the list limit."""
    headers = [*request_headers(port, "/big"), ("x-big", "a" * 100_000)]
    conn.send_headers(1, headers, end_stream=True)
    send_all(sock, conn)


def send_all(sock: socket.socket, conn: h2.connection.H2Connection) -> None:
    # The server may close before it has read all of a flood: that is its answer.
    with contextlib.suppress(OSError):
        sock.sendall(conn.data_to_send())


FLOODS = [rapid_reset, ping_flood, settings_flood, continuation_flood, huge_header_list]


@pytest.mark.parametrize("interface", ["asgi", "wsgi"])
@pytest.mark.parametrize("flood", FLOODS, ids=[f.__name__ for f in FLOODS])
def test_a_flood_ends_its_connection_only(flood: Flood, interface: str) -> None:
    app = asgi_app if interface == "asgi" else wsgi_app
    with h2_server(app, interface) as server, h2_client() as before:
        assert before.get(server.url + "/before").status_code == 200

        sock, conn = raw_client(server.port)
        with sock:
            flood(sock, conn, server.port)
            events = read_until_closed(sock, conn)
        ended = [e for e in events if isinstance(e, h2.events.ConnectionTerminated)]
        assert [e.error_code for e in ended] == [ErrorCodes.ENHANCE_YOUR_CALM], events
        assert not [e for e in events if isinstance(e, h2.events.ResponseReceived)]

        # The connection opened before the flood goes on; a new one is served too.
        reply = before.get(server.url + "/still")
        assert (reply.status_code, reply.http_version) == (200, "HTTP/2")
        assert "/still" in reply.text
        with h2_client() as after:
            assert after.get(server.url + "/after").status_code == 200
