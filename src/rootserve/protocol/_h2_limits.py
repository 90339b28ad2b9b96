"""The bounds of one HTTP/2 connection (`H2Limits`), with nginx's defaults beside ours.
The limits a user may change are settings (config_edge.py, --h2-*): their defaults are
declared there once, and `from_config` reads them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from rootserve.config import Config, default
from rootserve.config_edge import H2_FLOOD_WINDOW
from rootserve.protocol._h2_frames import FloodLimits
from rootserve.units import KIB, MIB

__all__ = ["HARD_HEADER_FACTOR", "H2Limits"]

# RFC 9113 section 6.5.2: the size of a field list counts each field's name and value, and
# 32 bytes more. A block up to this many times max_header_list_size is decoded (so HPACK
# stays in step) and answered 431; past it, HPACK decoding stops: a connection error.
HARD_HEADER_FACTOR: Final = 2


@dataclass(frozen=True, slots=True)
class H2Limits:
    """Bounds on one HTTP/2 connection; beside each default, nginx's for the same thing.
    (The idle timeout is the server's keep-alive timeout; nginx: keepalive_timeout 75s.)"""

    # nginx: http2_max_concurrent_streams 128.
    max_concurrent_streams: int = default("h2_max_concurrent_streams")
    # The request's fields, sized as RFC 9113 section 6.5.2 says; 431 beyond. nginx:
    # large_client_header_buffers 4 8k (32 KiB in all).
    max_header_list_size: int = 32 * KIB
    # HEADERS and CONTINUATION frames in one header block (nginx has no count, only the
    # buffers above; h2's own backlog is 64). A legitimate block of 32 KiB needs 2 frames
    # of the default size (16 KiB).
    max_header_block_frames: int = default("h2_max_header_frames")
    # Request body bytes a client may send on a stream, then on the connection, before we
    # read them (RFC 9113 section 6.9.2). nginx: http2_body_preread_size 64k per stream.
    initial_window_size: int = 256 * KIB
    connection_window_size: int = 1 * MIB
    # Floods, counted per window of flood_window seconds (nginx counts no such frames; its
    # defence against the rapid reset, 1.25.3, caps new streams per event loop pass).
    flood_window: float = H2_FLOOD_WINDOW
    max_resets: int = default("h2_max_resets")  # RST_STREAM frames, and refused streams
    max_pings: int = default("h2_max_pings")  # PING frames
    max_settings: int = default("h2_max_settings")  # SETTINGS frames
    # Seconds an answer may wait on a window the client keeps shut (nginx: send_timeout 60s).
    stall_timeout: float = default("h2_stall_timeout")

    @classmethod
    def from_config(cls, config: Config) -> H2Limits:
        """The --h2-* settings. The header list size, unless --h2-max-header-list-size
        gives one, is the header limit HTTP/1.1 has (--max-header-size bytes of fields, at
        most --max-header-count of them) as HPACK sizes a list: 32 bytes more for each
        field (RFC 9113 section 6.5.2), so that a head that passes one passes the other."""
        header_list = config.h2_max_header_list_size or (
            config.max_header_size + 32 * config.max_header_count
        )
        return cls(
            max_concurrent_streams=config.h2_max_concurrent_streams,
            max_header_list_size=header_list,
            max_header_block_frames=config.h2_max_header_frames,
            max_resets=config.h2_max_resets,
            max_pings=config.h2_max_pings,
            max_settings=config.h2_max_settings,
            stall_timeout=config.h2_stall_timeout,
        )

    def floods(self) -> FloodLimits:
        return FloodLimits(
            window_seconds=self.flood_window,
            max_resets=self.max_resets,
            max_pings=self.max_pings,
            max_settings=self.max_settings,
            max_block_frames=self.max_header_block_frames,
            max_block_bytes=HARD_HEADER_FACTOR * self.max_header_list_size,
        )
