"""The sans-IO HTTP/2 server connection in memory: an h2 client linked to it (`Pair`), a
fake clock for the flood windows, and readers of what the server sent."""

from __future__ import annotations

from typing import Any

import h2.config
import h2.connection
import h2.events
from hyperframe.frame import (
    Frame,
    GoAwayFrame,
)

from rootserve.protocol.http2 import (
    H2Limits,
    H2ServerConnection,
)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Pair:
    """A server connection and an h2 client, linked in memory."""

    def __init__(self, limits: H2Limits | None = None, **client_config: Any) -> None:
        self.clock = Clock()
        self.server = H2ServerConnection(limits, date_header=False, clock=self.clock)
        self.server.initiate()
        config = h2.config.H2Configuration(client_side=True, header_encoding=None, **client_config)
        self.client = h2.connection.H2Connection(config)
        self.client.initiate_connection()

    def to_server(self, *, byte_by_byte: bool = False) -> list[Any]:
        data = self.client.data_to_send()
        if not byte_by_byte:
            return self.server.receive_data(data)
        events: list[Any] = []
        for i in range(len(data)):
            events += self.server.receive_data(data[i : i + 1])
        return events

    def to_client(self) -> list[Any]:
        return self.client.receive_data(self.server.data_to_send())

    def handshake(self) -> None:
        self.to_server()
        self.to_client()
        self.to_server()

    def request(
        self,
        stream_id: int,
        path: bytes = b"/",
        method: bytes = b"GET",
        extra: list[tuple[bytes, bytes]] | None = None,
        end: bool = True,
    ) -> None:
        headers = [
            (b":method", method),
            (b":scheme", b"http"),
            (b":authority", b"example.test"),
            (b":path", path),
            *(extra or []),
        ]
        self.client.send_headers(stream_id, headers, end_stream=end)


def of(kind: type, events: list[Any]) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]


def frames(data: bytes) -> list[Any]:
    """Frames serialized by the server, after its SETTINGS."""
    out = []
    while len(data) >= 9:
        frame, length = Frame.parse_frame_header(memoryview(data[:9]))
        frame.parse_body(memoryview(data[9 : 9 + length]))
        out.append(frame)
        data = data[9 + length :]
    return out


def goaway_code(pair: Pair) -> int:
    found = [f for f in frames(pair.server.data_to_send()) if isinstance(f, GoAwayFrame)]
    assert found, "no GOAWAY was sent"
    return int(found[-1].error_code)


def raw(*frames_: Frame) -> bytes:
    return b"".join(frame.serialize() for frame in frames_)
