"""`wsgi.input`: the request body, fed by the event loop, read by an app thread.

How this works. The loop thread `feed`s body chunks as they arrive and calls `end()` after
the last; the app thread's `read()` takes them, waiting on a lock the loop releases when it
is ahead of the client. When the buffer passes `HIGH_WATER` the connection stops reading from
the socket (so a fast uploader to a slow app holds one buffer, not the whole body); a read
that drains it below `LOW_WATER` asks the loop to resume. PEP 3333 "Input and Error
Streams": `read`, `readline`, `readlines` and iteration; reading past the end returns b"".
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from typing import Final

from rootserve.protocol.exchange import ClientDisconnected
from rootserve.units import KIB

__all__ = ["EMPTY_INPUT", "BodyInput", "ClientDisconnected", "EmptyInput"]

HIGH_WATER: Final = 256 * KIB
LOW_WATER: Final = 64 * KIB


class EmptyInput:
    """`wsgi.input` of a request without a body."""

    def read(self, size: int | None = -1) -> bytes:
        return b""

    def readline(self, size: int | None = -1) -> bytes:
        return b""

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        return []

    def __iter__(self) -> Iterator[bytes]:
        return iter(())


EMPTY_INPUT: Final = EmptyInput()


class BodyInput:
    """A body that may still be arriving. Loop side: feed, end, abort. App side: read."""

    def __init__(
        self,
        *,
        resume_reading: Callable[[], None],
        ask_for_body: Callable[[], None] | None = None,
    ) -> None:
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._done = False
        self._aborted = False
        # A lock, and a lock of the app thread's own while it waits for more, rather than a
        # threading.Condition: one body has one reader, and a Condition costs 6 us to build
        # (its __init__ probes the lock with three AttributeErrors) and runs Python in each
        # notify(). Measured: 319k -> 284k instructions per 64 KiB POST (with runner.py's
        # trims), benchmarks/instructions.py --wsgi-post.
        self._lock = threading.Lock()
        self._waiter: threading.Lock | None = None
        self._resume_reading = resume_reading  # thread-safe: schedules on the loop
        self._ask_for_body = ask_for_body  # sends 100 Continue (RFC 9110 section 10.1.1)
        self._line = b""  # what readline() took beyond a line end

    # -- the loop's side -------------------------------------------------------------------

    @property
    def full(self) -> bool:
        """As much is buffered as reading allows before it pauses."""
        return self._buffered > HIGH_WATER

    def feed(self, data: bytes) -> bool:
        """Add a chunk; True when the buffer is full and reading should pause."""
        with self._lock:
            self._chunks.append(data)
            self._buffered += len(data)
            if self._waiter is not None:
                self._wake()
            return self._buffered > HIGH_WATER

    def end(self) -> None:
        with self._lock:
            self._done = True
            if self._waiter is not None:
                self._wake()

    def abort(self) -> None:
        with self._lock:
            self._aborted = True
            if self._waiter is not None:
                self._wake()

    def _wake(self) -> None:
        """With the lock held: let the waiting app thread go on."""
        waiter, self._waiter = self._waiter, None
        assert waiter is not None
        waiter.release()

    # -- the app's side --------------------------------------------------------------------

    def _take(self, size: int) -> bytes:
        """Up to `size` bytes (all when negative), waiting for at least one."""
        with self._lock:
            if not self._chunks and not self._done:
                if self._ask_for_body is not None:
                    ask, self._ask_for_body = self._ask_for_body, None
                    ask()
                while not self._chunks and not self._done and not self._aborted:
                    # Held by this thread until the loop's feed/end/abort releases it.
                    waiter = self._waiter = threading.Lock()
                    waiter.acquire()
                    self._lock.release()
                    try:
                        waiter.acquire()
                    finally:
                        self._lock.acquire()
            if not self._chunks:
                if self._aborted and not self._done:
                    raise ClientDisconnected("the client closed the connection mid-body")
                return b""
            was_high = self._buffered > LOW_WATER
            if size < 0 or size >= self._buffered:
                data = b"".join(self._chunks)
                self._chunks.clear()
            else:
                data = self._chunks.popleft()
                if len(data) > size:
                    self._chunks.appendleft(data[size:])
                    data = data[:size]
            self._buffered -= len(data)
            resume = was_high and self._buffered <= LOW_WATER
        if resume:
            self._resume_reading()
        return data

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            parts = [self._line] if self._line else []
            self._line = b""
            while chunk := self._take(-1):
                parts.append(chunk)
            return b"".join(parts)
        if self._line:
            data, self._line = self._line[:size], self._line[size:]
            return data
        parts = []
        wanted = size
        while wanted > 0:
            chunk = self._take(wanted)
            if not chunk:
                break
            parts.append(chunk)
            wanted -= len(chunk)
        return b"".join(parts)

    def readline(self, size: int | None = -1) -> bytes:
        limit = -1 if size is None else size
        buffer = self._line
        while True:
            end = buffer.find(b"\n")
            if end >= 0 and (limit < 0 or end < limit):
                line, self._line = buffer[: end + 1], buffer[end + 1 :]
                return line
            if 0 <= limit <= len(buffer):
                line, self._line = buffer[:limit], buffer[limit:]
                return line
            chunk = self._take(-1)
            if not chunk:
                self._line = b""
                return buffer
            buffer += chunk

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        lines = []
        total = 0
        while line := self.readline():
            lines.append(line)
            total += len(line)
            if hint is not None and 0 < hint <= total:
                break
        return lines

    def __iter__(self) -> Iterator[bytes]:
        while line := self.readline():
            yield line
