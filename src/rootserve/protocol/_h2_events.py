"""The events of the sans-IO HTTP/2 server connection (http2.py), per stream: what the server
acts on, translated from h2's own so that the server never sees those."""

from __future__ import annotations

from dataclasses import dataclass

from rootserve.protocol.events import Headers, Request

__all__ = [
    "BodyEnded",
    "BodyReceived",
    "ConnectionEnded",
    "H2Event",
    "RequestReceived",
    "StreamReset",
    "TrailersReceived",
    "Writable",
]


@dataclass(slots=True, frozen=True)
class RequestReceived:
    """A request head (`request.has_body`: its body follows)."""

    stream_id: int
    request: Request


@dataclass(slots=True, frozen=True)
class BodyReceived:
    """A part of a request's body; `flow_length` is what it used of the windows: hand it
    back with `ack` once the bytes are consumed."""

    stream_id: int
    data: bytes
    flow_length: int


@dataclass(slots=True, frozen=True)
class BodyEnded:
    """The request (its body, and its trailers if any) is complete."""

    stream_id: int


@dataclass(slots=True, frozen=True)
class TrailersReceived:
    stream_id: int
    headers: Headers


@dataclass(slots=True, frozen=True)
class StreamReset:
    """The request is cut off: the client reset the stream (RST_STREAM), or, with a
    `reason`, its body broke the size limit (answered 413, or reset if the answer had
    begun). Nothing more goes to or from the app."""

    stream_id: int
    error_code: int
    reason: str = ""


@dataclass(slots=True, frozen=True)
class Writable:
    """A stream whose sending was paused (`send_paused`) may go on."""

    stream_id: int


@dataclass(slots=True, frozen=True)
class ConnectionEnded:
    """The connection is over: the client sent GOAWAY (`by_peer`) or broke a rule (we sent
    GOAWAY with `error_code`). Send what `data_to_send` holds, then close."""

    error_code: int
    by_peer: bool
    reason: str = ""


H2Event = (
    RequestReceived
    | BodyReceived
    | BodyEnded
    | TrailersReceived
    | StreamReset
    | Writable
    | ConnectionEnded
)
