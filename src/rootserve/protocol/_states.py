"""The states of the HTTP/1.1 connection, shared by its receive and send sides."""

from __future__ import annotations

import enum

__all__ = ["Framing", "Receive"]


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
