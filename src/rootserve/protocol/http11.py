"""Sans-IO HTTP/1.1 for a server: bytes in, events out; events in, bytes out.

How this works. `HTTP11Connection.receive_data(bytes)` feeds llhttp (through httptools), whose
callbacks build `Request`, `Data` and `EndOfMessage` events. llhttp already enforces most of
RFC 9112's message grammar (bare CR or LF, obs-fold, whitespace before a colon, control bytes,
Content-Length with Transfer-Encoding, duplicate or malformed Content-Length, bad chunk sizes
and chunk line ends). The checks llhttp leaves to its user are made here, each citing its
RFC section: Host, the request-target form, fragments, the HTTP version, transfer codings
other than chunked, expectations, and the size limits. A request that breaks a rule ends the
receive side with `BadRequest(status, reason)`: the server answers it and closes, and the app
never sees that request (requests before it in a pipeline are answered first, in order).

The connection is one object made of layers, a module each, each layer a subclass of the
one below it (`_send.py` at the bottom, then `_switch.py`, `_refuse.py`, `_chunked.py`,
`_head.py`): one chain, which mypyc can compile. This module holds the state and the feed
loop; `_head.py` has the callbacks that read a request head and make its checks;
`_chunked.py` reads a chunked body's framing alongside llhttp, which reports neither chunk
sizes nor extensions, and takes over a body llhttp misframes (`chunked<HTAB>`); `_refuse.py`
ends the receive side on a refusal, and reads the rest of a request line whose method llhttp
refused at its first byte, to tell 501 from 400; `_send.py` frames each response for the
request at the head of the pipeline; `_switch.py` answers a request that asks to switch.

Switching protocols (RFC 9110 section 7.8). A bodiless HTTP/1.1 request whose Upgrade names
`websocket` (with `Connection: upgrade`) stops the receive side: the request comes out, and
the bytes after it are held, not parsed. The server then either switches
(`send_switching_protocols` writes the 101, `take_upgrade_data` hands over the held bytes,
which belong to the new protocol), refuses (`refuse_upgrade`, and the connection closes), or
goes on with HTTP (`resume_after_upgrade`: the request is answered as a plain one and the
held bytes are parsed as what follows it). Any other Upgrade is ignored, as section 7.8
allows, and parsing goes on.

This module imports no asyncio, socket or threading: a test guards that.
"""

from __future__ import annotations

from collections import deque
from typing import Final

import httptools

from rootserve.protocol._chunked import _TE_REFUSED
from rootserve.protocol._head import HeadSide
from rootserve.protocol._refuse import _Reject
from rootserve.protocol._send import error_response
from rootserve.protocol._states import (
    NO_BODY,
    RECEIVE_CLOSED,
    RECEIVE_DONE,
    RECEIVE_OPEN,
    SNIFF_METHOD,
    SWITCHED,
    UPGRADE,
)
from rootserve.protocol.events import (
    END_OF_MESSAGE,
    ConnectionClosed,
    Data,
    Event,
    Request,
)
from rootserve.protocol.rules import Limits, LocalProtocolError
from rootserve.units import KIB

__all__ = ["HTTP11Connection", "error_response"]

_REPLAY_MAX_BYTES: Final = 16 * KIB


class HTTP11Connection(HeadSide):
    """One server-side HTTP/1.1 connection, without I/O.

    Feed received bytes to `receive_data` (b"" for EOF) and act on the events it returns;
    turn responses into bytes with `send` (or the `send_*` methods it dispatches to) and
    write them. Responses are answered in request order.
    """

    def __init__(
        self,
        limits: Limits | None = None,
        *,
        server_header: bytes | None = b"rootserve",
        date_header: bool = True,
        request_class: type[Request] = Request,
    ) -> None:
        # The class of the Request events: a server may pass a subclass that carries more
        # (rootserve's exchange), so that each request is one object, not two.
        self._request_class = request_class
        self.limits = limits = limits or Limits()
        self._max_url = limits.max_request_line_bytes
        self._max_header_bytes = limits.max_header_bytes
        self._max_header_count = limits.max_header_count
        self._max_body = limits.max_body_bytes
        self._max_raw_head = limits.max_header_bytes + limits.max_request_line_bytes
        self._server_line = b"server: " + server_header + b"\r\n" if server_header else b""
        self._add_date = date_header
        self._parser = httptools.HttpRequestParser(self)
        self._state = RECEIVE_OPEN
        self._events = []
        self._reject = None
        self._idle = True  # between messages
        # Bytes since the parser was last idle at the end of a feed (None past the cap):
        # where a refused method starts (see _failed_message_start).
        self._since_idle = b""
        # A refused method's request line so far, while it is sniffed (see _sniff_method).
        self._prefix = b""
        self._sniff_start = 0  # where the line starts in it, after empty lines
        self._sniff_run = None  # see _RUNS
        # Bytes fed since the last callback that proves progress: bounds what httptools
        # buffers of an unfinished head or trailer line.
        self._raw = 0
        self._data = b""  # the current feed (for the request-line check)
        self._fresh = False  # whether the message being parsed began the current feed
        self._upgrade_length = 0  # Content-Length of an Upgrade request llhttp will skip
        self._body_left = 0  # body bytes of such a request still to take
        # What takes each feed before llhttp parses it, if anything: the body above, or a
        # chunked body's scan (_ChunkedBody) once that body goes on past a feed.
        self._pre_feed = None
        self._chunks = None  # the last chunked body's scan
        self._mark = None  # a message boundary llhttp reached (see _head_end)
        self._carry = b""  # the last bytes before this feed, once _since_idle is past its cap
        self.head_in_progress = False
        # The request that asked to switch protocols, and the bytes after it (see the top).
        self.upgrade_request = None
        self._held = b""
        self._held_eof = False
        self._host_checked = b""  # the last Host value found valid (keep-alive repeats it)
        # The per-message fields, set anew in on_message_begin.
        self._url = b""
        self._headers = []
        self._header_bytes = 0
        self._host = None
        self._rare = None  # Content-Length, TE, Expect, Upgrade
        self._body_bytes = 0
        # The response being sent: for the request at the head of `_requests`.
        self._requests = deque()
        self._started = False
        self._framing = NO_BODY
        self._remaining = 0
        self._keep_alive = False
        self._close_after = False
        self.response_keep_alive = False

    # -- receiving ---------------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[Event]:
        """Events for `data`; b"" means the peer closed its sending side."""
        if self._state is not RECEIVE_OPEN:
            if self._state is UPGRADE:
                return self._hold(data)
            if self._state is SWITCHED:
                raise LocalProtocolError(
                    "the connection switched protocols (RFC 9110 section 7.8): its bytes are "
                    "not HTTP any more"
                )
            if self._state is SNIFF_METHOD and data:
                self._events = []
                return self._sniff_method(data)
            # EOF inside a refused method's line ends it as EOF inside any head does: the
            # line can never be whole, so no verdict (and no later bytes are read).
            if (self._state is RECEIVE_DONE or self._state is SNIFF_METHOD) and not data:
                self._state = RECEIVE_CLOSED
                return [ConnectionClosed()]
            return []
        if not data:
            self._state = RECEIVE_CLOSED
            return [ConnectionClosed()]
        events: list[Event] = []
        self._events = events
        self._data = data
        if self._pre_feed:
            data = self._data = self._pre_feed(data)
            if not data:
                return events
        self._raw += len(data)
        # The parser is between messages: the next one starts this feed (see
        # on_headers_complete).
        self._fresh = self._idle
        parser = self._parser
        try:
            while True:
                try:
                    parser.feed_data(data)
                    break
                except httptools.HttpParserUpgrade as exc:
                    if self.upgrade_request is not None:
                        self._state = UPGRADE
                        self._held = data[exc.args[0] :]
                        break
                    self._fresh = False
                    data = self._after_upgrade(data[exc.args[0] :])
                    if not data:
                        break
                    # What follows starts a message (see _head_end), so a replay of the
                    # bytes since the parser was idle starts there too (_failed_message_start).
                    self._data = data
                    self._mark = (events, len(events), 0, False)
                    self._since_idle = b""
                except httptools.HttpParserError as exc:
                    # A request we read as chunked that llhttp does not (see _take_over).
                    chunks = self._chunks
                    if chunks is None or chunks.head_end < 0 or str(exc) != _TE_REFUSED:
                        raise
                    parser, data = self._take_over(chunks)
                    if not data:
                        break
        except httptools.HttpParserInvalidMethodError:
            # RFC 9110 section 9.1: an unknown method is 501, a malformed one 400. llhttp
            # stops at the first byte that starts no method it knows: read the line.
            return self._sniff_method(self._failed_message_start(data))
        except httptools.HttpParserCallbackError:
            reject = self._reject or _Reject(400, "invalid request")
            return self._fail(reject.status, reject.reason)
        except httptools.HttpParserError as exc:
            return self._llhttp_error(str(exc))
        if self._idle:
            if self._since_idle:
                self._since_idle = b""
        elif self._since_idle is not None:
            since = self._since_idle + data
            if len(since) <= _REPLAY_MAX_BYTES:
                self._since_idle = since
            else:
                self._since_idle = None
                self._carry = since[-3:]
        elif self.head_in_progress:
            # Past the cap only the last bytes are kept, of a head under way: it may end in
            # the next feed with an empty line across the two (see _head_end).
            self._carry = data[-3:] if len(data) >= 3 else (self._carry + data)[-3:]
        if self._raw > self._max_raw_head:
            return self._fail(431, "request head or trailer section too large")
        return events

    def _after_upgrade(self, rest: bytes) -> bytes:
        """llhttp paused after a request carrying an Upgrade we do not switch to, skipping
        any body. We answer it as plain HTTP (RFC 9110 section 7.8 lets a server ignore
        Upgrade), so its body is taken here, by its Content-Length, before
        parsing goes on: never parsed as a request of its own (RFC 9112 section 11.2)."""
        if self._upgrade_length:
            self._events.pop()  # the EndOfMessage llhttp gave too early
            self._body_left = self._upgrade_length
            self._upgrade_length = 0
            self._pre_feed = self._upgrade_body  # the feeds it goes on in
            return self._upgrade_body(rest)
        return rest

    def _hold(self, data: bytes) -> list[Event]:
        if data:
            self._held += data
            return []
        if self._held_eof:
            return []
        self._held_eof = True
        return [ConnectionClosed()]

    def _upgrade_body(self, data: bytes) -> bytes:
        take = data[: self._body_left]
        self._body_left -= len(take)
        if take:
            self._events.append(Data(take))
        if self._body_left:
            return b""
        self._pre_feed = None
        self._events.append(END_OF_MESSAGE)
        # What follows starts a message (see _head_end).
        self._mark = (self._events, len(self._events), 0, False)
        return data[len(take) :]

    def on_body(self, body: bytes) -> None:
        self._raw = 0
        self._body_bytes += len(body)
        if self._max_body and self._body_bytes > self._max_body:
            self._refuse(413, f"body over the {self._max_body}-byte limit")
        self._events.append(Data(body))

    def on_message_complete(self) -> None:
        self._events.append(END_OF_MESSAGE)
        self._idle = True
        self._raw = 0
        self._header_bytes = 0
        if self._body_bytes:
            self._body_bytes = 0
        if self._headers:
            self._headers = []  # trailers were collected

    @property
    def receiving(self) -> bool:
        """Whether more requests may still arrive on this connection."""
        return self._state is RECEIVE_OPEN or self._state is SNIFF_METHOD
