"""The send side of `HTTP11Connection`: framing, the no-body rules, the headers it adds,
keep-alive, and the app output it refuses (`LocalProtocolError`).

Responses are checked by reading them back with httptools' response parser, so the framing
is judged by an independent reader, not by the code that wrote it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import httptools
import pytest

from rootserve.protocol import _send
from rootserve.protocol.events import (
    BadRequest,
    Data,
    EndOfMessage,
    InformationalResponse,
    Request,
    Response,
)
from rootserve.protocol.http11 import HTTP11Connection, error_response
from rootserve.protocol.rules import LocalProtocolError

GET = b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"
HEAD = b"HEAD / HTTP/1.1\r\nHost: example.com\r\n\r\n"
GET10 = b"GET / HTTP/1.0\r\n\r\n"
GET10_KEEP_ALIVE = b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
GET_CLOSE = b"GET / HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n"
IMF_FIXDATE = re.compile(rb"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT")


@dataclass
class Parsed:
    status: int = 0
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""
    complete: int = 0

    def values(self, name: bytes) -> list[bytes]:
        return [v for n, v in self.headers if n.lower() == name]

    def on_status(self, status: bytes) -> None:
        pass

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.complete += 1


def read_back(raw: bytes) -> Parsed:
    """One complete response in `raw`, read by llhttp's response parser."""
    parsed = Parsed()
    parser = httptools.HttpResponseParser(parsed)
    parser.feed_data(raw)
    parsed.status = parser.get_status_code()
    assert parsed.complete == 1, f"not exactly one complete response in {raw!r}"
    return parsed


def connection(request: bytes = GET, **kwargs: object) -> HTTP11Connection:
    conn = HTTP11Connection(**kwargs)  # type: ignore[arg-type]
    events = conn.receive_data(request)
    assert isinstance(events[0], Request), events
    assert isinstance(events[-1], EndOfMessage), events
    return conn


def respond(
    conn: HTTP11Connection, status: int, headers: list[tuple[bytes, bytes]], *chunks: bytes
) -> bytes:
    out = conn.send(Response(status, headers))
    for chunk in chunks:
        out += conn.send(Data(chunk))
    return out + conn.send(EndOfMessage())


# -- framing (RFC 9112 section 6) ----------------------------------------------------------


def test_content_length_framing() -> None:
    conn = connection()
    raw = respond(conn, 200, [(b"content-length", b"5")], b"hel", b"lo")
    parsed = read_back(raw)
    assert parsed.status == 200
    assert parsed.body == b"hello"
    assert parsed.values(b"content-length") == [b"5"]
    assert parsed.values(b"transfer-encoding") == []
    assert raw.endswith(b"\r\n\r\nhello")
    assert conn.last_keep_alive is True


def test_chunked_framing_without_length() -> None:
    conn = connection()
    head = conn.send(Response(200, [(b"content-type", b"text/plain")]))
    assert b"transfer-encoding: chunked\r\n" in head
    assert conn.send(Data(b"hello")) == b"5\r\nhello\r\n"
    assert conn.send(Data(b"")) == b""  # an empty chunk would end the body
    assert conn.send(Data(b"x" * 26)) == b"1a\r\n" + b"x" * 26 + b"\r\n"
    end = conn.send(EndOfMessage())
    assert end == b"0\r\n\r\n"
    parsed = read_back(head + b"5\r\nhello\r\n" + b"1a\r\n" + b"x" * 26 + b"\r\n" + end)
    assert parsed.body == b"hello" + b"x" * 26
    assert conn.last_keep_alive is True


def test_http10_without_length_is_close_delimited() -> None:
    conn = connection(GET10_KEEP_ALIVE)
    head = conn.send(Response(200, []))
    assert b"transfer-encoding" not in head.lower()
    assert b"content-length" not in head.lower()
    assert b"connection: close\r\n" in head
    assert conn.send(Data(b"raw bytes")) == b"raw bytes"
    assert conn.send(EndOfMessage()) == b""
    assert conn.last_keep_alive is False


def test_http10_keep_alive_is_answered_with_keep_alive() -> None:
    conn = connection(GET10_KEEP_ALIVE)
    raw = conn.send_response(200, [], body=b"ok")
    assert b"connection: keep-alive\r\n" in raw
    assert conn.send_end() == b""
    assert conn.last_keep_alive is True


def test_http10_without_keep_alive_closes() -> None:
    conn = connection(GET10)
    raw = conn.send_response(200, [], body=b"ok")
    assert read_back(raw).values(b"connection") == [b"close"]
    conn.send_end()
    assert conn.last_keep_alive is False


def test_send_response_with_body_adds_content_length() -> None:
    conn = connection()
    raw = conn.send_response(200, [(b"content-type", b"text/plain")], body=b"hello")
    parsed = read_back(raw)
    assert parsed.values(b"content-length") == [b"5"]
    assert parsed.body == b"hello"
    assert conn.send_end() == b""
    assert conn.last_keep_alive is True


def test_send_response_with_empty_body() -> None:
    conn = connection()
    raw = conn.send_response(200, [], body=b"")
    assert read_back(raw).values(b"content-length") == [b"0"]
    assert raw.endswith(b"\r\n\r\n")
    conn.send_end()


def test_send_response_body_keeps_the_apps_content_length() -> None:
    conn = connection()
    raw = conn.send_response(200, [(b"Content-Length", b"3")], body=b"abc")
    parsed = read_back(raw)
    assert parsed.values(b"content-length") == [b"3"]
    assert parsed.body == b"abc"
    conn.send_end()


def test_transfer_encoding_from_the_app_is_replaced() -> None:
    conn = connection()
    head = conn.send(Response(200, [(b"Transfer-Encoding", b"gzip, chunked")]))
    assert b"gzip" not in head
    assert head.lower().count(b"transfer-encoding") == 1
    raw = head + conn.send(Data(b"ab")) + conn.send(EndOfMessage())
    assert read_back(raw).body == b"ab"


# -- responses without content (RFC 9110 section 6.4.1) ------------------------------------


def test_head_response_has_no_body() -> None:
    conn = connection(HEAD)
    head = conn.send(Response(200, [(b"content-length", b"1000")]))
    assert b"content-length: 1000\r\n" in head
    assert conn.send(Data(b"x" * 1000)) == b""
    assert conn.send(EndOfMessage()) == b""
    assert head.endswith(b"\r\n\r\n")
    assert conn.last_keep_alive is True


def test_head_with_whole_body_reports_its_length_only() -> None:
    conn = connection(HEAD)
    raw = conn.send_response(200, [], body=b"hello")
    assert b"content-length: 5\r\n" in raw
    assert raw.endswith(b"\r\n\r\n")
    assert b"hello" not in raw
    conn.send_end()


def test_head_without_length_is_not_chunked() -> None:
    conn = connection(HEAD)
    head = conn.send(Response(200, []))
    assert b"transfer-encoding" not in head
    assert conn.send(Data(b"ignored")) == b""
    assert conn.send(EndOfMessage()) == b""


def test_204_drops_content_length_and_body() -> None:
    conn = connection()
    raw = conn.send_response(204, [(b"content-length", b"5")], body=b"hello")
    assert b"content-length" not in raw.lower()
    assert b"transfer-encoding" not in raw.lower()
    assert raw.endswith(b"\r\n\r\n")
    assert read_back(raw).status == 204
    assert conn.send_end() == b""
    assert conn.last_keep_alive is True


def test_204_streamed_body_is_dropped() -> None:
    conn = connection()
    head = conn.send(Response(204, []))
    assert b"transfer-encoding" not in head
    assert conn.send(Data(b"nope")) == b""
    assert conn.send(EndOfMessage()) == b""


def test_304_has_no_body() -> None:
    conn = connection()
    head = conn.send(Response(304, [(b"etag", b'"abc"'), (b"content-length", b"10")]))
    # RFC 9110 section 8.6: a 304 may carry the length the 200 would have had.
    assert b"content-length: 10\r\n" in head
    assert b"transfer-encoding" not in head
    assert conn.send(Data(b"0123456789")) == b""
    assert conn.send(EndOfMessage()) == b""
    assert conn.last_keep_alive is True


def test_100_continue_bytes() -> None:
    conn = HTTP11Connection()
    events = conn.receive_data(
        b"PUT / HTTP/1.1\r\nHost: example.com\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"
    )
    assert isinstance(events[0], Request) and events[0].expect_continue
    assert conn.send(InformationalResponse(100)) == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert conn.receive_data(b"ok") == [Data(b"ok"), EndOfMessage()]
    raw = conn.send_response(200, [], body=b"done")
    assert read_back(raw).body == b"done"


def test_informational_with_headers() -> None:
    conn = connection()
    raw = conn.send_informational(103, [(b"link", b"</style.css>; rel=preload")])
    assert raw == b"HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\n\r\n"
    conn.send_response(200, [], body=b"")


def test_informational_to_http10_is_not_sent() -> None:
    conn = connection(GET10)
    assert conn.send(InformationalResponse(100)) == b""


@pytest.mark.parametrize("status", [99, 101, 200, 204])
def test_informational_status_must_be_1xx_and_not_101(status: int) -> None:
    conn = connection()
    with pytest.raises(LocalProtocolError):
        conn.send_informational(status)


def test_informational_after_the_final_response() -> None:
    conn = connection()
    conn.send(Response(200, []))
    with pytest.raises(LocalProtocolError):
        conn.send(InformationalResponse(100))


# -- Date and Server (RFC 9110 sections 6.6.1, 10.2.4) -------------------------------------


def test_date_and_server_added() -> None:
    conn = connection()
    parsed = read_back(conn.send_response(200, [], body=b""))
    assert parsed.values(b"server") == [b"rootserve"]
    [date] = parsed.values(b"date")
    assert IMF_FIXDATE.fullmatch(date), date


def test_date_and_server_can_be_turned_off() -> None:
    conn = connection(server_header=None, date_header=False)
    parsed = read_back(conn.send_response(200, [], body=b""))
    assert parsed.values(b"server") == []
    assert parsed.values(b"date") == []


def test_server_header_value() -> None:
    conn = connection(server_header=b"custom/1.0")
    parsed = read_back(conn.send_response(200, [], body=b""))
    assert parsed.values(b"server") == [b"custom/1.0"]


def test_app_headers_kept_in_order_and_spelling() -> None:
    conn = connection(server_header=None, date_header=False)
    headers = [(b"X-B", b"2"), (b"x-a", b"1"), (b"Set-Cookie", b"a=1"), (b"Set-Cookie", b"b=2")]
    parsed = read_back(conn.send_response(200, headers, body=b""))
    assert parsed.headers[:4] == headers


# -- keep-alive (RFC 9112 section 9.3, 9.6) ------------------------------------------------


def test_connection_close_from_the_app_is_honoured() -> None:
    conn = connection()
    raw = conn.send_response(200, [(b"Connection", b"close")], body=b"bye")
    assert read_back(raw).values(b"connection") == [b"close"]
    conn.send_end()
    assert conn.last_keep_alive is False


def test_connection_close_from_the_client_is_honoured() -> None:
    conn = connection(GET_CLOSE)
    raw = conn.send_response(200, [], body=b"bye")
    assert read_back(raw).values(b"connection") == [b"close"]
    conn.send_end()
    assert conn.last_keep_alive is False


def test_keep_alive_is_the_default_for_http11() -> None:
    conn = connection()
    raw = conn.send_response(200, [(b"connection", b"keep-alive")], body=b"")
    assert read_back(raw).values(b"connection") == []  # the default needs no header
    conn.send_end()
    assert conn.last_keep_alive is True


def test_a_good_response_before_a_bad_request_leaves_room_for_its_answer() -> None:
    conn = HTTP11Connection()
    events = conn.receive_data(GET + b"GET / HTTP/1.1\r\n\r\n")  # the second lacks Host
    bad = events[-1]
    assert isinstance(bad, BadRequest) and bad.status == 400
    raw = conn.send_response(200, [], body=b"first")
    conn.send_end()
    # The 400 comes next on this connection, so this response must not announce a close.
    assert read_back(raw).values(b"connection") == []


def test_the_answer_to_a_bad_request_closes() -> None:
    conn = HTTP11Connection()
    events = conn.receive_data(GET + b"GET / HTTP/1.1\r\n\r\n")
    bad = events[-1]
    assert isinstance(bad, BadRequest)
    conn.send_response(200, [], body=b"first")
    conn.send_end()
    assert conn.last_keep_alive is False  # nothing more is read after a BadRequest
    parsed = read_back(conn.error_response(bad.status, bad.reason))
    assert parsed.status == 400
    assert parsed.values(b"connection") == [b"close"]


def test_eof_ends_keep_alive() -> None:
    conn = connection()
    assert conn.receive_data(b"") != []
    conn.send_response(200, [], body=b"")
    conn.send_end()
    assert conn.last_keep_alive is False


# -- pipelining: answered in request order (RFC 9112 section 9.3.2) ------------------------


def test_responses_follow_pipeline_order() -> None:
    conn = HTTP11Connection()
    events = conn.receive_data(HEAD + GET + GET_CLOSE)
    assert [type(e) for e in events] == [Request, EndOfMessage] * 3
    assert conn.pending_responses == 3
    # The first answer is for HEAD: no body.
    first = conn.send_response(200, [], body=b"hello")
    assert first.endswith(b"\r\n\r\n") and b"content-length: 5" in first
    conn.send_end()
    assert conn.last_keep_alive is True
    # The second for GET: the body goes out.
    second = conn.send_response(200, [], body=b"hello")
    assert second.endswith(b"\r\n\r\nhello")
    conn.send_end()
    assert conn.last_keep_alive is True
    # The third asked to close.
    third = conn.send_response(200, [], body=b"bye")
    assert b"connection: close\r\n" in third
    conn.send_end()
    assert conn.last_keep_alive is False
    assert conn.pending_responses == 0
    with pytest.raises(LocalProtocolError):
        conn.send_response(200, [], body=b"")


# -- app output that would break HTTP: LocalProtocolError ----------------------------------


BAD_HEADERS = [
    pytest.param(b"x-a", b"a\r\nSet-Cookie: evil=1", id="value-crlf"),
    pytest.param(b"x-a", b"a\rb", id="value-cr"),
    pytest.param(b"x-a", b"a\nb", id="value-lf"),
    pytest.param(b"x-a", b"a\x00b", id="value-nul"),
    pytest.param(b"x-a\r\nx-b", b"c", id="name-crlf"),
    pytest.param(b"x-a\x00", b"b", id="name-nul"),
    pytest.param(b"x a", b"b", id="name-space"),
    pytest.param(b"x:a", b"b", id="name-colon"),
    pytest.param(b"", b"b", id="name-empty"),
    pytest.param(b"x-\xe9", b"b", id="name-non-ascii"),
]


@pytest.mark.parametrize(("name", "value"), BAD_HEADERS)
def test_bad_header_in_a_response_raises(name: bytes, value: bytes) -> None:
    conn = connection()
    with pytest.raises(LocalProtocolError):
        conn.send(Response(200, [(b"content-type", b"text/plain"), (name, value)]))


@pytest.mark.parametrize(("name", "value"), BAD_HEADERS)
def test_bad_header_in_a_whole_response_raises(name: bytes, value: bytes) -> None:
    conn = connection()
    with pytest.raises(LocalProtocolError):
        conn.send_response(200, [(name, value)], body=b"hello")


BAD_HEADERS_1XX = BAD_HEADERS


@pytest.mark.parametrize(("name", "value"), BAD_HEADERS_1XX)
def test_bad_header_in_an_informational_response_raises(name: bytes, value: bytes) -> None:
    conn = connection()
    with pytest.raises(LocalProtocolError):
        conn.send(InformationalResponse(103, [(name, value)]))


@pytest.mark.parametrize(("name", "value"), BAD_HEADERS)
def test_bad_header_from_a_header_generator_raises(name: bytes, value: bytes) -> None:
    conn = connection()
    headers = ((n, v) for n, v in [(b"x-ok", b"1"), (name, value)])
    with pytest.raises(LocalProtocolError):
        conn.send_response(200, headers, body=b"")


def test_header_generator_is_accepted() -> None:
    conn = connection(server_header=None, date_header=False)
    headers = ((name, value) for name, value in [(b"x-a", b"1"), (b"content-length", b"2")])
    parsed = read_back(conn.send_response(200, headers, body=b"ok"))
    assert parsed.headers == [(b"x-a", b"1"), (b"content-length", b"2")]
    assert parsed.body == b"ok"


@pytest.mark.parametrize("value", [b"abc", b"-1", b"+1", b"1.0", b"", b"1 2"])
def test_bad_content_length_from_the_app_raises(value: bytes) -> None:
    conn = connection()
    with pytest.raises(LocalProtocolError):
        conn.send(Response(200, [(b"content-length", value)]))


def test_repeated_content_length_from_the_app_raises() -> None:
    conn = connection()
    with pytest.raises(LocalProtocolError):
        conn.send(Response(200, [(b"content-length", b"1"), (b"Content-Length", b"1")]))


def test_too_many_body_bytes_under_content_length() -> None:
    conn = connection()
    conn.send(Response(200, [(b"content-length", b"3")]))
    assert conn.send(Data(b"ab")) == b"ab"
    with pytest.raises(LocalProtocolError):
        conn.send(Data(b"cd"))


def test_short_body_under_content_length() -> None:
    conn = connection()
    conn.send(Response(200, [(b"content-length", b"3")]))
    conn.send(Data(b"ab"))
    with pytest.raises(LocalProtocolError):
        conn.send(EndOfMessage())
    assert conn.last_keep_alive is False  # the connection must close: the body is cut short


@pytest.mark.parametrize("status", [0, 99, 100, 101, 199, 1000, -200])
def test_final_status_out_of_range(status: int) -> None:
    conn = connection()
    with pytest.raises(LocalProtocolError):
        conn.send(Response(status, []))


def test_out_of_order_sends_raise() -> None:
    conn = HTTP11Connection()
    with pytest.raises(LocalProtocolError):
        conn.send(Response(200, []))  # no request yet
    conn.receive_data(GET)
    with pytest.raises(LocalProtocolError):
        conn.send(Data(b"x"))  # body before head
    with pytest.raises(LocalProtocolError):
        conn.send(EndOfMessage())  # end before head
    conn.send(Response(200, []))
    with pytest.raises(LocalProtocolError):
        conn.send(Response(200, []))  # a second head


def test_sending_a_received_only_event_raises() -> None:
    conn = connection()
    with pytest.raises(LocalProtocolError):
        conn.send(BadRequest(400, "no"))  # type: ignore[arg-type]


# -- error answers ---------------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 413, 414, 417, 431, 501, 505])
def test_error_response_is_complete_and_closes(status: int) -> None:
    conn = HTTP11Connection()
    [bad] = conn.receive_data(b"\x00")
    assert isinstance(bad, BadRequest)
    parsed = read_back(conn.error_response(status, "because"))
    assert parsed.status == status
    assert parsed.values(b"connection") == [b"close"]
    assert parsed.values(b"content-length") == [str(len(parsed.body)).encode()]
    assert b"because" in parsed.body
    assert parsed.values(b"server") == [b"rootserve"]


def test_error_response_function() -> None:
    raw = error_response(431, "too big")
    assert raw.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert read_back(raw).values(b"server") == []


def test_list_fields_and_repeated_tuples_render_alike() -> None:
    # A plain (name, value) tuple is rendered once and found again by the tuple itself;
    # the ASGI spec also allows [name, value] lists, which cannot be looked up that way.
    headers = [(b"x-cached", b"1"), [b"x-listed", b"2"], (b"content-length", b"2")]
    first = read_back(connection().send_response(200, headers, body=b"ok"))  # type: ignore[arg-type]
    again = read_back(connection().send_response(200, headers, body=b"ok"))  # type: ignore[arg-type]
    for parsed in (first, again):
        assert parsed.values(b"x-cached") == [b"1"]
        assert parsed.values(b"x-listed") == [b"2"]
        assert parsed.values(b"content-length") == [b"2"]
        assert parsed.body == b"ok"


def test_a_field_refused_once_is_refused_again() -> None:
    bad = (b"x-split", b"a\r\nset-cookie: x=1")
    for _ in range(2):
        with pytest.raises(LocalProtocolError):
            connection().send_response(200, [bad], body=b"")


def test_a_whole_body_longer_than_the_content_length_is_refused() -> None:
    conn = connection()
    with pytest.raises(LocalProtocolError, match="3 body bytes for a Content-Length of 2"):
        conn.send_response(200, [(b"content-length", b"2")], body=b"abc")


def test_a_long_field_is_checked_each_time_not_remembered() -> None:
    cookie = (b"set-cookie", b"session=" + b"x" * 1000)
    for _ in range(2):
        parsed = read_back(connection().send_response(200, [cookie], body=b""))
        assert parsed.values(b"set-cookie") == [cookie[1]]
    assert cookie not in _send._FIELDS
    assert cookie not in _send._LINES
