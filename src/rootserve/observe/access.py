"""The access log: one line per answered request, or a null object that costs nothing."""

from __future__ import annotations

import logging

from rootserve.protocol.events import Head

__all__ = ["AccessLog", "NullAccessLog", "printable"]

logger = logging.getLogger("rootserve.access")


def printable(text: str) -> str:
    """`text` with control characters escaped, so a client cannot forge log lines."""
    if text.isprintable():
        return text
    return text.encode("unicode_escape").decode("ascii")


class NullAccessLog:
    """Access log off."""

    def log(self, client: tuple[str, int] | None, request: Head, status: int) -> None:
        return None


class AccessLog:
    """`127.0.0.1:51234 - "GET /path?q HTTP/1.1" 200`"""

    def log(self, client: tuple[str, int] | None, request: Head, status: int) -> None:
        if not logger.isEnabledFor(logging.INFO):
            return
        who = f"{client[0]}:{client[1]}" if client else "-"
        logger.info(
            '%s - "%s %s HTTP/%s" %d',
            who,
            request.method,
            printable(request.target.decode("latin-1")),
            request.http_version,
            status,
        )
