"""The sans-IO HTTP/2 server connection: bytes in, request events out; answers in, bytes out.

How this works. h2 (python-hyper) is the engine: frames, HPACK, stream states, flow control,
and the checks RFC 9113 section 8 asks of each request's fields (pseudo-headers, no
connection-specific field, lower-case names, no CR/LF/NUL, Host agreeing with :authority).
`H2ServerConnection` adds what a server needs around it:

- Every received byte passes a frame scanner first (_h2_frames.py), which ends a connection
  that floods (rapid reset, PING, SETTINGS, CONTINUATION) with GOAWAY ENHANCE_YOUR_CALM
  before h2 does the work the flood asks for.
- The settings it announces (`H2Limits`). One it enforces itself: h2 refuses a stream over
  the concurrency limit before it decodes its header block, which leaves HPACK's table out
  of step and costs the whole connection; so h2 is told no limit, and a stream over ours is
  refused alone, its block decoded, with REFUSED_STREAM (RFC 9113 section 5.1.2), which
  tells the client it may retry it (too many of those are a flood too).
- Each request head becomes a `Request` (of the server's `request_class`) with
  `http_version` "2": method and target from the pseudo-headers, `host` from :authority
  (RFC 9113 section 8.3.1), cookie fields joined (section 8.2.3). A head whose fields pass
  `max_header_list_size` gets a 431 (section 10.5.1; RFC 6585 section 5); one with a method
  that is no token or a target that is not visible ASCII is malformed: RST_STREAM
  PROTOCOL_ERROR (section 8.1.1). What h2 finds malformed ends the connection with GOAWAY
  PROTOCOL_ERROR (section 5.4.1 allows it; h2 has already written the GOAWAY). CONNECT
  gets a 501: no tunnels here. A body over `max_body_bytes` gets a 413 (the app, if it was
  called, sees its request cut off).
- The events the server acts on (_h2_events.py) are few: h2's own are translated here, so
  the server never sees them.
- `receive_data` never raises: whatever the bytes, the answer is events (at worst
  `ConnectionEnded`) and bytes to send.
- A graceful GOAWAY (`goaway`) is written as a frame of our own: h2 can send nothing more
  once it has sent one, and the streams it names still have answers to send. Streams a
  client opens after it are refused; `close` sends the final GOAWAY.
- The h2c upgrade (RFC 7540 section 3.2; RFC 9113 section 3.1 deprecates it, clients still
  send it): an HTTP/1.1 request that asks for it (`h2c_settings`) is read whole on HTTP/1.1,
  answered `H2C_SWITCH` (101), and becomes stream 1 (`upgrade`), its body included, with
  the client's HTTP2-Settings taken as its first SETTINGS.

The answer's side is _h2_send.py; the h2c upgrade, _h2_upgrade.py; the limits' defaults,
_h2_limits.py.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Final

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from h2.errors import ErrorCodes
from hyperframe.frame import GoAwayFrame

from rootserve.protocol._h2_events import (
    BodyEnded,
    BodyReceived,
    ConnectionEnded,
    H2Event,
    RequestReceived,
    StreamReset,
    TrailersReceived,
    Writable,
)
from rootserve.protocol._h2_frames import PREFACE, FrameScanner, sniff_preface
from rootserve.protocol._h2_limits import HARD_HEADER_FACTOR, H2Limits
from rootserve.protocol._h2_send import SendSide, Stream
from rootserve.protocol._h2_upgrade import H2C_SWITCH, UpgradeSide, h2c_settings
from rootserve.protocol.events import Headers, Request
from rootserve.protocol.rules import TOKEN

__all__ = [
    "H2C_SWITCH",
    "PREFACE",
    "BodyEnded",
    "BodyReceived",
    "ConnectionEnded",
    "ErrorCodes",
    "H2Event",
    "H2Limits",
    "H2ServerConnection",
    "RequestReceived",
    "StreamReset",
    "TrailersReceived",
    "Writable",
    "h2c_settings",
    "sniff_preface",
]

_UNLIMITED_STREAMS: Final = 2**31 - 1
_TARGET_CHARS: Final = frozenset(range(0x21, 0x7F))  # visible ASCII (as llhttp admits)


class H2ServerConnection(SendSide, UpgradeSide):
    """One HTTP/2 connection, server side (see the module's docstring)."""

    def __init__(
        self,
        limits: H2Limits | None = None,
        *,
        request_class: Callable[..., Request] = Request,
        server_header: bytes | None = None,
        date_header: bool = True,
        clock: Callable[[], float] = time.monotonic,
        max_body_bytes: int = 0,
    ) -> None:
        """`clock` times the flood windows (the server's loop time). `max_body_bytes`: a
        request body larger is answered 413 (0: no limit; HTTP/1.1's `Limits` has it)."""
        self.limits = limits = limits or H2Limits()
        self._request_class = request_class
        self._server_header = server_header
        self._date_header = date_header
        self._clock = clock
        self._max_body = max_body_bytes
        self._scanner = FrameScanner(limits.floods())
        config = h2.config.H2Configuration(
            client_side=False,
            header_encoding=None,
            validate_inbound_headers=True,
            normalize_inbound_headers=True,
            # Our fields are checked once, by the send side (_h2_send._field).
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
        )
        self._h2 = h2.connection.H2Connection(config=config)
        self._streams: dict[int, Stream] = {}
        self._resumed: list[int] = []
        self._discarding: dict[int, int] = {}
        self._out = b""  # frames of our own, to go before h2's next bytes
        self._draining = False  # a graceful GOAWAY went out: no new stream
        self._calm: str | None = None  # a flood of refused streams: why the connection ends
        self.ended = False  # the connection is over (ConnectionEnded was reported)
        self.initiated = False  # the server's preface is queued (`initiate`)

    # -- the start -------------------------------------------------------------------------

    def initiate(self, upgrade_settings: bytes | None = None) -> None:
        """Queue the server's connection preface (RFC 9113 section 3.4): its SETTINGS,
        and the connection's receive window grown to `connection_window_size`.
        `upgrade_settings`: the HTTP2-Settings of an h2c upgrade (see `upgrade`)."""
        self.initiated = True
        limits = self.limits
        conn = self._h2
        codes = h2.settings.SettingCodes
        announced = {
            codes.MAX_CONCURRENT_STREAMS: limits.max_concurrent_streams,
            codes.MAX_HEADER_LIST_SIZE: limits.max_header_list_size,
            codes.INITIAL_WINDOW_SIZE: limits.initial_window_size,
            codes.ENABLE_PUSH: 0,
        }
        conn.local_settings = h2.settings.Settings(client=False, initial_values=announced)
        if upgrade_settings is None:
            conn.initiate_connection()
        else:
            conn.initiate_upgrade_connection(upgrade_settings)
        # What h2 itself holds to, once the SETTINGS above are written: no stream limit
        # (ours is enforced in _on_request, see the module's docstring), and HPACK decoding
        # up to the hard bound (a block between the two is answered 431).
        announced[codes.MAX_CONCURRENT_STREAMS] = _UNLIMITED_STREAMS
        conn.local_settings = h2.settings.Settings(client=False, initial_values=announced)
        conn.decoder.max_header_list_size = HARD_HEADER_FACTOR * limits.max_header_list_size
        grow = limits.connection_window_size - conn.inbound_flow_control_window
        if grow > 0:
            conn.increment_flow_control_window(grow)

    # -- receiving -------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[H2Event]:
        """The events `data` (the next bytes received) makes. Never raises."""
        if self.ended or not data:
            return []
        broken = self._scanner.scan(data, self._clock())
        if broken is not None:
            return self._end(ErrorCodes.ENHANCE_YOUR_CALM, broken)
        try:
            received = self._h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            # h2 wrote the GOAWAY (with the error's code) before raising.
            self.ended = True
            self._streams.clear()
            self._discarding.clear()
            return [
                ConnectionEnded(int(exc.error_code or ErrorCodes.PROTOCOL_ERROR), False, str(exc))
            ]
        except Exception as exc:  # a fault in h2 must end this connection, not the server
            return self._end(ErrorCodes.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}")
        events: list[H2Event] = []
        for event in received:
            self._translate(event, events)
            if self._calm is not None:  # too many streams refused (see _refuse_stream)
                return self._end(ErrorCodes.ENHANCE_YOUR_CALM, self._calm)
        if self._resumed:
            events.extend(Writable(stream_id) for stream_id in self._resumed)
            self._resumed.clear()
        return events

    def _translate(self, event: h2.events.Event, events: list[H2Event]) -> None:
        if isinstance(event, h2.events.DataReceived):
            self._on_data(event, events)
        elif isinstance(event, h2.events.RequestReceived):
            self._on_request(event, events)
        elif isinstance(event, h2.events.StreamEnded):
            self._discarding.pop(event.stream_id, None)
            stream = self._streams.get(event.stream_id)
            # (Not for a request without body: h2 reports its end as well.)
            if stream is not None and stream.receiving and not stream.refused:
                stream.receiving = False
                events.append(BodyEnded(stream.stream_id))
        elif isinstance(event, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged):
            self._pump_all()
        elif isinstance(event, h2.events.TrailersReceived):
            if event.stream_id in self._streams:
                events.append(TrailersReceived(event.stream_id, list(event.headers or ())))
        elif isinstance(event, h2.events.StreamReset):
            self._discarding.pop(event.stream_id, None)
            if self._streams.pop(event.stream_id, None) is not None:
                events.append(StreamReset(event.stream_id, int(event.error_code or 0)))
        elif isinstance(event, h2.events.ConnectionTerminated):
            # h2 can send nothing after the client's GOAWAY: the connection is over.
            self.ended = True
            self._streams.clear()
            self._discarding.clear()
            events.append(ConnectionEnded(int(event.error_code or 0), True))
        # PING and SETTINGS are acknowledged by h2; PRIORITY is advice we do not take.

    def _on_data(self, event: h2.events.DataReceived, events: list[H2Event]) -> None:
        stream_id = event.stream_id
        data = event.data or b""
        length = event.flow_controlled_length or 0
        stream = self._streams.get(stream_id)
        if stream is None or stream.refused:
            self.ack(stream_id, length)  # answered (or refused) already: dropped
            if stream_id in self._discarding:
                dropped = self._discarding[stream_id] = self._discarding[stream_id] + len(data)
                if self._max_body and dropped > self._max_body:
                    self.reset(stream_id, ErrorCodes.NO_ERROR)  # enough of it
            return
        stream.received += len(data)
        if self._max_body and stream.received > self._max_body:
            self.ack(stream_id, length)
            self._too_large(stream, events)
            return
        events.append(BodyReceived(stream_id, data, length))

    def _on_request(self, event: h2.events.RequestReceived, events: list[H2Event]) -> None:
        stream_id = event.stream_id
        has_body = event.stream_ended is None
        if self._draining:
            self.reset(stream_id, ErrorCodes.REFUSED_STREAM)  # after our GOAWAY's last id
            return
        if len(self._streams) + len(self._discarding) >= self.limits.max_concurrent_streams:
            self._refuse_stream(stream_id, ErrorCodes.REFUSED_STREAM)
            return
        pseudo: dict[bytes, bytes] = {}
        headers: Headers = []
        cookies: list[bytes] = []
        size = 0
        for name, value in event.headers or ():
            size += len(name) + len(value) + 32
            if name[:1] == b":":
                pseudo[name] = value  # h2 checked each appears once, before the others
            elif name == b"cookie":
                cookies.append(value)
            else:
                headers.append((name, value))
        method = pseudo.get(b":method", b"")
        stream = Stream(stream_id, method.decode("latin-1"), has_body)
        self._streams[stream_id] = stream
        if size > self.limits.max_header_list_size:
            self.send_error(stream_id, 431, "request header fields too large")
            return
        if method == b"CONNECT":
            # RFC 9113 section 8.5: a tunnel; an application server makes none.
            self.send_error(stream_id, 501, "CONNECT is not supported")
            return
        if self._max_body and has_body:
            length = next((value for name, value in headers if name == b"content-length"), b"")
            if length.isdigit() and int(length) > self._max_body:  # (h2 checked it is a number)
                self._too_large(stream, None)
                return
        target = pseudo.get(b":path", b"")
        # RFC 9113 section 8.3.1: an origin-form target ("/..."), or "*" for OPTIONS.
        form = target[:1] == b"/" or (target == b"*" and method == b"OPTIONS")
        if not form or TOKEN.fullmatch(method) is None or not _TARGET_CHARS.issuperset(target):
            self._refuse_stream(stream_id, ErrorCodes.PROTOCOL_ERROR)  # malformed (8.1.1)
            return
        if cookies:
            headers.append((b"cookie", b"; ".join(cookies)))
        authority = pseudo.get(b":authority")
        if authority is not None and not any(name == b"host" for name, _ in headers):
            headers.insert(0, (b"host", authority))
        path, _, query = target.partition(b"?")
        expect_continue = has_body and any(
            name == b"expect" and value.lower() == b"100-continue" for name, value in headers
        )
        request = self._request_class(
            method=stream.method,
            target=target,
            path=path,
            query=query,
            http_version="2",
            headers=headers,
            keep_alive=True,
            expect_continue=expect_continue,
            has_body=has_body,
        )
        events.append(RequestReceived(stream_id, request))

    def _refuse_stream(self, stream_id: int, code: ErrorCodes) -> None:
        """Reset a stream the client should not have opened; these count with the client's
        own resets, a flood either way (`note_reset`)."""
        self.reset(stream_id, code)
        self._calm = self._scanner.note_reset(self._clock())

    def _too_large(self, stream: Stream, events: list[H2Event] | None) -> None:
        """RFC 9110 section 15.5.14: 413; `events` (None: the app was never called) learn
        that the request is cut off."""
        reason = f"body over the {self._max_body}-byte limit"
        self.refuse_body(stream.stream_id, 413, reason)
        if events is not None:
            events.append(StreamReset(stream.stream_id, ErrorCodes.CANCEL, reason))

    def refuse_body(self, stream_id: int, status: int, reason: str) -> None:
        """The request's body broke a rule (too large, too slow): answer `status`, or reset
        the stream if the answer has begun; the rest of the body is not read."""
        stream = self._streams.get(stream_id)
        if stream is None:
            return
        stream.refused = True
        if stream.answered:
            self.reset(stream_id, ErrorCodes.CANCEL)
        else:
            self.send_error(stream_id, status, reason)

    def ack(self, stream_id: int, size: int) -> None:
        """`size` flow-controlled bytes of the stream were consumed: give the windows back
        (h2 sends WINDOW_UPDATE once enough is owed)."""
        if size > 0 and not self.ended:
            # (A ProtocolError: the connection is closing, there is nothing to give back.)
            with contextlib.suppress(h2.exceptions.ProtocolError):
                self._h2.acknowledge_received_data(size, stream_id)

    # -- the connection --------------------------------------------------------------------

    @property
    def open_streams(self) -> int:
        """Streams whose response has not gone out whole."""
        return len(self._streams)

    @property
    def frame_in_progress(self) -> bool:
        """A frame (or a header block) has begun arriving and is not whole yet."""
        return self._scanner.in_frame

    @property
    def last_stream_id(self) -> int:
        return self._h2.highest_inbound_stream_id

    def take_resumed(self) -> list[Writable]:
        """The streams a send call un-paused (a stream's end, flushed at once)."""
        resumed = [Writable(stream_id) for stream_id in self._resumed]
        self._resumed.clear()
        return resumed

    def goaway(self) -> None:
        """A graceful stop (RFC 9113 section 6.8): tell the client that no stream after
        the last one it opened will be served; those already open are answered."""
        if self._draining or self.ended:
            return
        self._draining = True
        frame = GoAwayFrame(0, last_stream_id=self._h2.highest_inbound_stream_id)
        self._out += self._h2.data_to_send() + frame.serialize()

    def close(self, error_code: int = ErrorCodes.NO_ERROR) -> None:
        """The final GOAWAY; then nothing more is sent."""
        if not self.ended:
            self.ended = True
            self._streams.clear()
            self._discarding.clear()
            self._h2.close_connection(error_code)

    def data_to_send(self) -> bytes:
        out = self._out + self._h2.data_to_send()
        self._out = b""
        return out

    def _end(self, code: ErrorCodes, reason: str) -> list[H2Event]:
        self.close(code)
        return [ConnectionEnded(int(code), False, reason)]
