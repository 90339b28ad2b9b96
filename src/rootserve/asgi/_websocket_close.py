"""How long a WebSocket session waits for the peer's close frame after sending its own
(RFC 6455 section 7.1.1): here, apart from the session, so that the worker's graceful stop
can read it without importing the session and the websockets library at start."""

from __future__ import annotations

from typing import Final

__all__ = ["CLOSE_TIMEOUT"]

CLOSE_TIMEOUT: Final = 10.0  # seconds to wait for the peer's close frame after ours
