"""An open WebSocket session: frames in and out, after the 101 (RFC 6455 sections 5-7).

How this works. `WebSocketCycle` makes a `WebSocketSession` when the app accepts; from then
on the connection hands every received byte to `data_received`, which feeds the `websockets`
library's sans-IO `ServerProtocol` (as _websocket_protocol.py adapts it: frame parsing,
unmasking, fragments, control frames, permessage-deflate, the size limit, the close
handshake) and turns its frames into `websocket.receive` messages; a text message's
fragments are decoded as they arrive, so bad UTF-8 fails at the first bad fragment.
`receive()` and `send()` are the app's side while the session is open. `end(code, reason)`
is the one place the session finishes for the app: the next `receive()` gives
`websocket.disconnect` with that code.

Flow control: reading pauses while `max_queue` messages wait for the app, and while the
transport's buffer is full (a client that sends pings and reads nothing gets no unbounded
pile of pongs); `send()` waits for the buffer to drain. Pings and the close timeout use the
session's own `deadline`, which the worker's reaper checks: no timer per session.
"""

from __future__ import annotations

import asyncio
import codecs
import os
from collections import deque
from dataclasses import dataclass
from typing import Final

from websockets.exceptions import ProtocolError
from websockets.extensions import Extension
from websockets.frames import BINARY, CLOSE, CONT, PONG, TEXT, Frame, Opcode
from websockets.protocol import OPEN, SEND_EOF
from websockets.typing import BytesLike

from rootserve.asgi._websocket_close import CLOSE_TIMEOUT
from rootserve.asgi._websocket_protocol import FIN_TEXT, WebSocketProtocol, plain_frame
from rootserve.config import Config, default
from rootserve.protocol.exchange import ByteStream, ClientDisconnected
from rootserve.types import SendMessage, WebSocketDisconnectMessage, WebSocketEvent

__all__ = [
    "ABNORMAL",
    "CLOSE_TIMEOUT",
    "GOING_AWAY",
    "NORMAL",
    "SERVICE_RESTART",
    "WSConfig",
    "WebSocketSession",
]

# Close codes, RFC 6455 section 7.4.1.
NORMAL: Final = 1000
GOING_AWAY: Final = 1001  # the server is going down
ABNORMAL: Final = 1006  # closed without a close frame (never sent on the wire)
INVALID_DATA: Final = 1007
INTERNAL_ERROR: Final = 1011
SERVICE_RESTART: Final = 1012  # another process takes over: come back soon
NO_DEADLINE: Final = float("inf")

_utf8_decoder: Final = codecs.getincrementaldecoder("utf-8")


@dataclass(frozen=True, slots=True)
class WSConfig:
    """The WebSocket settings; sizes in bytes, times in seconds, 0 = none. The defaults are
    the settings' (config.py), declared there once."""

    max_size: int = default("ws_max_size")
    max_queue: int = default("ws_max_queue")
    per_message_deflate: bool = default("ws_per_message_deflate")
    ping_interval: float = default("ws_ping_interval")
    ping_timeout: float = default("ws_ping_timeout")

    @classmethod
    def from_config(cls, config: Config) -> WSConfig:
        return cls(
            max_size=config.ws_max_size,
            max_queue=config.ws_max_queue,
            per_message_deflate=config.ws_per_message_deflate,
            ping_interval=config.ws_ping_interval,
            ping_timeout=config.ws_ping_timeout,
        )


def _send_bytes(message: SendMessage) -> BytesLike:
    """The payload of a websocket.send that is not plain text, checked (ASGI spec)."""
    text = message.get("text")
    data = message.get("bytes")
    if (text is None) == (data is None):
        raise TypeError("websocket.send needs exactly one of 'bytes' and 'text' (ASGI spec)")
    if text is not None:
        raise TypeError(f"websocket.send 'text' must be str, got {type(text)}")
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"websocket.send 'bytes' must be bytes, got {type(data)}")
    return data


class WebSocketSession:
    """One accepted WebSocket connection, until both sides have closed."""

    def __init__(
        self,
        stream: ByteStream,
        config: WSConfig,
        loop: asyncio.AbstractEventLoop,
        extensions: list[Extension],
    ) -> None:
        self.channel = stream  # the connection, switched
        self.deadline = NO_DEADLINE  # when on_deadline is due: a ping, or a late close
        self.config = config
        self.loop = loop
        self.ws = ws = WebSocketProtocol(state=OPEN, max_size=config.max_size or None)
        ws.extensions = extensions
        self._plain = not extensions  # no extension in use: data frames are framed here
        self._queue: deque[WebSocketEvent] = deque()
        self._max_queue = config.max_queue or 1 << 62
        self._waiter: asyncio.Future[WebSocketEvent] | None = None
        self._read_paused = False
        self._fragments: list[BytesLike] = []  # of the binary message being received
        self._fragments_text = False  # the fragmented message being received is text
        self._text_parts: list[str] = []  # of that text message, decoded
        self._decoder = _utf8_decoder()  # reset at the first fragment of each text message
        self._ping: bytes | None = None  # the payload of the ping awaiting its pong
        self._ping_sent = 0.0
        self.closing = False  # our close frame is out: the app may send nothing more
        self.ended = False
        self.close_code = ABNORMAL
        self.close_reason = ""
        if config.ping_interval:
            self.deadline = loop.time() + config.ping_interval

    # -- bytes from the client -----------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        ws = self.ws
        if self._plain and not self.closing:
            payload = ws.small_message(data)  # one small whole message, past the parser
            if payload is not None:
                if not self._message(data[0] == FIN_TEXT, payload):
                    self._failed()
                return
        ws.receive_data(data)
        failed = False
        frames: list[Frame] = ws.events_received()  # type: ignore[assignment]  # frames only
        for frame in frames:
            opcode = frame.opcode
            if opcode is TEXT or opcode is BINARY:
                if frame.fin:
                    failed = not self._message(opcode is TEXT, frame.data)
                elif opcode is TEXT:
                    self._fragments_text = True
                    self._decoder.reset()
                    self._text_parts = []
                    failed = not self._text_fragment(frame.data, False)
                else:
                    self._fragments_text = False
                    self._fragments = [frame.data]
            elif opcode is CONT:
                if self._fragments_text:
                    failed = not self._text_fragment(frame.data, frame.fin)
                else:
                    self._fragments.append(frame.data)
                    if frame.fin:
                        whole, self._fragments = b"".join(self._fragments), []
                        failed = not self._message(False, whole)
            elif opcode is CLOSE:
                # RFC 6455 section 5.5.1: the library echoed it (unless it answers ours)
                # and asks for the TCP close, which the server starts (section 7.1.1).
                rcvd = ws.close_rcvd
                assert rcvd is not None
                self.end(rcvd.code, rcvd.reason)
            elif opcode is PONG:
                self._pong(frame.data)
            # PING: the library has queued the pong (RFC 6455 section 5.5.2).
            if failed:
                break
        if failed or ws.parser_exc is not None:
            self._failed()
        else:
            self._flush()

    def _failed(self) -> None:
        ws = self.ws
        if ws.close_sent is not None:
            # RFC 6455 section 7.1.7: the connection failed with the code we sent (1002 for
            # a protocol error, 1007 for bad UTF-8, 1009 for a message over max_size).
            self.end(ws.close_sent.code, ws.close_sent.reason)
        self._flush()

    def _message(self, text: bool, data: BytesLike) -> bool:
        if not text:
            return self._deliver({"type": "websocket.receive", "bytes": bytes(data)})
        try:
            return self._deliver({"type": "websocket.receive", "text": str(data, "utf-8")})
        except UnicodeDecodeError:
            return self._invalid_utf8()

    def _text_fragment(self, data: BytesLike, fin: bool) -> bool:
        """A text fragment, decoded on arrival: RFC 6455 section 8.1 fails the connection
        as soon as the text is known to be invalid UTF-8 ("fail fast"), not at its end."""
        try:
            self._text_parts.append(self._decoder.decode(data, fin))
        except UnicodeDecodeError:
            return self._invalid_utf8()
        if not fin:
            return True
        text, self._text_parts = "".join(self._text_parts), []
        return self._deliver({"type": "websocket.receive", "text": text})

    def _invalid_utf8(self) -> bool:
        if self.closing:
            return True  # we sent a close: what still arrives is dropped (RFC 6455 1.4)
        # RFC 6455 section 8.1: text must be UTF-8, else fail with 1007.
        self.ws.fail(INVALID_DATA, "invalid UTF-8 in a text message")
        return False

    def _deliver(self, message: WebSocketEvent) -> bool:
        if self.closing:
            return True  # we sent a close: what still arrives is dropped (RFC 6455 1.4)
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(message)
                return True
        queue = self._queue
        queue.append(message)
        if len(queue) >= self._max_queue and not self._read_paused:
            self._read_paused = True
            self.channel.pause_reading()
        return True

    def _pong(self, data: BytesLike) -> None:
        if self._ping is not None and data == self._ping and not self.closing:
            self._ping = None
            interval = self.config.ping_interval
            self.deadline = max(self.loop.time(), self._ping_sent + interval)

    def connection_lost(self) -> None:
        self.end(ABNORMAL, "")

    def shutdown(self, restart: bool) -> None:
        """Graceful stop: close with 1012 (Service Restart) when another process takes
        over (a rolling restart, a retired worker), else 1001 (Going Away, RFC 6455
        section 7.4.1: the server is going down)."""
        if not (self.ended or self.closing):
            code, reason = (
                (SERVICE_RESTART, "server restarting")
                if restart
                else (GOING_AWAY, "server shutting down")
            )
            self.close(code, reason)
            self.end(code, reason)

    def eof_received(self) -> None:
        """The client closed its sending side: without a close frame first, that is 1006."""
        self.ws.receive_eof()
        self.end(ABNORMAL, "")
        self._flush()
        self.channel.close()

    def writable(self) -> None:
        """The transport drained: reading goes on if it stopped for that (see _flush)."""
        if self._read_paused and len(self._queue) < self._max_queue:
            self._read_paused = False
            self.channel.resume_reading()

    def on_deadline(self) -> None:
        """The connection's deadline passed: a ping is due, or a pong or a close is late."""
        ws = self.ws
        if self.closing or ws.state is not OPEN:
            self.channel.close()  # RFC 6455 section 7.1.1: the peer did not close in time
            return
        if self._ping is not None:
            # The pong did not come back in time: fail the connection (RFC 6455 7.1.7).
            ws.fail(INTERNAL_ERROR, "keepalive ping timeout")
            self.end(INTERNAL_ERROR, "keepalive ping timeout")
            self._flush()
            return
        config = self.config
        now = self.loop.time()
        payload = os.urandom(4)  # tells this ping's pong from an unsolicited one (5.5.3)
        ws.send_ping(payload)
        self._flush()
        if config.ping_timeout:
            self._ping = payload
            self._ping_sent = now
            self.deadline = now + config.ping_timeout
        else:
            self.deadline = now + config.ping_interval

    # -- the app's side ------------------------------------------------------------------

    async def receive(self) -> WebSocketEvent:
        queue = self._queue
        if queue:
            message = queue.popleft()
            if self._read_paused and len(queue) < self._max_queue and not self.channel.write_paused:
                self._read_paused = False
                self.channel.resume_reading()
            return message
        if self.ended:
            return self._disconnect_message()
        waiter: asyncio.Future[WebSocketEvent] = self.loop.create_future()
        self._waiter = waiter
        return await waiter

    async def send(self, message: SendMessage) -> None:
        kind = message.get("type")
        if self.ended:
            raise ClientDisconnected(f"the WebSocket is closed ({self.close_code}); {kind!r}")
        if not self.closing:
            if kind == "websocket.send":
                text = message.get("text")
                if text is not None and type(text) is str and message.get("bytes") is None:
                    frame = self._frame(TEXT, text.encode())
                else:
                    frame = self._frame(BINARY, _send_bytes(message))
                channel = self.channel
                channel.write(frame)
                if channel.write_paused:
                    await channel.drain()
                return
            if kind == "websocket.close":
                code = message.get("code", NORMAL)
                reason = message.get("reason") or ""
                if type(code) is not int or not isinstance(reason, str):
                    raise TypeError(
                        f"websocket.close 'code' must be an int and 'reason' a str, got "
                        f"{code!r} and {reason!r}"
                    )
                self.close(code, reason)
                return
            raise RuntimeError(
                f"Unexpected ASGI message {kind!r}: the WebSocket is open, expecting "
                "websocket.send or websocket.close"
            )
        raise RuntimeError(f"Unexpected ASGI message {kind!r} after websocket.close")

    def _frame(self, opcode: Opcode, payload: BytesLike) -> bytes:
        """One unfragmented data frame (RFC 6455 section 5.2). With no extension in use it is
        made here (`plain_frame`); otherwise the library frames (and compresses) it. The
        library's state is OPEN: a close from either side, or a failure, has set `closing`
        or `ended` first."""
        if self._plain:
            return plain_frame(opcode, payload)
        ws = self.ws
        if opcode is TEXT:
            ws.send_text(payload)
        else:
            ws.send_binary(payload)
        return b"".join(ws.data_to_send())

    # -- ending ----------------------------------------------------------------------------

    def close(self, code: int, reason: str) -> None:
        """Start the closing handshake (RFC 6455 section 7.1.2)."""
        try:
            self.ws.send_close(code, reason)
        except ProtocolError as exc:
            raise ValueError(
                f"websocket.close with code {code!r} and reason {reason!r}: {exc} "
                "(RFC 6455 section 7.4: 1000-1003, 1007-1014 or 3000-4999; a reason of at "
                "most 123 bytes)"
            ) from None
        self.closing = True
        self._ping = None
        self.deadline = self.loop.time() + CLOSE_TIMEOUT
        self._flush()

    def end(self, code: int, reason: str) -> None:
        """The session is over for the app: it gets websocket.disconnect with `code`."""
        if self.ended:
            return
        self.ended = True
        self.close_code = code
        self.close_reason = reason
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(self._disconnect_message())

    def _disconnect_message(self) -> WebSocketDisconnectMessage:
        code, reason = self.close_code, self.close_reason
        return {"type": "websocket.disconnect", "code": code, "reason": reason}

    def _flush(self) -> None:
        out = self.ws.data_to_send()
        if out:
            channel = self.channel
            channel.write(b"".join(out))
            if out[-1] == SEND_EOF:
                channel.close()  # after the write: the transport flushes first
            elif channel.write_paused and not self._read_paused:
                # Pongs and echoed closes must not pile up for a client that sends and does
                # not read: stop reading until the transport drains (writable).
                self._read_paused = True
                channel.pause_reading()
