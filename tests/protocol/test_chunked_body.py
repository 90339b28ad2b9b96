"""Chunked request bodies (RFC 9112 section 7.1) beyond what the corpus can say: answers that
need no more bytes, exact feed boundaries, every split point of a request, the parser that
takes over after `Transfer-Encoding: chunked<HTAB>`, and that requests without a chunked body
never reach any of it.

llhttp parses chunked bodies but reports neither chunk sizes nor extensions, so the
connection reads each chunk-size line itself, ahead of llhttp (`_ChunkedBody`); these tests
check that this second reading finds the same lines as llhttp whatever the feeds are.
"""

from __future__ import annotations

import pytest

from rootserve.protocol import _chunked, http11
from rootserve.protocol.events import BadRequest, Data, EndOfMessage, Event, Request
from rootserve.protocol.http11 import HTTP11Connection
from rootserve.protocol.rules import Limits

HEAD = b"POST /up HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n"
GET = b"GET /next HTTP/1.1\r\nHost: example.com\r\n\r\n"


def feed(conn: HTTP11Connection, *pieces: bytes) -> list[Event]:
    events: list[Event] = []
    for piece in pieces:
        events += conn.receive_data(piece)
    return events


def outcome(events: list[Event]) -> list[object]:
    """Requests as (method, body, complete), then the status of a BadRequest."""
    out: list[object] = []
    for event in events:
        if isinstance(event, Request):
            out.append([event.method, b"", False])
        elif isinstance(event, Data):
            assert isinstance(out[-1], list)
            out[-1][1] += event.data
        elif isinstance(event, EndOfMessage):
            assert isinstance(out[-1], list)
            out[-1][2] = True
        elif isinstance(event, BadRequest):
            out.append(event.status)
    return out


def splits(raw: bytes) -> list[list[bytes]]:
    """`raw` whole, then cut at every point into two, then at every pair of points (short
    inputs) into three."""
    cuts = [[raw]] + [[raw[:i], raw[i:]] for i in range(1, len(raw))]
    if len(raw) <= 160:
        cuts += [
            [raw[:i], raw[i:j], raw[j:]] for i in range(1, len(raw)) for j in range(i + 1, len(raw))
        ]
    return cuts


# -- item: a chunk size over the body limit --------------------------------------------------


@pytest.mark.parametrize("pieces", [(HEAD + b"ffffffff\r\n",), (HEAD, b"ffffffff\r\n")])
def test_a_chunk_size_over_the_limit_is_413_with_no_more_bytes(pieces: tuple[bytes, ...]) -> None:
    # RFC 9110 section 15.5.14: the size line says enough; its 4 GiB are never awaited.
    conn = HTTP11Connection(Limits(max_body_bytes=1024))
    events = feed(conn, *pieces)
    assert [type(e) for e in events] == [Request, BadRequest]
    assert isinstance(events[-1], BadRequest) and events[-1].status == 413
    assert conn.receive_data(b"x" * 100) == []


def test_chunk_sizes_adding_up_over_the_limit_stop_before_the_data() -> None:
    conn = HTTP11Connection(Limits(max_body_bytes=10))
    events = feed(conn, HEAD + b"6\r\n012345\r\n", b"5\r\n")
    assert outcome(events) == [["POST", b"012345", False], 413]


def test_a_body_at_the_limit_is_served() -> None:
    conn = HTTP11Connection(Limits(max_body_bytes=10))
    events = feed(conn, HEAD + b"a\r\n", b"0123456789\r\n0\r\n\r\n")
    assert outcome(events) == [["POST", b"0123456789", True]]


def test_no_limit_lets_any_size_through() -> None:
    conn = HTTP11Connection(Limits(max_body_bytes=0))
    events = feed(conn, HEAD + b"ffffffff\r\n", b"abc")
    assert outcome(events) == [["POST", b"abc", False]]


# -- every split point gives the same answer -------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            HEAD + b"5;a=b\r\nhello\r\n0\r\n\r\n" + GET,
            [["POST", b"hello", True], ["GET", b"", True]],
        ),
        (HEAD + b"5;a=\r\nhello\r\n0\r\n\r\n", [["POST", b"", False], 400]),
        (HEAD + b"2\r\nhe\r\n3;=x\r\nllo\r\n0\r\n\r\n", [["POST", b"he", False], 400]),
        (HEAD + b"2\r\nhe\r\n0;q=\r\n\r\n", [["POST", b"he", False], 400]),
        (
            HEAD + b"3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n" + HEAD + b"1;a=\r\nz\r\n0\r\n\r\n",
            [["POST", b"abc", True], ["POST", b"", False], 400],
        ),
    ],
)
def test_every_split_point_gives_the_same_events(raw: bytes, expected: list[object]) -> None:
    for pieces in splits(raw):
        got = outcome(feed(HTTP11Connection(), *pieces))
        if expected[-1] == 400:
            # How much of the failing body came out first depends on the cuts.
            assert got[:-2] == expected[:-2] and got[-1] == 400, pieces
            partial, most = got[-2], expected[-2]
            assert isinstance(partial, list) and isinstance(most, list)
            assert partial[:1] == most[:1] and most[1].startswith(partial[1]), pieces
        else:
            assert got == expected, pieces


def test_the_head_end_is_found_after_a_long_body_split_anywhere() -> None:
    # More than _REPLAY_MAX_BYTES of a Content-Length body in small feeds (so only the last
    # bytes of each feed are kept), its end in the same feed as the start of a chunked
    # request, whose empty line is then cut in every way: the chunk lines are still read
    # from where that head ends (a wrong place would misread them).
    body = b"\r\n\r\n0;x=\r\n" * 2400
    first = b"POST /big HTTP/1.1\r\nHost: example.com\r\nContent-Length: %d\r\n\r\n" % len(body)
    pieces = [first] + [body[i : i + 1000] for i in range(0, len(body), 1000)]
    tails = {b"5;a=b\r\nhello\r\n0\r\n\r\n": "ok", b"5;a=\r\nhello\r\n0\r\n\r\n": 400}
    for tail, verdict in tails.items():
        raw = HEAD + tail
        for cut in range(len(HEAD) - 4, len(HEAD) + 3):
            conn = HTTP11Connection()
            events = feed(conn, *pieces[:-1], pieces[-1] + raw[:cut], raw[cut:])
            got = outcome(events)
            assert got[0] == ["POST", body, True]
            if verdict == "ok":
                assert got[1:] == [["POST", b"hello", True]], cut
            else:
                assert got[1:] == [["POST", b"", False], 400], cut


# -- Transfer-Encoding: chunked<HTAB> --------------------------------------------------------


def test_chunked_with_a_tab_is_served_and_the_connection_goes_on() -> None:
    # llhttp reads "chunked<HTAB>" as another coding and would fail the request after its
    # head; a parser that takes over reads the body, and later requests, as usual.
    head = HEAD.replace(b"chunked", b"chunked\t")
    conn = HTTP11Connection()
    first = feed(conn, head)
    assert [type(e) for e in first] == [Request]
    rest = feed(conn, b"5\r\nhel", b"lo\r\n0\r\n\r\n", GET)
    assert outcome(first + rest) == [["POST", b"hello", True], ["GET", b"", True]]
    assert not any(isinstance(e, BadRequest) for e in rest)


def test_an_unknown_method_after_a_taken_over_body_is_still_501() -> None:
    # The replay that finds where the refused message starts knows about the takeover.
    head = HEAD.replace(b"chunked", b"\tchunked\t")
    conn = HTTP11Connection()
    events = feed(conn, head + b"3\r\nab", b"c\r\n0\r\n\r\nFOO / HTTP/1.1\r\n", b"Host: a\r\n\r\n")
    assert outcome(events) == [["POST", b"abc", True], 501]


def test_chunked_with_a_tab_and_a_bad_extension_is_400() -> None:
    head = HEAD.replace(b"chunked", b"chunked\t")
    events = feed(HTTP11Connection(), head + b"3;e=\r\nabc\r\n0\r\n\r\n")
    assert outcome(events) == [["POST", b"", False], 400]


# -- the cost: nothing for requests without a chunked body -----------------------------------


def test_requests_without_a_chunked_body_never_scan(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> None:
        raise AssertionError("a request without a chunked body reached the chunk scan")

    monkeypatch.setattr(http11.HTTP11Connection, "_head_end", refuse)
    monkeypatch.setattr(http11.HTTP11Connection, "_begin_chunked", refuse)
    monkeypatch.setattr(_chunked._ChunkedBody, "scan", refuse)
    conn = HTTP11Connection()
    post = b"POST /p HTTP/1.1\r\nHost: example.com\r\nContent-Length: 5\r\n\r\nhello"
    events = feed(conn, GET, post[:30], post[30:] + GET, b"GET / HTTP/1.0\r\n\r\n")
    assert outcome(events) == [
        ["GET", b"", True],
        ["POST", b"hello", True],
        ["GET", b"", True],
        ["GET", b"", True],
    ]
    assert conn._pre_feed is None
