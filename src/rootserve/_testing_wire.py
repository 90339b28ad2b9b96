"""The client's side of the wire for rootserve.testing: a transport that hands a server
`Connection` nothing but a byte sink, and a reader that parses the response bytes it writes.

How this works. `MemoryTransport` is the part of an asyncio transport a `Connection` uses;
every write goes to a `ResponseReader`, which parses incrementally: the head once its blank
line has arrived, then the body framed as RFC 9112 section 6.3 says (no body for HEAD, 1xx,
204 and 304; chunked; Content-Length; else until the connection closes). Interim 1xx
answers other than 101 are skipped. After each write or close the transport calls `wake`,
so the client can run its loop until the reader has what it waits for. `Response` is what a
request returns: the status, the headers in order, the body.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rootserve.server.connection import Connection

__all__ = ["MemoryTransport", "Response", "ResponseReader"]


class ResponseReader:
    """Parses one response, fed in pieces; `chunks` holds body bytes not yet taken."""

    def __init__(self, method: str) -> None:
        self.method = method.upper()
        self.status = 0
        self.headers: list[tuple[str, str]] = []
        self.head_done = False
        self.done = False
        self.chunks: list[bytes] = []
        self._buffer = b""
        self._remaining = -1  # Content-Length bytes left; -1: framed otherwise
        self._chunked = False
        self._until_close = False

    def feed(self, data: bytes) -> None:
        self._buffer += data
        while not self.done:
            progressed = self._body() if self.head_done else self._head()
            if not progressed:
                return

    def closed(self) -> None:
        """The server closed the connection: a body read until close ends here."""
        if self.head_done and self._until_close:
            self.done = True
        if not self.done:
            raise ConnectionError("the server closed the connection before a whole response")

    def _head(self) -> bool:
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            return False
        head, self._buffer = self._buffer[:end].decode("latin-1"), self._buffer[end + 4 :]
        status_line, *lines = head.split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        if 100 <= status < 200 and status != 101:
            return True  # an interim answer (100 Continue, 103 Early Hints): the next head
        headers = [(k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in lines)]
        self.status, self.headers, self.head_done = status, headers, True
        names = {k.lower(): v for k, v in headers}
        if self.method == "HEAD" or status in (101, 204, 304):
            self.done = True
        elif "chunked" in names.get("transfer-encoding", "").lower():
            self._chunked = True
        elif "content-length" in names:
            self._remaining = int(names["content-length"])
            self.done = self._remaining == 0
        else:
            self._until_close = True
        return True

    def _body(self) -> bool:
        if self._until_close or self._remaining >= 0:
            piece = self._buffer if self._until_close else self._buffer[: self._remaining]
            self._buffer = self._buffer[len(piece) :]
            if piece:
                self.chunks.append(piece)
            if not self._until_close:
                self._remaining -= len(piece)
                self.done = self._remaining == 0
            return False
        line_end = self._buffer.find(b"\r\n")
        if line_end < 0:
            return False
        size = int(self._buffer[:line_end].split(b";")[0], 16)
        if size == 0:  # the last chunk; then trailers, if any, up to a blank line
            trailer_end = self._buffer.find(b"\r\n\r\n", line_end)
            if self._buffer[line_end : line_end + 4] != b"\r\n\r\n" and trailer_end < 0:
                return False
            self.done = True
            return False
        if len(self._buffer) < line_end + 2 + size + 2:
            return False
        self.chunks.append(self._buffer[line_end + 2 : line_end + 2 + size])
        self._buffer = self._buffer[line_end + 2 + size + 2 :]
        return True

    def take(self) -> bytes:
        data = b"".join(self.chunks)
        self.chunks.clear()
        return data


class MemoryTransport(asyncio.Transport):
    """What a `Connection` writes goes to `sink`; closing calls `connection_lost` once."""

    def __init__(
        self,
        sink: Callable[[bytes], None],
        wake: Callable[[], None],
        server: tuple[str, int],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        super().__init__()
        self.loop = loop
        self.sink = sink
        self.wake = wake
        self.server = server
        self.closed = False
        self.protocol: Connection | None = None

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "sockname":
            return self.server
        if name == "peername":
            return ("127.0.0.1", 50000)
        return default

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self.closed:
            self.sink(bytes(data))
            self.wake()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        return None

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        return None

    def resume_reading(self) -> None:
        return None

    def is_closing(self) -> bool:
        return self.closed

    def write_eof(self) -> None:
        return None

    def can_write_eof(self) -> bool:
        return False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.protocol is not None:
                self.loop.call_soon(self.protocol.connection_lost, None)
            self.wake()

    def abort(self) -> None:
        self.close()


class Response:
    """A whole response: status, headers in the order sent, and the body."""

    def __init__(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name: str) -> str | None:
        """The first value of header `name` (any case), or None."""
        wanted = name.lower()
        return next((v for k, v in self.headers if k.lower() == wanted), None)

    @property
    def text(self) -> str:
        return self.body.decode(_charset(self.header("content-type")), errors="replace")

    def json(self) -> Any:
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"<Response {self.status}, {len(self.body)} bytes>"


def _charset(content_type: str | None) -> str:
    for part in (content_type or "").split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key.lower() == "charset" and value:
            return value.strip('"')
    return "utf-8"
