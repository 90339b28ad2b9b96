"""The WebSocket side of rootserve.testing: a client session over a server `Connection`.

How this works. websockets' sans-IO `ClientProtocol` makes the handshake request and the
client's frames (masked, as RFC 6455 section 5.3 requires of a client) and parses what the
server writes. Its bytes go into the connection's `data_received`, so the server's own
handshake, switch and session code answers them; the connection's writes come back through
a `MemoryTransport` into the protocol, whose events wait in a queue until a `receive_*`
call takes them. Replies the protocol makes by itself (a pong, the echo of a close) are
written back on the next loop pass, never from inside the server's write.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

from rootserve._testing_wire import MemoryTransport

__all__ = ["WebSocketClosed", "WebSocketRejected", "WebSocketSession"]


class WebSocketRejected(Exception):
    """The app answered the handshake with an HTTP response instead of switching."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"the WebSocket handshake got HTTP {status}, not 101")
        self.status = status
        self.body = body


class WebSocketClosed(Exception):
    """The server closed the WebSocket; `code` is its close code (1006: no close frame)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"the WebSocket closed with code {code} {reason!r}".rstrip())
        self.code = code
        self.reason = reason


class WebSocketSession:
    """One WebSocket, opened by `Client.websocket_connect`; also a context manager."""

    def __init__(self, client: Any, path: str, subprotocols: list[str]) -> None:
        # `client`: the rootserve.testing.Client that opens it (the floor above this one).
        self.client = client
        self.proto = ClientProtocol(
            parse_uri(f"ws://{client.host}{path}"),
            subprotocols=[Subprotocol(name) for name in subprotocols] or None,
        )
        self.frames: deque[Frame] = deque()
        self.response: Response | None = None
        self.transport = MemoryTransport(self._received, client._wake, client.address, client.loop)
        self.connection = client._new_connection()
        self.transport.protocol = self.connection
        self.proto.send_request(self.proto.connect())
        self.client.errors.clear()
        self.client._run_soon(self._open)
        self.client._wait(lambda: self.response is not None, self.transport)
        response = self.response
        if response is None or response.status_code != 101:
            self.client._close_transport(self.transport)
            status = 0 if response is None else response.status_code
            raise WebSocketRejected(status, b"" if response is None else response.body)
        self.subprotocol = response.headers.get("Sec-WebSocket-Protocol")

    def _open(self) -> None:
        self.connection.connection_made(self.transport)
        self._push()

    def _received(self, data: bytes) -> None:
        self.proto.receive_data(data)
        for event in self.proto.events_received():
            if isinstance(event, Response):
                self.response = event
            elif isinstance(event, Frame):  # (a client receives no Request)
                self.frames.append(event)
        # A reply of its own (a pong, a close's echo) goes out on the next loop pass.
        self.client.loop.call_soon(self._push)

    def _push(self) -> None:
        data = b"".join(self.proto.data_to_send())
        if data and not self.transport.closed:
            self.connection.data_received(data)

    def _send(self) -> None:
        self.client._run_soon(self._push)

    def send_text(self, text: str) -> None:
        self.proto.send_text(text.encode())
        self._send()

    def send_bytes(self, data: bytes) -> None:
        self.proto.send_binary(data)
        self._send()

    def _receive(self) -> Frame:
        """The next whole message (fragments joined)."""
        parts: list[Frame] = []
        while True:
            self.client._wait(lambda: bool(self.frames), self.transport)
            if not self.frames:
                raise WebSocketClosed(1006, "")
            frame = self.frames.popleft()
            if frame.opcode is Opcode.CLOSE:
                close = self.proto.close_rcvd
                raise WebSocketClosed(close.code if close else 1005, close.reason if close else "")
            if frame.opcode in (Opcode.PING, Opcode.PONG):
                continue
            parts.append(frame)
            if frame.fin:
                data = b"".join(bytes(part.data) for part in parts)
                return Frame(parts[0].opcode, data)

    def receive_text(self) -> str:
        frame = self._receive()
        if frame.opcode is not Opcode.TEXT:
            raise TypeError("expected a text message, got a binary one")
        return bytes(frame.data).decode()

    def receive_bytes(self) -> bytes:
        frame = self._receive()
        if frame.opcode is not Opcode.BINARY:
            raise TypeError("expected a binary message, got a text one")
        return bytes(frame.data)

    def close(self, code: int = 1000) -> None:
        """Send a close frame, wait for the server's, and let the session end."""
        if self.proto.state is State.OPEN:
            self.proto.send_close(code)
            self._send()
        if self.proto.state is State.CLOSING:  # the server's close frame, then its close
            self.client._wait(self._closed, self.transport)
        self.client._close_transport(self.transport)

    def _closed(self) -> bool:
        return self.proto.state is State.CLOSED

    def __enter__(self) -> WebSocketSession:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
