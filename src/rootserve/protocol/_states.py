"""The states of the HTTP/1.1 connection, shared by its receive and send sides."""

from __future__ import annotations

import enum
from typing import Final

__all__ = [
    "CHUNKED",
    "CLOSE_DELIMITED",
    "LENGTH",
    "NO_BODY",
    "RECEIVE_CLOSED",
    "RECEIVE_DONE",
    "RECEIVE_ERROR",
    "RECEIVE_OPEN",
    "SNIFF_METHOD",
    "SWITCHED",
    "UPGRADE",
    "Framing",
    "Receive",
]


class Receive(enum.Enum):
    OPEN = "open"  # parsing requests
    SNIFF_METHOD = "sniff"  # llhttp refused a method: read the token to tell 400 from 501
    DONE = "done"  # the last request said Connection: close; what follows is ignored
    UPGRADE = "upgrade"  # a request asked for WebSocket: bytes after it are held, not parsed
    SWITCHED = "switched"  # a 101 was sent: the bytes belong to another protocol
    ERROR = "error"  # a BadRequest was emitted; everything after it is ignored
    CLOSED = "closed"  # the peer sent EOF


class Framing(enum.Enum):
    LENGTH = "content-length"
    CHUNKED = "chunked"
    CLOSE = "close-delimited"
    NONE = "no body"


# Python 3.11 finds an enum member through a descriptor each time `Receive.OPEN` is
# evaluated (about 70 ns; 3.12 stores members as plain class attributes again). A request
# passes a dozen such tests, so the protocol compares against these names instead.
RECEIVE_OPEN: Final = Receive.OPEN
SNIFF_METHOD: Final = Receive.SNIFF_METHOD
RECEIVE_DONE: Final = Receive.DONE
UPGRADE: Final = Receive.UPGRADE
SWITCHED: Final = Receive.SWITCHED
RECEIVE_ERROR: Final = Receive.ERROR
RECEIVE_CLOSED: Final = Receive.CLOSED
LENGTH: Final = Framing.LENGTH
CHUNKED: Final = Framing.CHUNKED
CLOSE_DELIMITED: Final = Framing.CLOSE
NO_BODY: Final = Framing.NONE
