"""How an HTTP/1.1 connection learns that its client speaks HTTP/2, in memory: the preface
as the connection's first bytes is a `PrefaceReceived` that carries every byte so far
(protocol/_refuse.py), anywhere else a plain 505; an h2c upgrade request's fields
(`h2c_settings`) and stream 1 made of it (`H2ServerConnection.upgrade`), read by an h2
client that did the upgrade's client side."""

from __future__ import annotations

import h2.config
import h2.connection
import h2.events
import pytest

from rootserve.protocol._refuse import NO_HTTP2, PrefaceReceived
from rootserve.protocol.events import BadRequest, Request
from rootserve.protocol.http2 import (
    BodyEnded,
    BodyReceived,
    H2ServerConnection,
    RequestReceived,
    h2c_settings,
)
from rootserve.protocol.http11 import HTTP11Connection

from .h2_support import PREFACE

FRAMES = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # an empty SETTINGS frame
GET = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"


def feed(conn: HTTP11Connection, *pieces: bytes) -> list[object]:
    events: list[object] = []
    for piece in pieces:
        events += conn.receive_data(piece)
    return events


@pytest.mark.parametrize("cut", [0, 1, 16, 23])
def test_the_preface_first_carries_every_byte(cut: int) -> None:
    data = PREFACE + FRAMES
    events = feed(HTTP11Connection(), *([data[:cut], data[cut:]] if cut else [data]))
    assert events == [PrefaceReceived(505, NO_HTTP2, data)]


def test_the_preface_byte_by_byte_carries_what_came() -> None:
    conn = HTTP11Connection()
    events = feed(conn, *(bytes([b]) for b in PREFACE))
    assert events == [PrefaceReceived(505, NO_HTTP2, PREFACE)]
    assert conn.receive_data(FRAMES) == []  # the rest goes to HTTP/2, not here


@pytest.mark.parametrize(
    "pieces",
    [
        [GET + PREFACE],  # after a request, in the same read
        [GET, PREFACE],  # after a request not yet answered
        [b"\r\n" + PREFACE],  # not the first bytes
    ],
    ids=["pipelined", "next-read", "after-an-empty-line"],
)
def test_the_preface_elsewhere_is_a_plain_505(pieces: list[bytes]) -> None:
    events = feed(HTTP11Connection(), *pieces)
    assert type(events[-1]) is BadRequest
    assert events[-1] == BadRequest(505, NO_HTTP2)


def test_the_preface_after_an_answered_request_is_a_plain_505() -> None:
    conn = HTTP11Connection()
    feed(conn, GET)
    conn.send_whole_response(200, [], b"ok")
    assert conn.response_keep_alive
    events = conn.receive_data(PREFACE)
    assert [type(e) for e in events] == [BadRequest]


def request(*headers: tuple[bytes, bytes], upgrade: bytes = b"h2c") -> Request:
    return Request("GET", b"/", b"/", b"", "1.1", list(headers), True, upgrade=upgrade)


CONNECTION = (b"connection", b"Upgrade, HTTP2-Settings")
SETTINGS = (b"http2-settings", b"AAMAAABkAAQCAAAAAAIAAAAA")  # as curl 7.88 sends them


@pytest.mark.parametrize(
    ("upgrade", "headers", "found"),
    [
        (b"h2c", [CONNECTION, SETTINGS], SETTINGS[1]),
        (b"websocket, H2C", [(b"connection", b"upgrade"), (b"connection", b"http2-settings"),
                             SETTINGS], SETTINGS[1]),
        (b"h2c", [SETTINGS], None),  # Connection does not name them
        (b"h2c", [(b"connection", b"Upgrade"), SETTINGS], None),
        (b"h2c", [CONNECTION], None),  # RFC 7540 section 3.2.1: no HTTP2-Settings
        (b"h2c", [CONNECTION, SETTINGS, SETTINGS], None),  # ... or more than one
        (b"h2", [CONNECTION, SETTINGS], None),  # h2 is TLS's (ALPN), never an Upgrade
        (b"websocket", [CONNECTION, SETTINGS], None),
    ],
)  # fmt: skip
def test_h2c_settings(upgrade: bytes, headers: list[tuple[bytes, bytes]], found: bytes) -> None:
    assert h2c_settings(request(*headers, upgrade=upgrade)) == found


def upgraded_client() -> tuple[h2.connection.H2Connection, bytes]:
    client = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=True, header_encoding=None)
    )
    settings = client.initiate_upgrade_connection()
    assert settings is not None
    return client, settings.rstrip(b"=")  # token68 without its padding, as curl sends it


def test_upgrade_makes_stream_1_with_the_body_and_answers_on_it() -> None:
    client, settings = upgraded_client()
    server = H2ServerConnection(date_header=False)
    head = request(
        (b"host", b"example.test"),
        CONNECTION,
        (b"upgrade", b"h2c"),
        (b"http2-settings", settings),
        (b"content-length", b"5"),
        (b"x-kept", b"yes"),
    )
    events = server.upgrade(settings, head, b"hello")
    assert [type(e) for e in events] == [RequestReceived, BodyReceived, BodyEnded]
    assert isinstance(events[0], RequestReceived) and events[0].stream_id == 1
    upgraded = events[0].request
    assert (upgraded.http_version, upgraded.has_body) == ("2", True)
    assert upgraded.headers == [
        (b"host", b"example.test"),
        (b"content-length", b"5"),
        (b"x-kept", b"yes"),
    ]
    assert isinstance(events[1], BodyReceived) and events[1].data == b"hello"
    server.send_response(1, 200, [(b"content-type", b"text/plain")], b"ok", True)
    received = client.receive_data(server.data_to_send())
    sent = client.data_to_send()  # the client's preface, and its acknowledgement
    assert server.receive_data(sent) == []
    answer = [
        e for e in received if isinstance(e, h2.events.ResponseReceived | h2.events.DataReceived)
    ]
    assert isinstance(answer[0], h2.events.ResponseReceived) and answer[0].stream_id == 1
    assert isinstance(answer[1], h2.events.DataReceived) and answer[1].data == b"ok"
    assert any(isinstance(e, h2.events.StreamEnded) for e in received)


def test_upgrade_without_a_body() -> None:
    _, settings = upgraded_client()
    server = H2ServerConnection(date_header=False)
    events = server.upgrade(settings, request((b"host", b"example.test")), b"")
    assert [type(e) for e in events] == [RequestReceived]
    assert isinstance(events[0], RequestReceived) and not events[0].request.has_body


@pytest.mark.parametrize(
    "settings",
    [b"!!!!", b"AAMAAA", b"AAIAAAAC"],  # not base64url; a cut setting; ENABLE_PUSH 2
    ids=["not-base64", "cut", "bad-value"],
)
def test_upgrade_with_bad_settings_raises_value_error(settings: bytes) -> None:
    with pytest.raises(ValueError, match="HTTP2-Settings"):
        H2ServerConnection().upgrade(settings, request(), b"")
