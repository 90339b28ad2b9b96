"""The WebSocket server protocol that a session drives: the `websockets` library's sans-IO
`ServerProtocol`, with one departure from it and one shortcut past it.

How this works. The library parses frames, answers pings and closes, and fails the
connection on protocol errors; the session (_websocket_session.py) feeds it bytes and reads
its frames.

- The departure. The library treats a close frame that arrives between the fragments of a
  message as a protocol error (1002, "incomplete fragmented message"). RFC 6455 allows it:
  control frames may be interleaved with fragments (section 5.4), and a close is answered
  with a close (section 5.5.1). `recv_frame` forgets the unfinished message before the
  library sees that close, so the library runs the normal closing handshake (echoing the
  peer's code) and the message, which can never complete, is dropped.
- The shortcut, `small_message`. Most reads of a chat or an RPC client hold one whole small
  message: a single frame with FIN set, text or binary, masked, no extension bits, under
  126 bytes. The library parses each frame with a chain of generators, which cost about a
  third of the server's Python time per echoed message (cProfile of benchmarks/run.py's
  ws-echo). When the library is idle between frames and the bytes are exactly such a frame,
  the payload is unmasked here and the library never sees it; it would have kept no state
  for such a frame (no fragment in progress, no size left to count). Anything else (several
  frames, a part of one, control frames, extensions, a frame the library must refuse) goes
  to the library, which applies every rule as before.
- The way out, `plain_frame`: with no extension in use, a data frame the session sends is
  its payload behind a header from a table, not the library's framing.
"""

from __future__ import annotations

import struct
from typing import Any, Final

from websockets.frames import BINARY, CLOSE, TEXT, Frame, Opcode
from websockets.protocol import OPEN
from websockets.server import ServerProtocol
from websockets.streams import StreamReader
from websockets.typing import BytesLike

try:
    from websockets.speedups import apply_mask
except ImportError:  # (the library's pure-Python build)
    from websockets.utils import apply_mask

__all__ = ["FIN_TEXT", "WebSocketProtocol", "plain_frame"]

# First byte of a small whole message: FIN, no RSV bit, opcode text (1) or binary (2).
FIN_TEXT: Final = 0x81
_FIN_BINARY: Final = 0x82
_MASKED: Final = 0x80
_HEADER: Final = 6  # two bytes, then the 4-byte masking key (RFC 6455 section 5.2)
# The library's parser waits in this generator between two frames, and only then.
_BETWEEN_FRAMES: Final = StreamReader.at_eof.__code__
# A server's frame header: FIN + opcode, then the length (server frames are not masked).
_SHORT_HEADERS: Final = {op: [bytes((0x80 | op, n)) for n in range(126)] for op in (TEXT, BINARY)}
_pack_16: Final = struct.Struct("!BBH").pack
_pack_64: Final = struct.Struct("!BBQ").pack


def plain_frame(opcode: Opcode, payload: BytesLike) -> bytes:
    """One unfragmented text or binary frame with no extension in use (RFC 6455 section
    5.2), its header from a table for the short payloads most messages have."""
    size = len(payload)
    if size < 126:
        return _SHORT_HEADERS[opcode][size] + payload
    if size < 1 << 16:
        return _pack_16(0x80 | opcode, 126, size) + payload
    return _pack_64(0x80 | opcode, 127, size) + payload


class WebSocketProtocol(ServerProtocol):
    """`ServerProtocol`, where a close between fragments closes the connection normally,
    and a read that is one small whole message may skip the library's parser."""

    def recv_frame(self, frame: Frame) -> None:
        if frame.opcode is CLOSE:
            # `current_size` is the size of the fragmented message being received (None
            # when there is none); with None the library handles the close as usual.
            self.current_size = None
        super().recv_frame(frame)

    def small_message(self, data: bytes) -> bytes | None:
        """The unmasked payload when `data` is exactly one small whole text or binary
        message (text when `data[0]` is FIN_TEXT) and the library is idle between frames;
        else None, and `data` is for `receive_data`. Call it only with no extension in use
        (an extension may give the RSV bits a meaning)."""
        if len(data) < _HEADER:
            return None
        first = data[0]
        size = data[1] ^ _MASKED  # the length, if the mask bit is set (it must be)
        if (
            first in (FIN_TEXT, _FIN_BINARY)
            and size < 126
            and len(data) == _HEADER + size
            and self.current_size is None
            and self.state is OPEN
            and (self.max_message_size is None or size <= self.max_message_size)
        ):
            # The innermost generator the parser waits in (ServerProtocol.parse delegates
            # to Protocol.parse, which waits in the reader's at_eof or read_exact).
            waiting: Any = self.parser  # a generator (typeshed's Generator has no gi_*)
            while (inner := waiting.gi_yieldfrom) is not None:
                waiting = inner
            if waiting.gi_code is _BETWEEN_FRAMES:
                return apply_mask(data[_HEADER:], data[2:_HEADER])
        return None
