"""The WebSocket server protocol that a session drives: the `websockets` library's sans-IO
`ServerProtocol`, with one departure from it.

How this works. The library parses frames, answers pings and closes, and fails the
connection on protocol errors; the session (_websocket_session.py) feeds it bytes and reads
its frames. The library treats a close frame that arrives between the fragments of a message
as a protocol error (1002, "incomplete fragmented message"). RFC 6455 allows it: control
frames may be interleaved with fragments (section 5.4), and a close is answered with a close
(section 5.5.1). `recv_frame` forgets the unfinished message before the library sees that
close, so the library runs the normal closing handshake (echoing the peer's code) and the
message, which can never complete, is dropped.
"""

from __future__ import annotations

from websockets.frames import CLOSE, Frame
from websockets.server import ServerProtocol

__all__ = ["WebSocketProtocol"]


class WebSocketProtocol(ServerProtocol):
    """`ServerProtocol`, where a close between fragments closes the connection normally."""

    def recv_frame(self, frame: Frame) -> None:
        if frame.opcode is CLOSE:
            # `current_size` is the size of the fragmented message being received (None
            # when there is none); with None the library handles the close as usual.
            self.current_size = None
        super().recv_frame(frame)
