"""The sans-IO HTTP/2 server connection's limits (protocol/http2.py, _h2_frames.py): too
many streams, oversized heads, the floods (each ends the connection with ENHANCE_YOUR_CALM
before h2 does their work), the body's size; and any bytes at all, never an exception."""

from __future__ import annotations

import itertools
from typing import Any

import h2.config
import h2.connection
import h2.events
import pytest
from h2.errors import ErrorCodes
from h2.settings import SettingCodes
from hyperframe.frame import (
    ContinuationFrame,
    GoAwayFrame,
    HeadersFrame,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from rootserve.protocol.http2 import (
    BodyEnded,
    BodyReceived,
    ConnectionEnded,
    H2Limits,
    H2ServerConnection,
    RequestReceived,
    StreamReset,
)

from .h2_support import PREFACE, Pair, frames, goaway_code, of, raw
from .test_properties import PROPERTY

pytestmark = pytest.mark.timeout(30)

# -- limits and floods -------------------------------------------------------------------


def test_too_many_concurrent_streams_are_refused_alone() -> None:
    pair = Pair(H2Limits(max_concurrent_streams=2))
    for stream_id in (1, 3, 5):  # the client has not read our SETTINGS yet
        pair.request(stream_id, end=False)
    events = pair.to_server()
    assert [e.stream_id for e in of(RequestReceived, events)] == [1, 3]
    resets = of(h2.events.StreamReset, pair.to_client())
    assert [(r.stream_id, r.error_code) for r in resets] == [(5, ErrorCodes.REFUSED_STREAM)]
    # HPACK stayed in step: the next stream, once one is done, is served.
    pair.server.send_response(1, 200, [], b"", True)
    pair.to_client()
    pair.client.end_stream(1)
    pair.request(7, end=True)
    assert [e.stream_id for e in of(RequestReceived, pair.to_server())] == [7]


def test_refused_streams_count_as_resets() -> None:
    pair = Pair(H2Limits(max_concurrent_streams=1, max_resets=10))
    pair.request(1, end=False)  # held open: every later stream is over the limit
    assert of(RequestReceived, pair.to_server())
    for i in range(1, 12):
        pair.request(1 + 2 * i)
    events = pair.to_server()
    assert not of(RequestReceived, events)
    (ended,) = of(ConnectionEnded, events)
    assert ended.error_code == ErrorCodes.ENHANCE_YOUR_CALM
    assert goaway_code(pair) == ErrorCodes.ENHANCE_YOUR_CALM


def test_oversized_header_list_is_answered_431() -> None:
    pair = Pair(H2Limits(max_header_list_size=4096))
    pair.request(1, extra=[(b"x-big", b"a" * 5000)])
    pair.request(3)
    events = pair.to_server()
    assert [e.stream_id for e in of(RequestReceived, events)] == [3]
    (response,) = of(h2.events.ResponseReceived, pair.to_client())
    assert (response.stream_id, response.headers[0]) == (1, (b":status", b"431"))


def test_header_list_past_the_hard_bound_ends_the_connection() -> None:
    pair = Pair(H2Limits(max_header_list_size=4096))
    pair.request(1, extra=[(b"x-big", b"a" * 20_000)])  # compresses well, decodes past 8 KiB
    (ended,) = of(ConnectionEnded, pair.to_server())
    assert ended.error_code == ErrorCodes.ENHANCE_YOUR_CALM
    assert goaway_code(pair) == ErrorCodes.ENHANCE_YOUR_CALM


def test_continuation_flood() -> None:
    server = H2ServerConnection(H2Limits(max_header_block_frames=8))
    server.initiate()
    server.data_to_send()
    head = HeadersFrame(1, data=b"\x82")  # :method GET, no END_HEADERS
    events = server.receive_data(PREFACE + raw(head))
    assert events == []
    events = []
    for _ in range(20):
        events += server.receive_data(raw(ContinuationFrame(1, data=b"\x84")))
    (ended,) = of(ConnectionEnded, events)
    assert ended.error_code == ErrorCodes.ENHANCE_YOUR_CALM
    assert "CONTINUATION" in ended.reason
    codes = [f.error_code for f in frames(server.data_to_send()) if isinstance(f, GoAwayFrame)]
    assert codes == [ErrorCodes.ENHANCE_YOUR_CALM]


def test_rapid_reset() -> None:
    pair = Pair(H2Limits(max_resets=50))
    pair.handshake()
    events: list[Any] = []
    for i in range(60):
        stream_id = 1 + 2 * i
        pair.request(stream_id)
        pair.client.reset_stream(stream_id)
        events += pair.to_server()
        if of(ConnectionEnded, events):
            break
    (ended,) = of(ConnectionEnded, events)
    assert ended.error_code == ErrorCodes.ENHANCE_YOUR_CALM
    assert len(of(RequestReceived, events)) == 50


def test_resets_under_the_limit_per_window_are_fine() -> None:
    pair = Pair(H2Limits(max_resets=10, flood_window=1.0))
    pair.handshake()
    for i in range(30):
        pair.request(1 + 2 * i)
        pair.client.reset_stream(1 + 2 * i)
        events = pair.to_server()
        assert not of(ConnectionEnded, events)
        pair.clock.now += 0.2  # 5 a second: within the limit of 10 a second


def test_ping_flood() -> None:
    pair = Pair(H2Limits(max_pings=20))
    pair.handshake()
    for i in range(21):
        pair.client.ping(b"%08d" % i)
    (ended,) = of(ConnectionEnded, pair.to_server())
    assert ended.error_code == ErrorCodes.ENHANCE_YOUR_CALM
    assert goaway_code(pair) == ErrorCodes.ENHANCE_YOUR_CALM


def test_settings_flood() -> None:
    pair = Pair(H2Limits(max_settings=20))
    pair.handshake()  # one SETTINGS so far
    events: list[Any] = []
    for _ in range(20):
        pair.client.update_settings({SettingCodes.MAX_CONCURRENT_STREAMS: 10})
        events += pair.to_server()
    (ended,) = of(ConnectionEnded, events)
    assert ended.error_code == ErrorCodes.ENHANCE_YOUR_CALM


def test_frame_flood_split_across_reads_is_still_counted() -> None:
    pair = Pair(H2Limits(max_pings=5))
    pair.handshake()
    for i in range(6):
        pair.client.ping(b"%08d" % i)
    events = pair.to_server(byte_by_byte=True)
    assert of(ConnectionEnded, events)[0].error_code == ErrorCodes.ENHANCE_YOUR_CALM


# -- the body's size limit ---------------------------------------------------------------


def test_declared_body_over_the_limit_is_answered_413() -> None:
    pair = Pair()
    pair.server._max_body = 100
    pair.request(1, method=b"POST", extra=[(b"content-length", b"101")], end=False)
    assert not of(RequestReceived, pair.to_server())
    events = pair.to_client()
    (response,) = of(h2.events.ResponseReceived, events)
    assert response.headers[0] == (b":status", b"413")
    (reset,) = of(h2.events.StreamReset, events)  # the rest of the body is not wanted
    assert reset.error_code == ErrorCodes.NO_ERROR


def test_body_growing_over_the_limit_is_cut_and_answered_413() -> None:
    pair = Pair()
    pair.server._max_body = 100
    pair.request(1, method=b"POST", end=False)
    pair.client.send_data(1, b"x" * 60)
    assert of(BodyReceived, pair.to_server())
    pair.client.send_data(1, b"x" * 60)
    pair.client.send_data(1, b"x" * 60, end_stream=True)
    events = pair.to_server()
    assert not of(BodyReceived, events) and not of(BodyEnded, events)
    (cut,) = of(StreamReset, events)
    assert cut.stream_id == 1 and "100-byte limit" in cut.reason
    (response,) = of(h2.events.ResponseReceived, pair.to_client())
    assert response.headers[0] == (b":status", b"413")


# -- whatever the bytes --------------------------------------------------------------------


def _conversation() -> bytes:
    """A client's bytes for two requests, one with a body and trailers."""
    pair = Pair()
    pair.request(1, extra=[(b"cookie", b"a=1")])
    pair.request(3, method=b"POST", extra=[(b"te", b"trailers")], end=False)
    pair.client.send_data(3, b"body" * 100)
    pair.client.send_headers(3, [(b"x-sum", b"1")], end_stream=True)
    pair.client.ping(b"12345678")
    pair.client.reset_stream(1)
    return pair.client.data_to_send()


CONVERSATION = _conversation()


@settings(PROPERTY, max_examples=300)
@given(
    cut=st.integers(min_value=len(PREFACE), max_value=len(CONVERSATION)),
    noise=st.binary(max_size=200),
    splits=st.lists(st.integers(min_value=0, max_value=len(CONVERSATION) + 200), max_size=8),
)
def test_any_bytes_give_events_never_an_exception(
    cut: int, noise: bytes, splits: list[int]
) -> None:
    server = H2ServerConnection()
    server.initiate()
    data = CONVERSATION[:cut] + noise
    bounds = sorted({0, len(data), *(s for s in splits if s <= len(data))})
    for start, end in itertools.pairwise(bounds):
        events = server.receive_data(data[start:end])
        for event in events:
            if isinstance(event, RequestReceived):
                server.send_response(event.stream_id, 200, [], b"ok", True)
        server.data_to_send()
    if not noise:
        assert not server.ended  # a good conversation, however it was cut, is no error
