"""A chunked request body (RFC 9112 section 7.1), read alongside llhttp: a part of
`HTTP11Connection`.

llhttp parses the body, but it reports neither chunk sizes nor chunk extensions (httptools
has no callback for them), and it lets an empty extension name or value through. So the raw
bytes of a chunked body are also read here, ahead of llhttp (`_ChunkedBody`): each
extension is checked (section 7.1.1), and a chunk over the body limit is refused as soon as
its size is read (RFC 9110 section 15.5.14), before any of its data. llhttp reports no
offsets either, so where the body starts in the feed is worked out from the events that came
out of it (`_head_end`: a head ends at its first CRLF CRLF, section 2.1).

And llhttp takes "chunked" only with SP after it, so `Transfer-Encoding: chunked<HTAB>`
(valid: OWS is SP or HTAB, RFC 9110 section 5.6.3) makes it fail the request after its head;
a second parser then takes over the body (`_take_over`, `_Resumed`). Requests without a
chunked body never come here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

import httptools

from rootserve.protocol._refuse import RefuseSide, _Reject
from rootserve.protocol.events import END_OF_MESSAGE, Data, Event, Request
from rootserve.protocol.rules import CHUNK_LINE

__all__ = ["ChunkedSide"]


def _after_body(events: list[Event], index: int, at: int) -> tuple[int, int]:
    """Past the body whose events start at `index` (to its EndOfMessage), and `at` moved on
    by the body's length."""
    while (event := events[index]) is not END_OF_MESSAGE:
        if isinstance(event, Data):
            at += len(event.data)
        index += 1
    return index + 1, at


# RFC 9112 section 2.1: a head ends with an empty line. llhttp refuses a bare CR or LF in a
# head, so the first CRLF CRLF after a message's first byte ends its head; empty lines
# before that byte are skipped (section 2.2), and so is any run of CR and LF by llhttp.
_BLANK_LINE: Final = b"\r\n\r\n"
_MESSAGE_START: Final = re.compile(rb"[^\r\n]")

# What llhttp says, right after a head, when the request's last transfer coding is not
# "chunked" as llhttp reads it (see _take_over).
_TE_REFUSED: Final = "Request has invalid `Transfer-Encoding`"
# Made-up heads that put a new parser inside a chunked body (see _take_over).
_RESUME_HEAD: Final = b"PUT * HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
_RESUME_HEAD_CLOSE: Final = (
    b"PUT * HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
)

# A known message boundary in the current feed (see _head_end): the feed's event list, the
# index of the events that follow it, its offset in the feed, and whether the events of a
# chunked body's end come first (the boundary is after that body).
_Mark = tuple[list[Event], int, int, bool]


class _ChunkedBody:
    """The framing of one chunked body (RFC 9112 section 7.1), read alongside llhttp.

    llhttp checks most of the chunk grammar but reports neither a chunk's size nor its
    extensions (httptools has no callback for them), and it lets an empty extension name or
    value through. So the raw bytes of the body are scanned here, ahead of llhttp (the part
    of a feed after the head, then each later feed before llhttp gets it): each chunk-size
    line is checked against CHUNK_LINE and the body limit, and `on_chunk_header`, which
    llhttp calls once it has read the same line, refuses the request if that line was bad.
    Chunk data is skipped by its size, unread; the scan stops after the trailer section.
    """

    __slots__ = (
        "conn",
        "declared",
        "error",
        "good",
        "head_end",
        "left",
        "limit",
        "line",
        "tail",
        "trailers",
    )

    def __init__(self, conn: ChunkedSide, head_end: int) -> None:
        self.conn = conn
        # The body limit; 0 means none, and no chunked body reaches 2**64 bytes (llhttp
        # refuses a chunk size that does not fit 64 bits).
        self.limit = conn._max_body or 1 << 64
        self.head_end = head_end  # where the body starts, in the feed its head ended in
        self.line: bytes | bytearray = b""  # a chunk-size line begun in an earlier feed
        self.left = 0  # bytes of chunk data, with the CRLF after it, still to skip
        self.trailers = False  # reading the trailer section (section 7.1.2)
        self.tail = b""  # there: its last bytes so far, for an empty line across feeds
        self.declared = 0  # the chunk sizes read so far, added up
        self.good = 0  # lines found good that llhttp has not reached yet
        self.error: _Reject | None = None  # what is wrong with the line after those

    def feed(self, data: bytes) -> bytes:
        """The connection's pre-feed step while the body goes on: read the feed first."""
        left = self.left - len(data)
        if left >= 0:  # all chunk data, the usual feed of a large body
            self.left = left
        else:
            self.read(data, 0)
        return data

    def read(self, data: bytes, pos: int) -> None:
        """Scan data[pos:], and stop being the pre-feed step once the body ends in it (where
        a message may then start: see HTTP11Connection._head_end) or a line is bad."""
        end = self.scan(data, pos)
        if end >= 0 or self.error is not None:
            conn = self.conn
            conn._pre_feed = None
            if end >= 0:
                conn._mark = (conn._events, len(conn._events), end, True)

    def scan(self, data: bytes, pos: int) -> int:
        """Read data[pos:]: the offset just past the body's end, or -1 when the body goes
        on after `data` (or the scan stopped at a bad line)."""
        end = len(data)
        if self.trailers:
            return self._trailers_end(data, pos)
        pos += self.left  # the rest of a chunk's data and its CRLF
        while pos < end:
            lf = data.find(b"\n", pos) + 1
            if not lf:
                # The line goes on in the next feed (a bytearray: it may come a byte at a time).
                if self.line:
                    self.line += data[pos:]
                else:
                    self.line = bytearray(data[pos:])
                self.left = 0
                return -1
            if self.line:
                skip = self._chunk_line(bytes(self.line + data[pos:lf]))
                self.line = b""
            else:
                skip = self._chunk_line(data[pos:lf])
            if skip <= 0:
                self.left = 0
                return self._trailers_end(data, lf) if skip == 0 else -1
            pos = lf + skip
        self.left = pos - end
        return -1

    def _chunk_line(self, line: bytes) -> int:
        """Check one chunk-size line: the bytes of chunk data and CRLF that follow it, 0 for
        the last chunk, -1 for a bad line."""
        try:
            # A line llhttp takes without an extension is 1*HEXDIG CRLF, which int() reads
            # (it ignores the CRLF); what else int() takes, llhttp refuses before it calls
            # on_chunk_header, so the verdict on such a line is never used.
            size = int(line, 16)
        except ValueError:
            match = CHUNK_LINE.fullmatch(line)
            if match is None:
                # RFC 9112 section 7.1.1: an extension is a token, with after "=" a token or
                # a quoted-string; llhttp takes an empty name or value, which is neither.
                self.error = _Reject(400, "invalid chunk size or chunk extension")
                return -1
            size = int(match[1], 16)
        declared = self.declared = self.declared + size
        if declared > self.limit:
            # RFC 9110 section 15.5.14: refused as soon as the size is known, rather than
            # after that many bytes.
            self.error = _Reject(413, f"chunked body over the {self.limit}-byte limit")
            return -1
        self.good += 1
        if size:
            return size + 2  # the chunk data and the CRLF after it (section 7.1)
        # The last chunk; the trailer section and its empty line follow (7.1.2). That line
        # may come right away: it then makes CRLF CRLF with this line's CRLF.
        self.trailers = True
        self.tail = b"\r\n"
        return 0

    def _trailers_end(self, data: bytes, pos: int) -> int:
        # Trailer field lines hold no CR or LF (llhttp refuses them), so the section ends at
        # the first CRLF CRLF, which may straddle the feeds.
        tail = self.tail
        if tail == b"\r\n" and data[pos : pos + 2] == b"\r\n":
            return pos + 2  # no trailer fields, the usual case
        found = (tail + data[pos : pos + 3]).find(_BLANK_LINE)
        if found >= 0:
            return pos + found + 4 - len(tail)
        found = data.find(_BLANK_LINE, pos)
        if found >= 0:
            return found + 4
        self.tail = data[-3:] if len(data) - pos >= 3 else (tail + data[pos:])[-3:]
        return -1


class _Resumed:
    """The callbacks of a parser that takes over inside a chunked body (see _take_over).

    llhttp cannot be started inside a body, so that parser is first fed a made-up head,
    whose callbacks are dropped here; after it, every callback goes to the connection."""

    def __init__(self, conn: ChunkedSide) -> None:
        self.conn = conn
        self.live = False

    def on_message_begin(self) -> None:
        if self.live:
            self.conn.on_message_begin()

    def on_url(self, piece: bytes) -> None:
        if self.live:
            self.conn.on_url(piece)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.live:
            self.conn.on_header(name, value)

    def on_headers_complete(self) -> None:
        if self.live:
            self.conn.on_headers_complete()

    def on_body(self, body: bytes) -> None:
        self.conn.on_body(body)

    def on_chunk_header(self) -> None:
        self.conn.on_chunk_header()

    def on_message_complete(self) -> None:
        self.conn.on_message_complete()


class ChunkedSide(RefuseSide):
    """The chunked-body layer of HTTP11Connection, over the refusing layer."""

    _max_body: int
    _parser: httptools.HttpRequestParser
    _carry: bytes
    _pre_feed: Callable[[bytes], bytes] | None
    _chunks: _ChunkedBody | None
    _mark: _Mark | None

    # The httptools callbacks of the layers above, which override these (see SwitchSide).
    def on_message_begin(self) -> None:
        raise NotImplementedError

    def on_url(self, piece: bytes) -> None:
        raise NotImplementedError

    def on_header(self, name: bytes, value: bytes) -> None:
        raise NotImplementedError

    def on_headers_complete(self) -> None:
        raise NotImplementedError

    def on_body(self, body: bytes) -> None:
        raise NotImplementedError

    def on_message_complete(self) -> None:
        raise NotImplementedError

    def _begin_chunked(self) -> None:
        start = self._head_end()
        chunks = self._chunks = _ChunkedBody(self, start)
        self._pre_feed = chunks.feed
        chunks.read(self._data, start)

    def on_chunk_header(self) -> None:
        # llhttp has read a chunk-size line, and the scan has read it before (it reads each
        # feed before llhttp does): if that line was not good, the request is refused now,
        # before any of the chunk's data.
        chunks = self._chunks
        if chunks is not None and chunks.good:
            chunks.good -= 1
            return
        error = chunks.error if chunks is not None else None
        self._reject = error or _Reject(400, "unexpected chunk")
        raise self._reject

    def _head_end(self) -> int:
        """Where the head llhttp has just read ends in `self._data` (the feed it parses).

        llhttp reports no offsets, so this is worked out from what came out of the feed so
        far: each message before this head spans its own head (up to its first CRLF CRLF,
        see _BLANK_LINE) and its body (the Data that came out for it; the whole body, since
        it began in this feed). The walk starts at the feed's start, or at the last known
        message boundary in it (`_mark`: after a chunked body, or a body taken for an
        Upgrade, or a switch of the bytes being parsed)."""
        data = self._data
        events = self._events
        index = at = 0
        carry: bytes | None = None
        mark = self._mark
        if mark is not None and mark[0] is events:
            _, index, at, in_body = mark
            if in_body:
                while events[index] is not END_OF_MESSAGE:
                    index += 1
                index += 1
        elif events and isinstance(events[0], Data):
            # The feed began inside a body framed by Content-Length.
            index, at = _after_body(events, 0, 0)
        elif self._since_idle != b"":
            # The feed began inside a head: its empty line may straddle the feeds, so the
            # last bytes before this one count (_since_idle ends with them, or _carry).
            since = self._since_idle
            carry = since[-3:] if since is not None else self._carry
        while True:
            if carry is not None:
                found = (carry + data[:3]).find(_BLANK_LINE)
                at = found + 4 - len(carry) if found >= 0 else data.index(_BLANK_LINE) + 4
                carry = None
            else:
                if data[at] == 13 or data[at] == 10:  # CR or LF: empty lines first
                    first = _MESSAGE_START.search(data, at)
                    at = first.start() if first else at
                at = data.index(_BLANK_LINE, at) + 4
            if index == len(events):
                return at
            index, at = _after_body(events, index + 1, at)

    def _take_over(self, chunks: _ChunkedBody) -> tuple[httptools.HttpRequestParser, bytes]:
        """llhttp refused, right after its head, a request we read as chunked.

        RFC 9110 section 5.6.3: OWS is SP or HTAB, and `Transfer-Encoding: chunked<HTAB>`
        names chunked; but llhttp skips only SP after "chunked", so it reads another coding
        there, and a request whose last coding is not chunked has no length it can find
        (RFC 9112 section 6.3), so llhttp fails it, after its head came out. The body is
        chunked all the same: a new parser takes over where the head ended, put there by a
        made-up head that says chunked (and Connection: close if the request did)."""
        request = self._events[-1] if self._events else None
        keep_alive = request.keep_alive if isinstance(request, Request) else False
        resumed = _Resumed(self)
        parser = httptools.HttpRequestParser(resumed)
        head = _RESUME_HEAD if keep_alive else _RESUME_HEAD_CLOSE
        parser.feed_data(head)
        resumed.live = True
        self._parser = parser
        # _failed_message_start replays what this parser has read, from its start.
        self._since_idle = head
        start, chunks.head_end = chunks.head_end, -1
        return parser, self._data[start:]
