"""The sans-IO HTTP/2 server connection (protocol/http2.py) in memory, driven by an h2
client connection: requests and responses, trailers, flow control, the connection's end.
Limits and floods are in test_http2_limits.py."""

from __future__ import annotations

import h2.config
import h2.connection
import h2.events
import pytest
from h2.errors import ErrorCodes
from h2.settings import SettingCodes
from hpack import NeverIndexedHeaderTuple
from hyperframe.frame import (
    DataFrame,
    GoAwayFrame,
    RstStreamFrame,
)

from rootserve.config import Config
from rootserve.protocol.events import Request
from rootserve.protocol.http2 import (
    BodyEnded,
    BodyReceived,
    ConnectionEnded,
    H2Limits,
    H2ServerConnection,
    RequestReceived,
    StreamReset,
    TrailersReceived,
    Writable,
    sniff_preface,
)
from rootserve.protocol.rules import LocalProtocolError

from .h2_support import PREFACE, Pair, frames, goaway_code, of

pytestmark = pytest.mark.timeout(30)

# -- requests and responses --------------------------------------------------------------


@pytest.mark.parametrize("byte_by_byte", [False, True])
def test_request_head_and_body(byte_by_byte: bool) -> None:
    pair = Pair()
    extra = [(b"cookie", b"a=1"), (b"x-one", b"1"), (b"cookie", b"b=2")]
    pair.request(1, b"/p/q?x=1&y", b"POST", extra, end=False)
    pair.client.send_data(1, b"hello ", end_stream=False)
    pair.client.send_data(1, b"world", end_stream=True)
    events = pair.to_server(byte_by_byte=byte_by_byte)
    (head,) = of(RequestReceived, events)
    request: Request = head.request
    assert head.stream_id == 1
    assert (request.method, request.target, request.path, request.query) == (
        "POST",
        b"/p/q?x=1&y",
        b"/p/q",
        b"x=1&y",
    )
    assert request.http_version == "2"
    assert request.has_body and not request.expect_continue
    # host from :authority first (RFC 9113 8.3.1); cookies joined (8.2.3).
    assert request.headers == [
        (b"host", b"example.test"),
        (b"x-one", b"1"),
        (b"cookie", b"a=1; b=2"),
    ]
    assert b"".join(e.data for e in of(BodyReceived, events)) == b"hello world"
    assert of(BodyEnded, events) == [BodyEnded(1)]


def test_response_head_is_checked_and_cleaned() -> None:
    pair = Pair()
    pair.server._server_header = b"rootserve"
    pair.request(1)
    pair.to_server()
    with pytest.raises(LocalProtocolError):
        pair.server.send_response(1, 200, [(b"bad name", b"x")], b"", True)
    with pytest.raises(LocalProtocolError):
        pair.server.send_response(1, 200, [(b"x-a", b"one\r\ntwo")], b"", True)
    with pytest.raises(LocalProtocolError):
        pair.server.send_response(1, 99, [], b"", True)
    with pytest.raises(TypeError):
        pair.server.send_response(1, 200, [("str", "str")], b"", True)  # type: ignore[list-item]
    pair.to_client()  # nothing was sent for those
    headers = [
        (b"Content-Type", b"text/plain"),
        (b"Connection", b"keep-alive"),
        (b"Transfer-Encoding", b"chunked"),
        (b"Keep-Alive", b"timeout=5"),
        (b"Upgrade", b"h2c"),
    ]
    pair.server.send_response(1, 200, headers, b"body", True)
    events = pair.to_client()
    (response,) = of(h2.events.ResponseReceived, events)
    assert response.headers == [
        (b":status", b"200"),
        (b"content-type", b"text/plain"),
        (b"server", b"rootserve"),
        (b"content-length", b"4"),
    ]
    assert of(h2.events.DataReceived, events)[0].data == b"body"
    assert of(h2.events.StreamEnded, events)
    assert pair.server.open_streams == 0


def test_response_fields_are_trimmed_and_secrets_never_indexed() -> None:
    # h2's own outbound checks are off: the send side is the one place that makes an app's
    # fields HTTP/2 fields. The client below validates what it receives as h2 does.
    pair = Pair()
    for stream_id in (1, 3):
        pair.request(stream_id)
        pair.to_server()
        headers = [
            (b"X-Padded", b" \tvalue\t "),
            (b"X-Blank", b""),
            (b"Set-Cookie", b"session=s3cr3t"),
            (b"Authorization", b"Bearer t"),
        ]
        pair.server.send_response(stream_id, 200, headers, b"", True)
        (response,) = of(h2.events.ResponseReceived, pair.to_client())
        fields = dict(response.headers)
        assert (fields[b"x-padded"], fields[b"x-blank"]) == (b"value", b"")
        secret = [f for f in response.headers if f[0] in (b"set-cookie", b"authorization")]
        assert secret == [(b"set-cookie", b"session=s3cr3t"), (b"authorization", b"Bearer t")]
        assert all(isinstance(f, NeverIndexedHeaderTuple) for f in secret)
        padded = next(f for f in response.headers if f[0] == b"x-padded")
        assert not isinstance(padded, NeverIndexedHeaderTuple)


@pytest.mark.parametrize(
    ("method", "status", "length"),
    [(b"HEAD", 200, b"4"), (b"GET", 204, None), (b"GET", 304, b"4")],
)
def test_no_body_for_head_204_304(method: bytes, status: int, length: bytes | None) -> None:
    pair = Pair()
    pair.request(1, method=method)
    pair.to_server()
    headers = [] if status != 304 else [(b"content-length", b"4")]
    pair.server.send_response(1, status, headers, b"body", True)
    events = pair.to_client()
    (response,) = of(h2.events.ResponseReceived, events)
    assert dict(response.headers).get(b"content-length") == length
    assert not of(h2.events.DataReceived, events)
    assert of(h2.events.StreamEnded, events)


def test_content_length_is_held_to() -> None:
    pair = Pair()
    pair.request(1)
    pair.request(3)
    pair.to_server()
    pair.server.send_response(1, 200, [(b"content-length", b"3")], b"ab", False)
    with pytest.raises(LocalProtocolError):
        pair.server.send_data(1, b"cd", False)
    resets = of(h2.events.StreamReset, pair.to_client())
    assert [(r.stream_id, r.error_code) for r in resets] == [(1, ErrorCodes.INTERNAL_ERROR)]
    with pytest.raises(LocalProtocolError):  # short, given whole: nothing is sent
        pair.server.send_response(3, 200, [(b"content-length", b"3")], b"ab", True)


def test_malformed_requests_are_reset_alone() -> None:
    pair = Pair(validate_outbound_headers=False)
    pair.request(1, path="/caf\u00e9".encode())  # not visible ASCII
    pair.request(3, method=b"GE T")  # not a token
    pair.request(5, path=b"http://example.test/")  # not origin-form (RFC 9113 8.3.1)
    pair.request(7, path=b"*")  # "*" is for OPTIONS only
    pair.request(9, path=b"*", method=b"OPTIONS")
    pair.request(11)
    events = pair.to_server()
    assert [e.stream_id for e in of(RequestReceived, events)] == [9, 11]
    resets = of(h2.events.StreamReset, pair.to_client())
    assert [(r.stream_id, r.error_code) for r in resets] == [
        (stream_id, ErrorCodes.PROTOCOL_ERROR) for stream_id in (1, 3, 5, 7)
    ]


@pytest.mark.parametrize(
    "headers",
    [
        [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"a")],  # no :path
        [
            (b":method", b"GET"),
            (b":scheme", b"http"),
            (b":path", b"/"),
            (b":authority", b"a"),
            (b"Upper", b"x"),  # RFC 9113 8.2.1
        ],
        [
            (b":method", b"GET"),
            (b":scheme", b"http"),
            (b":path", b"/"),
            (b":authority", b"a"),
            (b"connection", b"close"),  # RFC 9113 8.2.2
        ],
    ],
)
def test_what_h2_finds_malformed_ends_the_connection(headers: list[tuple[bytes, bytes]]) -> None:
    pair = Pair(validate_outbound_headers=False, normalize_outbound_headers=False)
    pair.client.send_headers(1, headers, end_stream=True)
    events = pair.to_server()
    (ended,) = of(ConnectionEnded, events)
    assert ended.error_code == ErrorCodes.PROTOCOL_ERROR and not ended.by_peer
    assert goaway_code(pair) == ErrorCodes.PROTOCOL_ERROR
    assert pair.server.receive_data(b"more bytes") == []


def test_bad_preface_ends_the_connection() -> None:
    server = H2ServerConnection()
    server.initiate()
    events = server.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert of(ConnectionEnded, events)


def test_connect_is_answered_501() -> None:
    pair = Pair()
    pair.client.send_headers(
        1, [(b":method", b"CONNECT"), (b":authority", b"example.test:443")], end_stream=False
    )
    assert not of(RequestReceived, pair.to_server())
    (response,) = of(h2.events.ResponseReceived, pair.to_client())
    assert response.headers[0] == (b":status", b"501")


def test_expect_continue_and_interim_response() -> None:
    pair = Pair()
    pair.request(1, method=b"PUT", extra=[(b"expect", b"100-continue")], end=False)
    (head,) = of(RequestReceived, pair.to_server())
    assert head.request.expect_continue
    pair.server.send_informational(1, 100)
    (interim,) = of(h2.events.InformationalResponseReceived, pair.to_client())
    assert interim.headers == [(b":status", b"100")]


def test_body_after_the_answer_is_dropped_and_counts_as_a_stream() -> None:
    pair = Pair(H2Limits(max_concurrent_streams=1, initial_window_size=1000))
    pair.request(1, method=b"POST", end=False)
    pair.to_server()
    pair.server.send_response(1, 401, [], b"", True)
    pair.request(3)  # while stream 1 still sends: over the limit of 1
    assert not of(RequestReceived, pair.to_server())
    events = pair.to_client()
    assert [e.stream_id for e in of(h2.events.ResponseReceived, events)] == [1]
    resets = of(h2.events.StreamReset, events)
    assert [(r.stream_id, r.error_code) for r in resets] == [(3, ErrorCodes.REFUSED_STREAM)]
    for _ in range(5):  # more than the window: each part was given back
        pair.client.send_data(1, b"x" * 1000)
        assert pair.to_server() == []
        pair.to_client()
    pair.client.end_stream(1)
    pair.request(5)
    assert [e.stream_id for e in of(RequestReceived, pair.to_server())] == [5]


# -- trailers ----------------------------------------------------------------------------


def test_trailers_both_ways() -> None:
    pair = Pair()
    pair.request(1, method=b"POST", extra=[(b"te", b"trailers")], end=False)
    pair.client.send_data(1, b"x")
    pair.client.send_headers(1, [(b"x-checksum", b"abc")], end_stream=True)
    events = pair.to_server()
    assert of(TrailersReceived, events) == [TrailersReceived(1, [(b"x-checksum", b"abc")])]
    assert of(BodyEnded, events) == [BodyEnded(1)]
    pair.server.send_response(1, 200, [], b"body", False)
    pair.server.send_trailers(1, [(b"X-Digest", b" d "), (b"connection", b"close")])
    events = pair.to_client()
    assert b"".join(e.data for e in of(h2.events.DataReceived, events)) == b"body"
    (trailers,) = of(h2.events.TrailersReceived, events)
    assert trailers.headers == [(b"x-digest", b"d")]
    assert of(h2.events.StreamEnded, events)


# -- flow control ------------------------------------------------------------------------


def test_large_response_waits_for_small_windows() -> None:
    pair = Pair()
    pair.client.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: 1000})
    pair.handshake()
    pair.request(1)
    pair.to_server()
    body = bytes(range(256)) * 1024  # 256 KiB
    pair.server.send_response(1, 200, [], body[:1000], False)
    pair.server.send_data(1, body[1000:], True)
    assert pair.server.send_paused(1)
    received = b""
    writable = 0
    for _ in range(10_000):
        events = pair.to_client()
        for event in of(h2.events.DataReceived, events):
            received += event.data
            assert len(event.data) <= 1000
            # Given back at once (h2 sends WINDOW_UPDATE once half the window is owed).
            pair.client.acknowledge_received_data(event.flow_controlled_length, 1)
        if of(h2.events.StreamEnded, events):
            break
        writable += len(of(Writable, pair.to_server()))
    assert received == body
    assert writable == 1  # paused once, resumed once
    assert not pair.server.send_paused(1)


def test_large_upload_is_held_to_the_windows_and_acknowledged() -> None:
    limits = H2Limits(initial_window_size=16 * 1024, connection_window_size=65535)
    pair = Pair(limits)
    pair.handshake()
    pair.request(1, method=b"POST", end=False)
    pair.to_server()
    body = bytes(range(256)) * 4096  # 1 MiB
    sent = 0
    received = b""
    for _ in range(10_000):
        window = pair.client.local_flow_control_window(1)
        size = min(window, pair.client.max_outbound_frame_size, len(body) - sent)
        if size:
            pair.client.send_data(1, body[sent : sent + size], end_stream=sent + size == len(body))
            sent += size
        events = pair.to_server()
        for event in of(BodyReceived, events):
            received += event.data
            pair.server.ack(1, event.flow_length)  # consumed at once
        pair.to_client()
        if of(BodyEnded, events):
            break
        assert size or pair.client.local_flow_control_window(1) > 0, "stalled"
    assert received == body


def test_unacknowledged_body_stops_the_client() -> None:
    limits = H2Limits(initial_window_size=16 * 1024)
    pair = Pair(limits)
    pair.handshake()
    pair.request(1, method=b"POST", end=False)
    pair.to_server()
    pair.client.send_data(1, b"x" * 16 * 1024)
    pair.to_server()  # not acknowledged: the adapter holds it
    pair.to_client()
    assert pair.client.local_flow_control_window(1) == 0
    pair.server.ack(1, 16 * 1024)
    pair.to_client()
    assert pair.client.local_flow_control_window(1) == 16 * 1024


# -- the connection's end ----------------------------------------------------------------


def test_graceful_goaway_answers_open_streams_and_refuses_new_ones() -> None:
    pair = Pair()
    pair.handshake()
    pair.request(1)
    pair.to_server()
    pair.server.goaway()
    pair.request(3)
    assert not of(RequestReceived, pair.to_server())
    pair.server.send_response(1, 200, [], b"done", True)
    pair.server.close()
    sent = frames(pair.server.data_to_send())
    kinds = [type(f).__name__ for f in sent]
    goaways = [f for f in sent if isinstance(f, GoAwayFrame)]
    assert [(g.last_stream_id, g.error_code) for g in goaways] == [(1, 0), (3, 0)]
    assert kinds.index("GoAwayFrame") < kinds.index("HeadersFrame")  # the answer after it
    refused = [f for f in sent if isinstance(f, RstStreamFrame)]
    assert [(f.stream_id, f.error_code) for f in refused] == [(3, ErrorCodes.REFUSED_STREAM)]
    assert b"".join(f.data for f in sent if isinstance(f, DataFrame)) == b"done"


def test_client_goaway_ends_the_connection() -> None:
    pair = Pair()
    pair.handshake()
    pair.client.close_connection()
    (ended,) = of(ConnectionEnded, pair.to_server())
    assert ended.by_peer and ended.error_code == 0


def test_reset_by_client_is_reported() -> None:
    pair = Pair()
    pair.request(1, end=False)
    pair.to_server()
    pair.client.reset_stream(1, ErrorCodes.CANCEL)
    assert of(StreamReset, pair.to_server()) == [StreamReset(1, ErrorCodes.CANCEL)]
    pair.server.send_response(1, 200, [], b"late", True)  # the stream is gone: nothing
    assert pair.server.open_streams == 0


# -- helpers for the server ----------------------------------------------------------------


def test_sniff_preface() -> None:
    assert sniff_preface(PREFACE + b"\x00\x00") is True
    assert sniff_preface(PREFACE[:5]) is None
    assert sniff_preface(b"") is None
    assert sniff_preface(b"GET / HTTP/1.1\r\n") is False
    assert sniff_preface(b"PRI * HTTP/1.1\r\n\r\nSM\r\n\r\n") is False


def test_limits_from_config_let_through_what_http11_does() -> None:
    limits = H2Limits.from_config(Config(max_header_size=8192, max_header_count=10))
    assert limits.max_header_list_size == 8192 + 320
    assert limits.max_concurrent_streams == H2Limits().max_concurrent_streams
