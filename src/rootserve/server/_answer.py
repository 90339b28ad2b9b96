"""The states of an exchange's answer, and what an exchange holds before its adapter takes
it: shared by the HTTP/1.1 exchange (exchange.py) and the HTTP/2 one (h2_exchange.py), which
apply the same rules to them."""

from __future__ import annotations

import enum
from typing import Final

__all__ = ["CUT", "DONE", "INTERNAL_ERROR", "NO_RECEIVER", "STREAMING", "WAITING", "Answer"]


class Answer(enum.Enum):
    WAITING = "no response yet"
    STREAMING = "the head is sent, the body goes on"
    DONE = "the response is complete"
    CUT = "cut off: the client is gone, or the connection was aborted"


# Module-level names: Python 3.11 looks `Answer.DONE` up through a descriptor each time
# (about 70 ns), and a request passes several of these tests.
WAITING: Final = Answer.WAITING
STREAMING: Final = Answer.STREAMING
DONE: Final = Answer.DONE
CUT: Final = Answer.CUT
INTERNAL_ERROR: Final = "Internal Server Error"


class _NoReceiver:
    """Until the adapter sets itself as the receiver (and for an exchange nobody answers)."""

    def feed(self, data: bytes) -> None:
        pass

    def end(self) -> None:
        pass

    def disconnect(self) -> None:
        pass

    def writable(self) -> None:
        pass

    def server_stopping(self) -> None:
        pass

    def cancel(self) -> None:
        pass


NO_RECEIVER: Final = _NoReceiver()
