"""The zero-window stall (--h2-stall-timeout): an answer that waits on a flow-control window
the client keeps shut, nothing sent, for the stall timeout has its stream reset (CANCEL)
and its app told the client left; the connection serves its other streams. In memory (the
protocol's `stalled`, with a fake clock) and over a socket with a raw h2 client."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import h2.errors
import h2.events
import h2.settings
import pytest
from tests.protocol.h2_support import Pair
from tests.server.h2_server_support import h2_server, raw_client, read_until, request_headers

from rootserve.protocol.http2 import H2Limits

pytestmark = pytest.mark.timeout(60)

BODY = b"x" * 1000


def test_the_protocol_times_a_stall_from_the_last_bytes_sent() -> None:
    pair = Pair(H2Limits(stall_timeout=5.0))
    client, server = pair.client, pair.server
    client.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 10})
    pair.handshake()
    pair.request(1)
    pair.to_server()
    server.send_response(1, 200, [], BODY[:25], end=True)
    assert server.earliest_stall() == pair.clock.now  # 10 bytes went, 15 wait
    pair.clock.now += 3
    assert server.stalled(pair.clock.now - 5) == []
    client.increment_flow_control_window(10, stream_id=1)  # progress: 10 more bytes
    pair.to_server()
    assert server.earliest_stall() == pair.clock.now  # timed from the bytes sent last
    pair.clock.now += 5
    assert server.stalled(pair.clock.now - 5) == [1]
    client.increment_flow_control_window(10, stream_id=1)
    pair.to_server()
    assert server.earliest_stall() == float("inf")  # all sent: no stall
    assert server.stalled(pair.clock.now) == []


def test_a_stalled_answer_is_reset_and_its_app_told_the_connection_goes_on() -> None:
    gone = threading.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            await send({"type": "http.response.body", "body": BODY, "more_body": True})
            while True:  # the sender waits on the window, then learns the client left
                await send({"type": "http.response.body", "body": BODY, "more_body": True})
        except OSError:
            gone.set()
        while True:  # (as an app would: nothing more to do)
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            await asyncio.sleep(0)

    with h2_server(app, h2_stall_timeout=0.3) as server:
        sock, conn = raw_client(server.port)
        with sock:
            conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
            conn.send_headers(1, request_headers(server.port, "/"), end_stream=True)
            sock.sendall(conn.data_to_send())
            events = read_until(sock, conn, h2.events.StreamReset)
            [reset] = [e for e in events if isinstance(e, h2.events.StreamReset)]
            assert (reset.stream_id, reset.error_code) == (1, h2.errors.ErrorCodes.CANCEL)
            assert gone.wait(10)
            # The connection goes on: a stream whose window the client opens is answered.
            conn.send_headers(3, request_headers(server.port, "/"), end_stream=True)
            conn.increment_flow_control_window(len(BODY), stream_id=3)
            conn.increment_flow_control_window(len(BODY))
            sock.sendall(conn.data_to_send())
            events = read_until(sock, conn, h2.events.DataReceived)
            data = [e for e in events if isinstance(e, h2.events.DataReceived)]
            assert data and data[0].stream_id == 3
