"""A scanner of HTTP/2 frame headers, run over a connection's bytes before h2 parses them.

How this works. h2 assembles a header block from HEADERS and CONTINUATION frames, and
answers PING and SETTINGS by itself: by the time it reports an event, the cost of a flood
is paid. So every received byte passes here first. The scanner reads only the 9-byte frame
headers (RFC 9113 section 4.1: a 24-bit payload length, a type, flags, and a reserved bit
with a 31-bit stream identifier), steps over the payloads without keeping them, and keeps a
header cut between two reads for the next one: its memory is a few integers whatever the
peer sends. It counts, in a window of time, the frames a peer can send by the thousand at
no cost to itself and a real one to the server, and the frames and bytes of each header
block. `scan` names the first limit broken, before any of those bytes reach h2; the
connection then ends with GOAWAY ENHANCE_YOUR_CALM (RFC 9113 section 10.5).

- RST_STREAM: the rapid reset (CVE-2023-44487): open a stream, reset it at once, again;
  each one can start an app call that the reset does not cost the client. The streams the
  server itself refuses (over the limit, malformed: `note_reset`) count with them.
- PING and SETTINGS (CVE-2019-9512, CVE-2019-9515): each one asks for an answer.
- CONTINUATION (the CONTINUATION flood, VU#421644, 2024): a header block that never ends.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

__all__ = ["PREFACE", "FloodLimits", "FrameScanner", "sniff_preface"]

PREFACE: Final = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"  # RFC 9113 section 3.4
FRAME_HEADER_BYTES: Final = 9  # RFC 9113 section 4.1


def sniff_preface(data: bytes) -> bool | None:
    """Whether a connection's first bytes are HTTP/2's client preface (RFC 9113 section
    3.4: a client with prior knowledge starts with it): None while they are too few to
    tell. `data` is everything received so far."""
    if len(data) >= len(PREFACE):
        return data.startswith(PREFACE)
    return None if PREFACE.startswith(data) else False


# Frame types and flags (RFC 9113 section 6).
HEADERS: Final = 0x1
RST_STREAM: Final = 0x3
SETTINGS: Final = 0x4
PUSH_PROMISE: Final = 0x5
PING: Final = 0x6
CONTINUATION: Final = 0x9
ACK: Final = 0x1  # on SETTINGS and PING
END_HEADERS: Final = 0x4  # on HEADERS, PUSH_PROMISE and CONTINUATION

# length (24 bits: a byte and two), type, flags; the stream identifier is not needed here.
_HEADER: Final = struct.Struct(">BHBB")


@dataclass(frozen=True, slots=True)
class FloodLimits:
    """What the scanner enforces (H2Limits, in http2.py, holds the defaults)."""

    window_seconds: float
    max_resets: int  # streams reset per window: RST_STREAM frames, and refused streams
    max_pings: int  # PING frames (not acknowledgements) per window
    max_settings: int  # SETTINGS frames (not acknowledgements) per window
    max_block_frames: int  # HEADERS plus CONTINUATION frames in one header block
    max_block_bytes: int  # their payload bytes (the block as compressed by HPACK)


class FrameScanner:
    """Counts the frames of one connection's received bytes; see the module's docstring."""

    def __init__(self, limits: FloodLimits) -> None:
        self.limits = limits
        self._preface_left = len(PREFACE)  # the client's preface comes first (h2 checks it)
        self._partial = b""  # the start of a frame header cut by the end of a read
        self._skip = 0  # payload bytes of the current frame still to step over
        self._block_frames = 0  # frames of the header block in progress; 0: none
        self._block_bytes = 0
        self._window_start = float("-inf")
        self._resets = 0
        self._pings = 0
        self._settings = 0

    @property
    def in_frame(self) -> bool:
        """Whether a frame, or a header block, has begun and not ended."""
        return bool(self._partial or self._skip or self._block_frames) or (
            0 < self._preface_left < len(PREFACE)
        )

    def scan(self, data: bytes, now: float) -> str | None:
        """Account for `data`, the next bytes received; the limit they break, if any (the
        scanner is then of no further use: the connection ends)."""
        size = len(data)
        pos = 0
        if self._preface_left:
            pos = min(self._preface_left, size)
            self._preface_left -= pos
        while pos < size:
            if self._skip:
                step = min(self._skip, size - pos)
                self._skip -= step
                pos += step
                continue
            if self._partial or size - pos < FRAME_HEADER_BYTES:
                need = FRAME_HEADER_BYTES - len(self._partial)
                self._partial += data[pos : pos + need]
                pos += need
                if len(self._partial) < FRAME_HEADER_BYTES:
                    break
                high, low, kind, flags = _HEADER.unpack_from(self._partial)
                self._partial = b""
            else:
                high, low, kind, flags = _HEADER.unpack_from(data, pos)
                pos += FRAME_HEADER_BYTES
            length = high << 16 | low
            self._skip = length
            broken = self._count(kind, flags, length, now)
            if broken is not None:
                return broken
        return None

    def _count(self, kind: int, flags: int, length: int, now: float) -> str | None:
        limits = self.limits
        if self._block_frames:
            # RFC 9113 section 6.10: only CONTINUATION may follow an unfinished block; h2
            # answers anything else with a connection error, so the count stops here.
            if kind != CONTINUATION:
                self._block_frames = 0
                return None
            return self._block(flags, length)
        if kind in (HEADERS, PUSH_PROMISE):
            self._block_bytes = 0
            return self._block(flags, length)
        if kind in (RST_STREAM, PING, SETTINGS):
            self._tick(now)
            if kind == RST_STREAM:
                return self.note_reset(now)
            if flags & ACK:
                return None  # an acknowledgement answers what we sent: ours to bound
            elif kind == PING:
                self._pings += 1
                if self._pings > limits.max_pings:
                    return f"more than {limits.max_pings} PING frames (ping flood)"
            else:
                self._settings += 1
                if self._settings > limits.max_settings:
                    return f"more than {limits.max_settings} SETTINGS frames (settings flood)"
        return None

    def note_reset(self, now: float) -> str | None:
        """Count a stream reset: the client's (RST_STREAM), or the server's answer to a
        stream the client had no business opening (over the limit, malformed), which
        costs the server as much: the limit is on both together."""
        self._tick(now)
        self._resets += 1
        if self._resets > self.limits.max_resets:
            return f"more than {self.limits.max_resets} streams reset (rapid reset)"
        return None

    def _tick(self, now: float) -> None:
        if now - self._window_start >= self.limits.window_seconds:
            self._window_start = now
            self._resets = self._pings = self._settings = 0

    def _block(self, flags: int, length: int) -> str | None:
        limits = self.limits
        self._block_frames += 1
        self._block_bytes += length
        if self._block_frames > limits.max_block_frames:
            return (
                f"a header block of more than {limits.max_block_frames} frames (CONTINUATION flood)"
            )
        if self._block_bytes > limits.max_block_bytes:
            return f"a header block of more than {limits.max_block_bytes} bytes"
        if flags & END_HEADERS:
            self._block_frames = 0
        return None
